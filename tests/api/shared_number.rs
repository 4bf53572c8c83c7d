//! A number several tenants share (issue 13, item 9): each tenant's newest
//! pending request is a candidate however many requests another tenant
//! registers, and what the caller hears there is the server's, not the
//! newest tenant's: its default locale, and no one tenant's code length.

use serde_json::{Value, json};

use crate::helpers::*;

/// Registers an inbound request for `PHONE` with `code` (and `extra` fields), as `tenant`.
async fn inbound(app: &TestApp, tenant: &Tenant, code: &str, extra: Value) -> Value {
    let mut body = json!({ "phone_number": PHONE, "mode": "inbound", "code": code });
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let resp = app.register_as(tenant, body).await;
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_tenant_s_many_requests_do_not_push_another_tenant_s_off_a_shared_number() {
    let app = spawn_app().await;
    let beta = create_tenant(app.db_url(), "beta").await;
    let b = inbound(&app, &beta, "2222", json!({})).await;
    // More than the 50 candidates looked at, all newer than B's (no per-number limit in tests).
    let mut newest_a = Value::Null;
    for _ in 0..60 {
        newest_a = inbound(&app, &app.tenant, "1111", json!({})).await;
    }
    let store = app.store().await;
    let caller = ivr_auth::domain::phone::PhoneNumber::from_stored(PHONE.into());
    let called = ivr_auth::domain::phone::PhoneNumber::from_stored(INBOUND.into());
    let found = store.pending_inbound(&caller, &called, true, chrono::Utc::now(), 50).await.unwrap();
    let ids: Vec<String> = found.iter().map(|r| r.id.to_string()).collect();
    // Of each tenant its newest, the newest tenant first.
    assert_eq!(ids, [newest_a["id"].as_str().unwrap(), b["id"].as_str().unwrap()], "{ids:?}");

    // B's caller types B's code: B's request is verified, none of A's is touched.
    let call = app.sim_dial(PHONE).await;
    app.sim_keys(call["sid"].as_str().unwrap(), "2222").await;
    app.wait_for_as(&beta, b["id"].as_str().unwrap(), "verified", |v| v["status"] == "verified").await;
    let a = app.get(newest_a["id"].as_str().unwrap()).await;
    assert_eq!((a["status"].as_str(), a["attempts"].as_u64()), (Some("pending"), Some(0)), "{a}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shared_number_speaks_the_server_s_default_and_takes_each_tenant_s_code_length() {
    let app = spawn_app().await;
    let beta = create_tenant(app.db_url(), "beta").await;
    // A's codes have 4 digits; B's, newer and in English, 6.
    let a = inbound(&app, &app.tenant, "1234", json!({})).await;
    let b = inbound(&app, &beta, "567890", json!({ "locale": "en-US" })).await;

    let call = app.sim_dial(PHONE).await;
    let sid = call["sid"].as_str().unwrap();
    app.sim_wait_gather(sid).await;
    let heard = app.sim_heard(sid).await.join(" ");
    // The server's default locale (ja-JP), not the newest candidate's; no length, and `#` to end.
    assert!(heard.contains("最後にシャープを押してください"), "{heard}");
    assert!(!heard.contains("桁") && !heard.is_ascii(), "{heard}");
    assert!(!heard.contains("digit") && !heard.contains("Please"), "B's language decided: {heard}");
    // A's 4 digits, ended by `#` (the Gather waits for B's 6): A is verified.
    app.sim_keys(sid, "1234#").await;
    app.wait_status(a["id"].as_str().unwrap(), "verified").await;
    app.sim_wait_state(sid, "completed").await;

    // With another A request waiting, B's 6 digits end on their last one: B is verified.
    let a2 = inbound(&app, &app.tenant, "4321", json!({})).await;
    let call = app.sim_dial(PHONE).await;
    let sid = call["sid"].as_str().unwrap();
    app.sim_keys(sid, "567890").await;
    app.wait_for_as(&beta, b["id"].as_str().unwrap(), "verified", |v| v["status"] == "verified").await;
    let v = app.get(a2["id"].as_str().unwrap()).await;
    assert_eq!((v["status"].as_str(), v["attempts"].as_u64()), (Some("pending"), Some(0)), "{v}");
}
