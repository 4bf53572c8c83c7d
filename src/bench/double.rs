//! The load generator's provider double: accepts `Calls.json` like the
//! provider's REST API and hands each placed call to the lifecycle waiting for it.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

/// A call the server asked the provider to place.
#[derive(Debug)]
pub struct PlacedCall {
    pub sid: String,
    pub to: String,
    pub answer_url: String,
    pub status_callback: String,
}

/// Lifecycles waiting for their call, and calls that arrived before anyone
/// waited (the job can beat the 201 to the client). One lock for both, so a
/// call and its waiter can never miss each other.
#[derive(Default)]
pub struct Waiting {
    rendezvous: Mutex<Rendezvous>,
    next_sid: AtomicU64,
}

#[derive(Default)]
struct Rendezvous {
    waiters: HashMap<String, oneshot::Sender<PlacedCall>>,
    early: HashMap<String, PlacedCall>,
}

impl Waiting {
    /// Waits for the call of request `id`.
    pub fn expect(&self, id: &str) -> oneshot::Receiver<PlacedCall> {
        let (tx, rx) = oneshot::channel();
        let mut r = self.rendezvous.lock().unwrap_or_else(PoisonError::into_inner);
        match r.early.remove(id) {
            Some(call) => {
                let _ = tx.send(call);
            }
            None => {
                r.waiters.insert(id.to_owned(), tx);
            }
        }
        rx
    }

    fn arrived(&self, id: String, call: PlacedCall) {
        let mut r = self.rendezvous.lock().unwrap_or_else(PoisonError::into_inner);
        match r.waiters.remove(&id) {
            Some(tx) => {
                let _ = tx.send(call);
            }
            None => {
                r.early.insert(id, call);
            }
        }
    }
}

/// The fields of a `Calls.json` request the doubles read.
pub(super) struct CallForm {
    /// The request id: the answer URL's last path segment (its query names the locale).
    pub id: String,
    pub to: String,
    pub answer_url: String,
    pub status_callback: String,
}

impl CallForm {
    /// `None` when the form names no answer URL ending in an id.
    pub(super) fn parse(body: &[u8]) -> Option<Self> {
        let mut form =
            Self { id: String::new(), to: String::new(), answer_url: String::new(), status_callback: String::new() };
        for (k, v) in url::form_urlencoded::parse(body) {
            match &*k {
                "To" => form.to = v.into_owned(),
                "Url" => form.answer_url = v.into_owned(),
                "StatusCallback" => form.status_callback = v.into_owned(),
                _ => {}
            }
        }
        let path = form.answer_url.split('?').next().unwrap_or_default();
        form.id = path.rsplit('/').next().filter(|id| !id.is_empty())?.to_owned();
        Some(form)
    }
}

/// What the double answers a request: its status and its JSON body.
pub(super) type Reply = (StatusCode, String);

/// The provider's answer to a call request it took: 201 with the call's sid (`CA` and 32 hex digits of `n`).
pub(super) fn created(n: u64) -> (String, Reply) {
    let sid = format!("CA{n:032x}");
    let body = serde_json::json!({ "sid": sid, "status": "queued" }).to_string();
    (sid, (StatusCode::CREATED, body))
}

/// The provider's answer to a call request without an answer URL.
pub(super) fn no_url() -> Reply {
    (StatusCode::BAD_REQUEST, serde_json::json!({ "code": 21205, "message": "Url is required" }).to_string())
}

/// Starts the double on `listener`; returns the shared waiting list.
pub fn start(listener: TcpListener) -> std::io::Result<(Arc<Waiting>, Double)> {
    let waiting = Arc::new(Waiting::default());
    let shared = waiting.clone();
    let double = serve(listener, move |body| {
        let Some(CallForm { id, to, answer_url, status_callback }) = CallForm::parse(body) else { return no_url() };
        let (sid, answer) = created(waiting.next_sid.fetch_add(1, Ordering::Relaxed));
        waiting.arrived(id, PlacedCall { sid, to, answer_url, status_callback });
        answer
    })?;
    Ok((shared, double))
}

/// A running double: its accepting task, stopped when dropped.
pub struct Double(tokio::task::JoinHandle<()>);

impl Drop for Double {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The largest form the double reads.
const MAX_FORM: usize = 64 * 1024;

/// Serves `POST /2010-04-01/Accounts/{sid}/Calls.json` on `listener` with
/// `handler`, which gets the form's bytes; anything else is a 404.
///
/// HTTP/1.1 through hyper's server connection, on the generator's own
/// runtime: an actix server here cost a thread of its own, and a hop from it
/// to the lifecycle waiting for the call, per placed call (issue 18).
pub(super) fn serve<F>(listener: TcpListener, handler: F) -> std::io::Result<Double>
where
    F: Fn(&[u8]) -> Reply + Send + Sync + 'static,
{
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let handler = Arc::new(handler);
    Ok(Double(tokio::spawn(async move {
        loop {
            // An error accepting one connection (too many open files under a
            // thousand callers) must not stop the double: wait and go on.
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let handler = handler.clone();
            let service = service_fn(move |req: Request<Incoming>| {
                let handler = handler.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(req, &*handler).await) }
            });
            tokio::spawn(async move {
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    })))
}

/// The answer to one request: the handler's for a call request, 404 otherwise.
async fn answer<F: Fn(&[u8]) -> Reply>(req: Request<Incoming>, handler: &F) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let calls = req.method() == Method::POST
        && path
            .strip_prefix("/2010-04-01/Accounts/")
            .and_then(|p| p.strip_suffix("/Calls.json"))
            .is_some_and(|account| !account.is_empty() && !account.contains('/'));
    let (status, body) = match calls {
        false => (StatusCode::NOT_FOUND, String::new()),
        true => match Limited::new(req.into_body(), MAX_FORM).collect().await {
            Ok(body) => handler(&body.to_bytes()),
            Err(_) => (StatusCode::PAYLOAD_TOO_LARGE, String::new()),
        },
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::bench::client::{Conns, Exchange};

    fn post<'a>(base: &'a str, path: &'a str, body: &'static str) -> Exchange<'a> {
        Exchange {
            method: Method::POST,
            base,
            path,
            headers: &[],
            content_type: Some("application/x-www-form-urlencoded"),
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    const CALLS: &str = "/2010-04-01/Accounts/AC123/Calls.json";

    #[tokio::test]
    async fn a_placed_call_reaches_the_lifecycle_waiting_for_it_and_anything_else_is_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (waiting, _double) = start(listener).unwrap();
        let conns = Conns::default();

        let early = waiting.expect("req-1");
        let form =
            "To=%2B819012345678&Url=http%3A%2F%2Fx%2Fanswer%2Freq-1%3Flocale%3Dja&StatusCallback=http%3A%2F%2Fx%2Fs";
        let (status, body) = conns.send(post(&base, CALLS, form)).await.unwrap();
        assert_eq!(status, StatusCode::CREATED);
        let sid = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["sid"].as_str().unwrap().to_owned();
        let call =
            tokio::time::timeout(Duration::from_secs(5), early).await.expect("the call was handed over").unwrap();
        assert_eq!((call.sid.as_str(), call.to.as_str()), (sid.as_str(), "+819012345678"));
        assert_eq!(
            (call.answer_url.as_str(), call.status_callback.as_str()),
            ("http://x/answer/req-1?locale=ja", "http://x/s")
        );

        // A call that arrives before anyone waits for it is kept for its lifecycle.
        let (status, _) = conns.send(post(&base, CALLS, "To=1&Url=http%3A%2F%2Fx%2Fanswer%2Freq-2")).await.unwrap();
        assert_eq!(status, StatusCode::CREATED);
        let late = tokio::time::timeout(Duration::from_secs(5), waiting.expect("req-2")).await;
        assert_eq!(late.expect("the early call was kept").unwrap().to, "1");

        let (status, body) = conns.send(post(&base, CALLS, "To=1")).await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "no Url");
        assert!(String::from_utf8_lossy(&body).contains("21205"));
        for path in ["/2010-04-01/Accounts//Calls.json", "/2010-04-01/Accounts/AC1/x/Calls.json", "/Calls.json"] {
            let (status, _) = conns.send(post(&base, path, "To=1&Url=http%3A%2F%2Fx%2Fa%2Fb")).await.unwrap();
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
        let get = Exchange { method: Method::GET, ..post(&base, CALLS, "") };
        assert_eq!(conns.send(get).await.unwrap().0, StatusCode::NOT_FOUND);
    }
}
