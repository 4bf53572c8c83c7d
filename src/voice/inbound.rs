//! The webhooks of a call from the user to an inbound number, the tenant's own or shared.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::call::prompt::Prompt;
use crate::call::speaker::Speaker;
use crate::call::urls::inbound_call_in;
use crate::domain::call::InboundCall;
use crate::domain::phone::{Attestation, PhoneNumber, is_withheld_caller_id};
use crate::domain::request::{AuthRequest, Event};
use crate::domain::status::{Locale, Mode, Status};
use crate::state::AppState;

use super::{CallGuard, Report, Signed, e164, failed, on_request, reply, voice};

/// Of an inbound call: its sid and the requests it may be for (see
/// `Service::inbound_candidates`), or what to answer when there is no asking.
async fn inbound_call(
    state: &AppState,
    req: &HttpRequest,
    p: &Report,
) -> Result<(String, Vec<AuthRequest>), HttpResponse> {
    let nobody = Speaker::nobody(voice(state, req), Mode::Inbound, Locale::DEFAULT);
    let from = p.from.as_str();
    if is_withheld_caller_id(from) {
        tracing::info!("inbound call with a withheld caller ID refused");
        return Err(reply(req, &nobody.end(&[Prompt::WithheldCallerId])));
    }
    let call_sid = p.call_sid.clone();
    let caller = e164(from, state).map(PhoneNumber::from_stored);
    // The number called; a provider that does not say is calling the server's.
    let called =
        e164(p.to.as_str(), state).map(PhoneNumber::from_stored).or_else(|| state.service.inbound_number.clone());
    let (Some(caller), Some(called), false) = (caller, called, call_sid.is_empty()) else {
        return Err(reply(req, &nobody.end(&[Prompt::NoPendingRequest])));
    };
    let found = state.service.inbound_candidates(&caller, &called).await.map_err(|e| failed(state, req, None, &e))?;
    if found.is_empty() {
        tracing::info!(phone = %caller, "inbound call without a pending request");
        return Err(reply(req, &nobody.end(&[Prompt::NoPendingRequest])));
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
async fn unattested(state: &AppState, req: &HttpRequest, r: &AuthRequest, p: &Report) -> Option<HttpResponse> {
    let required = match state.service.required_attestation(r.tenant_id).await {
        Ok(required) => required?,
        Err(e) => return Some(failed(state, req, None, &e)),
    };
    let proven = p.attestation;
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
            let speak = Speaker::shared(voice(&state, &req), several);
            return reply(&req, &speak.ask_shared(several, InboundCall::first(), &[Prompt::GreetingInbound]));
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
    let call = inbound_call_in(req.query_string());
    let digits: String = p.digits.chars().take(32).collect();
    let ring = state.service.keys.clone();
    // Every candidate is compared, whichever matches, so the time taken says nothing.
    let matches: Vec<&AuthRequest> =
        found.iter().filter(|r| !digits.is_empty() && r.is_expected_code(&ring, &digits)).collect();
    let Some(chosen) = matches.first().filter(|_| matches.len() == 1).map(|r| r.id) else {
        let mut speak = Speaker::shared(voice(&state, &req), &found);
        speak.vars.attempts_left = call.tries_left();
        let prompt = if digits.is_empty() { Prompt::NoInput } else { Prompt::WrongCode };
        let Some(next) = call.missed() else {
            let last = if digits.is_empty() { Prompt::NoInput } else { Prompt::TooManyAttempts };
            return reply(&req, &speak.end(&[last, Prompt::Failure]));
        };
        return reply(&req, &speak.ask_shared(&found, next, &[prompt]));
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
