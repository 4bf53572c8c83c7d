//! A database failover with a real standby (issue 13, item 5): the server
//! knows the primary and the standby (`target_session_attrs=read-write`);
//! the primary crashes under load; until the standby is promoted the site
//! API answers 503 with Retry-After (never 500) and a caller who types the
//! code is held, in the request's language; once promoted, the held code
//! verifies, registrations succeed, and nothing acknowledged is lost.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;
use crate::outage::redirect_path;
use crate::pg_cluster::{self, Pair};

/// Registrations answered (when each was sent, and its status), and the ids of the acknowledged ones.
#[derive(Default)]
struct Tally {
    answers: Vec<(Instant, u16)>,
    acked: Vec<String>,
}

impl Tally {
    fn statuses(&self) -> Vec<u16> {
        self.answers.iter().map(|(_, s)| *s).collect()
    }
}

/// Registers requests in a loop until `stop`, as one client of the site would.
async fn keep_registering(app: Arc<TestApp>, tally: Arc<Mutex<Tally>>, w: usize, stop: Arc<Mutex<bool>>) {
    let mut n = 0;
    while !*stop.lock().unwrap() {
        n += 1;
        let body = json!({ "phone_number": PHONE, "locale": "en-US", "external_id": format!("w{w}-{n}") });
        let sent = Instant::now();
        let resp = app.register_as(&app.tenant, body).await;
        let status = resp.status().as_u16();
        if status == 503 {
            assert!(resp.headers().get("retry-after").is_some(), "503 without Retry-After");
            let e: Value = resp.json().await.unwrap();
            assert_eq!(e["error"]["code"], "unavailable", "{e}");
        } else if status == 201 {
            let v: Value = resp.json().await.unwrap();
            tally.lock().unwrap().acked.push(v["id"].as_str().unwrap().to_owned());
        }
        tally.lock().unwrap().answers.push((sent, status));
        if status == 503 {
            // As a client told "Retry-After" would, a little sooner.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_primary_answers_503_holds_callers_and_the_promoted_standby_takes_over() {
    let Some(bin) = pg_cluster::bin_dir() else {
        eprintln!("skipped: no PostgreSQL binaries (initdb, pg_basebackup); set IVR_AUTH_TEST_PG_BIN");
        return;
    };
    let started = Instant::now();
    let pair = tokio::task::spawn_blocking(move || Pair::start(&bin)).await.unwrap();
    pg_cluster::wait_until(
        pair.primary_port,
        "SELECT count(*) = 1 FROM pg_stat_replication WHERE state = 'streaming'",
        Duration::from_secs(20),
    )
    .await;
    pg_cluster::execute(pair.primary_port, "ALTER SYSTEM SET synchronous_standby_names = '*'").await;
    pg_cluster::execute(pair.primary_port, "SELECT pg_reload_conf()").await;
    pg_cluster::wait_until(
        pair.primary_port,
        "SELECT count(*) = 1 FROM pg_stat_replication WHERE sync_state = 'sync'",
        Duration::from_secs(20),
    )
    .await;
    let pair = Arc::new(pair);

    let db = Arc::new(TestDb::external(pair.url()));
    let double = ProviderDouble::start().await;
    let app = Arc::new(spawn_on(Opts { twilio_api: Some(double.base.clone()), ..Default::default() }, db).await);

    // Before: an English call in progress, waiting for its code.
    let r = app.register(json!({ "phone_number": PHONE, "code": "482913", "locale": "en-US" })).await;
    let id = r["id"].as_str().unwrap().to_owned();
    double.wait_calls(1).await;
    let answer_url = param(&double.call(0), "Url")[0].to_owned();
    let answer = answer_url.strip_prefix(&app.public_url).unwrap().to_owned();
    assert!(answer.ends_with("?lang=en-US"), "{answer}");
    let sid = ProviderDouble::sid(0);
    let call = [("CallSid", sid.as_str()), ("From", "+815011112222"), ("To", PHONE), ("CallStatus", "in-progress")];
    let (_, doc) = app.webhook(&answer, &call).await;
    assert!(doc.contains("<Gather") && doc.contains("Please enter the 6 digit code"), "{doc}");
    let gather = {
        let start = doc.find("action=\"").unwrap() + "action=\"".len();
        let url = &doc[start..];
        url[..url.find('"').unwrap()].replace("&amp;", "&").strip_prefix(&app.public_url).unwrap().to_owned()
    };

    // Load throughout: registrations from four clients.
    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(Mutex::new(false));
    let workers: Vec<_> =
        (0..4).map(|w| tokio::spawn(keep_registering(app.clone(), tally.clone(), w, stop.clone()))).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = tally.lock().unwrap().statuses();
    assert!(!before.is_empty() && before.iter().all(|s| *s == 201), "{before:?}");

    // The primary crashes; the standby is read-only until promoted.
    let crash = pair.clone();
    tokio::task::spawn_blocking(move || crash.crash_primary()).await.unwrap();
    let crashed_at = Instant::now();
    let mut typed = call.to_vec();
    typed.push(("Digits", "482913"));
    let register = app.register_as(&app.tenant, json!({ "phone_number": PHONE, "locale": "en-US" }));
    let typed_code = app.webhook(&gather, &typed);
    // A step whose holds ran out: what the caller hears is in the request's language.
    let last_hold = format!("{gather}&hold=6");
    let worn_out = app.webhook(&last_hold, &call);
    let (resp, (s, held), (s2, sorry)) = tokio::join!(register, typed_code, worn_out);
    assert_eq!(resp.status(), 503, "during the failover: {}", resp.text().await.unwrap());
    assert!(resp.headers().get("retry-after").is_some());
    assert_eq!((s, s2), (200, 200));
    assert!(held.contains("<Pause") && held.contains("<Redirect") && !held.contains("<Hangup"), "{held}");
    assert!(!held.contains("482913"), "the code is not in the URL: {held}");
    let retry = redirect_path(&app, &held);
    assert!(retry.contains("lang=en-US") && retry.contains("hold=1") && retry.contains("held="), "{retry}");
    assert!(sorry.contains("language=\"en-US\"") && !sorry.contains("ja-JP"), "not in the request's language: {sorry}");
    assert!(sorry.contains("We could not verify you") && sorry.contains("<Hangup/>"), "{sorry}");
    // Still not promoted: held again, still carrying the code and the language.
    let (s, held) = app.webhook(&retry, &call).await;
    assert_eq!(s, 200);
    let retry = redirect_path(&app, &held);
    assert!(retry.contains("lang=en-US") && retry.contains("hold=2") && retry.contains("held="), "{retry}");
    let outage = crashed_at.elapsed();

    // The standby is promoted: the held code verifies, registrations go through.
    let promote = pair.clone();
    tokio::task::spawn_blocking(move || promote.promote_standby()).await.unwrap();
    let promoted_at = Instant::now();
    let (s, doc) = app.webhook(&retry, &call).await;
    assert_eq!(s, 200);
    assert!(doc.contains("You are verified") && doc.contains("<Hangup/>") && !doc.contains("<Redirect"), "{doc}");
    let v = app.get(&id).await;
    assert_eq!((v["status"].as_str(), v["attempts"].as_u64()), (Some("verified"), Some(0)), "{v}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    *stop.lock().unwrap() = true;
    for w in workers {
        w.await.unwrap();
    }
    let tally = std::mem::take(&mut *tally.lock().unwrap());
    let statuses = tally.statuses();
    // Sent after the promotion: every one goes through.
    let after: Vec<u16> = tally.answers.iter().filter(|(at, _)| *at > promoted_at).map(|(_, s)| *s).collect();
    eprintln!(
        "failover: {} registrations: {} acknowledged (201), {} answered 503; outage {:?}; after promotion {} of {} were 201; \
         promoted to verified in {:?}; test {:?}",
        statuses.len(),
        count(&statuses, 201),
        count(&statuses, 503),
        outage,
        count(&after, 201),
        after.len(),
        promoted_at.elapsed(),
        started.elapsed()
    );
    assert!(statuses.iter().all(|s| matches!(s, 201 | 503)), "{statuses:?}\n{}", pair.logs());
    assert!(count(&statuses, 503) >= 1, "no registration met the outage: {statuses:?}");
    assert!(!after.is_empty() && after.iter().all(|s| *s == 201), "after promotion: {after:?}");
    // Nothing acknowledged is lost: every 201 is on the promoted server.
    for id in &tally.acked {
        assert_eq!(app.get_as(&app.tenant, id).await.status(), 200, "acknowledged {id} lost");
    }
    assert_eq!(app.http.get(app.url("/readyz")).send().await.unwrap().status(), 200);
    let resp = app.register_as(&app.tenant, json!({ "phone_number": PHONE })).await;
    assert_eq!(resp.status(), 201);
}
