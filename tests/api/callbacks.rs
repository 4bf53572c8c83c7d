//! Result callbacks: signed, retried with backoff, delivered at least once.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn verified_result_is_posted_signed() {
    let app = spawn_app().await;
    let sink = CallbackSink::start().await;
    let r = app.register(json!({ "phone_number": PHONE, "callback_url": sink.url, "user_id": "u-7" })).await;
    let id = r["id"].as_str().unwrap();
    let sid = app.sim_answer(id).await;
    app.sim_keys(&sid, r["code"].as_str().unwrap()).await;
    let hits = sink.wait_hits(1, Duration::from_secs(5)).await;
    let (sig, body) = &hits[0];
    assert!(signature_valid(sig, body, &app.tenant.callback_secret), "{sig}");
    assert!(!signature_valid(sig, body, "whsec_wrong"));
    assert!(!signature_valid(sig, &body.replace("verified", "failed"), &app.tenant.callback_secret));
    let t: i64 = sig.split(',').next().unwrap().trim_start_matches("t=").parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - t).abs() < 30);
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        (v["id"].as_str(), v["status"].as_str(), v["user_id"].as_str()),
        (Some(id), Some("verified"), Some("u-7"))
    );
    assert!(v.get("code").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_deliveries_are_retried_until_accepted() {
    let app = spawn_app().await;
    let sink = CallbackSink::start().await;
    sink.script.lock().unwrap().extend([500, 503]);
    let r = app.register(json!({ "phone_number": PHONE, "mode": "inbound", "callback_url": sink.url })).await;
    let id = r["id"].as_str().unwrap();
    assert_eq!(app.cancel(id).await.status(), 200);
    // Backoff from 5 s doubling with jitter: the third attempt lands within ~15 s.
    let hits = sink.wait_hits(3, Duration::from_secs(25)).await;
    for (sig, body) in &hits {
        assert!(signature_valid(sig, body, &app.tenant.callback_secret));
        assert_eq!(serde_json::from_str::<Value>(body).unwrap()["status"], "canceled");
    }
    // The delivered callback leaves no job behind (a job still waiting would be delivered again).
    app.wait_outbox_empty("callback").await;
    let left: i64 = app.store().await.job_backlog().await.unwrap().iter().map(|(_, n)| n).sum();
    assert_eq!(left, 0, "no job of any kind is left");
    assert_eq!(sink.hits.lock().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn during_key_rotation_both_secrets_sign() {
    let app = spawn_app().await;
    let sink = CallbackSink::start().await;
    let db = ivr_auth::cli::DbArgs { database_url: Some(app.db_url().to_owned()) };
    let out =
        ivr_auth::cli::tenant(&db, None, ivr_auth::cli::TenantAction::RotateKey { name: "acme".into() }).await.unwrap();
    let rotated: Value = serde_json::from_str(&out).unwrap();
    let new_key = rotated["api_key"].as_str().unwrap();
    let new_secret = rotated["callback_secret"].as_str().unwrap();
    assert_ne!(new_key, app.tenant.api_key);
    // The old key stops working at once; the new one works.
    let old = app.register_as(&app.tenant, json!({ "phone_number": PHONE, "mode": "inbound" })).await;
    assert_eq!(old.status(), 401);
    let tenant = Tenant { api_key: new_key.into(), callback_secret: new_secret.into(), ..app.tenant.clone() };
    let resp =
        app.register_as(&tenant, json!({ "phone_number": PHONE, "mode": "inbound", "callback_url": sink.url })).await;
    assert_eq!(resp.status(), 201);
    let r: Value = resp.json().await.unwrap();
    let cancel = app
        .http
        .post(app.url(&format!("/v1/auth-requests/{}/cancel", r["id"].as_str().unwrap())))
        .bearer_auth(new_key)
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 200);
    let hits = sink.wait_hits(1, Duration::from_secs(5)).await;
    let (sig, body) = &hits[0];
    assert_eq!(sig.matches("v1=").count(), 2, "{sig}");
    assert!(signature_valid(sig, body, new_secret));
    assert!(signature_valid(sig, body, &app.tenant.callback_secret));
}

#[tokio::test(flavor = "multi_thread")]
async fn callbacks_never_go_through_a_proxy_from_the_environment() {
    // A proxy in the environment would resolve the callback's name itself and
    // reach private addresses the delivery-time check refuses.
    let proxy = CallbackSink::start().await;
    let proxy_base = proxy.url.trim_end_matches("/cb").to_owned();
    let db = Arc::new(TestDb::new(Backend::of_run()).await);
    let tenant = create_tenant(&db.url, "acme").await;
    let env = [
        ("IVR_AUTH_ALLOW_PRIVATE_CALLBACKS", "false"),
        ("HTTP_PROXY", proxy_base.as_str()),
        ("http_proxy", proxy_base.as_str()),
        ("ALL_PROXY", proxy_base.as_str()),
    ];
    let server = crate::procs::spawn_proc(&db.url, &env);
    let app = TestApp::attach(server.base.clone(), tenant, db);
    let r = app
        .register(json!({ "phone_number": PHONE, "mode": "inbound", "callback_url": "http://callback.invalid/cb" }))
        .await;
    assert_eq!(app.cancel(r["id"].as_str().unwrap()).await.status(), 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(proxy.hits.lock().unwrap().len(), 0, "the callback went through the proxy");
}
