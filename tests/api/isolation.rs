//! Tenants never touch each other's requests (security review, item 1):
//! inbound numbers of their own, and on a shared number the typed code
//! chooses the request. And a tenant may require that an inbound call's
//! caller ID be attested by STIR/SHAKEN (item 6).

use serde_json::{Value, json};

use crate::helpers::*;

/// Registers an inbound request for `PHONE` with a known code, as `tenant`.
async fn inbound(app: &TestApp, tenant: &Tenant, code: &str) -> Value {
    let resp = app.register_as(tenant, json!({ "phone_number": PHONE, "mode": "inbound", "code": code })).await;
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

async fn seen_by(app: &TestApp, tenant: &Tenant, r: &Value) -> Value {
    let resp = app.get_as(tenant, r["id"].as_str().unwrap()).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_shared_number_the_code_chooses_the_tenant_and_a_wrong_code_spends_nobodys_attempts() {
    let app = spawn_app().await;
    let beta = create_tenant(app.db_url(), "beta").await;
    // A registers first; B's request for the same caller is newer.
    let a = inbound(&app, &app.tenant, "1111").await;
    let b = inbound(&app, &beta, "2222").await;
    assert_eq!(a["inbound_number"], INBOUND);
    assert_eq!(b["inbound_number"], INBOUND);

    let call = app.sim_dial(PHONE).await;
    let sid = call["sid"].as_str().unwrap();
    // A code of neither: nobody's attempts are spent, nobody's request moves.
    app.sim_keys(sid, "9999").await;
    app.sim_wait_gather(sid).await;
    for (tenant, r) in [(&app.tenant, &a), (&beta, &b)] {
        let v = seen_by(&app, tenant, r).await;
        assert_eq!((v["status"].as_str(), v["attempts"].as_u64()), (Some("pending"), Some(0)), "{v}");
    }
    // A's code verifies A's request, on A's side only.
    app.sim_keys(sid, "1111").await;
    let v = app.wait_status(a["id"].as_str().unwrap(), "verified").await;
    assert_eq!(v["attempts"], 0, "the code of neither was counted on A: {v}");
    app.sim_wait_state(sid, "completed").await;
    let v = seen_by(&app, &beta, &b).await;
    assert_eq!((v["status"].as_str(), v["attempts"].as_u64()), (Some("pending"), Some(0)), "{v}");
    assert!(v["call_sid"].is_null(), "B learnt of A's call: {v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_shared_number_three_wrong_codes_end_the_call_and_change_nothing() {
    let app = spawn_app().await;
    let beta = create_tenant(app.db_url(), "beta").await;
    let a = inbound(&app, &app.tenant, "1111").await;
    let b = inbound(&app, &beta, "2222").await;
    let call = app.sim_dial(PHONE).await;
    let sid = call["sid"].as_str().unwrap();
    for wrong in ["3333", "4444", "5555"] {
        app.sim_keys(sid, wrong).await;
    }
    app.sim_wait_state(sid, "completed").await;
    for (tenant, r) in [(&app.tenant, &a), (&beta, &b)] {
        let v = seen_by(&app, tenant, r).await;
        assert_eq!((v["status"].as_str(), v["attempts"].as_u64()), (Some("pending"), Some(0)), "{v}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_with_its_own_number_is_found_only_on_that_number() {
    const OWN: &str = "+81355550002";
    let app = spawn_app().await;
    let beta = create_tenant(app.db_url(), "beta").await;
    set_inbound_number(app.db_url(), "beta", OWN).await;
    let b = inbound(&app, &beta, "2222").await;
    assert_eq!(b["inbound_number"], OWN, "the site is told the tenant's own number");

    // On the server's number nobody waits for this caller.
    let call = app.sim_dial(PHONE).await;
    let sid = call["sid"].as_str().unwrap();
    app.sim_wait_state(sid, "completed").await;
    let heard = app.sim_heard(sid).await.join(" ");
    assert!(heard.contains("受付中のご本人確認がございません"), "a request of another number was offered: {heard}");
    let v = seen_by(&app, &beta, &b).await;
    assert_eq!((v["status"].as_str(), v["attempts"].as_u64()), (Some("pending"), Some(0)), "{v}");

    // A's request waits on the server's number; a call to B's number does not find it.
    let a = inbound(&app, &app.tenant, "1111").await;
    let call = app.sim_dial_to(PHONE, OWN).await;
    let sid = call["sid"].as_str().unwrap();
    app.sim_keys(sid, "2222").await;
    app.wait_for_as(&beta, b["id"].as_str().unwrap(), "verified", |v| v["status"] == "verified").await;
    let v = seen_by(&app, &app.tenant, &a).await;
    assert_eq!((v["status"].as_str(), v["attempts"].as_u64()), (Some("pending"), Some(0)), "{v}");
}

/// What the caller heard, once the call is over.
async fn heard_to_the_end(app: &TestApp, call: &Value) -> String {
    let sid = call["sid"].as_str().unwrap();
    app.sim_wait_state(sid, "completed").await;
    app.sim_heard(sid).await.join(" ")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_requiring_attestation_refuses_calls_whose_caller_id_is_not_attested_enough() {
    let app = spawn_app().await;
    tenant_set(app.db_url(), "acme", |a| a.min_attestation = Some("b".into())).await.unwrap();
    for verstat in [None, Some("TN-Validation-Passed-C"), Some("TN-Validation-Failed-A"), Some("No-TN-Validation")] {
        let r = inbound(&app, &app.tenant, "1111").await;
        let call = app.sim_dial_with(json!({ "from": PHONE, "stir_verstat": verstat })).await;
        let heard = heard_to_the_end(&app, &call).await;
        assert!(heard.contains("発信者番号がご本人の番号であることを確認できなかった"), "{verstat:?}: {heard}");
        assert!(!heard.contains("ダイヤルボタンで入力"), "{verstat:?}: asked for the code: {heard}");
        let v = app.get(r["id"].as_str().unwrap()).await;
        assert_eq!((v["status"].as_str(), v["failure_reason"].as_str()), (Some("failed"), Some("attestation")), "{v}");
    }
    // At the level or above, the call goes on as usual.
    for verstat in ["TN-Validation-Passed-B", "TN-Validation-Passed-A"] {
        let r = inbound(&app, &app.tenant, "2222").await;
        let call = app.sim_dial_with(json!({ "from": PHONE, "stir_verstat": verstat })).await;
        app.sim_keys(call["sid"].as_str().unwrap(), "2222").await;
        app.wait_status(r["id"].as_str().unwrap(), "verified").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_shared_number_attestation_is_the_chosen_tenant_s_rule() {
    let app = spawn_app().await;
    let beta = create_tenant(app.db_url(), "beta").await;
    tenant_set(app.db_url(), "acme", |a| a.min_attestation = Some("A".into())).await.unwrap();
    let a = inbound(&app, &app.tenant, "1111").await;
    let b = inbound(&app, &beta, "2222").await;
    // An unattested call: beta requires nothing, so beta's code verifies beta.
    let call = app.sim_dial(PHONE).await;
    app.sim_keys(call["sid"].as_str().unwrap(), "2222").await;
    app.wait_for_as(&beta, b["id"].as_str().unwrap(), "verified", |v| v["status"] == "verified").await;
    assert_eq!(app.get(a["id"].as_str().unwrap()).await["status"], "pending");
    // Another request of beta's waits with acme's; acme's code on an unattested call fails acme's.
    inbound(&app, &beta, "3333").await;
    let call = app.sim_dial(PHONE).await;
    app.sim_keys(call["sid"].as_str().unwrap(), "1111").await;
    let heard = heard_to_the_end(&app, &call).await;
    assert!(heard.contains("発信者番号がご本人の番号であることを確認できなかった"), "{heard}");
    let v = app.get(a["id"].as_str().unwrap()).await;
    assert_eq!(v["failure_reason"], "attestation", "{v}");
}
