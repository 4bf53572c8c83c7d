//! The simulator's JSON API: list calls, answer or decline, press keys, dial in.
//! Mounted only when the provider is `simulator`.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::call::Command;
use super::{SimError, Simulator};
use crate::error::AppError;

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
}

/// Routes under `/simulator`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/simulator/calls", web::get().to(list))
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
    Ok(HttpResponse::Created().json(sim.dial_in(&body.from)?))
}
