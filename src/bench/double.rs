//! The load generator's provider double: accepts `Calls.json` like the
//! provider's REST API and hands each placed call to the lifecycle waiting for it.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use actix_web::{App, HttpResponse, HttpServer, web};
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

async fn create_call(body: web::Bytes, waiting: web::Data<Waiting>) -> HttpResponse {
    let mut to = String::new();
    let mut answer_url = String::new();
    let mut status_callback = String::new();
    for (k, v) in url::form_urlencoded::parse(&body) {
        match &*k {
            "To" => to = v.into_owned(),
            "Url" => answer_url = v.into_owned(),
            "StatusCallback" => status_callback = v.into_owned(),
            _ => {}
        }
    }
    // The request id is the answer URL's last path segment (its query names the locale).
    let path = answer_url.split('?').next().unwrap_or_default();
    let Some(id) = path.rsplit('/').next().filter(|id| !id.is_empty()).map(str::to_owned) else {
        return HttpResponse::BadRequest().json(serde_json::json!({ "code": 21205, "message": "Url is required" }));
    };
    let n = waiting.next_sid.fetch_add(1, Ordering::Relaxed);
    let sid = format!("CA{n:032x}");
    waiting.arrived(id, PlacedCall { sid: sid.clone(), to, answer_url, status_callback });
    HttpResponse::Created().json(serde_json::json!({ "sid": sid, "status": "queued" }))
}

/// Starts the double on `listener`; returns the shared waiting list.
pub fn start(listener: TcpListener) -> std::io::Result<(Arc<Waiting>, actix_web::dev::ServerHandle)> {
    let waiting = web::Data::new(Waiting::default());
    let shared = waiting.clone().into_inner();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(waiting.clone())
            .route("/2010-04-01/Accounts/{acct}/Calls.json", web::post().to(create_call))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok((shared, handle))
}
