//! Twilio's webhooks as facts: the `Signed` extractor checks
//! `X-Twilio-Signature` before anything else, then translates the form
//! parameters (`CallSid`, `Digits`, `From`, …) into a `call::report::Report`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};

use crate::body::read_limited;
use crate::call::report::Report;
use crate::error::AppError;

use super::signature;

/// What checking a webhook's signature needs from the server, registered as
/// `web::Data<dyn Verifier>` beside the application state.
pub trait Verifier: Send + Sync + 'static {
    /// The provider's auth token: it signs every webhook.
    fn auth_token(&self) -> &[u8];
    /// The public URL the provider called, for a request's path and query.
    fn public_url(&self, path_and_query: &str) -> String;
    /// Counts a refused webhook.
    fn refused(&self);
}

/// The facts of a webhook whose signature checked out: a handler that takes
/// it cannot run on an unsigned request.
pub struct Signed(pub Report);

/// The form parameters of a verified webhook.
struct Params(Vec<(String, String)>);

impl FromRequest for Signed {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let body = web::Payload::from_request(&req, payload);
        Box::pin(async move {
            let verifier = req
                .app_data::<web::Data<dyn Verifier>>()
                .map(|d| Arc::clone(&d.clone().into_inner()))
                .ok_or_else(|| AppError::Internal("webhook verifier missing".into()))?;
            let body = body.await.map_err(|e| AppError::MalformedJson(e.to_string()))?;
            verified(verifier.as_ref(), &req, body).await.map(|p| Signed(p.report()))
        })
    }
}

/// Reads the form body and checks its signature against the public URL.
async fn verified(verifier: &dyn Verifier, req: &HttpRequest, payload: web::Payload) -> Result<Params, AppError> {
    let body = read_limited(req, payload).await?;
    let params: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let given = req.headers().get("X-Twilio-Signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let url = verifier.public_url(path);
    if given.is_empty() || !signature::is_valid(verifier.auth_token(), &url, &params, given) {
        verifier.refused();
        tracing::warn!(path = req.path(), "webhook refused: missing or invalid signature");
        return Err(AppError::Forbidden);
    }
    Ok(Params(params))
}

impl Params {
    fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }

    /// Twilio's names for the facts the call flow reads.
    fn report(&self) -> Report {
        let by = self.get("AnsweredBy");
        Report {
            call_sid: self.get("CallSid").to_owned(),
            from: self.get("From").to_owned(),
            to: self.get("To").to_owned(),
            digits: self.get("Digits").to_owned(),
            finished_on_key: self.get("FinishedOnKey").to_owned(),
            answered_by_machine: by == "fax" || by.starts_with("machine"),
            attestation: self.get("StirVerstat").to_owned(),
            call_status: self.get("CallStatus").to_owned(),
            sip_response_code: self.get("SipResponseCode").to_owned(),
            message_sid: self.get("MessageSid").to_owned(),
            message_status: self.get("MessageStatus").to_owned(),
        }
    }
}
