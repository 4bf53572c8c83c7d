//! Three server processes on one PostgreSQL database behind an imaginary load
//! balancer: every webhook of a call goes to another node than the one
//! before; then one node is SIGKILLed while calls are in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;
use crate::procs::{Proc, spawn_proc};
use crate::proxy::{Mode, Proxy};

/// The public URL every node is configured with (the load balancer's).
const PUBLIC: &str = "https://ivr.example.test";

struct Nodes {
    apps: Vec<TestApp>,
    up: Vec<AtomicBool>,
    next: AtomicUsize,
}

impl Nodes {
    /// A node other than `after` that is up (round robin).
    fn pick(&self, after: Option<usize>) -> usize {
        loop {
            let n = self.next.fetch_add(1, Ordering::Relaxed) % self.apps.len();
            if self.up[n].load(Ordering::Relaxed) && Some(n) != after {
                return n;
            }
        }
    }
}

/// One caller's way through a verification, hopping between nodes.
struct Caller<'a> {
    nodes: &'a Nodes,
    last: Option<usize>,
}

impl Caller<'_> {
    fn hop(&mut self) -> &TestApp {
        let n = self.nodes.pick(self.last);
        self.last = Some(n);
        &self.nodes.apps[n]
    }

    /// A signed webhook to the next node; a node that is gone is skipped, as a load balancer would.
    async fn webhook(&mut self, path: &str, params: &[(&str, &str)]) -> String {
        for _ in 0..10 {
            let app = self.hop();
            let owned: Vec<(String, String)> = params.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
            let sig =
                ivr_auth::telephony::twilio::signature::sign(AUTH_TOKEN.as_bytes(), &format!("{PUBLIC}{path}"), &owned);
            let sent = app.http.post(app.url(path)).header("X-Twilio-Signature", sig).form(params).send().await;
            match sent {
                Ok(resp) => {
                    assert_eq!(resp.status(), 200, "{path}");
                    return resp.text().await.unwrap();
                }
                Err(e) if e.is_connect() => continue,
                // A node killed while answering: a status callback may be sent
                // again (the provider retries them, and they are idempotent).
                Err(_) if path.contains("/voice/status") => continue,
                // Any webhook in flight to the node the test is killing: the
                // provider fetches its fallback URL, which the load balancer
                // sends to a live node. Only a node that is being killed may drop one.
                Err(_) if self.last.is_some_and(|n| !self.nodes.up[n].load(Ordering::Relaxed)) => continue,
                Err(e) => panic!("{path}: {e}"),
            }
        }
        panic!("no node answered {path}");
    }

    /// Registers (with an external_id, so a retry on another node is safe) and
    /// returns the request; `on` pins the node.
    async fn register(&mut self, body: Value, on: Option<usize>) -> Value {
        for attempt in 0..10 {
            let app = match on {
                Some(n) if attempt == 0 => {
                    self.last = Some(n);
                    &self.nodes.apps[n]
                }
                _ => self.hop(),
            };
            match app.http.post(app.url("/v1/auth-requests")).bearer_auth(&app.tenant.api_key).json(&body).send().await
            {
                Ok(resp) => {
                    assert!(matches!(resp.status().as_u16(), 200 | 201), "{}", resp.status());
                    return resp.json().await.unwrap();
                }
                // Refused or cut off by a node that died: the external_id makes another try safe.
                Err(_) => continue,
            }
        }
        panic!("no node took the registration");
    }

    async fn result(&mut self, id: &str) -> Value {
        loop {
            let app = self.hop();
            // A node killed while answering is skipped, as a load balancer would.
            let url = app.url(&format!("/v1/auth-requests/{id}"));
            let sent = app.http.get(url).bearer_auth(&app.tenant.api_key).send().await;
            if let Ok(resp) = sent.and_then(reqwest::Response::error_for_status) {
                return resp.json().await.unwrap();
            }
        }
    }
}

#[derive(Clone, Copy)]
struct Plan {
    n: usize,
    inbound: bool,
    wrong_first: bool,
    /// Register on this node (else the next in turn).
    register_on: Option<usize>,
}

fn number(n: usize) -> String {
    format!("+8190{:08}", 20_000_000 + n)
}

/// One whole verification; returns the request id.
async fn lifecycle(nodes: &Nodes, double: &ProviderDouble, sink_url: &str, plan: Plan) -> String {
    let mut caller = Caller { nodes, last: None };
    let phone = number(plan.n);
    let code = format!("{:06}", 100_000 + plan.n * 7);
    let mode = if plan.inbound { "inbound" } else { "outbound" };
    let body = json!({
        "phone_number": phone, "mode": mode, "code": code, "locale": "en-US",
        "external_id": format!("life-{}", plan.n), "callback_url": sink_url,
    });
    let r = caller.register(body, plan.register_on).await;
    let id = r["id"].as_str().unwrap().to_owned();
    let (sid, to, from) = if plan.inbound {
        let sid = format!("CAin{:030}", plan.n);
        let doc = caller
            .webhook(
                "/webhooks/twilio/voice/inbound",
                &[("CallSid", &sid), ("From", &phone), ("To", INBOUND), ("CallStatus", "ringing")],
            )
            .await;
        assert!(doc.contains("<Gather"), "inbound {}: {doc}", plan.n);
        (sid, INBOUND.to_owned(), phone.clone())
    } else {
        let started = Instant::now();
        let sid = loop {
            if let Some(sid) = double.calls_for(&id).first() {
                break sid.clone();
            }
            assert!(started.elapsed() < Duration::from_secs(30), "call of {id} never placed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let answer =
            [("CallSid", sid.as_str()), ("From", "+815011112222"), ("To", &phone), ("CallStatus", "in-progress")];
        let doc = caller.webhook(&format!("/webhooks/twilio/voice/answer/{id}"), &answer).await;
        assert!(doc.contains("<Gather"), "answer {}: {doc}", plan.n);
        (sid, phone.clone(), "+815011112222".to_owned())
    };
    let base = [("CallSid", sid.as_str()), ("From", from.as_str()), ("To", to.as_str()), ("CallStatus", "in-progress")];
    let gather = format!("/webhooks/twilio/voice/gather/{id}");
    if plan.wrong_first {
        let mut p = base.to_vec();
        p.push(("Digits", "000000"));
        let doc = caller.webhook(&gather, &p).await;
        assert!(doc.contains("<Gather"), "wrong code {}: {doc}", plan.n);
    }
    let mut p = base.to_vec();
    p.push(("Digits", &code));
    let doc = caller.webhook(&gather, &p).await;
    assert!(doc.contains("<Hangup/>") && !doc.contains("<Gather"), "right code {}: {doc}", plan.n);
    let mut done = base.to_vec();
    done[3] = ("CallStatus", "completed");
    let status_path = if plan.inbound {
        "/webhooks/twilio/voice/status".to_owned()
    } else {
        format!("/webhooks/twilio/voice/status/{id}")
    };
    caller.webhook(&status_path, &done).await;
    let v = caller.result(&id).await;
    assert_eq!(v["status"], "verified", "lifecycle {}: {v}", plan.n);
    assert_eq!(v["attempts"], u64::from(plan.wrong_first), "lifecycle {}", plan.n);
    id
}

fn node_env(double: &str) -> Vec<(&str, &str)> {
    vec![
        ("IVR_AUTH_PROVIDER", "twilio"),
        ("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000000"),
        ("TWILIO_API_BASE", double),
        ("IVR_AUTH_CALLER_ID", "+815011112222"),
        ("IVR_AUTH_PUBLIC_URL", PUBLIC),
        ("IVR_AUTH_JOB_LEASE_SECONDS", "3"),
        ("IVR_AUTH_LOG", "warn"),
    ]
}

async fn run_all(nodes: &Arc<Nodes>, double: &ProviderDouble, sink: &str, plans: Vec<Plan>) -> Vec<String> {
    let tasks: Vec<_> = plans
        .into_iter()
        .map(|plan| {
            let (nodes, double, sink) = (nodes.clone(), double.clone(), sink.to_owned());
            tokio::spawn(async move { lifecycle(&nodes, &double, &sink, plan).await })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_share_every_call_and_survive_losing_one() {
    let db = Arc::new(TestDb::new(Backend::Postgres).await);
    let tenant = create_tenant(&db.url, "acme").await;
    let double = ProviderDouble::start().await;
    let sink = CallbackSink::start().await;
    // Node 0 reaches the provider through a path the test can cut.
    let to_provider = Proxy::start(double.base.trim_start_matches("http://").parse().unwrap()).await;
    let via_proxy = format!("http://{}", to_provider.addr);
    let mut procs: Vec<Proc> = Vec::new();
    for n in 0..3 {
        let api = if n == 0 { via_proxy.as_str() } else { double.base.as_str() };
        procs.push(spawn_proc(&db.url, &node_env(api)));
    }
    let apps = procs
        .iter()
        .map(|p| TestApp { public_url: PUBLIC.into(), ..TestApp::attach(p.base.clone(), tenant.clone(), db.clone()) })
        .collect();
    let nodes =
        Arc::new(Nodes { apps, up: (0..3).map(|_| AtomicBool::new(true)).collect(), next: AtomicUsize::new(0) });

    // 120 lifecycles at once: outbound and inbound, a fifth with a wrong code first.
    let plans: Vec<Plan> =
        (0..120).map(|n| Plan { n, inbound: n % 3 == 0, wrong_first: n % 5 == 0, register_on: None }).collect();
    let started = Instant::now();
    let ids = run_all(&nodes, &double, &sink.url, plans.clone()).await;
    eprintln!("120 lifecycles over 3 nodes in {:?}", started.elapsed());
    for (plan, id) in plans.iter().zip(&ids) {
        assert_eq!(double.calls_for(id).len(), usize::from(!plan.inbound), "calls placed for lifecycle {}", plan.n);
    }

    // Now node 0 cannot reach the provider: the calls it takes hang there.
    to_provider.set(Mode::Stall);
    let stalled: Vec<Plan> =
        (1000..1020).map(|n| Plan { n, inbound: false, wrong_first: n % 4 == 0, register_on: Some(0) }).collect();
    let others: Vec<Plan> =
        (2000..2040).map(|n| Plan { n, inbound: n % 2 == 0, wrong_first: n % 3 == 0, register_on: None }).collect();
    let phase2 = {
        let (nodes, double, sink) = (nodes.clone(), double.clone(), sink.url.clone());
        let all: Vec<Plan> = stalled.iter().chain(&others).copied().collect();
        tokio::spawn(async move { run_all(&nodes, &double, &sink, all).await })
    };
    // Once node 0 holds the stalled placements, it dies; the others go on.
    let deadline = Instant::now() + Duration::from_secs(20);
    while *to_provider.stalled.lock().unwrap() == 0 {
        assert!(Instant::now() < deadline, "node 0 never tried to place a call");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    nodes.up[0].store(false, Ordering::Relaxed);
    procs[0].kill9();
    let ids2 = phase2.await.unwrap();
    eprintln!("after the kill: {} more lifecycles finished on the other nodes", ids2.len());

    // No call twice, no lost request, every callback delivered.
    for (plan, id) in stalled.iter().chain(&others).zip(&ids2) {
        assert_eq!(double.calls_for(id).len(), usize::from(!plan.inbound), "calls placed for lifecycle {}", plan.n);
    }
    let all: Vec<&String> = ids.iter().chain(&ids2).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let hits = sink.hits.lock().unwrap().clone();
        let delivered: std::collections::HashSet<String> = hits
            .iter()
            .filter_map(|(sig, body)| {
                assert!(signature_valid(sig, body, &tenant.callback_secret));
                let v: Value = serde_json::from_str(body).ok()?;
                (v["status"] == "verified").then(|| v["id"].as_str().unwrap().to_owned())
            })
            .collect();
        let missing: Vec<&&String> = all.iter().filter(|id| !delivered.contains(id.as_str())).collect();
        if missing.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "{} result callbacks never came, e.g. {:?}", missing.len(), missing[0]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Three servers in this process on one database, each with its own clock.
pub async fn in_process_nodes(configure: Configure) -> (Arc<TestDb>, Vec<TestApp>) {
    let db = Arc::new(TestDb::new(Backend::Postgres).await);
    let mut apps = Vec::new();
    for _ in 0..3 {
        let opts = Opts { configure: Some(configure.clone()), ..Default::default() };
        let tenant = apps.first().map(|a: &TestApp| a.tenant.clone());
        apps.push(match tenant {
            Some(t) => spawn_as(opts, db.clone(), Some(t)).await,
            None => spawn_on(opts, db.clone()).await,
        });
    }
    // Every node learns that there are three (heartbeats every 5 s).
    let deadline = Instant::now() + Duration::from_secs(12);
    for app in &apps {
        loop {
            let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
            if metrics.lines().any(|l| l == "ivr_auth_servers 3") {
                break;
            }
            assert!(Instant::now() < deadline, "servers never counted to 3");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    (db, apps)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_hold_across_nodes_and_expiry_runs_once() {
    let (_db, apps) = in_process_nodes(Arc::new(|a| {
        a.phone_rate_limit = Some(2);
        a.rate_limit = Some(6);
    }))
    .await;
    let register = |n: usize, body: Value| apps[n % 3].register_as(&apps[n % 3].tenant, body);
    // Per number: two registrations in 10 minutes, whichever nodes take them.
    let mut accepted = 0;
    for n in 0..6 {
        let resp = register(n, json!({ "phone_number": PHONE, "mode": "inbound" })).await;
        match resp.status().as_u16() {
            201 => accepted += 1,
            429 => assert!(resp.text().await.unwrap().contains("phone_number")),
            other => panic!("{other}"),
        }
    }
    assert_eq!(accepted, 2, "the per-number limit counts across nodes");
    // Per tenant: 6 requests a second for the service, not 6 per node. Each of
    // the 3 live nodes allows its share, 6 / 3 = 2, as a burst and then one more
    // every 500 ms (src/limits.rs: `share`, `Limiter::new`). Every answer is 404
    // (allowed: the id does not exist) or 429 with a Retry-After, nothing else.
    tokio::time::sleep(Duration::from_millis(1100)).await; // the registrations above used the burst; let it refill
    let started = Instant::now();
    let mut ok = 0;
    for n in 0..18 {
        let app = &apps[n % 3];
        let resp = app.get_as(&app.tenant, "0192aaaa-0000-7000-8000-000000000000").await;
        match resp.status().as_u16() {
            404 => ok += 1,
            429 => {
                let retry = resp.headers().get("Retry-After").map(|v| v.to_str().unwrap().to_owned());
                let secs: u64 = retry.as_deref().unwrap_or_else(|| panic!("429 without Retry-After")).parse().unwrap();
                assert!(secs <= 1, "Retry-After {secs} s for a limit per second");
            }
            other => panic!("request {n}: {other}, expected 404 or 429"),
        }
    }
    // Each node refills one every 500 ms, so a slow loop may see a few more.
    let refills = 3 * (started.elapsed().as_millis() / 500) as usize;
    assert!(
        (6..=6 + refills).contains(&ok),
        "{ok} of 18 requests passed a limit of 6 a second over 3 nodes in {:?}",
        started.elapsed()
    );

    // Every node's sweeper expires what is overdue; each request ends (and is told) once.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let sink = CallbackSink::start().await;
    let mut ids = Vec::new();
    for n in 0..12 {
        let body = json!({ "phone_number": format!("+8190{:08}", 30_000_000 + n), "mode": "inbound", "callback_url": sink.url });
        let resp = register(n, body).await;
        assert_eq!(resp.status(), 201);
        ids.push(resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
        tokio::time::sleep(Duration::from_millis(170)).await; // under the tenant limit
    }
    for app in &apps {
        app.clock.as_ref().unwrap().advance(chrono::Duration::minutes(6));
    }
    sink.wait_hits(ids.len(), Duration::from_secs(15)).await;
    // A second delivery would need a second expiry, which commits its callback
    // job in the same transaction: wait until every request is stored as
    // expired and the outbox (shared by all nodes) holds no callback job, so
    // whatever was enqueued has been delivered.
    let store = apps[0].store().await;
    for id in &ids {
        let uuid = uuid::Uuid::parse_str(id).unwrap();
        wait_until("the expiry stored", Duration::from_secs(10), || async {
            let stored = store.request(uuid).await.unwrap().unwrap();
            (stored.status == ivr_auth::domain::status::Status::Expired).then_some(())
        })
        .await;
    }
    apps[0].wait_outbox_empty("callback").await;
    let hits = sink.hits.lock().unwrap().clone();
    for id in &ids {
        let told = hits.iter().filter(|(_, body)| body.contains(id.as_str())).count();
        assert_eq!(told, 1, "request {id} was told {told} times");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_server_says_how_many_share_the_database_and_a_simulator_among_them_is_warned() {
    let db = TestDb::new(Backend::Postgres).await;
    let first = spawn_proc(&db.url, &[]);
    let _second = spawn_proc(&db.url, &[]);
    let third = spawn_proc(&db.url, &[]);
    let log = third.log.lock().unwrap().clone();
    assert!(log.contains("servers on this database changed servers=3"), "the third, as it joins:\n{log}");
    assert!(log.contains("WARN") && log.contains("runs the simulator"), "{log}");
    // The first learns of the others at its next heartbeat (every 5 s).
    let started = Instant::now();
    while !first.log.lock().unwrap().contains("servers on this database changed servers=3") {
        assert!(started.elapsed() < Duration::from_secs(15), "{}", first.log.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = first.log.lock().unwrap().clone();
    assert!(!log.contains("servers=1"), "a server alone says nothing: {log}");
    assert!(log.contains("runs the simulator"), "{log}");
}
