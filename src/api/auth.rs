//! Bearer-key authentication of the site API, and the per-tenant rate limit.

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use crate::domain::tenant::Tenant;
use crate::error::AppError;
use crate::state::AppState;

/// The tenant whose API key signed this request; the request counted
/// against the tenant's rate limit.
pub struct Authenticated(pub Tenant);

/// The tenant whose API key signed this request, not yet counted against its
/// rate limit: the handler counts it once it knows the request is not a
/// replay (an idempotent replay is never rate limited). Nor is its request
/// signature checked yet: the handler checks it (`check_signed`) once it has
/// read the body the signature covers.
pub struct Identified(pub Tenant);

fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(actix_web::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

async fn identify(state: &AppState, token: Option<String>) -> Result<Tenant, AppError> {
    let token = token.ok_or(AppError::Unauthorized)?;
    state.core.tenant_for_key(&token).await?.ok_or(AppError::Unauthorized)
}

/// Counts one request of `tenant` against its rate limit.
pub fn count(state: &AppState, tenant: &Tenant) -> Result<(), AppError> {
    state.tenant_limiter.check(&tenant.id).map_err(AppError::tenant_rate_limited)
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
/// the tenant signs its requests (`api::signing`).
pub async fn check_signed(state: &AppState, req: &HttpRequest, tenant: &Tenant, body: &[u8]) -> Result<(), AppError> {
    super::signing::check(tenant, req, body, &state.core).await
}

impl FromRequest for Authenticated {
    type Error = AppError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let (state, req, tenant) = identified(req).await?;
            // The operations behind it take no body: a signature covers the empty one.
            check_signed(&state, &req, &tenant, b"").await?;
            count(&state, &tenant)?;
            Ok(Authenticated(tenant))
        })
    }
}

impl FromRequest for Identified {
    type Error = AppError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { identified(req).await.map(|(_, _, tenant)| Identified(tenant)) })
    }
}
