//! `GET /v1/stats` through the real server: the funnel of a verified and a
//! canceled request, the conversion and the median time, the most failing
//! numbers masked, tenants kept apart, bad parameters named.

use serde_json::{Value, json};

use crate::helpers::*;

async fn stats(app: &TestApp, tenant: &Tenant, query: &str) -> reqwest::Response {
    app.http.get(app.url(&format!("/v1/stats{query}"))).bearer_auth(&tenant.api_key).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_funnel_counts_each_step_its_requests_reached() {
    let app = spawn_app().await;
    let r = app.register(json!({ "phone_number": PHONE, "code": "2468" })).await;
    let id = r["id"].as_str().unwrap().to_owned();
    let sid = app.sim_answer(&id).await;
    // Held past a whole second: the simulator reports whole seconds.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.sim_keys(&sid, "2468").await;
    app.wait_status(&id, "verified").await;
    let failing = app.register(json!({ "phone_number": "+819011112222", "mode": "inbound" })).await;
    let failing = failing["id"].as_str().unwrap().to_owned();
    app.expire_now(&failing).await;
    app.wait_status(&failing, "expired").await;

    // The view says `expired` at once; the sweeper stores it a moment later.
    let v: Value = wait_until("the expiry stored", std::time::Duration::from_secs(15), || async {
        let resp = stats(&app, &app.tenant, "").await;
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        (v["totals"]["expired"] == 1 && v["call_seconds"].as_u64().is_some_and(|s| s >= 1)).then_some(v)
    })
    .await;
    let t = &v["totals"];
    assert_eq!(
        (t["registered"].as_u64(), t["answered"].as_u64(), t["code_entered"].as_u64()),
        (Some(2), Some(1), Some(1)),
        "{v}"
    );
    assert_eq!((t["verified"].as_u64(), t["expired"].as_u64()), (Some(1), Some(1)), "{v}");
    assert_eq!(v["conversion"], 0.5);
    assert!(v["median_seconds_to_verify"].as_f64().is_some_and(|s| s >= 0.0), "{v}");
    assert_eq!(v["granularity"], "hour");
    assert_eq!(v["periods"].as_array().unwrap().len(), 25, "24 hours, cut at both ends");
    let summed: u64 = v["periods"].as_array().unwrap().iter().map(|p| p["registered"].as_u64().unwrap()).sum();
    assert_eq!(summed, 2);

    let other = create_tenant(app.db_url(), "other").await;
    let theirs: Value = stats(&app, &other, "").await.json().await.unwrap();
    assert_eq!(theirs["totals"]["registered"], 0, "another tenant sees none of it");
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_numbers_are_masked_and_failures_kept_by_reason() {
    let app = spawn_app().await;
    for _ in 0..2 {
        let r = app.register(json!({ "phone_number": PHONE, "code": "2468" })).await;
        let id = r["id"].as_str().unwrap().to_owned();
        let sid = app.sim_answer(&id).await;
        for _ in 0..3 {
            app.sim_keys(&sid, "1111").await;
        }
        app.wait_status(&id, "failed").await;
    }
    let v: Value = stats(&app, &app.tenant, "?granularity=day").await.json().await.unwrap();
    assert_eq!(v["totals"]["failed"]["wrong_code"], 2, "{v}");
    let top = &v["top_failing_numbers"][0];
    assert_eq!(top["failures"], 2, "{v}");
    let number = top["number"].as_str().unwrap();
    assert!(number.ends_with("5678") && !number.contains("9012"), "masked: {number}");
}

#[tokio::test]
async fn bad_parameters_are_named() {
    let app = spawn_app().await;
    for (query, field) in [("?granularity=week", "granularity"), ("?from=x", "from"), ("?sort=up", "sort")] {
        let resp = stats(&app, &app.tenant, query).await;
        assert_eq!(resp.status(), 422, "{query}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
}
