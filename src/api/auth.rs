//! Bearer-key authentication of the site API (or, for reads, the console's session), and the per-tenant rate limit.

use std::future::Future;
use std::pin::Pin;

use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use crate::body::read_limited;

use crate::domain::tenant::Tenant;
use crate::error::AppError;
use crate::state::AppState;

/// The tenant whose API key signed this request; the request counted
/// against the tenant's rate limit.
pub struct Authenticated(pub Tenant);

/// A site request with a body: the tenant whose API key it carries, and its
/// body (at most 64 KiB), which the tenant's request signature was checked to
/// cover when the tenant signs its requests. A handler that takes a body
/// cannot get it unchecked. Not yet counted against the tenant's rate limit:
/// the handler counts it (`count`) once it knows the request is not an
/// idempotent replay, which is never rate limited.
pub struct SignedBody {
    pub tenant: Tenant,
    pub body: Bytes,
}

fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(actix_web::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

async fn identify(state: &AppState, token: Option<String>) -> Result<Tenant, AppError> {
    let token = token.ok_or(AppError::Unauthorized)?;
    state.service.tenant_for_key(&token).await?.ok_or(AppError::Unauthorized)
}

/// Counts one request of `tenant` against its rate limit.
pub fn count(state: &AppState, tenant: &Tenant) -> Result<(), AppError> {
    state.tenant_limiter.check(&tenant.id).map_err(|wait| {
        state.service.metrics.refusals.count(Some(tenant.id), "rate_limit");
        AppError::tenant_rate_limited(wait)
    })
}

type Extracted<T> = Pin<Box<dyn Future<Output = Result<T, AppError>>>>;

/// The state, the request and the tenant whose key it carries.
async fn identified(req: HttpRequest) -> Result<(web::Data<AppState>, HttpRequest, Tenant), AppError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| AppError::Internal("application state missing".into()))?;
    let tenant = identify(&state, bearer(&req)).await?;
    Ok((state, req, tenant))
}

/// Checks the signature of a request of `tenant` whose body is `body`, when
/// the tenant signs its requests (`api::request_signature`).
async fn check_signed(state: &AppState, req: &HttpRequest, tenant: &Tenant, body: &[u8]) -> Result<(), AppError> {
    super::request_signature::check(tenant, req, body, &state.service).await
}

/// The tenant a console session reads, for a `GET` without an API key:
/// the console reads the site API with its cookie, and never writes with it
/// (`None` for any other request, which then needs its key).
async fn console_reader(req: &HttpRequest) -> Option<Result<(web::Data<AppState>, Tenant), AppError>> {
    if req.method() != actix_web::http::Method::GET || bearer(req).is_some() {
        return None;
    }
    let state = req.app_data::<web::Data<AppState>>()?.clone();
    let session = match super::session::current(&state, req).await {
        Ok(found) => found?.1,
        Err(e) => return Some(Err(e)),
    };
    if super::session::cross_site(req) {
        return Some(Err(AppError::Forbidden));
    }
    Some(super::session::tenant_of(&state, req, &session).await.map(|t| (state, t)))
}

impl FromRequest for Authenticated {
    type Error = AppError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            if let Some(read) = console_reader(&req).await {
                let (state, tenant) = read?;
                count(&state, &tenant)?;
                return Ok(Authenticated(tenant));
            }
            let (state, req, tenant) = identified(req).await?;
            // The operations behind it take no body: a signature covers the empty one.
            check_signed(&state, &req, &tenant, b"").await?;
            count(&state, &tenant)?;
            Ok(Authenticated(tenant))
        })
    }
}

impl FromRequest for SignedBody {
    type Error = AppError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let (req, payload) = (req.clone(), payload.take());
        Box::pin(async move {
            // The key first (401), then the body (413, 408), then its signature (401).
            let (state, req, tenant) = identified(req).await?;
            let body = read_limited(&req, payload).await?;
            check_signed(&state, &req, &tenant, &body).await?;
            Ok(SignedBody { tenant, body })
        })
    }
}
