//! Slow and oversized requests: refused early, cut off in time, and never in
//! the way of anybody else.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Sends `head` on a new connection and returns what the server answers within `within`.
async fn answer_to(app: &TestApp, head: &str, within: Duration) -> String {
    let mut conn = TcpStream::connect(addr(app)).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(within, conn.read(&mut buf)).await.expect("no answer in time").unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declared_oversized_body_is_refused_before_it_is_sent() {
    let app = spawn_app().await;
    for path in ["/v1/auth-requests", "/webhooks/twilio/voice/inbound"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
             Content-Length: 10000000\r\n\r\n",
            app.tenant.api_key
        );
        // Not a byte of the body is sent: the answer comes anyway.
        let answer = answer_to(&app, &head, Duration::from_secs(3)).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_never_finishes_is_cut_off() {
    let app = spawn_app().await;
    let head = format!(
        "POST /v1/auth-requests HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"phone",
        app.tenant.api_key
    );
    let answer = answer_to(&app, &head, Duration::from_secs(15)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hundreds_of_stalled_connections_delay_nobody() {
    let app = spawn_app().await;
    let mut stalled = Vec::new();
    for n in 0..300 {
        let mut conn = TcpStream::connect(addr(&app)).await.unwrap();
        // Half stop in the middle of the head, half in the middle of a body.
        let part = if n % 2 == 0 {
            "POST /v1/auth-requests HTTP/1.1\r\nHost: x\r\nContent-Ty".to_owned()
        } else {
            format!(
                "POST /v1/auth-requests HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{{",
                app.tenant.api_key
            )
        };
        conn.write_all(part.as_bytes()).await.unwrap();
        stalled.push(conn);
    }
    // Meanwhile everybody else is served as usual.
    let quick = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().unwrap();
    for n in 0..30 {
        let resp = quick
            .post(app.url("/v1/auth-requests"))
            .bearer_auth(&app.tenant.api_key)
            .json(&json!({ "phone_number": PHONE, "mode": "inbound", "external_id": format!("q{n}") }))
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {n} behind 300 stalled connections: {e}"));
        assert_eq!(resp.status(), 201);
    }
    // And the stalled connections are let go: the server closes (or answers) every one.
    let deadline = Instant::now() + Duration::from_secs(20);
    for mut conn in stalled {
        let mut buf = [0u8; 512];
        let left = deadline.saturating_duration_since(Instant::now());
        let read = tokio::time::timeout(left, conn.read(&mut buf)).await;
        assert!(read.is_ok(), "a stalled connection was held for more than 20 s");
    }
}
