//! The webhooks of a call to the user: answer, the Gather action, no input, the `voice_otp` menu.

use actix_web::{HttpRequest, HttpResponse, web};
use uuid::Uuid;

use crate::call::hold::{self, Hold};
use crate::call::prompt::Prompt;
use crate::domain::call::Keys;
use crate::domain::request::Event;
use crate::domain::status::{Channel, Mode, Status};
use crate::state::AppState;

use super::{CallGuard, Report, Signed, failed, on_request, request_id};

/// The callee answered an outbound call.
pub async fn answer(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    Signed(p): Signed,
) -> HttpResponse {
    let call = CallGuard::new(&state, &p);
    let machine = p.answered_by_machine;
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
    let ring = state.service.keys.clone();
    let mut typed = p.digits.clone();
    let mut sealed = Hold::from_query(req.query_string()).sealed;
    let mut replayed = false;
    if let (true, Some(token), Some(id)) = (typed.is_empty(), &sealed, id) {
        // Typed during a database outage, carried through the hold.
        // Sealed with the key current then: after a rotation, an earlier key.
        let now = state.service.now();
        typed =
            ring.all().find_map(|k| hold::unseal(k.hold_key(), token, id, &guard.call_sid, now)).unwrap_or_default();
        // Each sealed token counts once. Once spent, a hold that follows
        // carries the digits in a fresh one (sealed below).
        if !typed.is_empty() {
            match state.service.first_use("hold", token, hold::remembered_until(now)).await {
                Ok(true) => sealed = None,
                Ok(false) => replayed = true,
                Err(e) => return failed(&state, &req, sealed.as_deref(), &e),
            }
        }
    }
    let pressed = Keys::parse(&typed, p.finished_on_key.as_str());
    if pressed.is_silence() {
        return no_input_for(&state, &req, &p, id).await;
    }
    if let (None, Some(id), false) = (&sealed, id, pressed.asks_repeat()) {
        let hold_key = ring.current().1.hold_key();
        sealed = Some(hold::seal(hold_key, id, &guard.call_sid, pressed.digits(), state.service.now()));
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

/// The Redirect after a Gather that heard nothing.
pub async fn no_input(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    Signed(p): Signed,
) -> HttpResponse {
    no_input_for(&state, &req, &p, request_id(&path)).await
}

async fn no_input_for(state: &AppState, req: &HttpRequest, p: &Report, id: Option<Uuid>) -> HttpResponse {
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

/// After a `voice_otp` call read the code: 1 reads it again (a few times at
/// most); anything else, or silence, says where to type it and goodbye.
pub async fn otp(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    Signed(p): Signed,
) -> HttpResponse {
    let guard = CallGuard::new(&state, &p);
    let again = p.digits == "1";
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
