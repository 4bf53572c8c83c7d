//! The console's session cookie: made at sign-in, read by the console and by the site API's reads.
//!
//! The cookie holds a `domain::console` token and nothing else: any server
//! verifies it with the key it derives from the shared secret, so no session
//! is stored. It lives 30 minutes from sign-in (fixed, not sliding: a bank's
//! operators sign in again rather than keep a forgotten tab alive).

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite, time};
use uuid::Uuid;

use crate::domain::console::{ConsoleToken, Kind, Who};
use crate::domain::tenant::Tenant;
use crate::error::AppError;
use crate::state::AppState;

/// Seconds a session lasts from sign-in.
pub const TTL_SECONDS: i64 = 30 * 60;
/// The header (or `?tenant=` query parameter) an operator's session names the tenant it reads with.
pub const TENANT_HEADER: &str = "X-Console-Tenant";
/// The header the console sends its CSRF token in.
pub const CSRF_HEADER: &str = "X-CSRF-Token";

/// The cookie's name: with `Secure`, the `__Host-` prefix, so that the
/// browser refuses it from anywhere but this host over https.
pub fn cookie_name(state: &AppState) -> &'static str {
    if state.secure_cookies { "__Host-ivr_console" } else { "ivr_console" }
}

/// The keys that sign console tokens, the current one first.
pub fn keys(state: &AppState) -> impl Iterator<Item = &[u8; 32]> {
    state.service.keys.all().map(|k| k.console_key())
}

/// The session cookie carrying `value` for `max_age` seconds (0: removes it).
/// `Path=/`: the console reads through `/v1/…`, so the cookie must reach it.
pub fn cookie(state: &AppState, value: String, max_age: i64) -> Cookie<'static> {
    Cookie::build(cookie_name(state), value)
        .path("/")
        .http_only(true)
        .secure(state.secure_cookies)
        .same_site(SameSite::Strict)
        .max_age(time::Duration::seconds(max_age))
        .finish()
}

/// The one-time-token kind under which a signed-out session is remembered
/// (`Service::first_use`), on every server, until it would have expired.
pub const SIGNED_OUT: &str = "console-session-signed-out";

/// The cookie's value, the session it carries, if it is one: verified, and
/// not signed out on any server. An operator's session ends when the server
/// no longer has an operator token.
pub async fn current(state: &AppState, req: &HttpRequest) -> Result<Option<(String, ConsoleToken)>, AppError> {
    let Some(cookie) = req.cookie(cookie_name(state)) else { return Ok(None) };
    let now = state.service.now().timestamp();
    let Ok(token) = ConsoleToken::verify(cookie.value(), Kind::Session, keys(state), now) else { return Ok(None) };
    if token.who == Who::Operator && state.operator_token.is_none() {
        return Ok(None);
    }
    if state.service.spent(SIGNED_OUT, cookie.value()).await? {
        return Ok(None);
    }
    Ok(Some((cookie.value().to_owned(), token)))
}

/// The tenant named by an operator's request: the header, else `?tenant=`.
fn named_tenant(req: &HttpRequest) -> Option<Result<Uuid, AppError>> {
    let raw = match req.headers().get(TENANT_HEADER) {
        Some(v) => v.to_str().ok().map(str::to_owned),
        None => url::form_urlencoded::parse(req.query_string().as_bytes())
            .find(|(k, _)| k == "tenant")
            .map(|(_, v)| v.into_owned()),
    }?;
    Some(Uuid::parse_str(raw.trim()).map_err(|_| AppError::NotFound("no such tenant")))
}

/// The tenant `session` reads: its own while its API key is unchanged, or,
/// for the operator, the one the request names.
pub async fn tenant_of(state: &AppState, req: &HttpRequest, session: &ConsoleToken) -> Result<Tenant, AppError> {
    let id = match &session.who {
        Who::Tenant { id, .. } => *id,
        Who::Operator => named_tenant(req).ok_or_else(|| {
            AppError::invalid("tenant", "an operator's session names the tenant (X-Console-Tenant or ?tenant=)")
        })??,
    };
    let tenant = state.service.tenant(id).await?;
    match (&session.who, tenant) {
        (Who::Tenant { key_id, .. }, Some(t)) if t.key_id == *key_id => Ok(t),
        // A rotated key (or a removed tenant) signs the session out.
        (Who::Tenant { .. }, _) => Err(AppError::Unauthorized),
        (Who::Operator, Some(t)) => Ok(t),
        (Who::Operator, None) => Err(AppError::NotFound("no such tenant")),
    }
}

/// Whether a browser says this request comes from another site: its
/// `Sec-Fetch-Site` is not same-origin, or its `Origin` is not this host.
/// A request with neither header is not a browser's cross-site request.
pub fn cross_site(req: &HttpRequest) -> bool {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("Sec-Fetch-Site")
        && site != "same-origin"
        && site != "none"
    {
        return true;
    }
    match header("Origin") {
        None => false,
        Some(origin) => {
            let host = req.connection_info().host().to_owned();
            let same = ["http://", "https://"].iter().any(|s| origin.strip_prefix(s) == Some(host.as_str()));
            !same
        }
    }
}
