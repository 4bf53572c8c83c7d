//! Several provider accounts: failover between them, and calls paced at each
//! account's rate across every node (issue 15, items 3 and 4). The accounts
//! are Twilio doubles; every count is the doubles' own, and a rate is counted
//! in windows of the double's clock, never asserted as a duration.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ivr_auth::config::{AccountArgs, ServeArgs};
use serde_json::{Value, json};

use crate::helpers::*;

/// An `[[accounts]]` table for a Twilio double.
fn account(name: &str, double: &ProviderDouble, weight: u32) -> AccountArgs {
    AccountArgs {
        name: Some(name.into()),
        provider: Some("twilio".into()),
        account_sid: Some("AC00000000000000000000000000000000".into()),
        auth_token: Some(AUTH_TOKEN.into()),
        api_base: Some(double.base.clone()),
        caller_id: Some("+81312345678".into()),
        weight: Some(weight),
        ..Default::default()
    }
}

fn with_accounts(accounts: Vec<AccountArgs>) -> Opts {
    let accounts = Arc::new(accounts);
    Opts {
        configure: Some(Arc::new(move |a: &mut ServeArgs| {
            a.provider = None;
            a.accounts = Some(accounts.as_ref().clone());
            a.phone_rate_limit = Some(0);
            a.phone_rate_limit_server = Some(0);
        })),
        ..Default::default()
    }
}

/// The `n`th test number, a different one per registration.
fn number(n: usize) -> String {
    format!("+8190{:08}", 10_000_000 + n)
}

async fn register_outbound(app: &TestApp, n: usize) -> String {
    let r = app.register(json!({ "phone_number": number(n), "locale": "en-US" })).await;
    r["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_account_that_answers_5xx_or_refuses_the_account_hands_the_call_to_the_next() {
    for (status, body) in [(500, "{}"), (401, r#"{"code":20003,"message":"Authenticate"}"#)] {
        let first = ProviderDouble::start().await;
        let second = ProviderDouble::start().await;
        first.then(status, body);
        // The first account is all but certain to be tried first (weights 1,000,000 : 1).
        let app =
            spawn_with(with_accounts(vec![account("tokyo", &first, 1_000_000), account("osaka", &second, 1)])).await;
        let id = register_outbound(&app, 1).await;
        second.wait_calls(1).await;
        let r = app.wait_for(&id, "the call bound", |v| v["status"] == "calling").await;
        assert_eq!(first.calls_for(&id).len(), 1, "HTTP {status}: the first account was asked once");
        assert_eq!(second.calls_for(&id).len(), 1, "HTTP {status}: the second placed the call");
        assert_eq!(r["failure_reason"], Value::Null);
        // The failed account is skipped for the next call: it goes straight to the second.
        let next = register_outbound(&app, 2).await;
        second.wait_calls(2).await;
        assert_eq!(first.calls_for(&next).len(), 0, "HTTP {status}: the failing account is skipped");
        let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains(r#"ivr_auth_provider_account_failures_total{account="tokyo"} 1"#), "{metrics}");
    }
}

#[tokio::test]
async fn a_call_request_that_times_out_is_looked_up_and_never_placed_twice() {
    let first = ProviderDouble::start().await;
    let second = ProviderDouble::start().await;
    first.then(HANG, "");
    let app = spawn_with(with_accounts(vec![account("tokyo", &first, 1_000_000), account("osaka", &second, 1)])).await;
    let id = register_outbound(&app, 3).await;
    // The client gives up on the hanging answer, asks the account's call list,
    // finds the call it created and binds it: no other account is asked.
    let r = wait_until("the call found by lookup", Duration::from_secs(40), || async {
        let r = app.get(&id).await;
        r["deliveries"][0]["sid"].is_string().then_some(r)
    })
    .await;
    assert_eq!(r["deliveries"][0]["sid"], ProviderDouble::sid(0));
    assert_eq!(first.calls_for(&id).len(), 1);
    assert_eq!(second.count(), 0, "a call that may exist is not placed elsewhere");
}

/// Call requests per window of `window` on the double's clock, at most.
fn most_in_any_window(arrivals: &[Instant], window: Duration) -> usize {
    arrivals
        .iter()
        .map(|start| arrivals.iter().filter(|t| **t >= *start && **t < *start + window).count())
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn a_burst_queues_and_leaves_at_the_account_rate_across_nodes() {
    let double = ProviderDouble::start().await;
    let mut paced = account("tokyo", &double, 1);
    paced.calls_per_second = Some(10.0);
    let opts = with_accounts(vec![paced]);
    // Several nodes share one queue through PostgreSQL, the multi-node backend.
    let db = Arc::new(TestDb::new(Backend::Postgres).await);
    let first = spawn_on(opts.clone(), db.clone()).await;
    let tenant = first.tenant.clone();
    let nodes = [first, spawn_as(opts.clone(), db.clone(), Some(tenant.clone())).await];
    let mut ids = Vec::new();
    // 110 calls at 10 a second: more than one 10-second window of them.
    for n in 0..110 {
        let node = &nodes[n % nodes.len()];
        let resp = node.register_as(&tenant, json!({ "phone_number": number(100 + n), "locale": "en-US" })).await;
        assert_eq!(resp.status(), 201);
        ids.push(resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    // The last ones wait in the queue, visibly, with the time they leave.
    let last = ids.last().unwrap();
    let queued = nodes[0].wait_for_as(&tenant, last, "the last call queued", |v| v["call_status"] != Value::Null).await;
    assert_eq!(queued["call_status"], "queued", "{queued}");
    assert!(queued["call_expected_at"].is_string(), "{queued}");
    wait_until("every queued call placed", Duration::from_secs(120), || async {
        (double.count() >= ids.len()).then_some(())
    })
    .await;
    let arrivals = double.arrivals.lock().unwrap().clone();
    let most = most_in_any_window(&arrivals, Duration::from_secs(10));
    assert!(most <= 101, "{most} calls in 10 seconds of the double's clock; the account takes 10 a second");
    for id in &ids {
        assert_eq!(double.calls_for(id).len(), 1, "request {id}: one call, no more");
    }
    let metrics = nodes[0].http.get(nodes[0].url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"ivr_auth_call_queue_wait_seconds_count{account="tokyo"}"#), "{metrics}");
}

#[tokio::test]
async fn a_call_that_cannot_leave_before_its_request_expires_fails_not_placed() {
    let double = ProviderDouble::start().await;
    let mut slow = account("tokyo", &double, 1);
    slow.calls_per_second = Some(0.04);
    let app = spawn_with(with_accounts(vec![slow])).await;
    let body = |n: usize| json!({ "phone_number": number(200 + n), "locale": "en-US", "ttl_seconds": 60 });
    let first = app.register(body(0)).await["id"].as_str().unwrap().to_owned();
    let second = app.register(body(1)).await["id"].as_str().unwrap().to_owned();
    let third = app.register(body(2)).await["id"].as_str().unwrap().to_owned();
    // Slots 25 s apart: the third would leave 50 s in, later than 15 s before its expiry.
    let failed = app.wait_status(&third, "failed").await;
    assert_eq!(failed["failure_reason"], "not_placed");
    let waiting = app.get(&second).await;
    assert_eq!((waiting["status"].as_str(), waiting["call_status"].as_str()), (Some("pending"), Some("queued")));
    double.wait_calls(1).await;
    assert_eq!(double.calls_for(&first).len(), 1);
    assert!(double.calls_for(&third).is_empty());
}

#[tokio::test]
async fn a_cap_on_calls_up_at_once_holds_the_next_call_until_one_ends() {
    let double = ProviderDouble::start().await;
    let mut capped = account("tokyo", &double, 1);
    capped.max_concurrent_calls = Some(1);
    let app = spawn_with(with_accounts(vec![capped])).await;
    let first = register_outbound(&app, 300).await;
    double.wait_calls(1).await;
    let second = register_outbound(&app, 301).await;
    let waiting = app.wait_for(&second, "the second call queued", |v| v["call_status"] != Value::Null).await;
    assert_eq!((waiting["status"].as_str(), waiting["call_status"].as_str()), (Some("pending"), Some("queued")));
    assert_eq!(double.count(), 1, "one call up at once");
    // The first call ends: its seat goes to the second.
    let sid = double.calls_for(&first).remove(0);
    let path = format!("/webhooks/twilio/voice/status/{first}");
    let (status, _) = app.webhook(&path, &[("CallSid", &sid), ("CallStatus", "completed")]).await;
    assert_eq!(status, 200);
    double.wait_calls(2).await;
    assert_eq!(double.calls_for(&second).len(), 1);
}
