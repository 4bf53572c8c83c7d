//! Signed requests from the site (security review, item 17): a tenant with
//! an Ed25519 public key must sign every request; bearer-only is 401.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey};
use ivr_auth::api::request_signature::signed_message;
use serde_json::{Value, json};

use crate::helpers::*;

fn site_key() -> SigningKey {
    SigningKey::from_bytes(&[42u8; 32])
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The two headers of a request signed by `key`.
fn sign(key: &SigningKey, method: &str, path: &str, at: i64, body: &[u8]) -> [(String, String); 2] {
    let message = signed_message(method, path, &at.to_string(), body);
    let signature = STANDARD.encode(key.sign(&message).to_bytes());
    [("IVR-Auth-Timestamp".into(), at.to_string()), ("IVR-Auth-Request-Signature".into(), signature)]
}

async fn send(app: &TestApp, method: &str, path: &str, body: &[u8], headers: &[(String, String)]) -> (u16, Value) {
    let mut req = app
        .http
        .request(method.parse().unwrap(), app.url(path))
        .bearer_auth(&app.tenant.api_key)
        .header("Content-Type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        req = req.header(name, value);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_with_a_signing_key_must_sign_every_request() {
    let app = spawn_app().await;
    let key = site_key();
    let public = STANDARD.encode(key.verifying_key().as_bytes());
    tenant_set(app.db_url(), "acme", |a| a.signing_key = Some(public.clone())).await.unwrap();
    let body = serde_json::to_vec(&json!({ "phone_number": PHONE, "mode": "inbound" })).unwrap();
    let path = "/v1/auth-requests";

    // Bearer-only: 401, naming what is missing; nothing is registered.
    let (status, err) = send(&app, "POST", path, &body, &[]).await;
    assert_eq!(status, 401, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("IVR-Auth-Timestamp"), "{err}");

    // Signed: registered.
    let signed = sign(&key, "POST", path, unix_now(), &body);
    let (status, created) = send(&app, "POST", path, &body, &signed).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    // The same signed request again: refused (a replay), although the body is valid.
    let (status, err) = send(&app, "POST", path, &body, &signed).await;
    assert_eq!(status, 401);
    assert!(err["error"]["message"].as_str().unwrap().contains("already answered"), "{err}");

    // Another body under a signature: refused.
    let other = serde_json::to_vec(&json!({ "phone_number": "+819011112222", "mode": "inbound" })).unwrap();
    let (status, err) = send(&app, "POST", path, &other, &sign(&key, "POST", path, unix_now() + 1, &body)).await;
    assert_eq!(status, 401);
    assert!(err["error"]["message"].as_str().unwrap().contains("does not verify"), "{err}");
    // Signed by another key: refused.
    let stranger = SigningKey::from_bytes(&[7u8; 32]);
    let (status, _) = send(&app, "POST", path, &body, &sign(&stranger, "POST", path, unix_now(), &body)).await;
    assert_eq!(status, 401);
    // Too old or too far ahead: refused. A few seconds past the window, not
    // one: the server reads its clock a moment after this test reads its
    // own, and a second boundary between the two brought `+ 301` back inside
    // (the exact edge is `request_signature`'s unit test).
    for at in [unix_now() - 305, unix_now() + 305] {
        let (status, err) = send(&app, "POST", path, &body, &sign(&key, "POST", path, at, &body)).await;
        assert_eq!(status, 401);
        assert!(err["error"]["message"].as_str().unwrap().contains("5 minutes"), "{err}");
    }

    // Reads and cancels are signed too, over their own path.
    let get_path = format!("/v1/auth-requests/{id}");
    assert_eq!(send(&app, "GET", &get_path, b"", &[]).await.0, 401);
    let (status, got) = send(&app, "GET", &get_path, b"", &sign(&key, "GET", &get_path, unix_now(), b"")).await;
    assert_eq!((status, got["status"].as_str()), (200, Some("pending")));
    let cancel_path = format!("{get_path}/cancel");
    let wrong_path = sign(&key, "POST", &get_path, unix_now(), b"");
    assert_eq!(send(&app, "POST", &cancel_path, b"", &wrong_path).await.0, 401, "signed for another path");
    let (status, _) = send(&app, "POST", &cancel_path, b"", &sign(&key, "POST", &cancel_path, unix_now(), b"")).await;
    assert_eq!(status, 200);
    assert_eq!(app.get_as(&app.tenant, id).await.status(), 401, "bearer-only reads are refused too");

    // Other tenants are not affected; dropping the key goes back to bearer-only.
    let beta = create_tenant(app.db_url(), "beta").await;
    assert_eq!(app.register_as(&beta, json!({ "phone_number": PHONE, "mode": "inbound" })).await.status(), 201);
    tenant_set(app.db_url(), "acme", |a| a.signing_key = Some("none".into())).await.unwrap();
    assert_eq!(app.get_as(&app.tenant, id).await.status(), 200);
    // A key that is not one is refused by the CLI.
    let err = tenant_set(app.db_url(), "acme", |a| a.signing_key = Some("bm90IGEga2V5".into())).await.unwrap_err();
    assert!(err.to_string().contains("--signing-key"), "{err}");
}

/// Signs `acme`'s requests from now on (the key of `site_key`).
async fn signs(db_url: &str) {
    let public = STANDARD.encode(site_key().verifying_key().as_bytes());
    tenant_set(db_url, "acme", |a| a.signing_key = Some(public.clone())).await.unwrap();
}

fn inbound_body(n: u32) -> Vec<u8> {
    serde_json::to_vec(&json!({ "phone_number": format!("+8190{:08}", 60_000_000 + n), "mode": "inbound" })).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signature_is_refused_again_in_the_last_second_of_its_window() {
    let app = spawn_app().await;
    signs(app.db_url()).await;
    let path = "/v1/auth-requests";
    // Early in a second, so that both requests are answered within it.
    while chrono::Utc::now().timestamp_subsec_millis() > 100 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let at = unix_now() - 300;
    let body = inbound_body(1);
    let signed = sign(&site_key(), "POST", path, at, &body);
    let (status, created) = send(&app, "POST", path, &body, &signed).await;
    assert_eq!(status, 201, "the window's last second is in it: {created}");
    let (status, err) = send(&app, "POST", path, &body, &signed).await;
    assert_eq!(status, 401, "replayed in the same second: {err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("already answered"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_request_is_answered_once_across_a_restart() {
    let db = std::sync::Arc::new(TestDb::new(Backend::of_run()).await);
    let tenant = create_tenant(&db.url, "acme").await;
    signs(&db.url).await;
    let path = "/v1/auth-requests";
    let body = inbound_body(2);
    let signed = sign(&site_key(), "POST", path, unix_now(), &body);
    let mut first = crate::procs::spawn_proc(&db.url, &[]);
    let app = TestApp::attach(first.base.clone(), tenant.clone(), db.clone());
    assert_eq!(send(&app, "POST", path, &body, &signed).await.0, 201);
    first.sigterm();
    let second = crate::procs::spawn_proc(&db.url, &[]);
    let app = TestApp::attach(second.base.clone(), tenant, db.clone());
    let (status, err) = send(&app, "POST", path, &body, &signed).await;
    assert_eq!(status, 401, "the restarted server remembers: {err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("already answered"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_signed_request_is_answered_once_by_all_nodes() {
    let (_db, apps) = crate::cluster::in_process_nodes(std::sync::Arc::new(|_| {})).await;
    signs(apps[0].db_url()).await;
    let path = "/v1/auth-requests";
    // A registration answered by node 0 is not answered again by node 1.
    let body = serde_json::to_vec(&json!({ "phone_number": PHONE, "channel": "sms" })).unwrap();
    let signed = sign(&site_key(), "POST", path, unix_now(), &body);
    let (status, created) = send(&apps[0], "POST", path, &body, &signed).await;
    assert_eq!(status, 201, "{created}");
    let (status, err) = send(&apps[1], "POST", path, &body, &signed).await;
    assert_eq!(status, 401, "replayed to another node: {err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("already answered"), "{err}");
    let id = created["id"].as_str().unwrap();
    // A signed wrong /check replayed to node 2 spends no second attempt.
    let check_path = format!("/v1/auth-requests/{id}/check");
    let wrong = serde_json::to_vec(&json!({ "code": "000000" })).unwrap();
    let signed = sign(&site_key(), "POST", &check_path, unix_now(), &wrong);
    let (status, checked) = send(&apps[0], "POST", &check_path, &wrong, &signed).await;
    assert_eq!((status, checked["attempts"].as_u64()), (200, Some(1)), "{checked}");
    let (status, err) = send(&apps[2], "POST", &check_path, &wrong, &signed).await;
    assert_eq!(status, 401, "{err}");
    let get_path = format!("/v1/auth-requests/{id}");
    let (_, now) = send(&apps[1], "GET", &get_path, b"", &sign(&site_key(), "GET", &get_path, unix_now(), b"")).await;
    assert_eq!(now["attempts"], 1, "{now}");
}
