//! Usage for billing through the real server: a placed call and its seconds,
//! a taken call, a text message, each on its account and country; tenants
//! kept apart; a bad month refused; the CLI's CSV.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

async fn usage(app: &TestApp, tenant: &Tenant, query: &str) -> reqwest::Response {
    app.http.get(app.url(&format!("/v1/usage{query}"))).bearer_auth(&tenant.api_key).send().await.unwrap()
}

/// The tenant's usage this month, once `ready` holds of it.
async fn usage_when(app: &TestApp, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let resp = usage(app, &app.tenant, "").await;
        assert_eq!(resp.status(), 200);
        last = resp.json().await.unwrap();
        if ready(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("usage never showed {what}: {last}");
}

fn this_month() -> String {
    chrono::Utc::now().format("%Y-%m").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_placed_call_counts_on_its_account_and_country_with_its_seconds() {
    let app = spawn_app().await;
    let r = app.register(json!({ "phone_number": PHONE, "code": "2468" })).await;
    let id = r["id"].as_str().unwrap();
    let sid = app.sim_answer(id).await;
    // The simulator reports whole seconds: let the call be up for one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.sim_keys(&sid, "2468").await;
    app.wait_status(id, "verified").await;
    app.sim_wait_state(&sid, "completed").await;

    let got = usage_when(&app, "the call's seconds", |u| u["totals"]["call_seconds"].as_u64() > Some(0)).await;
    assert_eq!(got["month"], this_month().as_str());
    let rows = got["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{got}");
    let row = &rows[0];
    assert_eq!((row["account"].as_str(), row["country"].as_str()), (Some("simulator"), Some("JP")), "{got}");
    assert_eq!(
        (row["calls_placed"].as_u64(), row["calls_taken"].as_u64(), row["sms"].as_u64()),
        (Some(1), Some(0), Some(0))
    );
    assert!(row["call_seconds"].as_u64().unwrap() >= 1, "{got}");
    assert_eq!(got["totals"]["calls_placed"], 1);
    assert_eq!(got["totals"]["call_seconds"], row["call_seconds"]);

    let other = create_tenant(app.db_url(), "other").await;
    let theirs: Value = usage(&app, &other, "").await.json().await.unwrap();
    assert_eq!(theirs["rows"], json!([]), "another tenant sees none: {theirs}");
    assert_eq!(theirs["totals"]["calls_placed"], 0);

    let past: Value = usage(&app, &app.tenant, "?month=2020-01").await.json().await.unwrap();
    assert_eq!((past["month"].as_str(), past["rows"].as_array().map(Vec::len)), (Some("2020-01"), Some(0)));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inbound_call_counts_as_taken_and_a_text_as_sms() {
    let app = spawn_app().await;
    let r = app.register(json!({ "phone_number": PHONE, "mode": "inbound" })).await;
    let id = r["id"].as_str().unwrap();
    let code = r["code"].as_str().unwrap();
    let call = app.sim_dial(PHONE).await;
    app.sim_keys(call["sid"].as_str().unwrap(), code).await;
    app.wait_status(id, "verified").await;
    let got = usage_when(&app, "the taken call", |u| u["totals"]["calls_taken"] == 1).await;
    assert_eq!(got["totals"]["calls_placed"], 0, "{got}");
    assert_eq!(got["rows"][0]["country"], "JP", "{got}");

    app.register(json!({ "phone_number": PHONE, "channel": "sms" })).await;
    let got = usage_when(&app, "the text message", |u| u["totals"]["sms"] == 1).await;
    assert_eq!((got["totals"]["calls_taken"].as_u64(), got["totals"]["calls_placed"].as_u64()), (Some(1), Some(0)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_month_is_refused_naming_it() {
    let app = spawn_app().await;
    let resp = usage(&app, &app.tenant, "?month=2026-13").await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert!(body.to_string().contains("\"month\""), "{body}");
    assert_eq!(app.http.get(app.url("/v1/usage")).send().await.unwrap().status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_writes_the_month_as_csv() {
    let app = spawn_app().await;
    let r = app.register(json!({ "phone_number": PHONE, "code": "2468" })).await;
    let id = r["id"].as_str().unwrap();
    let sid = app.sim_answer(id).await;
    app.sim_keys(&sid, "2468").await;
    app.wait_status(id, "verified").await;
    usage_when(&app, "the placed call", |u| u["totals"]["calls_placed"] == 1).await;

    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ivr-auth"))
            .arg("usage")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("IVR_AUTH_DATABASE_URL", app.db_url())
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let month = this_month();
    let (code, out) = run(&["--month", &month, "--csv"]);
    assert_eq!(code, Some(0), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "tenant,account,country,calls_placed,calls_taken,call_seconds,sms");
    assert!(lines[1].starts_with("acme,simulator,JP,1,0,"), "{out}");
    assert_eq!(lines.len(), 2, "{out}");

    let (code, out) = run(&["--month", &month, "--tenant", "acme"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("acme — {month}")) && out.contains("simulator"), "{out}");
    let (code, _) = run(&["--month", "2026-13"]);
    assert_ne!(code, Some(0), "a bad month is refused");
}
