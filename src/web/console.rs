//! The operator console at `/console`: its page, sign-in (API key, operator token, one-time link) and sign-out.
//!
//! Served in every provider mode. The page reads its data from the site
//! API's `GET /v1/…` routes with the session cookie (`api::session`).

use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::api::session::{self, CSRF_HEADER, TTL_SECONDS};
use crate::domain::console::{ConsoleToken, Kind, Who};
use crate::error::AppError;
use crate::state::AppState;

/// What sign-in takes: a tenant's API key or the operator token, as a form or JSON.
#[derive(Deserialize)]
struct SignIn {
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    operator_token: String,
}

/// Who is signed in, the CSRF token for state-changing requests, and (for
/// the operator) the tenants to pick from.
#[derive(Serialize)]
struct SessionView {
    role: &'static str,
    tenant: Option<TenantRef>,
    tenants: Vec<TenantRef>,
    csrf_token: String,
    expires_at: String,
}

#[derive(Serialize)]
struct TenantRef {
    id: String,
    name: String,
}

fn parse_sign_in(req: &HttpRequest, body: &[u8]) -> Result<SignIn, AppError> {
    let json = req.headers().get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"));
    if json {
        serde_json::from_slice(body).map_err(|e| AppError::MalformedJson(e.to_string()))
    } else {
        serde_urlencoded_form(body)
    }
}

fn serde_urlencoded_form(body: &[u8]) -> Result<SignIn, AppError> {
    let mut out = SignIn { api_key: String::new(), operator_token: String::new() };
    for (k, v) in url::form_urlencoded::parse(body) {
        match &*k {
            "api_key" => out.api_key = v.trim().to_owned(),
            "operator_token" => out.operator_token = v.trim().to_owned(),
            _ => {}
        }
    }
    Ok(out)
}

/// Whether `presented` is the server's operator token (constant time).
fn is_operator(state: &AppState, presented: &str) -> bool {
    state
        .operator_token
        .as_ref()
        .is_some_and(|t| !presented.is_empty() && bool::from(t.expose_secret().as_bytes().ct_eq(presented.as_bytes())))
}

/// A fresh session for `who`, as a `Set-Cookie`: every sign-in makes a new
/// token, so a cookie planted before it never becomes a signed-in session.
fn signed_in(state: &AppState, who: Who, resp: &mut actix_web::HttpResponseBuilder) -> ConsoleToken {
    let token = ConsoleToken::new(Kind::Session, who, state.service.now().timestamp() + TTL_SECONDS);
    let (_, keys) = state.service.keys.current();
    resp.cookie(session::cookie(state, token.sign(keys.console_key()), TTL_SECONDS));
    token
}

/// A refused sign-in: 401, or 429 once the client's address has failed
/// too often in the last minute (`AppState::sign_in_limiter`).
fn failed_sign_in(state: &AppState, req: &HttpRequest) -> AppError {
    // Counted into the server's minute of refusals in the audit trail.
    state.service.metrics.refusals.count(None, "console_sign_in");
    let Some(ip) = req.peer_addr().map(|a| a.ip()) else { return AppError::Unauthorized };
    match state.sign_in_limiter.check(&ip) {
        Ok(()) => AppError::Unauthorized,
        Err(retry_after) => {
            tracing::warn!(client = %ip, "console sign-ins refused: too many failures from this address");
            AppError::RateLimited {
                retry_after,
                message: "too many failed sign-ins from this address; try again in a minute".into(),
            }
        }
    }
}

/// `POST /console/session`: exchanges an API key or the operator token for a session cookie.
async fn sign_in(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, AppError> {
    if session::cross_site(&req) {
        return Err(AppError::Forbidden);
    }
    let form = parse_sign_in(&req, &body)?;
    let who = if is_operator(&state, &form.operator_token) {
        Who::Operator
    } else {
        match state.service.tenant_for_key(&form.api_key).await? {
            Some(tenant) => Who::Tenant { id: tenant.id, key_id: tenant.key_id },
            None => return Err(failed_sign_in(&state, &req)),
        }
    };
    let mut resp = HttpResponse::Ok();
    let token = signed_in(&state, who, &mut resp);
    Ok(resp.insert_header(("Cache-Control", "no-store")).json(view(&state, &req, &token).await?))
}

/// `GET /console/session`: who is signed in (401 when no one).
async fn whoami(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, AppError> {
    let (_, token) = session::current(&state, &req).await?.ok_or(AppError::Unauthorized)?;
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(view(&state, &req, &token).await?))
}

async fn view(state: &AppState, req: &HttpRequest, token: &ConsoleToken) -> Result<SessionView, AppError> {
    let (_, keys) = state.service.keys.current();
    let as_ref = |t: &crate::domain::tenant::Tenant| TenantRef { id: t.id.to_string(), name: t.name.clone() };
    let (role, tenant, tenants) = match &token.who {
        Who::Operator => {
            let mut all: Vec<_> = state.service.tenants().await?.iter().map(as_ref).collect();
            all.sort_by(|a, b| a.name.cmp(&b.name));
            ("operator", None, all)
        }
        Who::Tenant { .. } => ("tenant", Some(as_ref(&session::tenant_of(state, req, token).await?)), Vec::new()),
    };
    let expires_at = chrono::DateTime::from_timestamp(token.expires, 0).unwrap_or_default().to_rfc3339();
    Ok(SessionView { role, tenant, tenants, csrf_token: token.csrf(keys.console_key()), expires_at })
}

/// `POST /console/session/delete`: signs out. Needs the session's CSRF token
/// in `X-CSRF-Token` and a same-origin request; answers 403 otherwise.
/// The session is remembered as signed out by every server until it would
/// have expired, so a copy of its cookie no longer signs anybody in.
async fn sign_out(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, AppError> {
    let (cookie, token) = session::current(&state, &req).await?.ok_or(AppError::Unauthorized)?;
    let presented = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    if session::cross_site(&req) || !token.csrf_matches(presented, session::keys(&state)) {
        return Err(AppError::Forbidden);
    }
    let until = chrono::DateTime::from_timestamp(token.expires, 0).unwrap_or_else(|| state.service.now());
    state.service.first_use(session::SIGNED_OUT, &cookie, until).await?;
    Ok(HttpResponse::NoContent().cookie(session::cookie(&state, String::new(), 0)).finish())
}

#[derive(Deserialize)]
struct LinkQuery {
    t: String,
}

/// `GET /console/link?t=…`: a sign-in link the CLI printed. Used once
/// across every server (`Service::first_use`), then refused; either way the
/// browser goes on to `/console` (with `?link=invalid` when refused).
async fn link(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<LinkQuery>,
) -> Result<HttpResponse, AppError> {
    let now = state.service.now();
    let refused = || HttpResponse::SeeOther().insert_header((LOCATION, "/console?link=invalid")).finish();
    let verified = ConsoleToken::verify(&query.t, Kind::Link, session::keys(&state), now.timestamp());
    // Links sign tenants in; the operator signs in with the operator token.
    let Some(token) = verified.ok().filter(|t| t.who != Who::Operator) else { return Ok(refused()) };
    let until = chrono::DateTime::from_timestamp(token.expires, 0).unwrap_or(now);
    if !state.service.first_use("console-link", &query.t, until).await? {
        return Ok(refused());
    }
    // The tenant's key may have changed since the link was made.
    let probe = ConsoleToken { kind: Kind::Session, ..token.clone() };
    let Ok(tenant) = session::tenant_of(&state, &req, &probe).await else { return Ok(refused()) };
    let mut resp = HttpResponse::SeeOther();
    signed_in(&state, Who::Tenant { id: tenant.id, key_id: tenant.key_id }, &mut resp);
    Ok(resp.insert_header((LOCATION, "/console")).finish())
}

/// The console's page and assets (name, content type, content). The charts
/// are drawn by uPlot, vendored in `assets/vendor/` (see its README) and
/// served from here, never from a CDN.
const ASSETS: [(&str, &str, &str); 5] = [
    ("console.html", "text/html; charset=utf-8", include_str!("assets/console.html")),
    ("console.css", "text/css; charset=utf-8", include_str!("assets/console.css")),
    ("console.js", "text/javascript; charset=utf-8", include_str!("assets/console.js")),
    ("uPlot.iife.min.js", "text/javascript; charset=utf-8", include_str!("assets/vendor/uPlot.iife.min.js")),
    ("uPlot.min.css", "text/css; charset=utf-8", include_str!("assets/vendor/uPlot.min.css")),
];

async fn page() -> Result<HttpResponse, AppError> {
    super::serve_from(&ASSETS, "console.html")
}

async fn asset(name: web::Path<String>) -> Result<HttpResponse, AppError> {
    if name.ends_with(".html") {
        return Err(AppError::NotFound("no such asset"));
    }
    super::serve_from(&ASSETS, &name)
}

/// The console's routes; mounted in every provider mode.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/console").route(web::get().to(page)).route(web::head().to(page)))
        .route("/console/assets/{name}", web::get().to(asset))
        .route("/console/session", web::post().to(sign_in))
        .route("/console/session", web::get().to(whoami))
        .route("/console/session/delete", web::post().to(sign_out))
        .route("/console/link", web::get().to(link));
}
