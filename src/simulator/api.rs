//! The simulator's JSON API: list calls, answer or decline, press keys, dial in.
//! Mounted only when the provider is `simulator`.

use std::convert::Infallible;
use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::call::Command;
use super::{SimError, Simulator};
use crate::domain::view::RequestView;
use crate::error::AppError;
use crate::state::AppState;

/// Keeps idle event streams open through proxies.
const PING_EVERY: Duration = Duration::from_secs(15);

impl From<SimError> for AppError {
    fn from(e: SimError) -> Self {
        match e {
            SimError::NoSuchCall => AppError::NotFound("no simulated call with this sid"),
            SimError::NotNow(msg) => AppError::Conflict { code: "call_state", message: msg.to_owned() },
            SimError::Invalid(msg) => {
                let field = msg.split(':').next().unwrap_or("body").to_owned();
                AppError::invalid(field, msg)
            }
        }
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    /// Only calls to this number (E.164).
    to: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigitsBody {
    digits: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialBody {
    /// Caller ID; `anonymous` (or empty) simulates a withheld number.
    from: String,
    /// The number dialled (E.164): a tenant's own inbound number; absent: the server's.
    #[serde(default)]
    to: Option<String>,
    /// The STIR/SHAKEN verification the provider would report (`StirVerstat`,
    /// e.g. `TN-Validation-Passed-A`); absent: none, as for most calls in Japan.
    #[serde(default)]
    stir_verstat: Option<String>,
}

/// Routes under `/simulator`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/simulator/events", web::get().to(events))
        .route("/simulator/info", web::get().to(info))
        .route("/simulator/requests/{id}", web::get().to(request))
        .route("/simulator/calls", web::get().to(list))
        .route("/simulator/messages", web::get().to(messages))
        .route("/simulator/calls", web::post().to(dial_in))
        .route("/simulator/calls/{sid}", web::get().to(show))
        .route("/simulator/calls/{sid}/answer", web::post().to(answer))
        .route("/simulator/calls/{sid}/decline", web::post().to(decline))
        .route("/simulator/calls/{sid}/hangup", web::post().to(hangup))
        .route("/simulator/calls/{sid}/digits", web::post().to(digits));
}

async fn list(sim: web::Data<Simulator>, q: web::Query<ListQuery>) -> HttpResponse {
    let calls: Vec<_> = sim.calls().into_iter().filter(|c| q.to.as_deref().is_none_or(|to| c.to == to)).collect();
    HttpResponse::Ok().json(serde_json::json!({ "calls": calls }))
}

/// The text messages sent (to one number with `?to=`), newest first.
async fn messages(sim: web::Data<Simulator>, q: web::Query<ListQuery>) -> HttpResponse {
    let list: Vec<_> = sim.messages().into_iter().filter(|m| q.to.as_deref().is_none_or(|to| m.to == to)).collect();
    HttpResponse::Ok().json(serde_json::json!({ "messages": list }))
}

async fn show(sim: web::Data<Simulator>, sid: web::Path<String>) -> Result<HttpResponse, AppError> {
    let call = sim.call(&sid).ok_or(SimError::NoSuchCall)?;
    Ok(HttpResponse::Ok().json(call))
}

fn act(sim: &Simulator, sid: &str, cmd: Command) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(sim.command(sid, cmd)?))
}

async fn answer(sim: web::Data<Simulator>, sid: web::Path<String>) -> Result<HttpResponse, AppError> {
    act(&sim, &sid, Command::Answer)
}

async fn decline(sim: web::Data<Simulator>, sid: web::Path<String>) -> Result<HttpResponse, AppError> {
    act(&sim, &sid, Command::Decline)
}

async fn hangup(sim: web::Data<Simulator>, sid: web::Path<String>) -> Result<HttpResponse, AppError> {
    act(&sim, &sid, Command::Hangup)
}

async fn digits(
    sim: web::Data<Simulator>,
    sid: web::Path<String>,
    body: web::Json<DigitsBody>,
) -> Result<HttpResponse, AppError> {
    let d = &body.digits;
    if d.is_empty() || d.len() > 32 || !d.bytes().all(|b| b.is_ascii_digit() || b == b'*' || b == b'#') {
        return Err(AppError::invalid("digits", "digits: 1–32 keys of 0-9, * and #"));
    }
    act(&sim, &sid, Command::Digits(d.clone()))
}

async fn dial_in(sim: web::Data<Simulator>, body: web::Json<DialBody>) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Created().json(sim.dial_in(&body.from, body.to.as_deref(), body.stir_verstat.as_deref())?))
}

fn sse(event: &str, data: &impl serde::Serialize) -> Bytes {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
    Bytes::from(format!("event: {event}\ndata: {json}\n\n"))
}

/// Server-Sent Events: a `snapshot` of all calls and messages, then a `call`
/// event per change of a call and a `message` event per change of a message.
async fn events(sim: web::Data<Simulator>) -> HttpResponse {
    // Subscribe before the snapshot, so no change falls between the two.
    let rx = sim.subscribe();
    let messages = sim.subscribe_messages();
    let first = snapshot(&sim);
    let closing = sim.closing();
    let state = (rx, messages, Some(first), sim.into_inner(), closing);
    let stream = futures_util::stream::unfold(state, |(mut rx, mut messages, first, sim, mut closing)| async move {
        if let Some(first) = first {
            return Some((Ok::<_, Infallible>(first), (rx, messages, None, sim, closing)));
        }
        let chunk = tokio::select! {
            msg = rx.recv() => match msg {
                Ok(call) => sse("call", &call),
                // Fell behind: start over from a fresh snapshot.
                Err(RecvError::Lagged(_)) => snapshot(&sim),
                Err(RecvError::Closed) => return None,
            },
            msg = messages.recv() => match msg {
                Ok(message) => sse("message", &message),
                Err(RecvError::Lagged(_)) => snapshot(&sim),
                Err(RecvError::Closed) => return None,
            },
            () = tokio::time::sleep(PING_EVERY) => Bytes::from_static(b": ping\n\n"),
            _ = closing.changed() => return None,
        };
        Some((Ok(chunk), (rx, messages, None, sim, closing)))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream)
}

fn snapshot(sim: &Simulator) -> Bytes {
    sse("snapshot", &serde_json::json!({ "calls": sim.calls(), "messages": sim.messages() }))
}

async fn info(sim: web::Data<Simulator>) -> HttpResponse {
    let (inbound, caller_id) = sim.numbers();
    HttpResponse::Ok().json(serde_json::json!({
        "inbound_number": inbound.map(|n| n.as_str()),
        "caller_id": caller_id,
    }))
}

/// The request a simulated call belongs to, without its code (any tenant: a development tool).
async fn request(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, AppError> {
    let not_found = AppError::NotFound("no auth request with this id");
    let id = uuid::Uuid::parse_str(&id).map_err(|_| AppError::NotFound("no auth request with this id"))?;
    let r = state.service.request_of_any_tenant(id).await?.ok_or(not_found)?;
    Ok(HttpResponse::Ok().json(RequestView::at(&r, state.service.inbound_number.as_ref(), state.service.now())))
}
