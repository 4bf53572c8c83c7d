//! The one error type of the HTTP edge and its JSON answer.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::service::ServiceError;
use crate::store::StoreError;

/// Every way a site-API call can fail; each variant names its status code.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400: the body is not valid JSON.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// 401: no API key, or not a valid one.
    #[error("missing or invalid API key")]
    Unauthorized,
    /// 401: the tenant signs its requests, and this one is not validly signed.
    #[error("{0}")]
    Unsigned(String),
    /// 404: no such resource for this tenant.
    #[error("{0}")]
    NotFound(&'static str),
    /// 409: the request conflicts with the current state.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 408: the body did not arrive in time.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// 413: the body is over the limit.
    #[error("request body is larger than 64 KiB")]
    PayloadTooLarge,
    /// 415: the body is not JSON.
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    /// 422: a field broke its rule; `field` names it, and so does the message.
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// 429: slow down; retry after the given time. The message names the limit.
    #[error("{message}")]
    RateLimited { retry_after: Duration, message: String },
    /// 403: a webhook whose signature does not check out (the log says
    /// which check failed; the answer names no provider's header).
    #[error("the webhook's signature is missing or does not verify")]
    Forbidden,
    /// 405: the route exists with another method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 503: the database is not reachable for now; retry after a moment.
    #[error("the service is briefly unavailable; try again in a moment")]
    Unavailable(#[source] StoreError),
    /// 500: a bug or an unexpected failure; logged, never shown.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AppError {
    /// A 422 naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let (field, message) = (field.into(), message.into());
        let message = if message.starts_with(&format!("{field}:")) { message } else { format!("{field}: {message}") };
        Self::Invalid { field, message }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "malformed_json",
            Self::Unauthorized | Self::Unsigned(_) => "unauthorized",
            Self::NotFound(_) => "not_found",
            Self::Conflict { code, .. } => code,
            Self::RequestTimeout => "request_timeout",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Invalid { .. } => "invalid_field",
            Self::RateLimited { .. } => "rate_limited",
            Self::Forbidden => "forbidden",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal_error",
        }
    }
}

impl AppError {
    /// The per-tenant request limit.
    pub fn tenant_rate_limited(retry_after: Duration) -> Self {
        Self::RateLimited { retry_after, message: "too many requests for this API key; slow down".into() }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Self::Unavailable(e),
            StoreError::Conflict(msg) => Self::Conflict { code: "conflict", message: msg.to_owned() },
            other => Self::Internal(Box::new(other)),
        }
    }
}

impl From<ServiceError> for AppError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid { field, message } => Self::invalid(field, message),
            ServiceError::NotFound(what) => Self::NotFound(what),
            ServiceError::Conflict { code, message } => Self::Conflict { code, message },
            ServiceError::RateLimited { retry_after, message } => Self::RateLimited { retry_after, message },
            ServiceError::Store(e) => e.into(),
        }
    }
}

/// The error body: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// snake_case machine-readable code.
    pub code: String,
    /// Human-readable; for 422 it starts with the field name.
    pub message: String,
    /// The offending field, for 422.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::MalformedJson(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::Unsigned(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Internal(e) => {
                tracing::error!(error = %e, source = ?std::error::Error::source(&**e), "request failed")
            }
            Self::Unavailable(e) => tracing::warn!(error = %e, "request answered 503: database unavailable"),
            _ => {}
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.to_string(),
                field: match self {
                    Self::Invalid { field, .. } => Some(field.clone()),
                    _ => None,
                },
            },
        };
        let mut resp = HttpResponse::build(self.status_code());
        resp.insert_header((CONTENT_TYPE, "application/json"));
        match self {
            Self::RateLimited { retry_after, .. } => {
                // Whole seconds, rounded up: retrying at the given time must succeed.
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                resp.insert_header((RETRY_AFTER, secs.max(1).to_string()));
            }
            Self::Unavailable(_) => {
                resp.insert_header((RETRY_AFTER, "2"));
            }
            _ => {}
        }
        if let Self::Unauthorized = self {
            resp.insert_header(("WWW-Authenticate", "Bearer"));
        }
        resp.json(body)
    }
}
