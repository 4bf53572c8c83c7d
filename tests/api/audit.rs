//! The audit trail through the real server: a lifecycle's events in order,
//! filters and pages, tenants kept apart, `audit verify` catching an altered
//! or removed event, purges that keep what remains verifiable, and refusals
//! counted into one event a minute.

use std::time::Duration;

use ivr_auth::cli::{AuditAction, DbArgs};
use ivr_auth::domain::audit::Kind;
use ivr_auth::store::AuditQuery;
use serde_json::{Value, json};

use crate::db::Backend;
use crate::helpers::*;

async fn events(app: &TestApp, tenant: &Tenant, query: &str) -> reqwest::Response {
    let url = app.url(&format!("/v1/audit-events{query}"));
    app.http.get(url).bearer_auth(&tenant.api_key).send().await.unwrap()
}

async fn page(app: &TestApp, query: &str) -> Value {
    let resp = events(app, &app.tenant, query).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// The events of `query`, once every one of them is sealed.
async fn sealed(app: &TestApp, query: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let events = page(app, query).await["events"].as_array().unwrap().clone();
        if events.len() == n && events.iter().all(|e| e["sealed"] == true) {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{n} sealed events never came for {query}: {}", page(app, query).await);
}

async fn verify(app: &TestApp) -> Result<String, String> {
    let db = DbArgs { database_url: Some(app.db_url().into()) };
    ivr_auth::cli::audit(&db, None, AuditAction::Verify).await.map(|o| o.unwrap_or_default()).map_err(|e| e.to_string())
}

/// Runs one statement on the test's database, as someone with SQL access would.
async fn sql(app: &TestApp, statement: &str) {
    match app.db.backend {
        Backend::Sqlite => {
            let conn = rusqlite::Connection::open(app.db_url().strip_prefix("sqlite://").unwrap()).unwrap();
            assert_eq!(conn.execute(statement, []).unwrap(), 1, "{statement}");
        }
        Backend::Postgres => {
            let (client, conn) = tokio_postgres::connect(app.db_url(), tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            assert_eq!(client.execute(statement, &[]).await.unwrap(), 1, "{statement}");
        }
    }
}

async fn verified_request(app: &TestApp) -> String {
    let r = app.register(json!({ "phone_number": PHONE, "code": "2468" })).await;
    let id = r["id"].as_str().unwrap().to_owned();
    let sid = app.sim_answer(&id).await;
    app.sim_keys(&sid, "2468").await;
    app.wait_status(&id, "verified").await;
    id
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verification_is_registered_then_verified_and_only_its_tenant_sees_it() {
    let app = spawn_app().await;
    let id = verified_request(&app).await;
    let got = sealed(&app, &format!("?request_id={id}"), 2).await;
    let types: Vec<&str> = got.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["request.verified", "request.registered"], "newest first");
    assert!(got.iter().all(|e| e["request_id"] == id.as_str()));
    assert_eq!(got[0]["data"]["by"], "caller");
    assert!(got[1]["data"]["number"].as_str().unwrap().contains('*'), "masked: {}", got[1]);
    assert!(got[0]["id"].as_i64() > got[1]["id"].as_i64());

    let other = create_tenant(app.db_url(), "other").await;
    let seen: Value = events(&app, &other, &format!("?request_id={id}")).await.json().await.unwrap();
    assert_eq!(seen["events"], json!([]), "another tenant sees none of them");
    let all: Value = events(&app, &other, "").await.json().await.unwrap();
    assert!(all["events"].as_array().unwrap().iter().all(|e| e["type"] == "tenant.created"), "{all}");
    assert_eq!(events(&app, &other, "?limit=0").await.status(), 422);
    let no_key = app.http.get(app.url("/v1/audit-events")).send().await.unwrap();
    assert_eq!(no_key.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_and_pages() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let r = app.register(json!({ "phone_number": PHONE, "mode": "inbound" })).await;
        ids.push(r["id"].as_str().unwrap().to_owned());
    }
    for id in &ids[..2] {
        assert_eq!(app.cancel(id).await.status(), 200);
    }
    let types = "?type=request.registered,request.canceled";
    let all = sealed(&app, types, 7).await;
    let mut paged = Vec::new();
    let mut query = format!("{types}&limit=3");
    loop {
        let p = page(&app, &query).await;
        let batch = p["events"].as_array().unwrap();
        assert!(batch.len() <= 3);
        paged.extend(batch.iter().cloned());
        match p["next"].as_str() {
            Some(next) => query = format!("{types}&limit=3&before={next}"),
            None => break,
        }
    }
    assert_eq!(paged, all, "pages join up into the whole list, newest first");
    assert_eq!(page(&app, "?type=request.canceled").await["events"].as_array().unwrap().len(), 2);
    assert_eq!(
        page(&app, "?type=request.canceled&type=request.registered").await["events"].as_array().unwrap().len(),
        7
    );
    assert_eq!(page(&app, "?from=2999-01-01T00:00:00Z").await["events"], json!([]));
    assert_eq!(page(&app, "?to=2000-01-01T00:00:00Z").await["events"], json!([]));
    let bad = events(&app, &app.tenant, "?from=yesterday").await;
    assert_eq!(bad.status(), 422);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["field"], "from", "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_names_an_altered_event_and_a_removed_one() {
    let app = spawn_app().await;
    let id = verified_request(&app).await;
    for _ in 0..2 {
        app.register(json!({ "phone_number": PHONE, "mode": "inbound" })).await;
    }
    let got = sealed(&app, "?type=request.registered,request.verified", 4).await;
    let ok = verify(&app).await.unwrap();
    assert!(ok.starts_with("audit chains intact"), "{ok}");

    let verified = got.iter().find(|e| e["request_id"] == id.as_str() && e["type"] == "request.verified").unwrap();
    let vid = verified["id"].as_i64().unwrap();
    sql(&app, &format!("UPDATE audit_events SET data = '{{\"by\":\"site\"}}' WHERE id = {vid}")).await;
    let broken = verify(&app).await.unwrap_err();
    assert!(broken.contains(&format!("event id {vid}, request.verified")), "{broken}");

    let app = spawn_app().await;
    for _ in 0..3 {
        app.register(json!({ "phone_number": PHONE, "mode": "inbound" })).await;
    }
    let got = sealed(&app, "?type=request.registered", 3).await;
    let middle = got[1]["id"].as_i64().unwrap();
    sql(&app, &format!("DELETE FROM audit_events WHERE id = {middle}")).await;
    let broken = verify(&app).await.unwrap_err();
    assert!(broken.contains("the event before it is missing"), "{broken}");
    assert!(broken.contains(&app.tenant.tenant_id), "names the tenant's chain: {broken}");
}

async fn chain_check(app: &TestApp, tenant: &Tenant) -> Value {
    let resp = app.http.get(app.url("/v1/audit-events/verify")).bearer_auth(&tenant.api_key).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chain_check_of_the_api_says_intact_then_names_the_altered_event_of_its_tenant_only() {
    let app = spawn_app().await;
    let other = create_tenant(app.db_url(), "other").await;
    app.register_as(&other, json!({ "phone_number": PHONE, "mode": "inbound" })).await;
    let id = verified_request(&app).await;
    let check = chain_check(&app, &app.tenant).await;
    assert_eq!(check["intact"], true, "{check}");
    assert_eq!(check["chain"], app.tenant.tenant_id.as_str());
    // tenant.created, request.registered, request.verified
    assert!(check["checked"].as_u64().unwrap() >= 3, "{check}");
    assert_eq!(check["first_broken"], Value::Null);

    let got = sealed(&app, &format!("?request_id={id}&type=request.verified"), 1).await;
    let vid = got[0]["id"].as_i64().unwrap();
    sql(&app, &format!("UPDATE audit_events SET data = '{{\"by\":\"site\"}}' WHERE id = {vid}")).await;
    let check = chain_check(&app, &app.tenant).await;
    assert_eq!(check["intact"], false, "{check}");
    assert_eq!(check["first_broken"]["id"], vid, "{check}");
    assert_eq!(check["first_broken"]["type"], "request.verified");
    let theirs = chain_check(&app, &other).await;
    assert_eq!(theirs["intact"], true, "another tenant's chain is its own: {theirs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_purge_keeps_what_remains_verifiable() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.register(json!({ "phone_number": PHONE, "mode": "inbound" })).await;
    }
    sealed(&app, "?type=request.registered", 3).await;
    let store = app.store().await;
    let purged = store.purge_audit(chrono::Utc::now() + chrono::Duration::days(1)).await.unwrap();
    assert!(purged >= 3, "{purged}");
    assert_eq!(page(&app, "").await["events"], json!([]));
    assert!(verify(&app).await.unwrap().starts_with("audit chains intact"));
    app.register(json!({ "phone_number": PHONE, "mode": "inbound" })).await;
    sealed(&app, "?type=request.registered", 1).await;
    assert!(verify(&app).await.unwrap().starts_with("audit chains intact"), "the chain goes on from its anchor");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_webhook_signatures_in_a_minute_make_one_refusals_event() {
    let app = spawn_app().await;
    let path = format!("/webhooks/twilio/voice/answer/{}", uuid::Uuid::now_v7());
    for _ in 0..7 {
        let (status, _) = app.raw_webhook(&path, &[("CallSid", "CA1")], Some("bm90IGEgc2lnbmF0dXJl")).await;
        assert_eq!(status, 403);
    }
    let store = app.store().await;
    let query = AuditQuery { kinds: vec![Kind::Refusals], limit: 10, ..AuditQuery::default() };
    assert!(store.audit_events(query.clone()).await.unwrap().is_empty(), "nothing is written per refusal");
    app.clock.as_ref().unwrap().advance(chrono::Duration::seconds(61));
    for _ in 0..100 {
        let got = store.audit_events(query.clone()).await.unwrap();
        if let Some(e) = got.first() {
            assert_eq!(got.len(), 1, "{got:?}");
            assert_eq!(e.record.tenant_id, None, "the server's chain");
            assert_eq!(e.record.data["counts"], json!({ "signature": 7 }));
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no refusals event");
}
