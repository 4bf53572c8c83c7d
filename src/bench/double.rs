//! The load generator's provider double: accepts `Calls.json` like the
//! provider's REST API and hands each placed call to the lifecycle waiting for it.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use actix_web::dev::ServerHandle;
use actix_web::{App, FromRequest, Handler, HttpResponse, HttpServer, Responder, web};
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

/// The provider's answer to a call request it took: 201 with the call's sid (`CA` and 32 hex digits of `n`).
pub(super) fn created(n: u64) -> (String, HttpResponse) {
    let sid = format!("CA{n:032x}");
    let response = HttpResponse::Created().json(serde_json::json!({ "sid": sid, "status": "queued" }));
    (sid, response)
}

/// The provider's answer to a call request without an answer URL.
pub(super) fn no_url() -> HttpResponse {
    HttpResponse::BadRequest().json(serde_json::json!({ "code": 21205, "message": "Url is required" }))
}

async fn create_call(body: web::Bytes, waiting: web::Data<Waiting>) -> HttpResponse {
    let Some(CallForm { id, to, answer_url, status_callback }) = CallForm::parse(&body) else { return no_url() };
    let (sid, response) = created(waiting.next_sid.fetch_add(1, Ordering::Relaxed));
    waiting.arrived(id, PlacedCall { sid, to, answer_url, status_callback });
    response
}

/// Starts the double on `listener`; returns the shared waiting list.
pub fn start(listener: TcpListener) -> std::io::Result<(Arc<Waiting>, ServerHandle)> {
    let waiting = web::Data::new(Waiting::default());
    let shared = waiting.clone().into_inner();
    Ok((shared, serve(listener, waiting, create_call)?))
}

/// Serves `POST …/Calls.json` on `listener` with `handler`, which finds `data` in the app.
pub(super) fn serve<T, F, A>(listener: TcpListener, data: web::Data<T>, handler: F) -> std::io::Result<ServerHandle>
where
    T: Send + Sync + 'static,
    F: Handler<A> + Clone + Send + 'static,
    A: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/2010-04-01/Accounts/{acct}/Calls.json", web::post().to(handler.clone()))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok(handle)
}
