//! Test harness: the real server on an ephemeral port with its own database,
//! a provider double for `twilio` mode, a callback receiver, signed webhooks.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use ivr_auth::cli::{DbArgs, TenantAction};
use ivr_auth::clock::ShiftedClock;
use ivr_auth::config::{ServeArgs, Settings};
use ivr_auth::startup::Application;
use ivr_auth::store::Store;
use serde_json::{Value, json};

pub use crate::db::{Backend, TestDb};

pub const AUTH_TOKEN: &str = "test-auth-token-0123456789";
pub const SECRET_KEY: &str = "test-secret-key-shared-by-every-node-0123";
pub const INBOUND: &str = "+81312345678";
pub const PHONE: &str = "+819012345678";

/// A tenant's credentials as `tenant create` printed them.
#[derive(Clone, Debug)]
pub struct Tenant {
    pub tenant_id: String,
    pub api_key: String,
    pub callback_secret: String,
}

/// A running server.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub tenant: Tenant,
    pub db: Arc<TestDb>,
    pub public_url: String,
    /// The server's clock, when the server runs in this process.
    pub clock: Option<Arc<ShiftedClock>>,
}

/// Changes to the settings a test needs.
pub type Configure = Arc<dyn Fn(&mut ServeArgs) + Send + Sync>;

/// How to start it.
#[derive(Clone)]
pub struct Opts {
    /// `None`: simulator; `Some(url)`: twilio provider at this API base.
    pub twilio_api: Option<String>,
    pub gather_timeout: u32,
    pub public_url: Option<String>,
    pub voice_prompts_dir: Option<PathBuf>,
    /// Any other setting.
    pub configure: Option<Configure>,
    /// Reach the test database by another URL (e.g. through a proxy).
    pub database_url: Option<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            twilio_api: None,
            gather_timeout: 10,
            public_url: None,
            voice_prompts_dir: None,
            configure: None,
            database_url: None,
        }
    }
}

pub fn args(opts: &Opts, db_url: &str) -> ServeArgs {
    let mut a = ServeArgs {
        listen: Some("127.0.0.1:0".into()),
        database_url: Some(opts.database_url.clone().unwrap_or_else(|| db_url.into())),
        public_url: opts.public_url.clone(),
        provider: Some(if opts.twilio_api.is_some() { "twilio" } else { "simulator" }.into()),
        twilio_account_sid: Some("AC00000000000000000000000000000000".into()),
        twilio_auth_token: Some(AUTH_TOKEN.into()),
        twilio_api_base: opts.twilio_api.clone(),
        caller_id: Some("+815011112222".into()),
        inbound_number: Some(INBOUND.into()),
        allow_private_callbacks: Some(true),
        secret_key: Some(SECRET_KEY.into()),
        database_max_connections: Some(4),
        gather_timeout: Some(opts.gather_timeout),
        rate_limit: Some(0),
        phone_rate_limit: Some(0),
        phone_rate_limit_server: Some(0),
        // Many tests register hundreds of calls a minute; the budgets have their own tests.
        tenant_calls_per_minute: Some(0),
        voice_prompts_dir: opts.voice_prompts_dir.clone(),
        call_end_grace_ms: Some(300),
        simulator_pacing: Some(false),
        ..Default::default()
    };
    if let Some(configure) = &opts.configure {
        configure(&mut a);
    }
    a
}

/// An HTTP client for tests (after the TLS provider is installed).
pub fn http() -> reqwest::Client {
    ivr_auth::install_tls_provider();
    reqwest::Client::new()
}

pub async fn create_tenant(db_url: &str, name: &str) -> Tenant {
    let db = DbArgs { database_url: Some(db_url.into()) };
    let out = ivr_auth::cli::tenant(&db, None, TenantAction::Create { name: name.into() }).await.unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    Tenant {
        tenant_id: v["tenant_id"].as_str().unwrap().into(),
        api_key: v["api_key"].as_str().unwrap().into(),
        callback_secret: v["callback_secret"].as_str().unwrap().into(),
    }
}

/// `ivr-auth tenant set NAME --inbound-number NUMBER`.
pub async fn set_inbound_number(db_url: &str, name: &str, number: &str) {
    tenant_set(db_url, name, |a| a.inbound_number = Some(number.into())).await.unwrap();
}

/// `ivr-auth tenant set NAME …` with the options `set` gives.
pub async fn tenant_set(
    db_url: &str,
    name: &str,
    set: impl FnOnce(&mut ivr_auth::cli::SetArgs),
) -> Result<String, ivr_auth::cli::CliError> {
    let db = DbArgs { database_url: Some(db_url.into()) };
    let mut args = ivr_auth::cli::SetArgs { name: name.into(), ..Default::default() };
    set(&mut args);
    ivr_auth::cli::tenant(&db, None, TenantAction::Set(args)).await
}

pub async fn spawn_app() -> TestApp {
    spawn_with(Opts::default()).await
}

/// A server in this process on a fresh database of the run's backend, with tenant "acme".
pub async fn spawn_with(opts: Opts) -> TestApp {
    let db = Arc::new(TestDb::new(Backend::of_run()).await);
    spawn_on(opts, db).await
}

/// A server in this process on `db`, with tenant "acme".
pub async fn spawn_on(opts: Opts, db: Arc<TestDb>) -> TestApp {
    let mut app = spawn_as(opts, db.clone(), None).await;
    app.tenant = create_tenant(&db.url, "acme").await;
    app
}

/// A server in this process on `db`, acting for `tenant` (one that exists), or for nobody yet.
pub async fn spawn_as(opts: Opts, db: Arc<TestDb>, tenant: Option<Tenant>) -> TestApp {
    let settings = Settings::from_args(args(&opts, &db.url)).unwrap();
    let clock = Arc::new(ShiftedClock::default());
    let app = Application::build_with_clock(settings, clock.clone()).await.unwrap();
    let base = app.base_url().to_owned();
    tokio::spawn(app.run_until_stopped());
    let tenant =
        tenant.unwrap_or(Tenant { tenant_id: String::new(), api_key: String::new(), callback_secret: String::new() });
    let public_url = opts.public_url.clone().unwrap_or_else(|| base.clone());
    TestApp { base, http: http(), tenant, db, public_url, clock: Some(clock) }
}

impl TestApp {
    /// A handle on a server started elsewhere (e.g. a child process) on `db`.
    pub fn attach(base: String, tenant: Tenant, db: Arc<TestDb>) -> Self {
        TestApp { public_url: base.clone(), base, http: http(), tenant, db, clock: None }
    }

    pub fn db_url(&self) -> &str {
        &self.db.url
    }

    /// The server's store, opened beside it: what is stored, whatever the backend.
    pub async fn store(&self) -> Arc<dyn Store> {
        self.db.store().await
    }

    /// The stored row of request `id` (no expiry applied, unlike the API).
    pub async fn stored(&self, id: &str) -> ivr_auth::domain::request::AuthRequest {
        let uuid = uuid::Uuid::parse_str(id).unwrap();
        self.store().await.request(uuid).await.unwrap().expect("stored request")
    }

    /// Moves the server's clock just past request `id`'s expiry, as if its time had run out.
    pub async fn expire_now(&self, id: &str) {
        let clock = self.clock.as_ref().expect("the server runs in this process");
        let expires_at = self.stored(id).await.expires_at;
        let now = ivr_auth::clock::Clock::now(&**clock);
        clock.advance(expires_at - now + chrono::Duration::milliseconds(1));
    }

    /// Waits until the durable outbox, shared by every server on the database,
    /// holds no job of `kind` (as /metrics counts it): all of them have run.
    pub async fn wait_outbox_empty(&self, kind: &str) {
        let prefix = format!("ivr_auth_job_backlog{{kind=\"{kind}\"}} ");
        wait_until(&format!("no {kind} job waiting"), Duration::from_secs(15), || async {
            let metrics = self.http.get(self.url("/metrics")).send().await.ok()?.text().await.ok()?;
            let waiting: i64 = metrics.lines().find_map(|l| l.strip_prefix(&prefix))?.parse().ok()?;
            (waiting == 0).then_some(())
        })
        .await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn register_as(&self, tenant: &Tenant, body: Value) -> reqwest::Response {
        self.http.post(self.url("/v1/auth-requests")).bearer_auth(&tenant.api_key).json(&body).send().await.unwrap()
    }

    /// Registers and expects 201; returns the body.
    pub async fn register(&self, body: Value) -> Value {
        let resp = self.register_as(&self.tenant, body).await;
        assert_eq!(resp.status(), 201, "{:?}", resp.text().await);
        resp.json().await.unwrap()
    }

    pub async fn get_as(&self, tenant: &Tenant, id: &str) -> reqwest::Response {
        self.http.get(self.url(&format!("/v1/auth-requests/{id}"))).bearer_auth(&tenant.api_key).send().await.unwrap()
    }

    pub async fn get(&self, id: &str) -> Value {
        let resp = self.get_as(&self.tenant, id).await;
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    /// `POST /v1/auth-requests/{id}/check` with `body`, as the app's tenant.
    pub async fn check(&self, id: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/v1/auth-requests/{id}/check")))
            .bearer_auth(&self.tenant.api_key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// The text messages the simulator delivered to `to`, newest first.
    pub async fn sim_messages(&self, to: &str) -> Vec<Value> {
        let url = self.url(&format!("/simulator/messages?to={}", to.replace('+', "%2B")));
        let v: Value = self.http.get(url).send().await.unwrap().json().await.unwrap();
        v["messages"].as_array().unwrap().clone()
    }

    pub async fn cancel(&self, id: &str) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/v1/auth-requests/{id}/cancel")))
            .bearer_auth(&self.tenant.api_key)
            .send()
            .await
            .unwrap()
    }

    /// Polls the result API until `pred` holds (10 s at most).
    pub async fn wait_for(&self, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_for_as(&self.tenant, id, what, pred).await
    }

    /// `wait_for`, as `tenant`.
    pub async fn wait_for_as(&self, tenant: &Tenant, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let get = || async {
            let resp = self.get_as(tenant, id).await;
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.unwrap()
        };
        for _ in 0..200 {
            let v = get().await;
            if pred(&v) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}: {}", get().await);
    }

    pub async fn wait_status(&self, id: &str, status: &str) -> Value {
        self.wait_for(id, status, |v| v["status"] == status).await
    }

    // ---- simulator ----

    /// The simulated call of request `id`, once it exists (10 s at most).
    pub async fn sim_call(&self, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..200 {
            let calls: Value = self.http.get(self.url("/simulator/calls")).send().await.unwrap().json().await.unwrap();
            if let Some(c) = calls["calls"].as_array().unwrap().iter().find(|c| c["request_id"] == id && pred(c)) {
                return c.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no simulated call for {id}");
    }

    /// The user dials the inbound number from `from`; returns the new call.
    pub async fn sim_dial(&self, from: &str) -> Value {
        let resp = self.http.post(self.url("/simulator/calls")).json(&json!({ "from": from })).send().await.unwrap();
        assert_eq!(resp.status(), 201);
        resp.json().await.unwrap()
    }

    /// The user dials `to` (a tenant's own inbound number) from `from`.
    pub async fn sim_dial_to(&self, from: &str, to: &str) -> Value {
        self.sim_dial_with(json!({ "from": from, "to": to })).await
    }

    /// The user dials in, as `body` says (`from`, `to`, `stir_verstat`).
    pub async fn sim_dial_with(&self, body: Value) -> Value {
        let resp = self.http.post(self.url("/simulator/calls")).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 201);
        resp.json().await.unwrap()
    }

    pub async fn sim_call_by_sid(&self, sid: &str) -> Value {
        self.http.get(self.url(&format!("/simulator/calls/{sid}"))).send().await.unwrap().json().await.unwrap()
    }

    /// Waits until the call's Gather listens.
    pub async fn sim_wait_gather(&self, sid: &str) -> Value {
        for _ in 0..400 {
            let c = self.sim_call_by_sid(sid).await;
            if c["awaiting_digits"] == true {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("gather never started on {sid}");
    }

    pub async fn sim_post(&self, sid: &str, action: &str, body: Option<Value>) -> reqwest::Response {
        let mut req = self.http.post(self.url(&format!("/simulator/calls/{sid}/{action}")));
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    pub async fn sim_answer(&self, id: &str) -> String {
        let call = self.sim_call(id, |c| c["state"] == "ringing").await;
        let sid = call["sid"].as_str().unwrap().to_owned();
        assert_eq!(self.sim_post(&sid, "answer", None).await.status(), 200);
        sid
    }

    pub async fn sim_keys(&self, sid: &str, digits: &str) {
        self.sim_wait_gather(sid).await;
        let resp = self.sim_post(sid, "digits", Some(json!({ "digits": digits }))).await;
        assert_eq!(resp.status(), 200);
    }

    /// Texts the caller heard, in order.
    pub async fn sim_heard(&self, sid: &str) -> Vec<String> {
        let c = self.sim_call_by_sid(sid).await;
        c["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "say")
            .map(|e| e["text"].as_str().unwrap().to_owned())
            .collect()
    }

    pub async fn sim_wait_state(&self, sid: &str, state: &str) -> Value {
        for _ in 0..200 {
            let c = self.sim_call_by_sid(sid).await;
            if c["state"] == state {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("call {sid} never reached {state}: {}", self.sim_call_by_sid(sid).await);
    }

    // ---- signed webhooks (as the provider sends them) ----

    pub async fn webhook(&self, path: &str, params: &[(&str, &str)]) -> (u16, String) {
        let owned: Vec<(String, String)> = params.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        let signed_url = format!("{}{}", self.public_url, path);
        let sig = ivr_auth::telephony::twilio::signature::sign(AUTH_TOKEN.as_bytes(), &signed_url, &owned);
        self.raw_webhook(path, params, Some(&sig)).await
    }

    pub async fn raw_webhook(&self, path: &str, params: &[(&str, &str)], sig: Option<&str>) -> (u16, String) {
        let mut req = self.http.post(self.url(path)).form(params);
        if let Some(sig) = sig {
            req = req.header("X-Twilio-Signature", sig);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }
}

// ---- a provider double (the provider's REST API) ----

/// A form body, in order.
pub type Params = Vec<(String, String)>;

/// What the double answers to `POST …/Calls.json`, in order; then 201 forever.
#[derive(Clone, Default)]
pub struct ProviderDouble {
    pub base: String,
    pub calls: Arc<Mutex<Vec<Params>>>,
    pub script: Arc<Mutex<Vec<(u16, String)>>>,
    pub ended: Arc<Mutex<Vec<String>>>,
    /// Text messages asked for (`POST …/Messages.json`), in order.
    pub messages: Arc<Mutex<Vec<Params>>>,
    /// The status the double answers messages with (0: 201).
    pub message_status: Arc<Mutex<u16>>,
    /// When each call request arrived, on the double's own clock.
    pub arrivals: Arc<Mutex<Vec<Instant>>>,
}

/// A scripted answer that never comes in time: the client's timeout ends the
/// request, but the call was created (as after a provider's slow answer).
pub const HANG: u16 = 999;

async fn create_message(body: web::Bytes, d: web::Data<ProviderDouble>) -> HttpResponse {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let n = {
        let mut messages = d.messages.lock().unwrap();
        messages.push(params);
        messages.len()
    };
    match *d.message_status.lock().unwrap() {
        0 => HttpResponse::Created().json(json!({ "sid": format!("SM{n:032x}"), "status": "queued" })),
        status => HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
            .json(json!({ "code": 21614, "message": "To number is not a mobile number" })),
    }
}

async fn create_call(req: HttpRequest, body: web::Bytes, d: web::Data<ProviderDouble>) -> HttpResponse {
    let auth_ok = req.headers().get("authorization").is_some();
    let params: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let n = {
        let mut calls = d.calls.lock().unwrap();
        calls.push(params);
        d.arrivals.lock().unwrap().push(Instant::now());
        calls.len()
    };
    let scripted = {
        let mut s = d.script.lock().unwrap();
        if s.is_empty() { None } else { Some(s.remove(0)) }
    };
    match scripted {
        Some((HANG, _)) => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            HttpResponse::Created().json(json!({ "sid": ProviderDouble::sid(n - 1), "status": "queued" }))
        }
        Some((status, body)) => HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
            .content_type("application/json")
            .body(body),
        None if !auth_ok => HttpResponse::Unauthorized().finish(),
        None => HttpResponse::Created().json(json!({ "sid": ProviderDouble::sid(n - 1), "status": "queued" })),
    }
}

/// Whether a request carries the account's HTTP basic credentials (the
/// account sid of its path, the test token), as Twilio checks them.
fn authorized(req: &HttpRequest, account: &str) -> bool {
    use base64::Engine as _;
    let expected =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{account}:{AUTH_TOKEN}")));
    req.headers().get("authorization").is_some_and(|h| h.as_bytes() == expected.as_bytes())
}

/// `GET …/Calls.json?To=…`: the calls to that number, newest first, as Twilio lists them.
async fn list_calls(
    req: HttpRequest,
    account: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
    d: web::Data<ProviderDouble>,
) -> HttpResponse {
    if !authorized(&req, &account) {
        return HttpResponse::Unauthorized().finish();
    }
    let to = query.iter().find(|(k, _)| k == "To").map(|(_, v)| v.clone()).unwrap_or_default();
    let created = chrono::Utc::now().to_rfc2822();
    let calls = d.calls.lock().unwrap();
    let listed: Vec<Value> = calls
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, p)| param(p, "To").contains(&to.as_str()))
        .map(|(i, _)| json!({ "sid": ProviderDouble::sid(i), "to": to, "date_created": created }))
        .collect();
    HttpResponse::Ok().json(json!({ "calls": listed }))
}

async fn end_call(req: HttpRequest, path: web::Path<(String, String)>, d: web::Data<ProviderDouble>) -> HttpResponse {
    if !authorized(&req, &path.0) {
        return HttpResponse::Unauthorized().finish();
    }
    d.ended.lock().unwrap().push(path.1.trim_end_matches(".json").to_owned());
    HttpResponse::Ok().json(json!({}))
}

impl ProviderDouble {
    pub async fn start() -> Self {
        let mut d = ProviderDouble::default();
        let data = web::Data::new(d.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/2010-04-01/Accounts/{acct}/Calls.json", web::post().to(create_call))
                .route("/2010-04-01/Accounts/{acct}/Calls.json", web::get().to(list_calls))
                .route("/2010-04-01/Accounts/{acct}/Calls/{sid}", web::post().to(end_call))
                .route("/2010-04-01/Accounts/{acct}/Messages.json", web::post().to(create_message))
        })
        .workers(2)
        .bind("127.0.0.1:0")
        .unwrap();
        d.base = format!("http://{}", server.addrs()[0]);
        tokio::spawn(server.run());
        d
    }

    /// The sid the double gave the `index`-th call request (if it answered 201).
    pub fn sid(index: usize) -> String {
        format!("CA{:032x}", index + 1)
    }

    /// The sids of the call requests made for request `id` (found by its answer URL).
    pub fn calls_for(&self, id: &str) -> Vec<String> {
        let suffix = format!("/answer/{id}");
        let calls = self.calls.lock().unwrap();
        let placed = calls
            .iter()
            .enumerate()
            .filter(|(_, p)| param(p, "Url").iter().any(|u| u.split('?').next().is_some_and(|u| u.ends_with(&suffix))));
        placed.map(|(i, _)| Self::sid(i)).collect()
    }

    pub fn then(&self, status: u16, body: &str) {
        self.script.lock().unwrap().push((status, body.into()));
    }

    pub fn count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// Parameters of the n-th call request.
    pub fn call(&self, n: usize) -> Vec<(String, String)> {
        self.calls.lock().unwrap()[n].clone()
    }

    pub async fn wait_calls(&self, n: usize) {
        for _ in 0..400 {
            if self.count() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("provider saw {} call requests, expected {n}", self.count());
    }
}

pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    params.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
}

// ---- a site's callback receiver ----

#[derive(Clone, Default)]
pub struct CallbackSink {
    pub url: String,
    /// (signature header, raw body) of each delivery attempt.
    pub hits: Arc<Mutex<Vec<(String, String)>>>,
    /// Statuses to answer, in order; then 200.
    pub script: Arc<Mutex<Vec<u16>>>,
}

async fn receive(req: HttpRequest, body: web::Bytes, s: web::Data<CallbackSink>) -> HttpResponse {
    let sig = req.headers().get("IVR-Auth-Signature").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    s.hits.lock().unwrap().push((sig, String::from_utf8_lossy(&body).into_owned()));
    let status = {
        let mut sc = s.script.lock().unwrap();
        if sc.is_empty() { 200 } else { sc.remove(0) }
    };
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish()
}

impl CallbackSink {
    pub async fn start() -> Self {
        let mut s = CallbackSink::default();
        let data = web::Data::new(s.clone());
        let server = HttpServer::new(move || App::new().app_data(data.clone()).route("/cb", web::post().to(receive)))
            .workers(1)
            .bind("127.0.0.1:0")
            .unwrap();
        s.url = format!("http://{}/cb", server.addrs()[0]);
        tokio::spawn(server.run());
        s
    }

    pub async fn wait_hits(&self, n: usize, within: Duration) -> Vec<(String, String)> {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if self.hits.lock().unwrap().len() >= n {
                return self.hits.lock().unwrap().clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("callback receiver got {} deliveries, expected {n}", self.hits.lock().unwrap().len());
    }
}

/// Checks a callback signature independently of the server's code.
pub fn signature_valid(header: &str, body: &str, secret: &str) -> bool {
    use hmac::{KeyInit, Mac};
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = Some(v.to_owned()),
            Some(("v1", v)) => sigs.push(v.to_owned()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let expected = hex::encode(mac.finalize().into_bytes());
    sigs.contains(&expected)
}

/// Polls `check` until it returns `Some`, every 25 ms, for at most `within`;
/// panics naming `what` if it never does. Tests wait for a condition with
/// this rather than sleeping and hoping.
pub async fn wait_until<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
