//! What every provider double shares: an HTTP server on 127.0.0.1:0, the log
//! of the calls it was asked to place (by request id, from the answer URL),
//! and what it refused, so a test that never sees its call says why.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

pub mod form;
pub mod telnyx;
pub mod vonage;

use super::PUBLIC;
use crate::helpers::wait_until;

/// A call the server asked a double to place, as the double read it.
#[derive(Clone, Debug)]
pub struct Placed {
    /// The sid (Vonage: uuid) the double answered with.
    pub sid: String,
    pub to: String,
    pub from: String,
    pub answer_url: String,
    pub status_url: String,
}

/// The calls asked of one double, and the requests it refused.
#[derive(Clone, Default)]
pub struct Calls {
    placed: Arc<Mutex<Vec<Placed>>>,
    refused: Arc<Mutex<Vec<String>>>,
    ended: Arc<Mutex<Vec<String>>>,
}

impl Calls {
    /// Records a placed call; returns its number (1 for the first).
    pub fn place(&self, call: Placed) -> usize {
        let mut placed = self.placed.lock().unwrap();
        placed.push(call);
        placed.len()
    }

    /// Refuses a request the real provider would refuse: 401 (or 400) and a note.
    pub fn refuse(&self, status: u16, why: String) -> HttpResponse {
        self.refused.lock().unwrap().push(why.clone());
        let status = actix_web::http::StatusCode::from_u16(status).unwrap();
        HttpResponse::build(status).json(serde_json::json!({ "message": why }))
    }

    /// Records that the server hung up call `sid` through the API.
    pub fn end(&self, sid: &str) {
        self.ended.lock().unwrap().push(sid.to_owned());
    }

    /// The calls placed for request `id` (its id is in the answer URL's path).
    pub fn for_request(&self, id: &str) -> Vec<Placed> {
        let suffix = format!("/voice/answer/{id}");
        let placed = self.placed.lock().unwrap();
        placed
            .iter()
            .filter(|c| c.answer_url.split('?').next().is_some_and(|u| u.ends_with(&suffix)))
            .cloned()
            .collect()
    }

    /// Waits until a call was placed for request `id`; panics with what was refused.
    pub async fn wait_for(&self, id: &str) -> Placed {
        let refused = self.refused.clone();
        let what = format!("a call for {id}");
        wait_until(&what, Duration::from_secs(10), || async {
            let refused = refused.lock().unwrap().clone();
            assert!(refused.is_empty(), "the double refused the client's request: {refused:?}");
            self.for_request(id).first().cloned()
        })
        .await
    }
}

/// Starts a double's HTTP server with `routes`; returns its base URL.
pub async fn serve<F>(routes: F) -> String
where
    F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    let server = HttpServer::new(move || App::new().configure(routes.clone())).workers(1).bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", server.addrs()[0]);
    tokio::spawn(server.run());
    base
}

/// A header's value as text ("" when absent).
pub fn header<'a>(req: &'a HttpRequest, name: &str) -> &'a str {
    req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// The `Authorization` value of HTTP basic auth.
pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// Whether a webhook URL the client handed over is under the public URL, in `folder`.
pub fn in_folder(url: &str, folder: &str, path: &str) -> bool {
    url.starts_with(&format!("{PUBLIC}/webhooks/{folder}/voice/{path}/"))
}

/// The same base64 text with one character (so one byte) changed.
pub fn one_wrong_byte(text: &str, at: usize) -> String {
    let mut bytes = text.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

/// A fresh unique value for ids and sids.
pub fn random_hex() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}
