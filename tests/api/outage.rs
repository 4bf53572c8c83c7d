//! The database goes away and comes back (PostgreSQL): connections terminated
//! under load, then the server unreachable for a while. The site API answers
//! 503 with Retry-After (never 500, never a hang), /readyz turns not-ready, a
//! caller is kept on the line and the code typed meanwhile still counts.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;
use crate::proxy::{Mode, Proxy};

/// The database URL with its host and port replaced by `addr`.
async fn twilio_app_on(db: Arc<TestDb>, database_url: String) -> (TestApp, ProviderDouble) {
    let double = ProviderDouble::start().await;
    let opts = Opts { twilio_api: Some(double.base.clone()), database_url: Some(database_url), ..Default::default() };
    (spawn_on(opts, db).await, double)
}

/// The URL of the `<Redirect>` in a TwiML answer, as a path under the public URL.
pub fn redirect_path(app: &TestApp, doc: &str) -> String {
    let start = doc.find("<Redirect").unwrap_or_else(|| panic!("no redirect: {doc}"));
    let url = &doc[doc[start..].find('>').unwrap() + start + 1..];
    let url = &url[..url.find("</Redirect>").unwrap()];
    url.replace("&amp;", "&").strip_prefix(&app.public_url).unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_terminated_under_load_lose_nothing_and_never_answer_500() {
    let db = Arc::new(TestDb::new(Backend::Postgres).await);
    let name = format!("ivrt-kill-{}", uuid::Uuid::now_v7().simple());
    let (app, _double) = twilio_app_on(db.clone(), format!("{}&application_name={name}", db.url)).await;
    let app = Arc::new(app);
    let statuses = Arc::new(Mutex::new(Vec::<u16>::new()));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let until = Instant::now() + Duration::from_secs(3);
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (app, statuses, acked) = (app.clone(), statuses.clone(), acked.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while Instant::now() < until {
                    n += 1;
                    let body = json!({ "phone_number": PHONE, "external_id": format!("w{w}-{n}") });
                    let resp = app.register_as(&app.tenant, body).await;
                    let status = resp.status().as_u16();
                    if status == 503 {
                        assert!(resp.headers().get("retry-after").is_some(), "503 without Retry-After");
                    }
                    statuses.lock().unwrap().push(status);
                    if status == 201 {
                        let v: Value = resp.json().await.unwrap();
                        let id = v["id"].as_str().unwrap().to_owned();
                        let read = app.get_as(&app.tenant, &id).await.status().as_u16();
                        statuses.lock().unwrap().push(read);
                        acked.lock().unwrap().push(id);
                    }
                }
            })
        })
        .collect();
    // Meanwhile, every 200 ms, every connection of this server is terminated.
    let admin_url =
        std::env::var("IVR_AUTH_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let (admin, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let mut terminated = 0;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let row = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
                &[&name],
            )
            .await
            .unwrap();
        terminated += row.get::<_, i64>(0);
    }
    for w in workers {
        w.await.unwrap();
    }
    let statuses = statuses.lock().unwrap().clone();
    let acked = acked.lock().unwrap().clone();
    eprintln!(
        "{terminated} connections terminated; {} answers: {} ok, {} 503",
        statuses.len(),
        statuses.iter().filter(|s| matches!(s, 200 | 201)).count(),
        statuses.iter().filter(|s| **s == 503).count()
    );
    assert!(terminated >= 10, "the test terminated only {terminated} connections");
    // A cut connection is retried on a fresh one before anything is answered: nobody sees it.
    assert!(statuses.iter().all(|s| matches!(s, 200 | 201)), "{statuses:?}");
    assert!(acked.len() > 20, "only {} registrations went through", acked.len());
    // Nothing acknowledged is lost, and the service is back by itself.
    for id in &acked {
        assert_eq!(app.get_as(&app.tenant, id).await.status(), 200, "acknowledged {id} lost");
    }
    assert_eq!(app.http.get(app.url("/readyz")).send().await.unwrap().status(), 200);
}

/// A server that reaches its database through a proxy, with an outbound call
/// answered and waiting for the code (482913, en-US).
struct OnTheLine {
    app: TestApp,
    _double: ProviderDouble,
    proxy: Proxy,
    id: String,
    sid: String,
}

impl OnTheLine {
    async fn start() -> Self {
        let db = Arc::new(TestDb::new(Backend::Postgres).await);
        let proxy = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
        let (app, double) = twilio_app_on(db.clone(), proxy.through(&db.url)).await;
        let r = app.register(json!({ "phone_number": PHONE, "code": "482913", "locale": "en-US" })).await;
        let id = r["id"].as_str().unwrap().to_owned();
        double.wait_calls(1).await;
        let line = Self { app, _double: double, proxy, id, sid: ProviderDouble::sid(0) };
        let (_, doc) = line.app.webhook(&format!("/webhooks/twilio/voice/answer/{}", line.id), &line.call()).await;
        assert!(doc.contains("<Gather"), "{doc}");
        line
    }

    /// The parameters of the call's webhooks.
    fn call(&self) -> [(&'static str, &str); 4] {
        [("CallSid", self.sid.as_str()), ("From", "+815011112222"), ("To", PHONE), ("CallStatus", "in-progress")]
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn while_the_database_is_unreachable_callers_wait_and_their_code_still_counts() {
    let line = OnTheLine::start().await;
    let (app, proxy, id, call) = (&line.app, &line.proxy, line.id.clone(), line.call());
    // An inbound request waiting, before the outage.
    let waiting = app.register(json!({ "phone_number": "+819011112222", "mode": "inbound" })).await;

    proxy.set(Mode::Refuse);
    let t = Instant::now();
    assert_eq!(app.http.get(app.url("/readyz")).send().await.unwrap().status(), 503);
    assert!(t.elapsed() < Duration::from_secs(5), "readyz took {:?}", t.elapsed());
    let t = Instant::now();
    let resp = app.register_as(&app.tenant, json!({ "phone_number": PHONE })).await;
    assert_eq!(resp.status(), 503);
    assert!(t.elapsed() < Duration::from_secs(6), "the 503 took {:?}", t.elapsed());
    assert!(resp.headers().get("retry-after").is_some());
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["code"], "unavailable");
    assert_eq!(app.get_as(&app.tenant, &id).await.status(), 503);

    // The caller types the code now: kept on the line, the digits sealed into the retry.
    let t = Instant::now();
    let mut typed = call.to_vec();
    typed.push(("Digits", "482913"));
    let (s, doc) = app.webhook(&format!("/webhooks/twilio/voice/gather/{id}"), &typed).await;
    assert_eq!(s, 200, "{doc}");
    assert!(t.elapsed() < Duration::from_secs(10), "the provider waits 15 s at most: {:?}", t.elapsed());
    assert!(doc.contains("<Pause") && doc.contains("<Redirect") && !doc.contains("<Hangup"), "{doc}");
    assert!(!doc.contains("482913"), "the code is not in the URL: {doc}");
    let retry = redirect_path(app, &doc);
    assert!(retry.contains("hold=1") && retry.contains("held="), "{retry}");
    // Still down: hold again, still carrying the code.
    let (s, doc) = app.webhook(&retry, &call).await;
    assert_eq!(s, 200);
    let retry = redirect_path(app, &doc);
    assert!(retry.contains("hold=2") && retry.contains("held="), "{retry}");

    // The database is back: the retried step finds the code and verifies.
    proxy.set(Mode::Forward);
    let (s, doc) = app.webhook(&retry, &call).await;
    assert_eq!(s, 200);
    assert!(doc.contains("<Hangup/>") && !doc.contains("<Redirect"), "{doc}");
    let v = app.get(&id).await;
    assert_eq!((v["status"].as_str(), v["attempts"].as_u64()), (Some("verified"), Some(0)));
    // Recovered by itself; nothing acknowledged was lost.
    assert_eq!(app.http.get(app.url("/readyz")).send().await.unwrap().status(), 200);
    assert_eq!(app.get(waiting["id"].as_str().unwrap()).await["status"], "pending");
    app.register(json!({ "phone_number": "+819033334444", "mode": "inbound" })).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_code_counts_once_however_often_its_retry_is_replayed() {
    let line = OnTheLine::start().await;
    let (app, proxy, id, call) = (&line.app, &line.proxy, line.id.clone(), line.call());

    // A wrong code typed during the outage is held, sealed into the retry.
    proxy.set(Mode::Refuse);
    let mut typed = call.to_vec();
    typed.push(("Digits", "111111"));
    let (_, doc) = app.webhook(&format!("/webhooks/twilio/voice/gather/{id}"), &typed).await;
    let retry = redirect_path(app, &doc);
    assert!(retry.contains("held="), "{retry}");
    proxy.set(Mode::Forward);
    let (_, doc) = app.webhook(&retry, &call).await;
    assert!(doc.contains("<Gather"), "asked again after a wrong code: {doc}");
    assert_eq!(app.get(&id).await["attempts"], 1);
    // The same retry, replayed: nothing more is counted, the caller is asked again.
    for _ in 0..3 {
        let (s, doc) = app.webhook(&retry, &call).await;
        assert_eq!(s, 200);
        assert!(doc.contains("<Gather"), "{doc}");
    }
    let v = app.get(&id).await;
    assert_eq!((v["status"].as_str(), v["attempts"].as_u64()), (Some("in_progress"), Some(1)), "{v}");
    // The right code still verifies.
    let mut right = call.to_vec();
    right.push(("Digits", "482913"));
    app.webhook(&format!("/webhooks/twilio/voice/gather/{id}"), &right).await;
    assert_eq!(app.get(&id).await["status"], "verified");
}
