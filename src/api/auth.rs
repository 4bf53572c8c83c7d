//! Bearer-key authentication of the site API, and the per-tenant rate limit.

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use crate::domain::tenant::{PresentedKey, Tenant};
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
    let key = PresentedKey::parse(&token).ok_or(AppError::Unauthorized)?;
    let tenant = state.core.store.tenant_by_key_id(key.key_id).await?;
    // The key id is public (it only finds the row); the secret half decides, in constant time.
    let tenant = match tenant {
        Some(t) if key.matches(&t) => t,
        _ => return Err(AppError::Unauthorized),
    };
    state.tenant_limiter.check(&tenant.id).map_err(|retry_after| AppError::RateLimited { retry_after })?;
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
