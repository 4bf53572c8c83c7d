//! The provider's webhooks: answer, gather action, no-input, status callbacks, inbound.
//!
//! Each one checks `X-Twilio-Signature` before anything else (the `Signed`
//! extractor), turns the provider's parameters into one domain event, and
//! answers TwiML for the state the request is in afterwards. While the
//! database is unreachable, the caller is kept on the line (`voice::hold`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use secrecy::ExposeSecret;
use uuid::Uuid;

use super::hold::{self, Hold};
use super::prompts::{Prompt, Vars};
use super::signature;
use super::twiml::{Verb, render};
use super::urls::{LOCALE_PARAM, locale_in};
use crate::body::read_limited;
use crate::domain::call::{InboundCall, Keys, REPEAT_KEY};
use crate::domain::phone::{Attestation, PhoneNumber, is_withheld_caller_id};
use crate::domain::request::{AuthRequest, Event};
use crate::domain::status::{CallStatus, Channel, FailureReason, Locale, Mode, Status};
use crate::domain::tenant::Tenant;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{Applied, StoreError};

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

/// Verbs for one request's call, in its locale, with its tenant's words.
struct Speaker<'a> {
    state: &'a AppState,
    locale: Locale,
    /// Who placed the call: the greeting and the goodbye differ.
    mode: Mode,
    vars: Vars,
    tenant: Option<Arc<Tenant>>,
}

impl<'a> Speaker<'a> {
    fn new(state: &'a AppState, r: Option<&AuthRequest>, tenant: Option<Arc<Tenant>>) -> Self {
        let vars = r.map_or(Vars::default(), |r| Vars {
            code_length: r.code_length,
            attempts_left: r.attempts_left(),
            site_name: tenant.as_ref().and_then(|t| t.policy.voice.name_for(r.locale.as_str())).map(str::to_owned),
            ..Vars::default()
        });
        Self {
            state,
            locale: r.map_or(Locale::DEFAULT, |r| r.locale),
            mode: r.map_or(Mode::Inbound, |r| r.mode),
            vars,
            tenant,
        }
    }

    /// For a call no request is known for; `mode` says who placed it.
    fn nobody(state: &'a AppState, mode: Mode, locale: Locale) -> Self {
        Self { mode, locale, ..Self::new(state, None, None) }
    }

    /// For a call on a number several tenants share, before the code picks
    /// one: the server's own prompts in its default locale, so that no
    /// tenant decides what another tenant's callers hear. The code's length
    /// is said only when every candidate's is the same.
    fn shared(state: &'a AppState, candidates: &[AuthRequest]) -> Self {
        let mut speak = Self::nobody(state, Mode::Inbound, Locale::DEFAULT);
        let mut lengths = candidates.iter().map(|r| r.code_length);
        let first = lengths.next().unwrap_or_default();
        speak.vars.code_length = if lengths.all(|l| l == first) { first } else { 0 };
        speak
    }

    fn say(&self, p: Prompt) -> Verb {
        let voice = self.tenant.as_ref().map(|t| &t.policy.voice);
        self.state.prompts.verb(self.locale, p, &self.vars, voice, self.state.urls.base())
    }

    fn goodbye(&self) -> Prompt {
        match self.mode {
            Mode::Outbound => Prompt::GoodbyeOutbound,
            Mode::Inbound => Prompt::GoodbyeInbound,
        }
    }

    /// The prompts, then goodbye and hang up.
    fn end(&self, prompts: &[Prompt]) -> HttpResponse {
        let mut verbs: Vec<Verb> = prompts.iter().map(|p| self.say(*p)).collect();
        verbs.push(self.say(self.goodbye()));
        verbs.push(Verb::Hangup);
        twiml(&verbs)
    }

    /// The prompts, then a Gather for the code; silence falls through to the
    /// no-input handler. The code ends on its last digit, so nobody is asked
    /// for `#`; `*` ends the Gather early and asks to hear the prompt again.
    /// The prompts before it are outside the Gather: a late `#` typed after
    /// the last digit lands on them, not in the next code.
    fn ask(&self, id: Uuid, before: &[Prompt]) -> HttpResponse {
        let mut verbs: Vec<Verb> = before.iter().map(|p| self.say(*p)).collect();
        verbs.push(self.gather(self.state.urls.gather(id, self.locale), u32::from(self.vars.code_length)));
        verbs.push(Verb::Redirect { url: self.state.urls.no_input(id, self.locale) });
        twiml(&verbs)
    }

    fn gather(&self, action: String, num_digits: u32) -> Verb {
        Verb::Gather {
            action,
            num_digits: Some(num_digits),
            timeout: self.state.gather_timeout,
            finish_on_key: REPEAT_KEY.into(),
            action_on_empty_result: true,
            prompts: vec![self.say(Prompt::EnterCode)],
        }
    }

    /// The prompts, then a Gather whose code picks one of `candidates` (a
    /// number several tenants share); silence comes back here as a try too.
    /// Codes of one length end on their last digit. Of several lengths, the
    /// longest end on their last digit and the caller is asked to end the
    /// code with `#` (the Gather's timeout ends it too): no tenant's length
    /// cuts another tenant's code short, and none is announced.
    fn ask_shared(&self, candidates: &[AuthRequest], call: InboundCall, before: &[Prompt]) -> HttpResponse {
        let longest = candidates.iter().map(|r| u32::from(r.code_length)).max().unwrap_or(10);
        let next = self.state.urls.inbound_gather(call.try_number());
        let mut verbs: Vec<Verb> = before.iter().map(|p| self.say(*p)).collect();
        let mut gather = self.gather(next.clone(), longest);
        if candidates.iter().any(|r| u32::from(r.code_length) != longest)
            && let Verb::Gather { finish_on_key, prompts, .. } = &mut gather
        {
            *finish_on_key = "#".into();
            *prompts = vec![self.say(Prompt::EnterCodeThenPound)];
        }
        verbs.push(gather);
        verbs.push(Verb::Redirect { url: next });
        twiml(&verbs)
    }

    /// A `voice_otp` call: the code read aloud, digit by digit, twice, then
    /// "press 1 to hear it again", then where to type it, and goodbye.
    fn read_code(&self, r: &AuthRequest, before: &[Prompt]) -> HttpResponse {
        let Some(code) = spoken_code(self.state, r) else {
            tracing::error!(request_id = %r.id, "a voice_otp request without a code the server can derive");
            return self.end(&[Prompt::Failure]);
        };
        let mut verbs: Vec<Verb> = before.iter().map(|p| self.say(*p)).collect();
        verbs.push(self.say(Prompt::OtpIntro));
        verbs.push(self.state.prompts.say_digits(self.locale, &code));
        verbs.push(Verb::Pause { seconds: 1 });
        verbs.push(self.say(Prompt::OtpAgain));
        verbs.push(self.state.prompts.say_digits(self.locale, &code));
        if r.delivery.may_read_again() {
            verbs.push(Verb::Gather {
                action: self.state.urls.otp(r.id, self.locale),
                num_digits: Some(1),
                timeout: 5,
                finish_on_key: String::new(),
                action_on_empty_result: false,
                prompts: vec![self.say(Prompt::OtpMenu)],
            });
        }
        verbs.push(self.say(Prompt::OtpEnterOnPage));
        verbs.push(self.say(self.goodbye()));
        verbs.push(Verb::Hangup);
        twiml(&verbs)
    }

    /// What to say when a request has ended (or never was).
    fn ended(&self, r: Option<&AuthRequest>) -> HttpResponse {
        match r.map(|r| (r.status, r.failure_reason)) {
            Some((Status::Verified, _)) => self.end(&[Prompt::Success]),
            Some((Status::Expired, _)) => self.end(&[Prompt::Expired]),
            Some((Status::Failed, Some(FailureReason::NoInput))) => self.end(&[Prompt::NoInput, Prompt::Failure]),
            Some((Status::Failed, Some(FailureReason::WrongCode))) => {
                self.end(&[Prompt::TooManyAttempts, Prompt::Failure])
            }
            Some((Status::Failed, Some(FailureReason::Attestation))) => self.end(&[Prompt::CallerIdUnverified]),
            Some((Status::Failed, _)) => self.end(&[Prompt::Failure]),
            _ => self.end(&[]),
        }
    }
}

/// The code of a `voice_otp` request as `<Say>` text: its digits as
/// numerals separated by commas (`4, 8, 2, 9, 1, 3`), which every provider's
/// text-to-speech reads one by one, with a short pause at each comma.
fn spoken_code(state: &AppState, r: &AuthRequest) -> Option<String> {
    let code = r.expected_code(state.core.keys.for_request(r.key_id.as_deref())?)?;
    let digits: Vec<String> = code.expose().chars().map(String::from).collect();
    Some(digits.join(", "))
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

/// The callee answered an outbound call.
pub async fn answer(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    Signed(p): Signed,
) -> HttpResponse {
    let call = CallGuard::new(&state, &p);
    let machine = matches!(p.get("AnsweredBy"), "fax") || p.get("AnsweredBy").starts_with("machine");
    let sid = call.call_sid.clone();
    on_request(
        &state,
        &req,
        None,
        request_id(&path),
        move |r| {
            if r.mode != Mode::Outbound || !call.number_matches(r) || call.call_sid.is_empty() {
                return None;
            }
            if machine {
                return Some(Event::MachineAnswered);
            }
            Some(Event::CallConnected { call_sid: call.call_sid.clone() })
        },
        |speak, before, after| {
            // A repeated answer webhook for the bound call changes nothing but asks again.
            let r = after.unwrap_or(before);
            let ours = r.is_call(&sid);
            match r.status {
                Status::InProgress if ours && r.delivery.channel == Channel::VoiceOtp => {
                    speak.read_code(r, &[Prompt::GreetingOutbound])
                }
                Status::InProgress if ours => speak.ask(r.id, &[Prompt::GreetingOutbound]),
                status if status.is_terminal() && ours => speak.ended(Some(r)),
                _ => speak.end(&[]),
            }
        },
    )
    .await
}

/// The Gather action: the caller typed digits.
pub async fn gather(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    Signed(p): Signed,
) -> HttpResponse {
    let id = request_id(&path);
    let guard = CallGuard::new(&state, &p);
    let ring = state.core.keys.clone();
    let mut typed = p.get("Digits").to_owned();
    let mut sealed = Hold::from_query(req.query_string()).sealed;
    let mut replayed = false;
    if let (true, Some(token), Some(id)) = (typed.is_empty(), &sealed, id) {
        // Typed during a database outage, carried through the hold.
        // Sealed with the key current then: after a rotation, an earlier key.
        let now = state.core.now();
        typed =
            ring.all().find_map(|k| hold::unseal(k.hold_key(), token, id, &guard.call_sid, now)).unwrap_or_default();
        // Each sealed token counts once. Once spent, a hold that follows
        // carries the digits in a fresh one (sealed below).
        if !typed.is_empty() {
            match state.core.first_use("hold", token, hold::remembered_until(now)).await {
                Ok(true) => sealed = None,
                Ok(false) => replayed = true,
                Err(e) => return failed(&state, &req, sealed.as_deref(), &e),
            }
        }
    }
    let pressed = Keys::parse(&typed, p.get("FinishedOnKey"));
    if pressed.is_silence() {
        return no_input_for(&state, &req, &p, id).await;
    }
    if let (None, Some(id), false) = (&sealed, id, pressed.asks_repeat()) {
        let hold_key = ring.current().1.hold_key();
        sealed = Some(hold::seal(hold_key, id, &guard.call_sid, pressed.digits(), state.core.now()));
    }
    let check = guard.clone();
    on_request(
        &state,
        &req,
        sealed.as_deref(),
        id,
        move |r| {
            guard.check(r)?;
            // A replayed hold changes nothing.
            if replayed {
                return None;
            }
            let correct = r.is_expected_code(&ring, pressed.digits());
            Some(Event::KeysPressed { keys: pressed.clone(), correct })
        },
        move |speak, before, after| match after {
            Some(r) if r.status == Status::InProgress => speak.ask(r.id, &[Prompt::WrongCode]),
            Some(r) => speak.ended(Some(r)),
            None if before.status == Status::InProgress && check.check(before).is_some() => speak.ask(before.id, &[]),
            None => speak.ended(Some(before).filter(|b| b.status.is_terminal())),
        },
    )
    .await
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

/// The Redirect after a Gather that heard nothing.
pub async fn no_input(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    Signed(p): Signed,
) -> HttpResponse {
    no_input_for(&state, &req, &p, request_id(&path)).await
}

async fn no_input_for(state: &AppState, req: &HttpRequest, p: &Params, id: Option<Uuid>) -> HttpResponse {
    let guard = CallGuard::new(state, p);
    on_request(
        state,
        req,
        None,
        id,
        move |r| {
            guard.check(r)?;
            Some(Event::NoInput)
        },
        |speak, before, after| match after {
            Some(r) if r.status == Status::InProgress => speak.ask(r.id, &[Prompt::NoInput]),
            Some(r) => speak.ended(Some(r)),
            None => speak.ended(Some(before).filter(|b| b.status.is_terminal())),
        },
    )
    .await
}

fn status_event(p: &Params) -> Option<Event> {
    let status = CallStatus::from_provider(p.get("CallStatus"))?;
    let sip_code = p.get("SipResponseCode").parse().ok();
    Some(Event::CallStatusReported { status, sip_code })
}

/// Status callback of an outbound call (the request id is in the URL).
pub async fn status(state: web::Data<AppState>, path: web::Path<String>, Signed(p): Signed) -> HttpResponse {
    apply_status(&state, request_id(&path), &p).await
}

/// Status callback configured on the inbound number: found by call sid.
pub async fn status_by_sid(state: web::Data<AppState>, Signed(p): Signed) -> HttpResponse {
    let sid = p.get("CallSid");
    let id = if sid.is_empty() {
        None
    } else {
        match state.core.request_by_call_sid(sid).await {
            Ok(r) => r.map(|r| r.id),
            Err(e) => {
                tracing::error!(error = %e, "status callback failed");
                return HttpResponse::ServiceUnavailable().finish();
            }
        }
    };
    apply_status(&state, id, &p).await
}

async fn apply_status(state: &AppState, id: Option<Uuid>, p: &Params) -> HttpResponse {
    if let (Some(id), Some(event)) = (id, status_event(p)) {
        let sid = p.get("CallSid").to_owned();
        let result = state.core.transition(id, move |r| r.may_be_call(&sid).then(|| event.clone())).await;
        if let Err(e) = result {
            tracing::error!(error = %e, "status callback failed");
            return HttpResponse::ServiceUnavailable().finish();
        }
    }
    twiml(&[])
}

/// Of an inbound call: its sid and the requests it may be for (see
/// `Core::inbound_candidates`), or what to answer when there is no asking.
async fn inbound_call(
    state: &AppState,
    req: &HttpRequest,
    p: &Params,
) -> Result<(String, Vec<AuthRequest>), HttpResponse> {
    let nobody = Speaker::nobody(state, Mode::Inbound, Locale::DEFAULT);
    let from = p.get("From");
    if is_withheld_caller_id(from) {
        tracing::info!("inbound call with a withheld caller ID refused");
        return Err(nobody.end(&[Prompt::WithheldCallerId]));
    }
    let call_sid = p.get("CallSid").to_owned();
    let caller = e164(from, state).map(PhoneNumber::from_stored);
    // The number called; a provider that does not say is calling the server's.
    let called = e164(p.get("To"), state).map(PhoneNumber::from_stored).or_else(|| state.inbound_number.clone());
    let (Some(caller), Some(called), false) = (caller, called, call_sid.is_empty()) else {
        return Err(nobody.end(&[Prompt::NoPendingRequest]));
    };
    let found = state.core.inbound_candidates(&caller, &called).await.map_err(|e| failed(state, req, None, &e))?;
    if found.is_empty() {
        tracing::info!(phone = %caller, "inbound call without a pending request");
        return Err(nobody.end(&[Prompt::NoPendingRequest]));
    }
    if found.len() > 1 {
        tracing::info!(phone = %caller, tenants = found.len(), "inbound call on a shared number: the code decides");
    }
    Ok((call_sid, found))
}

/// When the tenant of request `r` requires a STIR/SHAKEN attestation that
/// this inbound call's caller ID lacks: fails `r` (reason `attestation`; its
/// code was shown to somebody who may be spoofing the number) and answers
/// the prompt that says why. `None`: the call may go on.
async fn unattested(state: &AppState, req: &HttpRequest, r: &AuthRequest, p: &Params) -> Option<HttpResponse> {
    let required = match state.core.required_attestation(r.tenant_id).await {
        Ok(required) => required?,
        Err(e) => return Some(failed(state, req, None, &e)),
    };
    let proven = Attestation::from_verstat(p.get("StirVerstat"));
    if proven >= Some(required) {
        return None;
    }
    tracing::info!(
        request_id = %r.id,
        required = required.as_str(),
        proven = proven.map_or("none", Attestation::as_str),
        "inbound call refused: its caller ID is not attested as the tenant requires"
    );
    let answer = on_request(
        state,
        req,
        None,
        Some(r.id),
        |_| Some(Event::CallerIdUnverified),
        |speak, _before, after| match after {
            Some(r) => speak.ended(Some(r)),
            None => speak.end(&[Prompt::CallerIdUnverified]),
        },
    )
    .await;
    Some(answer)
}

/// A user called an inbound number: match the caller ID to a pending request
/// of a tenant of this number. When several tenants share the number and
/// each waits for this caller, the code the caller types picks the request.
pub async fn inbound(state: web::Data<AppState>, req: HttpRequest, Signed(p): Signed) -> HttpResponse {
    let (call_sid, found) = match inbound_call(&state, &req, &p).await {
        Ok(call) => call,
        Err(answer) => return answer,
    };
    let found = match found.as_slice() {
        [one] => one.clone(),
        several => {
            return Speaker::shared(&state, several).ask_shared(
                several,
                InboundCall::first(),
                &[Prompt::GreetingInbound],
            );
        }
    };
    if let Some(refused) = unattested(&state, &req, &found, &p).await {
        return refused;
    }
    let caller = found.phone_number.clone();
    let sid = call_sid.clone();
    on_request(
        &state,
        &req,
        None,
        Some(found.id),
        move |r| {
            (r.mode == Mode::Inbound && r.phone_number == caller && r.status == Status::Pending)
                .then(|| Event::CallConnected { call_sid: call_sid.clone() })
        },
        |speak, _before, after| match after {
            Some(r) if r.status == Status::InProgress && r.is_call(&sid) => speak.ask(r.id, &[Prompt::GreetingInbound]),
            _ => speak.end(&[Prompt::NoPendingRequest]),
        },
    )
    .await
}

/// The code typed on a number several tenants share: it selects the one
/// request it belongs to (compared in constant time with every candidate's).
/// A code that belongs to none changes no request: no tenant's attempts are
/// spent and none learns of the call; the caller has `SHARED_TRIES` tries.
pub async fn inbound_gather(state: web::Data<AppState>, req: HttpRequest, Signed(p): Signed) -> HttpResponse {
    let (call_sid, found) = match inbound_call(&state, &req, &p).await {
        Ok(call) => call,
        Err(answer) => return answer,
    };
    let call = InboundCall::at_try(
        url::form_urlencoded::parse(req.query_string().as_bytes())
            .find(|(k, _)| k == "try")
            .and_then(|(_, v)| v.parse().ok()),
    );
    let digits: String = p.get("Digits").chars().take(32).collect();
    let ring = state.core.keys.clone();
    // Every candidate is compared, whichever matches, so the time taken says nothing.
    let matches: Vec<&AuthRequest> =
        found.iter().filter(|r| !digits.is_empty() && r.is_expected_code(&ring, &digits)).collect();
    let Some(chosen) = matches.first().filter(|_| matches.len() == 1).map(|r| r.id) else {
        let mut speak = Speaker::shared(&state, &found);
        speak.vars.attempts_left = call.tries_left();
        let prompt = if digits.is_empty() { Prompt::NoInput } else { Prompt::WrongCode };
        let Some(next) = call.missed() else {
            let last = if digits.is_empty() { Prompt::NoInput } else { Prompt::TooManyAttempts };
            return speak.end(&[last, Prompt::Failure]);
        };
        return speak.ask_shared(&found, next, &[prompt]);
    };
    if let Some(r) = found.iter().find(|r| r.id == chosen)
        && let Some(refused) = unattested(&state, &req, r, &p).await
    {
        return refused;
    }
    let guard = CallGuard::new(&state, &p);
    on_request(
        &state,
        &req,
        None,
        Some(chosen),
        move |r| {
            let correct = guard.number_matches(r).then(|| r.is_expected_code(&ring, &digits))?;
            Some(Event::InboundCodeEntered { call_sid: call_sid.clone(), correct })
        },
        |speak, before, after| match after {
            Some(r) if r.status == Status::InProgress => speak.ask(r.id, &[Prompt::WrongCode]),
            Some(r) => speak.ended(Some(r)),
            None => speak.ended(Some(before).filter(|b| b.status.is_terminal())),
        },
    )
    .await
}

/// After a `voice_otp` call read the code: 1 reads it again (a few times at
/// most); anything else, or silence, says where to type it and goodbye.
pub async fn otp(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    Signed(p): Signed,
) -> HttpResponse {
    let guard = CallGuard::new(&state, &p);
    let again = p.get("Digits") == "1";
    on_request(
        &state,
        &req,
        None,
        request_id(&path),
        move |r| {
            guard.check(r)?;
            again.then_some(Event::CodeRead)
        },
        |speak, before, after| match after {
            Some(r) if r.status == Status::InProgress => speak.read_code(r, &[]),
            Some(r) => speak.ended(Some(r)),
            None if before.status.is_terminal() => speak.ended(Some(before)),
            None => speak.end(&[Prompt::OtpEnterOnPage]),
        },
    )
    .await
}

/// A delivery report of a request's text message (`MessageStatus`).
pub async fn sms_status(state: web::Data<AppState>, path: web::Path<String>, Signed(p): Signed) -> HttpResponse {
    let event = match p.get("MessageStatus") {
        "accepted" | "queued" | "sending" | "sent" => Event::SmsSent { sid: p.get("MessageSid").to_owned() },
        "delivered" => Event::SmsDelivered { sid: p.get("MessageSid").to_owned() },
        "undelivered" | "failed" => Event::SmsFailed,
        _ => return twiml(&[]),
    };
    if let Some(id) = request_id(&path) {
        let sid = p.get("MessageSid").to_owned();
        let result = state
            .core
            .transition(id, move |r| {
                // A report of another message than the one this request sent changes nothing.
                r.delivery.is_current_message(&sid).then(|| event.clone())
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "message status callback failed");
            return HttpResponse::ServiceUnavailable().finish();
        }
    }
    twiml(&[])
}

/// What a caller of `tenant` would hear, as the TwiML the provider would
/// get, in `locale` at `scene` of a sample call (its code drawn afresh):
/// `answer_outbound`, `answer_inbound`, `wrong_code`, `no_input`,
/// `verified`, `failed`, `expired` or `voice_otp`. `None`: no such scene.
pub fn preview(state: &AppState, tenant: Arc<Tenant>, locale: Locale, scene: &str) -> Option<HttpResponse> {
    use crate::domain::code::CodeKeys;
    use crate::domain::registration::Registration;
    use crate::domain::request::Sealed;
    let mut reg = Registration::with_defaults(PhoneNumber::from_stored("+819012345678".into()));
    reg.locale = locale;
    reg.mode = if scene == "answer_inbound" { Mode::Inbound } else { Mode::Outbound };
    reg.channel = if scene == "voice_otp" { Channel::VoiceOtp } else { Channel::VoiceDtmf };
    let (key_id, _) = state.core.keys.current();
    let sealed = Sealed {
        key_id: Some(key_id.to_owned()),
        code_salt: Some(CodeKeys::new_salt().to_vec()),
        ..Default::default()
    };
    let mut r = AuthRequest::new(Uuid::now_v7(), tenant.id, &reg, sealed, state.core.now());
    r.status = Status::InProgress;
    let ending = |r: &mut AuthRequest, status, reason| {
        r.status = status;
        r.failure_reason = reason;
    };
    match scene {
        "wrong_code" => r.attempts = 1,
        "verified" => ending(&mut r, Status::Verified, None),
        "failed" => {
            r.attempts = r.max_attempts;
            ending(&mut r, Status::Failed, Some(FailureReason::WrongCode));
        }
        "expired" => ending(&mut r, Status::Expired, None),
        _ => {}
    }
    let speak = Speaker::new(state, Some(&r), Some(tenant));
    Some(match scene {
        "answer_outbound" => speak.ask(r.id, &[Prompt::GreetingOutbound]),
        "answer_inbound" => speak.ask(r.id, &[Prompt::GreetingInbound]),
        "wrong_code" => speak.ask(r.id, &[Prompt::WrongCode]),
        "no_input" => speak.ask(r.id, &[Prompt::NoInput]),
        "verified" | "failed" | "expired" => speak.ended(Some(&r)),
        "voice_otp" => speak.read_code(&r, &[Prompt::GreetingOutbound]),
        _ => return None,
    })
}
