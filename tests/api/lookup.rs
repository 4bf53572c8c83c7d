//! Looking into single requests: the search of a tenant's requests and one
//! request's timeline, each kept to its tenant.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

async fn get_as(app: &TestApp, tenant: &Tenant, path: &str) -> reqwest::Response {
    app.http.get(app.url(path)).bearer_auth(&tenant.api_key).send().await.unwrap()
}

async fn search(app: &TestApp, query: &str) -> Value {
    let resp = get_as(app, &app.tenant, &format!("/v1/auth-requests?{query}")).await;
    assert_eq!(resp.status(), 200, "{query}");
    resp.json().await.unwrap()
}

fn ids(page: &Value) -> Vec<String> {
    page["requests"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_search_finds_by_external_id_user_last_digits_and_status_and_pages() {
    let app = spawn_app().await;
    let reg = |body: Value| {
        let app = &app;
        async move { app.register(body).await["id"].as_str().unwrap().to_owned() }
    };
    let a = reg(json!({
        "phone_number": "+819012345678", "mode": "inbound", "external_id": "ord-1", "user_id": "u-1", "ttl_seconds": 600
    }))
    .await;
    let b =
        reg(json!({ "phone_number": "+819087654321", "mode": "inbound", "user_id": "u-1", "ttl_seconds": 60 })).await;
    let c = reg(json!({ "phone_number": "+819011115678", "mode": "inbound" })).await;
    assert_eq!(app.cancel(&c).await.status(), 200);

    assert_eq!(ids(&search(&app, "external_id=ord-1").await), [a.as_str()]);
    assert_eq!(ids(&search(&app, "user_id=u-1").await), [b.as_str(), a.as_str()], "newest first");
    assert_eq!(ids(&search(&app, "phone_last4=5678").await), [c.as_str(), a.as_str()]);
    assert_eq!(ids(&search(&app, "phone_last4=4321&user_id=u-1").await), [b.as_str()]);
    assert_eq!(ids(&search(&app, "status=canceled").await), [c.as_str()]);
    assert_eq!(ids(&search(&app, "status=pending").await), [b.as_str(), a.as_str()]);
    app.expire_now(&b).await;
    assert_eq!(ids(&search(&app, "status=expired").await), [b.as_str()], "past expires_at reads as expired");
    assert_eq!(ids(&search(&app, "status=pending").await), [a.as_str()]);
    let found = search(&app, "external_id=ord-1").await;
    assert_eq!(found["requests"][0]["status"], "pending");
    assert!(found["requests"][0].get("code").is_none(), "never the code: {found}");

    // A page at a time, newest first, each request once.
    let first = search(&app, "limit=2").await;
    assert_eq!(ids(&first), [c.as_str(), b.as_str()]);
    let next = first["next"].as_str().unwrap();
    let second = search(&app, &format!("limit=2&before={next}")).await;
    assert_eq!(ids(&second), [a.as_str()]);
    assert_eq!(second["next"], Value::Null);

    // Another tenant finds none of them.
    let other = create_tenant(app.db_url(), "other").await;
    let resp = get_as(&app, &other, "/v1/auth-requests?user_id=u-1").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["requests"], json!([]));

    for (query, field) in [
        ("phone_last4=12345", "phone_last4"),
        ("status=done", "status"),
        ("limit=0", "limit"),
        ("colour=red", "colour"),
    ] {
        let resp = get_as(&app, &app.tenant, &format!("/v1/auth-requests?{query}")).await;
        assert_eq!(resp.status(), 422, "{query}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timeline_counts_keys_never_shows_them_and_tells_each_callback_attempt() {
    let app = spawn_app().await;
    let sink = CallbackSink::start().await;
    sink.script.lock().unwrap().push(503);
    let r = app.register(json!({ "phone_number": PHONE, "code": "2468", "callback_url": sink.url })).await;
    let id = r["id"].as_str().unwrap().to_owned();
    let sid = app.sim_answer(&id).await;
    app.sim_keys(&sid, "1357").await;
    app.sim_wait_gather(&sid).await;
    app.sim_keys(&sid, "2468").await;
    app.wait_status(&id, "verified").await;
    sink.wait_hits(2, Duration::from_secs(20)).await;

    let timeline = wait_until("both callback attempts in the timeline", Duration::from_secs(10), || async {
        let resp = get_as(&app, &app.tenant, &format!("/v1/auth-requests/{id}/timeline")).await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        let callbacks = body["entries"].as_array().unwrap().iter().filter(|e| e["kind"] == "callback").count();
        (callbacks == 2).then_some(body)
    })
    .await;
    let text = timeline.to_string();
    assert!(!text.contains("1357") && !text.contains("2468"), "no digits: {text}");
    let entries = timeline["entries"].as_array().unwrap();
    let kinds: Vec<&str> = entries.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    let at = |kind: &str| kinds.iter().position(|k| *k == kind).unwrap_or_else(|| panic!("no {kind}: {kinds:?}"));
    assert_eq!(kinds[0], "registered");
    assert!(at("registered") < at("call_placed") && at("call_placed") < at("keys_pressed"), "{kinds:?}");
    // Answered by whichever came first: the status callback or the answer webhook.
    let answered = entries.iter().position(|e| e["detail"]["reached"] == json!(["answered"])).expect("answered");
    assert!(at("call_placed") < answered && answered < at("keys_pressed"), "{timeline}");
    assert_eq!(entries[answered]["detail"]["status"], "in_progress");
    let keys: Vec<&Value> = entries.iter().filter(|e| e["kind"] == "keys_pressed").collect();
    assert_eq!(keys.len(), 2, "{kinds:?}");
    assert_eq!(keys[0]["detail"]["keys"], 4);
    assert_eq!(keys[0]["detail"]["correct"], false);
    assert_eq!(keys[0]["detail"]["prompt"], "wrong_code");
    assert_eq!(keys[1]["detail"]["status"], "verified");
    assert_eq!(keys[1]["detail"]["prompt"], "result");
    let callbacks: Vec<&Value> = entries.iter().filter(|e| e["kind"] == "callback").collect();
    assert_eq!(
        callbacks[0]["detail"],
        json!({"attempt": 1, "outcome": "retry", "http_status": 503, "error": "callback answered HTTP 503"})
    );
    assert_eq!(callbacks[1]["detail"]["outcome"], "delivered");
    assert_eq!(callbacks[1]["detail"]["attempt"], 2);

    let other = create_tenant(app.db_url(), "other").await;
    assert_eq!(get_as(&app, &other, &format!("/v1/auth-requests/{id}/timeline")).await.status(), 404);
    assert_eq!(get_as(&app, &app.tenant, "/v1/auth-requests/not-an-id/timeline").await.status(), 404);
}
