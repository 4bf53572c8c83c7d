//! Bearer-key authentication of the site API, and the per-tenant rate limit.

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use crate::domain::tenant::Tenant;
use crate::error::AppError;
use crate::state::AppState;

/// The tenant whose API key signed this request.
pub struct Authenticated(pub Tenant);

fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(actix_web::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

async fn authenticate(state: web::Data<AppState>, token: Option<String>) -> Result<Authenticated, AppError> {
    let token = token.ok_or(AppError::Unauthorized)?;
    let tenant = state.core.tenant_for_key(&token).await?.ok_or(AppError::Unauthorized)?;
    state.tenant_limiter.check(&tenant.id).map_err(AppError::tenant_rate_limited)?;
    Ok(Authenticated(tenant))
}

impl FromRequest for Authenticated {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| AppError::Internal("application state missing".into()))?;
            authenticate(state, token).await
        })
    }
}
