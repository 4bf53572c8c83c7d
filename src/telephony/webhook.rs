//! One provider's webhooks behind one trait: how they are signed, what their
//! parameters are called, which markup answers them.
//!
//! Each provider's folder (`/webhooks/<provider>/…`) is a scope of the route
//! table with that provider's `Dialect` registered as its `web::Data<dyn
//! Dialect>`. The `Signed` extractor reads the raw request, lets the dialect
//! check the signature *before* anything else and translate the parameters
//! into a `call::report::Report`; the handler's call script goes back out
//! through `reply`, in the same dialect's markup. The call flow never knows
//! which provider it is talking to.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::http::header::HeaderMap;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};

use crate::body::read_limited;
use crate::call::report::Report;
use crate::call::script::Step;
use crate::error::AppError;

/// A webhook as it arrived, before anything in it is trusted.
pub struct Incoming<'a> {
    pub method: &'a Method,
    /// The public URL the provider called: `IVR_AUTH_PUBLIC_URL`, the path and the query.
    pub url: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// The server's clock, in Unix seconds, for signatures that carry a time.
    pub now_unix: i64,
}

impl Incoming<'_> {
    /// A header's value as text, if present and readable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A provider's webhooks: its signature check, its parameter names, its markup.
pub trait Dialect: Send + Sync + 'static {
    /// Its folder under `/webhooks/` (`twilio`, `signalwire`, `telnyx`, `vonage`).
    fn name(&self) -> &'static str;
    /// Checks the webhook's signature with the keys of this provider's
    /// accounts, then translates it. `Err` says which check failed, in words
    /// that carry no key, token or signature.
    fn verify(&self, incoming: &Incoming<'_>) -> Result<Report, String>;
    /// The call script in this provider's markup.
    fn render(&self, script: &[Step]) -> HttpResponse;
    /// Whether a redirect of this provider reaches its URL without saying
    /// which call it is about (Vonage's `notify` posts only its payload):
    /// then a redirect URL the server writes carries the call itself.
    fn redirect_names_no_call(&self) -> bool {
        false
    }
}

/// The call a verified webhook is about, kept on the request for a redirect
/// URL that must name it (see `Dialect::redirect_names_no_call`).
#[derive(Debug, Clone)]
pub struct CallOnRecord {
    pub call_sid: String,
    pub from: String,
    pub to: String,
}

impl CallOnRecord {
    /// As query parameters (`uuid`, `from`, `to`).
    pub fn query(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("uuid", &self.call_sid)
            .append_pair("from", &self.from)
            .append_pair("to", &self.to)
            .finish()
    }
}

/// What checking a webhook needs from the server, registered as
/// `web::Data<dyn Verifier>` beside the application state.
pub trait Verifier: Send + Sync + 'static {
    /// The public URL the provider called, for a request's path and query.
    fn public_url(&self, path_and_query: &str) -> String;
    /// The server's clock, in Unix seconds.
    fn now_unix(&self) -> i64;
    /// Counts a refused webhook.
    fn refused(&self);
}

/// The facts of a webhook whose signature checked out: a handler that takes
/// it cannot run on an unsigned request.
pub struct Signed(pub Report);

/// The dialect of the folder a request came in through.
pub fn dialect(req: &HttpRequest) -> Option<Arc<dyn Dialect>> {
    req.app_data::<web::Data<dyn Dialect>>().map(|d| d.clone().into_inner())
}

/// The answer to a webhook: `script` in the markup of the provider that asked.
pub fn reply(req: &HttpRequest, script: &[Step]) -> HttpResponse {
    match dialect(req) {
        Some(d) => d.render(script),
        None => crate::telephony::twilio::twiml::response(script),
    }
}

impl FromRequest for Signed {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let body = web::Payload::from_request(&req, payload);
        Box::pin(async move {
            let verifier = req
                .app_data::<web::Data<dyn Verifier>>()
                .map(|d| d.clone().into_inner())
                .ok_or_else(|| AppError::Internal("webhook verifier missing".into()))?;
            let dialect = dialect(&req).ok_or_else(|| AppError::Internal("webhook dialect missing".into()))?;
            let body = body.await.map_err(|e| AppError::MalformedJson(e.to_string()))?;
            let body = read_limited(&req, body).await?;
            let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let url = verifier.public_url(path);
            let incoming = Incoming {
                method: req.method(),
                url: &url,
                query: req.query_string(),
                headers: req.headers(),
                body: &body,
                now_unix: verifier.now_unix(),
            };
            match dialect.verify(&incoming) {
                Ok(report) => {
                    if dialect.redirect_names_no_call() {
                        use actix_web::HttpMessage;
                        let call = CallOnRecord {
                            call_sid: report.call_sid.clone(),
                            from: report.from.clone(),
                            to: report.to.clone(),
                        };
                        req.extensions_mut().insert(call);
                    }
                    Ok(Signed(report))
                }
                Err(why) => {
                    verifier.refused();
                    tracing::warn!(path = req.path(), provider = dialect.name(), why, "webhook refused");
                    Err(AppError::Forbidden)
                }
            }
        })
    }
}
