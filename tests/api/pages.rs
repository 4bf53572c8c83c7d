//! The browser pages' server side: pages, event stream, demo API; and their absence with `twilio`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn pages_and_simulator_are_404_with_the_twilio_provider() {
    let double = ProviderDouble::start().await;
    let app = spawn_with(Opts { twilio_api: Some(double.base.clone()), ..Default::default() }).await;
    for path in
        ["/", "/dev/phone", "/demo", "/assets/phone.js", "/simulator/calls", "/simulator/events", "/simulator/info"]
    {
        let resp = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
    let start =
        app.http.post(app.url("/demo/api/start")).json(&json!({ "user_id": "u", "phone_number": PHONE })).send().await;
    assert_eq!(start.unwrap().status(), 404);
    let dial = app.http.post(app.url("/simulator/calls")).json(&json!({ "from": PHONE })).send().await.unwrap();
    assert_eq!(dial.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_are_served_with_a_strict_policy() {
    let app = spawn_app().await;
    for (path, kind) in [
        ("/dev/phone", "text/html"),
        ("/demo", "text/html"),
        ("/assets/app.css", "text/css"),
        ("/assets/phone.js", "text/javascript"),
        ("/assets/messages.js", "text/javascript"),
    ] {
        let resp = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with(kind), "{path}");
        assert!(resp.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'self'"));
    }
    assert_eq!(app.http.get(app.url("/assets/nope.js")).send().await.unwrap().status(), 404);
    // The root links the two pages (it answered a JSON 404).
    let root = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(root.status(), 200);
    assert!(root.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = root.text().await.unwrap();
    assert!(page.contains(r#"href="/demo""#) && page.contains(r#"href="/dev/phone""#), "{page}");
    let info: Value = app.http.get(app.url("/simulator/info")).send().await.unwrap().json().await.unwrap();
    assert_eq!(info["inbound_number"], INBOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_favicon_is_there_in_every_provider_mode() {
    let double = ProviderDouble::start().await;
    let twilio = spawn_with(Opts { twilio_api: Some(double.base.clone()), ..Default::default() }).await;
    let simulator = spawn_app().await;
    for app in [&twilio, &simulator] {
        let resp = app.http.get(app.url("/favicon.ico")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "image/x-icon");
        let icon = resp.bytes().await.unwrap();
        assert_eq!(&icon[..4], [0, 0, 1, 0], "an ICO header");
    }
    // The pages link the SVG one.
    let svg = simulator.http.get(simulator.url("/assets/favicon.svg")).send().await.unwrap();
    assert_eq!(svg.status(), 200);
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    let page = simulator.http.get(simulator.url("/dev/phone")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(r#"<link rel="icon" href="/assets/favicon.svg""#), "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_flow_issues_a_temporary_password_once_verified() {
    let app = spawn_app().await;
    let bad = app
        .http
        .post(app.url("/demo/api/start"))
        .json(&json!({ "user_id": "taro", "phone_number": "12" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    assert_eq!(bad.json::<Value>().await.unwrap()["error"]["field"], "phone_number");
    let resp = app
        .http
        .post(app.url("/demo/api/start"))
        .json(&json!({ "user_id": "taro", "phone_number": "090-1234-5678", "mode": "outbound", "locale": "en-US" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let started: Value = resp.json().await.unwrap();
    let id = started["id"].as_str().unwrap();
    let progress = |id: String| {
        let app = &app;
        async move {
            app.http
                .get(app.url(&format!("/demo/api/requests/{id}")))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert!(progress(id.into()).await["temporary_password"].is_null());
    let sid = app.sim_answer(id).await;
    app.sim_keys(&sid, started["code"].as_str().unwrap()).await;
    let mut p = Value::Null;
    for _ in 0..100 {
        p = progress(id.into()).await;
        if p["status"] == "verified" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(p["status"], "verified");
    let password = p["temporary_password"].as_str().unwrap();
    assert_eq!(password.len(), 12);
    assert_eq!(progress(id.into()).await["temporary_password"], password, "stable across polls");
    // The dev phone can show the request; the demo tenant's requests are invisible to other tenants.
    let seen: Value =
        app.http.get(app.url(&format!("/simulator/requests/{id}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(seen["status"], "verified");
    assert!(seen.get("code").is_none());
    assert_eq!(app.get_as(&app.tenant, id).await.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn event_stream_sends_a_snapshot_then_every_change() {
    let app = spawn_app().await;
    let resp = app.http.get(app.url("/simulator/events")).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut resp = resp;
    let first = String::from_utf8(resp.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    assert!(first.starts_with("event: snapshot\ndata: {\"calls\":[],\"messages\":[]}"), "{first}");
    let call = app.sim_dial(PHONE).await;
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !seen.contains("\"state\":\"completed\"") && tokio::time::Instant::now() < deadline {
        if let Ok(Ok(Some(chunk))) = tokio::time::timeout(Duration::from_secs(1), resp.chunk()).await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(seen.contains("event: call\ndata: {"), "{seen}");
    assert!(seen.contains(call["sid"].as_str().unwrap()));
    assert!(seen.contains("受付中のご本人確認がございません"), "the no-pending prompt shows live: {seen}");
}
