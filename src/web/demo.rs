//! The demo site's back end: a password-reset flow on a built-in demo tenant (simulator mode only).

use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::input::{RegisterBody, parse_json};
use crate::body::read_limited;
use crate::domain::status::{Channel, FailureReason, Status};
use crate::domain::tenant::{Tenant, TenantVoice};
use crate::domain::view::RequestView;
use crate::error::AppError;
use crate::service::Service;
use crate::state::AppState;
use crate::store::StoreError;

/// The demo tenant's name. Its API key is random and never shown, so it can
/// only be used through these routes, which exist only with the simulator.
const DEMO_TENANT: &str = "simulator-demo";
const PASSWORD_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";

/// The demo tenant, created on first start in simulator mode.
pub struct DemoTenant(pub Tenant);

impl DemoTenant {
    /// Finds or creates the demo tenant (a demo tenant from before tenants
    /// had names gets the bank's). Its key is dropped unseen: only these
    /// routes can act for it.
    pub async fn provision(service: &Service) -> Result<Self, StoreError> {
        service.tenant_with_voice(DEMO_TENANT, demo_voice()).await.map(Self)
    }
}

/// The demo bank's name, as the page shows it in each language.
fn demo_voice() -> TenantVoice {
    TenantVoice {
        display_name: Some("Example Bank".into()),
        display_names: [("ja-JP".to_owned(), "サンプル銀行".to_owned())].into(),
        ..TenantVoice::default()
    }
}

/// What the demo page sends to start a reset.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    user_id: String,
    phone_number: String,
    mode: Option<String>,
    locale: Option<String>,
    channel: Option<String>,
    fallback: Option<Vec<String>>,
}

#[derive(Serialize)]
struct Started {
    id: String,
    /// Only for `voice_dtmf`: the other channels' codes reach only the phone.
    code: Option<String>,
    channel: Channel,
    status: Status,
    mode: String,
    phone_number: String,
    inbound_number: Option<String>,
    expires_at: String,
    locale: String,
}

#[derive(Serialize)]
struct Progress {
    id: String,
    status: Status,
    failure_reason: Option<FailureReason>,
    attempts: u8,
    max_attempts: u8,
    expires_at: String,
    call_status: Option<crate::domain::status::CallStatus>,
    channel: Channel,
    deliveries: Vec<crate::domain::delivery::Attempt>,
    /// Issued once the phone is verified: what a real site would now show.
    temporary_password: Option<String>,
}

fn parse_id(raw: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw).map_err(|_| AppError::NotFound("no auth request with this id"))
}

async fn start(
    state: web::Data<AppState>,
    demo: web::Data<DemoTenant>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    if let Some(ip) = req.peer_addr().map(|a| a.ip()) {
        state.demo_limiter.check(&ip).map_err(|retry_after| AppError::RateLimited {
            retry_after,
            message: "too many demo verifications from this address; try again in a minute".into(),
        })?;
    }
    let body = read_limited(&req, payload).await?;
    let b: StartBody = parse_json(&req, &body)?;
    if b.user_id.trim().is_empty() || b.user_id.chars().count() > 64 {
        return Err(AppError::invalid("user_id", "user_id: enter 1 to 64 characters"));
    }
    let registration = RegisterBody {
        phone_number: b.phone_number,
        mode: b.mode,
        code: None,
        code_length: None,
        external_id: None,
        user_id: Some(b.user_id),
        locale: b.locale,
        ttl_seconds: None,
        max_attempts: None,
        callback_url: None,
        channel: b.channel,
        fallback: b.fallback,
    }
    .validate(state.service.default_region, false)?;
    let done = state.service.register(&demo.0, registration).await?;
    let view = RequestView::at(&done.request, state.service.inbound_number.as_ref(), state.service.now());
    let started = Started {
        code: done.request.site_sees_code().then(|| done.code.expose().to_owned()),
        channel: view.channel,
        status: view.status,
        mode: view.mode.as_str().to_owned(),
        phone_number: view.phone_number,
        inbound_number: view.inbound_number,
        expires_at: view.expires_at,
        locale: view.locale.as_str().to_owned(),
        id: view.id,
    };
    Ok(HttpResponse::Created().insert_header((LOCATION, format!("/demo/api/requests/{}", started.id))).json(started))
}

/// A temporary password derived from the request: stable across polls, and
/// issued only to a verified request.
fn temporary_password(state: &AppState, id: Uuid) -> String {
    let digest = state.service.keys.current().1.fingerprint(format!("demo-password:{id}").as_bytes());
    digest.iter().take(12).map(|b| char::from(PASSWORD_ALPHABET[usize::from(*b) % PASSWORD_ALPHABET.len()])).collect()
}

async fn progress(
    state: web::Data<AppState>,
    demo: web::Data<DemoTenant>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&id)?;
    let r = state.service.get(&demo.0, id).await?;
    let v = RequestView::at(&r, state.service.inbound_number.as_ref(), state.service.now());
    Ok(HttpResponse::Ok().json(Progress {
        temporary_password: (v.status == Status::Verified).then(|| temporary_password(&state, id)),
        id: v.id,
        status: v.status,
        failure_reason: v.failure_reason,
        attempts: v.attempts,
        max_attempts: v.max_attempts,
        expires_at: v.expires_at,
        call_status: v.call_status,
        channel: v.channel,
        deliveries: v.deliveries,
    }))
}

/// The demo site checks the code its user typed (what a site does with `/check`).
async fn check(
    state: web::Data<AppState>,
    demo: web::Data<DemoTenant>,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let body = read_limited(&req, payload).await?;
    // The same body and rules as the site API's `/check`.
    let code = parse_json::<crate::api::input::CheckBody>(&req, &body)?.validate()?;
    let id = parse_id(&id)?;
    state.service.check(&demo.0, id, code).await?;
    progress(state, demo, web::Path::from(id.to_string())).await
}

async fn cancel(
    state: web::Data<AppState>,
    demo: web::Data<DemoTenant>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let r = state.service.cancel(&demo.0, parse_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(RequestView::at(&r, state.service.inbound_number.as_ref(), state.service.now())))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/demo/api/start", web::post().to(start))
        .route("/demo/api/requests/{id}", web::get().to(progress))
        .route("/demo/api/requests/{id}/cancel", web::post().to(cancel))
        .route("/demo/api/requests/{id}/check", web::post().to(check));
}
