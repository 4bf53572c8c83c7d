//! Operations endpoints: health, readiness, metrics, the OpenAPI document, prompt audio.

use actix_web::http::header::{ACCEPT, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use secrecy::ExposeSecret;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::domain::status::Locale;
use crate::error::AppError;
use crate::state::AppState;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme("api_key", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        }
    }
}

/// Links from a registration's answer to the operations on the request it
/// made (`$response.body#/id`), so that clients and tools can follow them.
struct RegistrationLinks;

impl Modify for RegistrationLinks {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::link::Link;
        let Some(register) = openapi.paths.paths.get_mut("/v1/auth-requests").and_then(|p| p.post.as_mut()) else {
            return;
        };
        for status in ["200", "201"] {
            if let Some(RefOr::T(response)) = register.responses.responses.get_mut(status) {
                for (name, operation, what) in [
                    ("GetAuthRequest", "get", "Read its result"),
                    ("CancelAuthRequest", "cancel", "Cancel it"),
                    ("CheckAuthRequest", "check", "Check the code its user typed (voice_otp, sms)"),
                ] {
                    let link = Link::builder()
                        .operation_id(operation)
                        .parameter("id", "$response.body#/id")
                        .description(what)
                        .build();
                    response.links.insert(name.to_owned(), RefOr::T(link));
                }
            }
        }
    }
}

/// The site API, described from the handlers themselves.
#[derive(OpenApi)]
#[openapi(
    info(title = "ivr-auth site API", description = "Phone authentication by voice call and keypad code."),
    paths(
        super::requests::register,
        super::requests::get,
        super::requests::cancel,
        super::requests::check,
        super::tenant::get_voice,
        super::tenant::put_voice,
        super::tenant::preview,
        super::lookup::search,
        super::lookup::timeline,
        super::audit::list,
        super::audit::verify,
        super::stats::stats,
        super::usage::get,
    ),
    components(schemas(
        crate::domain::view::RequestView,
        crate::domain::delivery::Attempt,
        crate::api::input::RegisterBody,
        crate::api::input::CheckBody,
        crate::api::tenant::VoiceSettings,
        crate::api::audit::AuditEvents,
        crate::api::audit::AuditEvent,
        crate::api::audit::ChainCheck,
        crate::api::audit::BrokenLink,
        crate::api::lookup::RequestPage,
        crate::api::lookup::Timeline,
        crate::api::lookup::TimelineEntry,
        crate::api::stats::Stats,
        crate::api::stats::Counts,
        crate::api::stats::Period,
        crate::api::stats::FailingNumber,
        crate::api::usage::Usage,
        crate::api::usage::UsageLine,
        crate::api::usage::UsageTotals,
        crate::domain::tenant::TenantVoice,
        crate::error::ErrorBody,
        crate::error::ErrorDetail,
    )),
    modifiers(&BearerAuth, &RegistrationLinks)
)]
pub struct ApiDoc;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.service.ready().await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable().json(serde_json::json!({ "status": "database unreachable" }))
        }
    }
}

/// Whether `req` carries the metrics bearer token (always, when none is configured).
fn may_read_metrics(state: &AppState, req: &HttpRequest) -> bool {
    let Some(token) = &state.metrics_token else { return true };
    let presented = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .unwrap_or("");
    // Compare digests, so that the comparison is constant-time whatever the lengths.
    let digest = |s: &str| <sha2::Sha256 as sha2::Digest>::digest(s.as_bytes());
    subtle::ConstantTimeEq::ct_eq(digest(presented).as_slice(), digest(token.expose_secret()).as_slice()).into()
}

pub async fn metrics(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if !may_read_metrics(&state, &req) {
        return AppError::Unauthorized.error_response();
    }
    let m = &state.service.metrics;
    let (backlog, (writes, commits)) = state.service.store_figures().await;
    if let Some(backlog) = backlog {
        for kind in crate::store::JobKind::ALL {
            let n = backlog.iter().find(|(k, _)| *k == kind).map_or(0, |(_, n)| *n);
            m.job_backlog.get_or_create(&crate::metrics::KindLabel { kind: kind.as_str() }).set(n);
        }
    }
    m.store_writes.set(i64::try_from(writes).unwrap_or(i64::MAX));
    m.store_commits.set(i64::try_from(commits).unwrap_or(i64::MAX));
    m.servers.set(i64::from(state.servers.load(std::sync::atomic::Ordering::Relaxed)));
    let wants_openmetrics = req
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let content_type = if wants_openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    HttpResponse::Ok().insert_header((CONTENT_TYPE, content_type)).body(state.service.metrics.render())
}

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

/// Serves a recorded prompt named in the prompt table (nothing else on disk is reachable).
pub async fn prompt_audio(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (locale, file) = path.into_inner();
    let locale = Locale::parse(&locale).ok_or(AppError::NotFound("no such prompt"))?;
    let file_path = state.prompts.audio_path(locale, &file).ok_or(AppError::NotFound("no such prompt"))?;
    let bytes = tokio::fs::read(&file_path).await.map_err(|_| AppError::NotFound("no such prompt"))?;
    let mime = if file.ends_with(".mp3") { "audio/mpeg" } else { "audio/wav" };
    Ok(HttpResponse::Ok().insert_header((CONTENT_TYPE, mime)).body(bytes))
}
