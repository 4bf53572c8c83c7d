//! Site API handlers: register, read, cancel. Thin: parse → service → respond.

use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};
use uuid::Uuid;

use super::auth::{Authenticated, SignedBody, count};
use super::input::{CheckBody, RegisterBody, parse_json};
use crate::domain::view::RequestView;
use crate::error::{AppError, ErrorBody};
use crate::state::AppState;

pub(super) fn parse_id(raw: &str) -> Result<Uuid, AppError> {
    // A malformed id is just another id that does not exist.
    Uuid::parse_str(raw).map_err(|_| AppError::NotFound("no auth request with this id"))
}

/// Register an auth request.
///
/// Stores the request, answers its id and the code to show the user and,
/// in outbound mode, calls the number right away. Repeating an
/// `external_id` with the same body answers the same request with 200.
#[utoipa::path(
    post,
    path = "/v1/auth-requests",
    tag = "auth requests",
    request_body = RegisterBody,
    responses(
        (status = 201, description = "Registered", body = RequestView),
        (status = 200, description = "Same external_id and body: the existing request", body = RequestView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key (or, for a tenant that signs its requests, signature)", body = ErrorBody),
        (status = 409, description = "external_id used with another body", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 503, description = "The database is unreachable for a moment; see Retry-After", body = ErrorBody),
        (status = 422, description = "A field breaks its rule, or the number is not called (a kind of line that is \
            never called: premium, shared-cost, personal, UAN, satellite; or a country the tenant may not call); \
            the message names the field and the reason", body = ErrorBody),
        (status = 429, description = "Rate limited: the API key's request rate, a per-number limit or the \
            tenant's call budget (calls_per_minute, calls_per_day); the message names which; see Retry-After",
            body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn register(
    state: web::Data<AppState>,
    SignedBody { tenant, body }: SignedBody,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    let parsed: RegisterBody = parse_json(&req, &body)?;
    let registration = parsed.validate(state.service.default_region, state.allow_private_callbacks)?;
    // A replay of an earlier registration answers before any rate limit is counted.
    let done = match state.service.replay_of(&tenant, &registration).await? {
        Some(replayed) => replayed,
        None => {
            count(&state, &tenant)?;
            state.service.register(&tenant, registration).await?
        }
    };
    let mut view = RequestView::at(&done.request, state.service.inbound_number.as_ref(), state.service.now());
    if done.request.site_sees_code() {
        view.code = Some(done.code.expose().to_owned());
    }
    let mut resp = if done.created { HttpResponse::Created() } else { HttpResponse::Ok() };
    Ok(resp.insert_header((LOCATION, format!("/v1/auth-requests/{}", view.id))).json(view))
}

/// Read an auth request's result.
#[utoipa::path(
    get,
    path = "/v1/auth-requests/{id}",
    tag = "auth requests",
    params(("id" = uuid::Uuid, Path, description = "The id from registration")),
    responses(
        (status = 200, description = "The request (never with its code)", body = RequestView),
        (status = 401, description = "Missing or invalid API key (or, for a tenant that signs its requests, signature)", body = ErrorBody),
        (status = 404, description = "No such request for this tenant (or not an id)", body = ErrorBody),
        (status = 429, description = "Rate limited: the API key's request rate; see Retry-After", body = ErrorBody),
        (status = 503, description = "The database is unreachable for a moment; see Retry-After", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let r = state.service.get(&tenant, parse_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(RequestView::at(&r, state.service.inbound_number.as_ref(), state.service.now())))
}

/// Cancel an auth request.
#[utoipa::path(
    post,
    path = "/v1/auth-requests/{id}/cancel",
    tag = "auth requests",
    params(("id" = uuid::Uuid, Path, description = "The id from registration")),
    responses(
        (status = 200, description = "Canceled", body = RequestView),
        (status = 401, description = "Missing or invalid API key (or, for a tenant that signs its requests, signature)", body = ErrorBody),
        (status = 404, description = "No such request for this tenant (or not an id)", body = ErrorBody),
        (status = 409, description = "Already terminal", body = ErrorBody),
        (status = 429, description = "Rate limited: the API key's request rate; see Retry-After", body = ErrorBody),
        (status = 503, description = "The database is unreachable for a moment; see Retry-After", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn cancel(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let r = state.service.cancel(&tenant, parse_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(RequestView::at(&r, state.service.inbound_number.as_ref(), state.service.now())))
}

/// Check the code the user typed on the site's page.
///
/// For `voice_otp` and `sms` requests (and voice requests that fell back to
/// SMS): the code the call read aloud or the message carried. A wrong code
/// counts an attempt; at `max_attempts` the request fails with `wrong_code`.
#[utoipa::path(
    post,
    path = "/v1/auth-requests/{id}/check",
    tag = "auth requests",
    params(("id" = uuid::Uuid, Path, description = "The id from registration")),
    request_body = CheckBody,
    responses(
        (status = 200, description = "Checked: `verified`, or still open with `attempts` counted, or `failed` \
            with `wrong_code` at the limit", body = RequestView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key (or, for a tenant that signs its requests, signature)", body = ErrorBody),
        (status = 404, description = "No such request for this tenant (or not an id)", body = ErrorBody),
        (status = 409, description = "The request has ended (`already_terminal`), or its code is typed on the \
            phone, not checked here (`not_checked_here`: a `voice_dtmf` request that did not fall back to SMS)",
            body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "`code` is not 4 to 10 digits", body = ErrorBody),
        (status = 429, description = "Rate limited: the API key's request rate; see Retry-After", body = ErrorBody),
        (status = 503, description = "The database is unreachable for a moment; see Retry-After", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn check(
    state: web::Data<AppState>,
    SignedBody { tenant, body }: SignedBody,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    count(&state, &tenant)?;
    let parsed: CheckBody = parse_json(&req, &body)?;
    let code = parsed.validate()?;
    let r = state.service.check(&tenant, parse_id(&id)?, code).await?;
    Ok(HttpResponse::Ok().json(RequestView::at(&r, state.service.inbound_number.as_ref(), state.service.now())))
}
