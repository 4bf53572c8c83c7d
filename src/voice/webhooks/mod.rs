//! The provider's webhooks: answer, gather action, no-input, status callbacks, inbound.
//!
//! Each one checks `X-Twilio-Signature` before anything else (the `Signed`
//! extractor), turns the provider's parameters into one domain event, and
//! answers TwiML for the state the request is in afterwards. While the
//! database is unreachable, the caller is kept on the line (`voice::hold`).
//!
//! They decide nothing about the call: which keys cost an attempt, how often
//! the code is read again, how many tries a shared-number call has, which
//! code is expected and which call or message a report is about are the
//! domain's (`domain::call`, `domain::delivery`, `AuthRequest`).

mod inbound;
mod outbound;
mod preview;
mod speaker;
mod status;

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::body::read_limited;
use crate::domain::phone::PhoneNumber;
use crate::domain::request::{AuthRequest, Event};
use crate::domain::status::{Locale, Mode};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{Applied, StoreError};
use crate::voice::hold::Hold;
use crate::voice::prompts::Prompt;
use crate::voice::signature;
use crate::voice::twiml::{Verb, render};
use crate::voice::urls::{LOCALE_PARAM, locale_in};

use speaker::Speaker;

pub use inbound::{inbound, inbound_gather};
pub use outbound::{answer, gather, no_input, otp};
pub use preview::preview;
pub use status::{sms_status, status, status_by_sid};

/// The form parameters of a webhook whose signature checked out.
pub struct Signed(Params);

/// The form parameters of a verified webhook.
struct Params(Vec<(String, String)>);

impl FromRequest for Signed {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let body = web::Payload::from_request(&req, payload);
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| AppError::Internal("application state missing".into()))?;
            let body = body.await.map_err(|e| AppError::MalformedJson(e.to_string()))?;
            verified(&state, &req, body).await.map(Signed)
        })
    }
}

impl Params {
    fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }
}

/// Reads the form body and checks its signature against the public URL.
async fn verified(state: &AppState, req: &HttpRequest, payload: web::Payload) -> Result<Params, AppError> {
    let body = read_limited(req, payload).await?;
    let params: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let given = req.headers().get("X-Twilio-Signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let url = state.urls.signed_url(path);
    if given.is_empty() || !signature::is_valid(state.webhook_token.expose_secret().as_bytes(), &url, &params, given) {
        state.metrics.signature_rejections.inc();
        tracing::warn!(path = req.path(), "webhook refused: missing or invalid signature");
        return Err(AppError::Forbidden);
    }
    Ok(Params(params))
}

fn twiml(verbs: &[Verb]) -> HttpResponse {
    HttpResponse::Ok().insert_header((CONTENT_TYPE, "text/xml; charset=utf-8")).body(render(verbs))
}

/// Errors inside a webhook still answer valid TwiML: sorry, goodbye, in
/// the locale the webhook's URL names (the request itself may be unreadable).
fn sorry(state: &AppState, req: &HttpRequest, e: &dyn std::fmt::Display) -> HttpResponse {
    tracing::error!(error = %e, "webhook failed");
    Speaker::nobody(state, Mode::Inbound, url_locale(req)).end(&[Prompt::Failure])
}

/// The locale of the call a webhook belongs to, as its URL names it.
fn url_locale(req: &HttpRequest) -> Locale {
    locale_in(req.query_string()).unwrap_or(Locale::DEFAULT)
}

/// A webhook that could not reach the database: a pause and a redirect to
/// itself (with `sealed` digits), until the caller has waited long enough.
fn hold_on(state: &AppState, req: &HttpRequest, sealed: Option<&str>, e: &StoreError) -> HttpResponse {
    let hold = Hold::from_query(req.query_string());
    let mut url = state.urls.signed_url(req.path());
    if let Some(locale) = locale_in(req.query_string()) {
        url = format!("{url}?{LOCALE_PARAM}={locale}");
    }
    match hold.again(&url, sealed) {
        Some(verbs) => {
            state.metrics.webhook_holds.inc();
            tracing::warn!(error = %e, hold = hold.count + 1, "database unavailable: caller kept on the line");
            twiml(&verbs)
        }
        None => sorry(state, req, e),
    }
}

/// A store failure in a webhook: hold the caller if it may pass, else sorry.
fn failed(state: &AppState, req: &HttpRequest, sealed: Option<&str>, e: &StoreError) -> HttpResponse {
    match e {
        StoreError::Unavailable(_) => hold_on(state, req, sealed, e),
        _ => sorry(state, req, e),
    }
}

fn request_id(raw: &str) -> Option<Uuid> {
    Uuid::parse_str(raw).ok()
}

/// Applies the event picked for request `id` and lets `respond` answer from
/// the outcome. `sealed` is what a hold must carry to retry this step.
async fn on_request(
    state: &AppState,
    req: &HttpRequest,
    sealed: Option<&str>,
    id: Option<Uuid>,
    pick: impl Fn(&AuthRequest) -> Option<Event> + Send + Sync + 'static,
    respond: impl FnOnce(&Speaker<'_>, &AuthRequest, Option<&AuthRequest>) -> HttpResponse,
) -> HttpResponse {
    let Some(id) = id else { return Speaker::nobody(state, Mode::Outbound, url_locale(req)).end(&[]) };
    match state.core.transition(id, pick).await {
        Ok(Some(Applied { before, after })) => {
            let now_state = after.as_ref().unwrap_or(&before).as_seen_at(state.core.now());
            let tenant = state.core.tenant_cached(now_state.tenant_id).await;
            respond(&Speaker::new(state, Some(&now_state), tenant), &before, after.as_ref())
        }
        Ok(None) => Speaker::nobody(state, Mode::Outbound, url_locale(req)).end(&[]),
        Err(e) => failed(state, req, sealed, &e),
    }
}

/// What a webhook must match to touch a request: the bound call and the registered number.
#[derive(Clone)]
struct CallGuard {
    call_sid: String,
    to: Option<String>,
    from: Option<String>,
}

/// A reported number as E.164 text. Providers send E.164 already; only other
/// spellings go through the (costly) full parse. An E.164-shaped string that
/// is not a valid number simply matches no registered one.
fn e164(raw: &str, state: &AppState) -> Option<String> {
    let digits = raw.strip_prefix('+').unwrap_or("");
    if (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0') {
        return Some(raw.to_owned());
    }
    PhoneNumber::parse(raw, state.default_region).ok().map(|n| n.as_str().to_owned())
}

impl CallGuard {
    /// Normalises the call's numbers once, before the store's transaction.
    fn new(state: &AppState, p: &Params) -> Self {
        Self { call_sid: p.get("CallSid").to_owned(), to: e164(p.get("To"), state), from: e164(p.get("From"), state) }
    }

    /// The user's side of the call is the registered number: `To` for outbound, `From` for inbound.
    fn number_matches(&self, r: &AuthRequest) -> bool {
        let user = match r.mode {
            Mode::Outbound => &self.to,
            Mode::Inbound => &self.from,
        };
        user.as_deref() == Some(r.phone_number.as_str())
    }

    fn check(&self, r: &AuthRequest) -> Option<()> {
        (self.number_matches(r) && r.is_call(&self.call_sid)).then_some(())
    }
}
