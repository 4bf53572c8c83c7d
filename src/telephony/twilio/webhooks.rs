//! Twilio's webhooks as facts: the `Signed` extractor checks
//! `X-Twilio-Signature` before anything else, and `Params` names the form
//! parameters the call flow reads (`CallSid`, `Digits`, `From`, …).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};

use crate::body::read_limited;
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

/// The form parameters of a webhook whose signature checked out: a handler
/// that takes it cannot run on an unsigned request.
pub struct Signed(pub Params);

/// The form parameters of a verified webhook.
pub struct Params(Vec<(String, String)>);

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
            verified(verifier.as_ref(), &req, body).await.map(Signed)
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

    /// The provider's id of the call (empty for a text's report).
    pub fn call_sid(&self) -> &str {
        self.get("CallSid")
    }

    /// The caller's number, as the provider spelled it.
    pub fn from(&self) -> &str {
        self.get("From")
    }

    /// The called number, as the provider spelled it.
    pub fn to(&self) -> &str {
        self.get("To")
    }

    /// The keys a Gather collected.
    pub fn digits(&self) -> &str {
        self.get("Digits")
    }

    /// The key that ended a Gather, if one did.
    pub fn finished_on_key(&self) -> &str {
        self.get("FinishedOnKey")
    }

    /// A fax or an answering machine picked up, not a person.
    pub fn answered_by_machine(&self) -> bool {
        let by = self.get("AnsweredBy");
        by == "fax" || by.starts_with("machine")
    }

    /// The STIR/SHAKEN verification of the caller id (`StirVerstat`).
    pub fn stir_verstat(&self) -> &str {
        self.get("StirVerstat")
    }

    /// The call's status in a status callback.
    pub fn call_status(&self) -> &str {
        self.get("CallStatus")
    }

    /// The SIP code a failed call ended with, if given.
    pub fn sip_response_code(&self) -> &str {
        self.get("SipResponseCode")
    }

    /// The provider's id of a text.
    pub fn message_sid(&self) -> &str {
        self.get("MessageSid")
    }

    /// The text's status in a status callback.
    pub fn message_status(&self) -> &str {
        self.get("MessageStatus")
    }
}
