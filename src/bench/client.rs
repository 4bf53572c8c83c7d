//! The lifecycles' HTTP/1.1 client: requests written and answers read on
//! kept-alive TCP connections by the task that sends them, one idle list per
//! server; `httparse` reads an answer's head.
//!
//! `reqwest` does much per request that a load generator talking to known
//! servers does not need: a URL parse into `url::Url` and a second one for the
//! redirect layer, a tower stack, a pool keyed by scheme and authority. hyper's
//! own connection API still runs each connection as a task of its own, which
//! each request reaches through a channel and whose answer comes back through
//! another, often across the runtime's two threads. The generator shares the
//! two cores with the server it measures, so its own CPU per lifecycle caps
//! what is measured (issue 18). Every answer is still read whole (by its
//! `content-length`, chunked, or to the end of the connection) and checked by
//! the caller.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use hyper::{Method, StatusCode, header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a connection may sit idle before it is dropped: below the
/// server's 5 s keep-alive, so a request never races the server closing it.
const IDLE: Duration = Duration::from_secs(3);
/// How long one exchange may take, connecting included.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Most header lines an answer may have.
const MAX_HEADERS: usize = 32;
/// Largest answer head.
const MAX_HEAD: usize = 64 * 1024;

/// A kept-alive connection and what was read on it past the last answer.
struct Conn {
    stream: TcpStream,
    read: BytesMut,
}

/// Kept-alive connections by server (`host:port`), each with when it went idle.
#[derive(Default)]
pub struct Conns {
    idle: Mutex<HashMap<String, Vec<(Conn, Instant)>>>,
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

/// An answer read whole, and whether its connection may carry another request.
struct Answer {
    status: StatusCode,
    body: Bytes,
    keep_alive: bool,
}

impl Conns {
    /// Sends `x` and reads its whole answer: the status and the body.
    pub async fn send(&self, x: Exchange<'_>) -> Result<(StatusCode, Bytes), String> {
        tokio::time::timeout(TIMEOUT, self.send_untimed(x)).await.map_err(|_| "timed out".to_owned())?
    }

    async fn send_untimed(&self, x: Exchange<'_>) -> Result<(StatusCode, Bytes), String> {
        let authority = x.base.strip_prefix("http://").ok_or("only http:// bases")?;
        let request = request_bytes(&x, authority);
        // A kept-alive connection the server closed meanwhile fails before
        // any of the answer arrives: the request is then sent once more, on
        // a new connection (the server read none of it).
        if let Some(mut conn) = self.take(authority) {
            match exchange(&mut conn, &request).await {
                Ok(answer) => return Ok(self.finish(authority, conn, answer)),
                Err(Failed { answered: false, .. }) => {}
                Err(Failed { message, .. }) => return Err(message),
            }
        }
        let mut conn = connect(authority).await?;
        let answer = exchange(&mut conn, &request).await.map_err(|f| f.message)?;
        Ok(self.finish(authority, conn, answer))
    }

    fn finish(&self, authority: &str, conn: Conn, answer: Answer) -> (StatusCode, Bytes) {
        if answer.keep_alive {
            let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            idle.entry(authority.to_owned()).or_default().push((conn, Instant::now()));
        }
        (answer.status, answer.body)
    }

    /// An idle connection to `authority` that is still fresh.
    fn take(&self, authority: &str) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = idle.get_mut(authority)?;
        while let Some((conn, since)) = list.pop() {
            if since.elapsed() < IDLE {
                return Some(conn);
            }
        }
        None
    }
}

async fn connect(authority: &str) -> Result<Conn, String> {
    let stream = TcpStream::connect(authority).await.map_err(|e| format!("network: {e}"))?;
    let _ = stream.set_nodelay(true);
    Ok(Conn { stream, read: BytesMut::with_capacity(8 * 1024) })
}

/// The request's bytes: its head, then its body.
fn request_bytes(x: &Exchange<'_>, authority: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + x.path.len() + x.body.len());
    for piece in [x.method.as_str(), " ", x.path, " HTTP/1.1\r\nhost: ", authority, "\r\n"] {
        out.extend_from_slice(piece.as_bytes());
    }
    for (name, value) in x.headers {
        for piece in [name.as_str(), ": ", value, "\r\n"] {
            out.extend_from_slice(piece.as_bytes());
        }
    }
    if let Some(ct) = x.content_type {
        for piece in ["content-type: ", ct, "\r\n"] {
            out.extend_from_slice(piece.as_bytes());
        }
    }
    // Writing to a `Vec` cannot fail.
    let _ = write!(out, "content-length: {}\r\n\r\n", x.body.len());
    out.extend_from_slice(&x.body);
    out
}

/// Why an exchange failed, and whether any of an answer had arrived.
struct Failed {
    message: String,
    answered: bool,
}

impl Failed {
    fn new(message: impl Into<String>, answered: bool) -> Self {
        Self { message: message.into(), answered }
    }
}

/// Writes `request` on `conn` and reads its answer whole.
async fn exchange(conn: &mut Conn, request: &[u8]) -> Result<Answer, Failed> {
    conn.stream.write_all(request).await.map_err(|e| Failed::new(format!("network: {e}"), false))?;
    let (status, framing, keep_alive) = loop {
        if let Some(head) = parse_head(&mut conn.read)? {
            break head;
        }
        if conn.read.len() > MAX_HEAD {
            return Err(Failed::new("answer head too large", true));
        }
        let answered = !conn.read.is_empty();
        if fill(conn).await.map_err(|e| Failed::new(e, answered))? == 0 {
            return Err(Failed::new("network: connection closed before an answer", answered));
        }
    };
    let body = match framing {
        Framing::Length(n) => {
            while conn.read.len() < n {
                if fill(conn).await.map_err(|e| Failed::new(e, true))? == 0 {
                    return Err(Failed::new("network: connection closed within an answer", true));
                }
            }
            conn.read.split_to(n).freeze()
        }
        Framing::Chunked => chunked(conn).await?,
        Framing::ToEnd => {
            while fill(conn).await.map_err(|e| Failed::new(e, true))? > 0 {}
            conn.read.split().freeze()
        }
    };
    let keep_alive = keep_alive && !matches!(framing, Framing::ToEnd);
    Ok(Answer { status, body, keep_alive })
}

/// How an answer's body ends.
#[derive(Clone, Copy)]
enum Framing {
    Length(usize),
    Chunked,
    ToEnd,
}

/// The answer's head, taken off the front of `read` once it is all there:
/// its status, how its body ends and whether the connection stays open.
fn parse_head(read: &mut BytesMut) -> Result<Option<(StatusCode, Framing, bool)>, Failed> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(read) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(Failed::new(format!("answer: {e}"), true)),
    };
    let code = resp.code.unwrap_or_default();
    let status = StatusCode::from_u16(code).map_err(|_| Failed::new(format!("answer: status {code}"), true))?;
    let mut framing = Framing::ToEnd;
    let mut keep_alive = resp.version == Some(1);
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse().ok());
            framing = Framing::Length(n.ok_or_else(|| Failed::new("answer: bad content-length", true))?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            framing = Framing::Chunked;
        } else if h.name.eq_ignore_ascii_case("connection") {
            keep_alive &= !h.value.eq_ignore_ascii_case(b"close");
        }
    }
    // No body, whatever the head says (RFC 9112, section 6.3).
    if code == 204 || code == 304 || (100..200).contains(&code) {
        framing = Framing::Length(0);
    }
    read.advance(len);
    Ok(Some((status, framing, keep_alive)))
}

/// A chunked body, its chunks joined (extensions and trailers passed over).
async fn chunked(conn: &mut Conn) -> Result<Bytes, Failed> {
    let mut body = BytesMut::new();
    loop {
        let line = read_line(conn).await?;
        let size = line.split(|&b| b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(size)
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .ok_or_else(|| Failed::new("answer: bad chunk size", true))?;
        if size == 0 {
            // The trailers, up to the empty line.
            while !read_line(conn).await?.is_empty() {}
            return Ok(body.freeze());
        }
        while conn.read.len() < size + 2 {
            if fill(conn).await.map_err(|e| Failed::new(e, true))? == 0 {
                return Err(Failed::new("network: connection closed within a chunk", true));
            }
        }
        body.extend_from_slice(&conn.read[..size]);
        conn.read.advance(size + 2);
    }
}

/// The next line of `conn`, without its CRLF.
async fn read_line(conn: &mut Conn) -> Result<Bytes, Failed> {
    loop {
        if let Some(at) = conn.read.windows(2).position(|w| w == b"\r\n") {
            let line = conn.read.split_to(at).freeze();
            conn.read.advance(2);
            return Ok(line);
        }
        if fill(conn).await.map_err(|e| Failed::new(e, true))? == 0 {
            return Err(Failed::new("network: connection closed within a chunked answer", true));
        }
    }
}

/// Reads what has arrived on `conn` (at least a byte, or 0 at its end).
async fn fill(conn: &mut Conn) -> Result<usize, String> {
    conn.read.reserve(8 * 1024);
    conn.stream.read_buf(&mut conn.read).await.map_err(|e| format!("network: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // Each answer tells the number of the request on its connection and its body.
        let (base, accepted) = serve(std::sync::Arc::new(|n, body| {
            let answer = format!("{n}:{}", String::from_utf8_lossy(body));
            Some((format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{answer}", answer.len()), false))
        }))
        .await;
        let conns = Conns::default();
        for (n, body) in ["hello", "world", "again"].into_iter().enumerate() {
            let (status, answer) = conns.send(post(&base, body)).await.unwrap();
            assert_eq!(status, 200);
            assert_eq!(answer, format!("{}:{body}", n + 1));
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::Relaxed), 1, "one connection for three requests");
    }

    /// What a test server answers to a request (the number of the request on
    /// its connection, from 1, and the body): raw HTTP, and whether to close
    /// the connection after it without saying so; `None` closes it at once.
    type Answering = dyn Fn(usize, &[u8]) -> Option<(String, bool)> + Send + Sync;

    /// A server that answers the requests it reads (each with a body of its
    /// `content-length`, if any) with `answer`. Counts connections.
    async fn serve(answer: std::sync::Arc<Answering>) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let answer = answer.clone();
                tokio::spawn(async move {
                    let (mut buf, mut n) = (Vec::new(), 0);
                    loop {
                        let mut chunk = [0u8; 4096];
                        let Ok(read) = s.read(&mut chunk).await else { return };
                        if read == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..read]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length: "))
                                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                            if buf.len() < end + 4 + length {
                                break;
                            }
                            let request: Vec<u8> = buf.drain(..end + 4 + length).collect();
                            n += 1;
                            let Some((raw, close_after)) = answer(n, &request[end + 4..]) else { return };
                            if s.write_all(raw.as_bytes()).await.is_err() || close_after {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (base, accepted)
    }

    /// A server that answers the requests it reads, on whatever connection,
    /// with `answers` in turn (see `Answering`).
    async fn scripted(answers: Vec<(&'static str, bool)>) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let answers = Mutex::new(answers.into_iter());
        serve(std::sync::Arc::new(move |_, _| answers.lock().unwrap().next().map(|(raw, close)| (raw.into(), close))))
            .await
    }

    fn get(base: &str) -> Exchange<'_> {
        Exchange { method: Method::GET, content_type: None, ..post(base, "") }
    }

    #[tokio::test]
    async fn chunked_and_empty_answers_are_read_whole_on_one_connection() {
        let (base, accepted) = scripted(vec![
            ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", false),
            ("HTTP/1.1 204 No Content\r\n\r\n", false),
            ("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nend", false),
        ])
        .await;
        let conns = Conns::default();
        assert_eq!(conns.send(get(&base)).await.unwrap(), (StatusCode::OK, Bytes::from_static(b"hello world")));
        assert_eq!(conns.send(get(&base)).await.unwrap(), (StatusCode::NO_CONTENT, Bytes::new()));
        assert_eq!(conns.send(get(&base)).await.unwrap(), (StatusCode::OK, Bytes::from_static(b"end")));
        assert_eq!(accepted.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_kept_connection_the_server_closed_is_replaced_and_the_request_sent_again() {
        let (base, accepted) = scripted(vec![
            ("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfirst", true),
            ("HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecond", false),
        ])
        .await;
        let conns = Conns::default();
        assert_eq!(conns.send(get(&base)).await.unwrap().1, Bytes::from_static(b"first"));
        // Let the server's close arrive before the connection is used again.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(conns.send(get(&base)).await.unwrap().1, Bytes::from_static(b"second"));
        assert_eq!(accepted.load(std::sync::atomic::Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn an_answer_that_says_close_or_ends_with_the_connection_is_not_kept() {
        let (base, accepted) = scripted(vec![
            ("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok", false),
            ("HTTP/1.1 200 OK\r\n\r\nto the end", true),
            ("HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nlast", false),
        ])
        .await;
        let conns = Conns::default();
        assert_eq!(conns.send(get(&base)).await.unwrap().1, Bytes::from_static(b"ok"));
        assert_eq!(conns.send(get(&base)).await.unwrap().1, Bytes::from_static(b"to the end"));
        assert_eq!(conns.send(get(&base)).await.unwrap().1, Bytes::from_static(b"last"));
        assert_eq!(accepted.load(std::sync::atomic::Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn an_answer_cut_short_is_an_error() {
        let (base, _) = scripted(vec![("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", true)]).await;
        let err = Conns::default().send(get(&base)).await.unwrap_err();
        assert!(err.contains("closed within an answer"), "{err}");
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
