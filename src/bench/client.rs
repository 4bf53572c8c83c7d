//! The lifecycles' HTTP/1.1 client: hyper's own connection API over kept-alive
//! TCP connections, one idle list per server.
//!
//! `reqwest` does much per request that a load generator talking to known
//! servers does not need: a URL parse into `url::Url` and a second one for the
//! redirect layer, a tower stack, a pool keyed by scheme and authority. The
//! generator shares the two cores with the server it measures, so its own CPU
//! per lifecycle caps what is measured (issue 18). Every answer is still read
//! whole and checked by the caller.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;

/// How long a connection may sit idle before it is dropped: below the
/// server's 5 s keep-alive, so a request never races the server closing it.
const IDLE: Duration = Duration::from_secs(3);
/// How long one exchange may take, connecting included.
const TIMEOUT: Duration = Duration::from_secs(30);

/// One kept-alive connection's sending half.
type Sender = SendRequest<Full<Bytes>>;

/// Kept-alive connections by server (`host:port`), each with when it went idle.
#[derive(Default)]
pub struct Conns {
    idle: Mutex<HashMap<String, Vec<(Sender, Instant)>>>,
}

/// One request: method, a server's base URL (`http://host:port`), the path
/// (with its query), the headers and the body.
pub struct Exchange<'a> {
    pub method: Method,
    pub base: &'a str,
    pub path: &'a str,
    pub headers: &'a [(header::HeaderName, &'a str)],
    pub content_type: Option<&'static str>,
    pub body: Bytes,
}

impl Conns {
    /// Sends `x` and reads its whole answer: the status and the body.
    pub async fn send(&self, x: Exchange<'_>) -> Result<(StatusCode, Bytes), String> {
        tokio::time::timeout(TIMEOUT, self.send_untimed(x)).await.map_err(|_| "timed out".to_owned())?
    }

    async fn send_untimed(&self, x: Exchange<'_>) -> Result<(StatusCode, Bytes), String> {
        let authority = x.base.strip_prefix("http://").ok_or("only http:// bases")?;
        let mut sender = match self.take(authority) {
            Some(sender) => sender,
            None => connect(authority).await?,
        };
        let mut req = Request::builder().method(x.method).uri(x.path).header(header::HOST, authority);
        for (name, value) in x.headers {
            req = req.header(name, *value);
        }
        if let Some(ct) = x.content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let req = req.body(Full::new(x.body)).map_err(|e| format!("request: {e}"))?;
        let resp = sender.send_request(req).await.map_err(|e| format!("network: {e}"))?;
        let status = resp.status();
        let body = resp.into_body().collect().await.map_err(|e| format!("body: {e}"))?.to_bytes();
        self.put_back(authority, sender);
        Ok((status, body))
    }

    /// An idle connection to `authority` that is still open and fresh.
    fn take(&self, authority: &str) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = idle.get_mut(authority)?;
        while let Some((sender, since)) = list.pop() {
            if sender.is_ready() && since.elapsed() < IDLE {
                return Some(sender);
            }
        }
        None
    }

    fn put_back(&self, authority: &str, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        idle.entry(authority.to_owned()).or_default().push((sender, Instant::now()));
    }
}

async fn connect(authority: &str) -> Result<Sender, String> {
    let stream = tokio::net::TcpStream::connect(authority).await.map_err(|e| format!("network: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("network: {e}"))?;
    // The connection's own task; it ends when the connection closes.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that answers each request on a connection with the number of
    /// the request on that connection, and counts connections.
    async fn server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut n = 0;
                    loop {
                        let mut chunk = [0u8; 4096];
                        let Ok(read) = s.read(&mut chunk).await else { return };
                        if read == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..read]);
                        // Requests here carry a 5-byte body after the head.
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            if buf.len() < end + 4 + 5 {
                                break;
                            }
                            let body = String::from_utf8_lossy(&buf[end + 4..end + 9]).into_owned();
                            buf.drain(..end + 9);
                            n += 1;
                            let answer = format!("{n}:{body}");
                            let resp = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{answer}", answer.len());
                            if s.write_all(resp.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (base, accepted)
    }

    fn post<'a>(base: &'a str, body: &'static str) -> Exchange<'a> {
        Exchange {
            method: Method::POST,
            base,
            path: "/x",
            headers: &[],
            content_type: Some("text/plain"),
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[tokio::test]
    async fn answers_are_read_whole_and_connections_kept_alive() {
        let (base, accepted) = server().await;
        let conns = Conns::default();
        for (n, body) in ["hello", "world", "again"].into_iter().enumerate() {
            let (status, answer) = conns.send(post(&base, body)).await.unwrap();
            assert_eq!(status, 200);
            assert_eq!(answer, format!("{}:{body}", n + 1));
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::Relaxed), 1, "one connection for three requests");
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_error_not_a_hang() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let err = Conns::default().send(post(&base, "hello")).await.unwrap_err();
        assert!(err.starts_with("network"), "{err}");
    }
}
