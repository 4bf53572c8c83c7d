//! The call flow behind the provider's webhooks: answer, gather action, no-input, status callbacks, inbound.
//!
//! Each one takes a verified webhook's facts (`call::report::Report`, given
//! by `telephony::webhook::Signed`, which lets the provider's dialect check
//! the signature before anything else), turns them into one domain event,
//! and answers the call script (`call::speaker`) for the state the request
//! is in afterwards, rendered by the same dialect (`telephony::webhook::reply`). While the
//! database is unreachable, the caller is kept on the line (`call::hold`).
//!
//! They decide nothing about the call: which keys cost an attempt, how often
//! the code is read again, how many tries a shared-number call has, which
//! code is expected and which call or message a report is about are the
//! domain's (`domain::call`, `domain::delivery`, `AuthRequest`).

mod inbound;
mod outbound;
mod status;

use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use uuid::Uuid;

use crate::call::hold::Hold;
use crate::call::prompt::Prompt;
use crate::call::report::Report;
use crate::call::script::Script;
use crate::call::speaker::Speaker;
use crate::call::speaker::Voice;
use crate::call::urls::Urls;
use crate::call::urls::{LOCALE_PARAM, locale_in, paths};
use crate::domain::phone::PhoneNumber;
use crate::domain::request::{AuthRequest, Event};
use crate::domain::status::{Locale, Mode};
use crate::state::AppState;
use crate::store::{Applied, StoreError};
pub use crate::telephony::webhook::reply;
use crate::telephony::webhook::{CallOnRecord, Signed};

pub use inbound::{inbound, inbound_gather};
pub use outbound::{answer, gather, no_input, otp};
pub use status::{sms_status, status, status_by_sid};

/// What a call's script is made of, with the URLs of the provider that asked
/// (its folder's `Urls`, registered beside its dialect).
fn voice<'a>(state: &'a AppState, req: &'a HttpRequest) -> Voice<'a> {
    let urls = req.app_data::<actix_web::web::Data<Urls>>().map_or(&state.urls, |u| u.get_ref());
    state.voice_with(urls)
}

/// Errors inside a webhook still answer valid TwiML: sorry, goodbye, in
/// the locale the webhook's URL names (the request itself may be unreadable).
fn sorry(state: &AppState, req: &HttpRequest, e: &dyn std::fmt::Display) -> HttpResponse {
    tracing::error!(error = %e, "webhook failed");
    reply(req, &Speaker::nobody(voice(state, req), url_mode(req), url_locale(req)).end(&[Prompt::Failure]))
}

/// Whether a webhook belongs to a call the user made (an inbound number's
/// routes) or one the server placed, as its path says: the goodbye differs.
fn url_mode(req: &HttpRequest) -> Mode {
    if req.path().contains(paths::INBOUND) { Mode::Inbound } else { Mode::Outbound }
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
    if let Some(call) = req.extensions().get::<CallOnRecord>() {
        let sep = if url.contains('?') { '&' } else { '?' };
        url = format!("{url}{sep}{}", call.query());
    }
    match hold.again(&url, sealed) {
        Some(verbs) => {
            state.service.metrics.webhook_holds.inc();
            tracing::warn!(error = %e, hold = hold.count + 1, "database unavailable: caller kept on the line");
            reply(req, &verbs)
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
    respond: impl FnOnce(&Speaker<'_>, &AuthRequest, Option<&AuthRequest>) -> Script,
) -> HttpResponse {
    let Some(id) = id else {
        return reply(req, &Speaker::nobody(voice(state, req), Mode::Outbound, url_locale(req)).end(&[]));
    };
    match state.service.transition(id, pick).await {
        Ok(Some(Applied { before, after })) => {
            let now_state = after.as_ref().unwrap_or(&before).as_seen_at(state.service.now());
            let tenant = state.service.tenant_cached(now_state.tenant_id).await;
            reply(req, &respond(&Speaker::new(voice(state, req), Some(&now_state), tenant), &before, after.as_ref()))
        }
        Ok(None) => reply(req, &Speaker::nobody(voice(state, req), Mode::Outbound, url_locale(req)).end(&[])),
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
    PhoneNumber::parse(raw, state.service.default_region).ok().map(|n| n.as_str().to_owned())
}

impl CallGuard {
    /// Normalises the call's numbers once, before the store's transaction.
    fn new(state: &AppState, p: &Report) -> Self {
        Self { call_sid: p.call_sid.clone(), to: e164(p.to.as_str(), state), from: e164(p.from.as_str(), state) }
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

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn a_webhook_s_path_tells_whose_call_it_is() {
        let mode = |path: &str| url_mode(&TestRequest::with_uri(path).to_http_request());
        assert_eq!(mode("/webhooks/twilio/voice/inbound"), Mode::Inbound);
        assert_eq!(mode("/webhooks/vonage/voice/inbound/gather?try=2"), Mode::Inbound);
        assert_eq!(mode("/webhooks/telnyx/voice/gather/0192?lang=ja-JP"), Mode::Outbound);
        assert_eq!(mode("/webhooks/twilio/voice/answer/0192"), Mode::Outbound);
    }
}
