//! Nobody runs up the bill (security review, items 4 and 5): calls go only
//! to ordinary lines in the tenant's allowed countries, within its budgets.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster::in_process_nodes;
use crate::helpers::*;

/// Registers an outbound request for `phone` as `tenant`: (status, body).
async fn call(app: &TestApp, tenant: &Tenant, phone: &str) -> (u16, Value, Option<u64>) {
    let resp = app.register_as(tenant, json!({ "phone_number": phone })).await;
    let status = resp.status().as_u16();
    let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().parse().unwrap());
    (status, resp.json().await.unwrap(), retry_after)
}

async fn metrics(app: &TestApp) -> String {
    app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn satellite_premium_and_foreign_destinations_are_refused_with_the_reason() {
    let app = spawn_app().await;
    let refused = [
        ("+881612345678", "satellite"),
        ("+870301234567", "satellite"),
        ("+5351234567", "(+53)"),
        ("+2463801234", "(+246)"),
        ("+447012345678", "personal"),
        ("0570-123-456", "universal access"),
        ("0990-123-456", "premium-rate"),
    ];
    for (phone, why) in refused {
        let (status, body, _) = call(&app, &app.tenant, phone).await;
        assert_eq!(status, 422, "{phone}: {body}");
        assert_eq!(body["error"]["field"], "phone_number", "{phone}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(why), "{phone}: {body}");
    }
    // Nothing was stored or dialled.
    let calls: Value = app.http.get(app.url("/simulator/calls")).send().await.unwrap().json().await.unwrap();
    assert_eq!(calls["calls"].as_array().unwrap().len(), 0, "{calls}");
    assert!(metrics(&app).await.contains(r#"ivr_auth_tenant_refusals_total{tenant="acme",reason="destination"} 6"#));

    // The operator allows Cuba for this tenant: Cuban mobiles are called, satellites never.
    let out = tenant_set(app.db_url(), "acme", |a| a.allowed_countries = Some("jp,cu".into())).await.unwrap();
    assert!(out.contains(r#""allowed_countries":["JP","CU"]"#), "{out}");
    assert_eq!(call(&app, &app.tenant, "+5351234567").await.0, 201);
    assert_eq!(call(&app, &app.tenant, "+881612345678").await.0, 422);
    // Another tenant still has the default: the server's region only.
    let beta = create_tenant(app.db_url(), "beta").await;
    assert_eq!(call(&app, &beta, "+5351234567").await.0, 422);
    assert_eq!(call(&app, &beta, "090-1234-5678").await.0, 201);
    // A code that is not a region is refused by the CLI, and changes nothing.
    let err = tenant_set(app.db_url(), "acme", |a| a.allowed_countries = Some("JP,XX".into())).await.unwrap_err();
    assert!(err.to_string().contains("--allowed-countries"), "{err}");
    assert_eq!(call(&app, &app.tenant, "+5351234567").await.0, 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn call_budgets_answer_429_naming_the_budget_until_a_slot_frees() {
    let app = spawn_with(Opts {
        configure: Some(Arc::new(|a| {
            a.tenant_calls_per_minute = Some(600);
            a.tenant_calls_per_day = Some(5);
        })),
        ..Default::default()
    })
    .await;
    let clock = app.clock.clone().unwrap();
    let beta = create_tenant(app.db_url(), "beta").await;
    tenant_set(app.db_url(), "acme", |a| a.calls_per_minute = Some(3)).await.unwrap();
    let phone = |n: u32| format!("+8190{:08}", 10_000_000 + n);
    for n in 0..3 {
        assert_eq!(call(&app, &app.tenant, &phone(n)).await.0, 201);
    }
    // Inbound requests place no call: they do not count.
    let resp = app.register(json!({ "phone_number": phone(9), "mode": "inbound" })).await;
    assert_eq!(resp["status"], "pending");
    let (status, body, retry_after) = call(&app, &app.tenant, &phone(3)).await;
    assert_eq!(status, 429, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("calls_per_minute") && message.contains("3 calls"), "{message}");
    assert!((1..=60).contains(&retry_after.unwrap()), "{retry_after:?}");
    // Another tenant has its own budget.
    assert_eq!(call(&app, &beta, &phone(3)).await.0, 201);

    // A minute later the minute's budget is back; the day's (5) runs out.
    clock.advance(chrono::Duration::seconds(61));
    for n in 4..6 {
        assert_eq!(call(&app, &app.tenant, &phone(n)).await.0, 201);
    }
    let (status, body, retry_after) = call(&app, &app.tenant, &phone(6)).await;
    assert_eq!(status, 429, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("calls_per_day"), "{body}");
    let retry_after = retry_after.unwrap();
    assert!((86_000..=86_400).contains(&retry_after), "until the first call leaves the 24 hours: {retry_after}");
    // A refusal was not counted as a call: the next day, five again.
    clock.advance(chrono::Duration::seconds(i64::try_from(retry_after).unwrap()));
    assert_eq!(call(&app, &app.tenant, &phone(7)).await.0, 201);

    let m = metrics(&app).await;
    assert!(m.contains(r#"ivr_auth_tenant_calls_total{tenant="acme"} 6"#), "{m}");
    assert!(m.contains(r#"ivr_auth_tenant_refusals_total{tenant="acme",reason="calls_per_minute"} 1"#), "{m}");
    assert!(m.contains(r#"ivr_auth_tenant_refusals_total{tenant="acme",reason="calls_per_day"} 1"#), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn call_budgets_count_the_calls_of_every_node() {
    let (_db, apps) = in_process_nodes(Arc::new(|a| a.tenant_calls_per_minute = Some(4))).await;
    let tenant = apps[0].tenant.clone();
    for n in 0..4 {
        assert_eq!(call(&apps[0], &tenant, &format!("+8190{:08}", 20_000_000 + n)).await.0, 201);
    }
    for app in &apps[1..] {
        let (status, body, _) = call(app, &tenant, "+819020009999").await;
        assert_eq!(status, 429, "another node counts the first node's calls: {body}");
    }
}

/// Registers 30 outbound requests of `tenant` at once, spread over `apps`: how many were accepted.
async fn burst(apps: &[&TestApp], tenant: &Tenant) -> usize {
    let sends = (0..30).map(|n| {
        let app = apps[n % apps.len()];
        async move { call(app, tenant, &format!("+8190{:08}", 50_000_000 + n)).await }
    });
    let answers = futures_util::future::join_all(sends).await;
    for (status, body, retry_after) in &answers {
        match status {
            201 => {}
            429 => {
                assert!(body["error"]["message"].as_str().unwrap().contains("calls_per_minute"), "{body}");
                // A minute after the oldest counted call, which another node may have
                // stamped a little later than this one (whole seconds, rounded up).
                assert!(retry_after.is_some_and(|s| (1..=61).contains(&s)), "{retry_after:?}");
            }
            other => panic!("{other}: {body}"),
        }
    }
    answers.iter().filter(|(status, ..)| *status == 201).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_registrations_never_overruns_a_call_budget() {
    let double = ProviderDouble::start().await;
    let app = spawn_with(Opts {
        twilio_api: Some(double.base.clone()),
        configure: Some(Arc::new(|a| a.tenant_calls_per_minute = Some(5))),
        ..Default::default()
    })
    .await;
    assert_eq!(burst(&[&app], &app.tenant).await, 5, "30 at once against calls_per_minute 5");
    // Exactly five calls were placed.
    double.wait_calls(5).await;
    // Every accepted registration enqueued its call before answering: once no
    // place_call job waits, every call that was ever to be placed has been.
    app.wait_outbox_empty("place_call").await;
    assert_eq!(double.count(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_over_three_nodes_never_overruns_a_call_budget() {
    let (_db, apps) = in_process_nodes(Arc::new(|a| a.tenant_calls_per_minute = Some(5))).await;
    let tenant = apps[0].tenant.clone();
    assert_eq!(burst(&apps.iter().collect::<Vec<_>>(), &tenant).await, 5, "30 at once over 3 nodes");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_at_80_percent_of_a_budget_is_logged() {
    let db = Arc::new(TestDb::new(Backend::of_run()).await);
    let tenant = create_tenant(&db.url, "acme").await;
    let server = crate::procs::spawn_proc(&db.url, &[("IVR_AUTH_TENANT_CALLS_PER_MINUTE", "5")]);
    let app = TestApp::attach(server.base.clone(), tenant.clone(), db);
    let phone = |n: u32| format!("+8190{:08}", 30_000_000 + n);
    for n in 0..3 {
        assert_eq!(call(&app, &tenant, &phone(n)).await.0, 201);
    }
    assert_eq!(call(&app, &tenant, &phone(3)).await.0, 201);
    // The warning comes once a window: the one that arrives says whether it came
    // at the fourth call (4 of 5) or early (3 of 5).
    let warning = wait_until("the 80% warning", Duration::from_secs(10), || async {
        let log = server.log.lock().unwrap().clone();
        log.lines().find(|l| l.contains("80% of a call budget")).map(str::to_owned)
    })
    .await;
    assert!(warning.contains("acme") && warning.contains("calls_per_minute"), "{warning}");
    assert!(warning.contains("used=4") && warning.contains("limit=5"), "warned early: {warning}");
    assert_eq!(server.log.lock().unwrap().matches("80% of a call budget").count(), 1, "warned twice");
}
