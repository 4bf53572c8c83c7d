//! A test HTTP server that answers canned responses in order and records
//! what each client asked (request line, Authorization, body): the providers'
//! REST clients are tested against it.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as the test server saw it: request line, Authorization, body.
pub type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// Answers each connection with the next canned answer, recording what was asked.
pub async fn serve(answers: Vec<String>) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        for answer in answers {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let request = loop {
                let mut chunk = [0u8; 4096];
                let n = socket.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
                let length = head.lines().find_map(|l| {
                    l.to_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap())
                });
                if body.len() >= length.unwrap_or(0) {
                    break (head.to_owned(), body.to_owned());
                }
            };
            let header = |name: &str| {
                request.0.lines().find_map(|l| {
                    l.split_once(": ").filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.to_owned())
                })
            };
            let line = request.0.lines().next().unwrap_or_default().to_owned();
            log.lock().unwrap().push((line, header("authorization").unwrap_or_default(), request.1));
            socket.write_all(answer.as_bytes()).await.unwrap();
        }
    });
    (base, seen)
}

/// A complete HTTP answer with its Content-Length and `Connection: close`.
pub fn reply(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\n{headers}content-type: application/json\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
}
