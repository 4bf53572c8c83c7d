//! The server as a separate process: restarts, SIGKILL, and what it writes to its logs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;
use crate::procs::spawn_proc;

async fn setup() -> (Arc<TestDb>, String, Tenant) {
    let db = Arc::new(TestDb::new(Backend::of_run()).await);
    let tenant = create_tenant(&db.url, "acme").await;
    let url = db.url.clone();
    (db, url, tenant)
}

/// The settings of a server whose provider is `double`, and `extra`.
fn twilio_at<'a>(double: &'a ProviderDouble, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("IVR_AUTH_PROVIDER", "twilio"),
        ("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000000"),
        ("TWILIO_API_BASE", double.base.as_str()),
        ("IVR_AUTH_CALLER_ID", "+815011112222"),
    ];
    env.extend_from_slice(extra);
    env
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pending_call_job_resumes_after_a_restart() {
    let (dir, db_url, tenant) = setup().await;
    let double = ProviderDouble::start().await;
    for _ in 0..50 {
        double.then(503, r#"{"message": "down"}"#);
    }
    // With PostgreSQL a new server does not free the leases of the old one
    // (it cannot know it is dead): the job is taken over when its lease ends.
    let twilio = twilio_at(&double, &[("IVR_AUTH_JOB_LEASE_SECONDS", "3")]);
    let mut first = spawn_proc(&db_url, &twilio);
    let http = http();
    let resp = http
        .post(format!("{}/v1/auth-requests", first.base))
        .bearer_auth(&tenant.api_key)
        .json(&json!({ "phone_number": PHONE, "ttl_seconds": 600 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    double.wait_calls(2).await; // placed, refused with 503, retried
    first.kill9();
    let tried = double.count();
    double.script.lock().unwrap().clear(); // the provider is back

    let second = spawn_proc(&db_url, &twilio);
    double.wait_calls(tried + 1).await;
    let app = TestApp::attach(second.base.clone(), tenant, dir);
    app.wait_status(&id, "calling").await;
    assert_eq!(param(&double.call(double.count() - 1), "To"), [PHONE]);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_registrations_loses_nothing_acknowledged() {
    let (dir, db_url, tenant) = setup().await;
    let mut server = spawn_proc(&db_url, &[]);
    let acked = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    ivr_auth::install_tls_provider();
    ivr_auth::install_tls_provider();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let mut tasks = Vec::new();
    for worker in 0..16u32 {
        let (http, base, key, acked) = (http.clone(), server.base.clone(), tenant.api_key.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0u32.. {
                let external = format!("w{worker}-{n}");
                let mode = if n % 2 == 0 { "inbound" } else { "outbound" };
                let sent = http
                    .post(format!("{base}/v1/auth-requests"))
                    .bearer_auth(&key)
                    .json(&json!({ "phone_number": PHONE, "mode": mode, "external_id": external }))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 201 => {
                        let v: Value = match r.json().await {
                            Ok(v) => v,
                            Err(_) => return,
                        };
                        acked.lock().unwrap().push((v["id"].as_str().unwrap().to_owned(), external));
                    }
                    _ => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill9();
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 50, "only {} registrations before the kill", acked.len());

    if dir.backend == Backend::Sqlite {
        let path = db_url.strip_prefix("sqlite://").unwrap();
        let db = ivr_auth::store::sqlite::SqliteStore::open(
            std::path::Path::new(path),
            ivr_auth::store::OpenOptions::new(ivr_auth::store::Role::Cli),
        )
        .await
        .unwrap();
        assert_eq!(db.integrity_check().await.unwrap(), "ok");
    }
    let restarted = spawn_proc(&db_url, &[]);
    for (id, external) in &acked {
        let v: Value = http
            .get(format!("{}/v1/auth-requests/{id}", restarted.base))
            .bearer_auth(&tenant.api_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["external_id"].as_str(), Some(external.as_str()), "acknowledged request {id} lost");
    }
    eprintln!("{} acknowledged registrations all present after SIGKILL", acked.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_gracefully() {
    let (_dir, db_url, _tenant) = setup().await;
    let mut server = spawn_proc(&db_url, &[]);
    let status = server.sigterm();
    assert!(status.success(), "{status:?}: {}", server.log.lock().unwrap());
    // The log reader may not have read the last line when the process is reaped.
    let log = server.log.clone();
    wait_until("the stop logged", Duration::from_secs(5), || async {
        log.lock().unwrap().contains("ivr-auth stopped").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_never_show_codes_keys_or_full_phone_numbers() {
    let (dir, db_url, tenant) = setup().await;
    let server = spawn_proc(&db_url, &[("IVR_AUTH_LOG", "debug"), ("IVR_AUTH_GATHER_TIMEOUT", "1")]);
    let app = TestApp::attach(server.base.clone(), tenant.clone(), dir);
    let sink = CallbackSink::start().await;
    let mut codes = vec!["9182736450".to_owned()];

    // Outbound with a site-chosen code: a wrong attempt, then the right one, with a callback.
    let r = app.register(json!({ "phone_number": "090-1234-5678", "code": codes[0], "callback_url": sink.url })).await;
    let id = r["id"].as_str().unwrap().to_owned();
    let sid = app.sim_answer(&id).await;
    app.sim_keys(&sid, "1111111111").await;
    app.wait_for(&id, "a wrong attempt", |v| v["attempts"] == 1).await;
    app.sim_keys(&sid, &codes[0]).await;
    sink.wait_hits(1, Duration::from_secs(10)).await;
    // Inbound with a generated code.
    let r = app.register(json!({ "phone_number": "+81 90 1234 5678", "mode": "inbound", "code_length": 10 })).await;
    codes.push(r["code"].as_str().unwrap().to_owned());
    let call = app.sim_dial(PHONE).await;
    app.sim_keys(call["sid"].as_str().unwrap(), &codes[1]).await;
    app.wait_status(r["id"].as_str().unwrap(), "verified").await;
    // Failures: a bad key, a forged webhook, a withheld caller, an unknown caller.
    let bad_key = Tenant { api_key: format!("{}x", tenant.api_key), ..tenant.clone() };
    assert_eq!(app.get_as(&bad_key, &id).await.status(), 401);
    let (forged, _) = app.raw_webhook("/webhooks/twilio/voice/inbound", &[("From", PHONE)], Some("forged")).await;
    assert_eq!(forged, 403);
    for from in ["anonymous", "+819087654321"] {
        let call = app.sim_dial(from).await;
        app.sim_wait_state(call["sid"].as_str().unwrap(), "completed").await;
    }

    let log = server.log.lock().unwrap().clone();
    assert!(log.contains("auth request registered"), "logging is on: {log}");
    assert!(log.contains("********5678"), "numbers appear masked");
    // The key is `<prefix>_<16 hex key id>_<secret>`; the secret (base64url) may hold `_` itself.
    let (_key_id, secret_half) = tenant.api_key.strip_prefix("ivr_").unwrap().split_once('_').unwrap();
    let secrets = [
        tenant.api_key.as_str(),
        secret_half,
        tenant.callback_secret.as_str(),
        tenant.callback_secret.trim_start_matches("whsec_"),
        AUTH_TOKEN,
        PHONE,
        "9012345678",
        "090-1234-5678",
        "9087654321",
        "+81 90 1234 5678",
    ];
    for s in secrets.iter().copied().chain(codes.iter().map(String::as_str)) {
        assert!(!log.contains(s), "the log contains {s:?}:\n{log}");
    }
}

/// The errors the jobs table holds, read straight from the database.
async fn stored_job_errors(db: &TestDb) -> Vec<String> {
    let sql = "SELECT last_error FROM jobs WHERE last_error IS NOT NULL";
    match db.backend {
        Backend::Sqlite => {
            let conn = rusqlite::Connection::open(db.url.strip_prefix("sqlite://").unwrap()).unwrap();
            let mut query = conn.prepare(sql).unwrap();
            query.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect()
        }
        Backend::Postgres => {
            let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            client.query(sql, &[]).await.unwrap().iter().map(|row| row.get(0)).collect()
        }
    }
}

/// Issue 13, item 6: Twilio's 21211 quotes the number it refused; what the
/// jobs log and store of a provider's words has the number masked.
#[tokio::test(flavor = "multi_thread")]
async fn a_provider_s_error_text_is_logged_and_stored_with_its_numbers_masked() {
    let (dir, db_url, tenant) = setup().await;
    let double = ProviderDouble::start().await;
    double.then(400, r#"{"code": 21211, "message": "The 'To' number +819012345678 is not a valid phone number."}"#);
    for _ in 0..50 {
        double.then(503, r#"{"code": 20503, "message": "Unavailable: To +81 90-1234-5678"}"#);
    }
    let twilio = twilio_at(&double, &[("IVR_AUTH_LOG", "debug")]);
    let server = spawn_proc(&db_url, &twilio);
    let app = TestApp::attach(server.base.clone(), tenant, dir.clone());
    let refused = app.register(json!({ "phone_number": PHONE })).await;
    app.wait_status(refused["id"].as_str().unwrap(), "failed").await;
    app.register(json!({ "phone_number": PHONE, "ttl_seconds": 600 })).await;
    double.wait_calls(3).await; // refused; unavailable, retried
    let mut stored = Vec::new();
    for _ in 0..100 {
        stored = stored_job_errors(&dir).await;
        if !stored.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stored.iter().any(|e| e.contains("Unavailable: To ********5678")), "{stored:?}");
    let log = server.log.lock().unwrap().clone();
    assert!(log.contains("The 'To' number ********5678 is not a valid"), "the provider's words are kept: {log}");
    assert!(log.contains("Unavailable: To ********5678"), "{log}");
    for text in stored.iter().chain([&log]) {
        for number in ["9012345678", "90-1234-5678"] {
            assert!(!text.contains(number), "{number} in {text}");
        }
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `ivr-auth serve` (simulator, debug logging) with stdout to a pipe; `reader` decides what
/// becomes of the pipe. Then serves `requests` registrations and must obey SIGTERM with status 0.
async fn survives_stdout(
    requests: usize,
    reader: impl FnOnce(std::process::ChildStdout) -> Option<std::process::ChildStdout>,
) {
    let (_db, db_url, tenant) = setup().await;
    let port = free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ivr-auth"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("IVR_AUTH_LISTEN", format!("127.0.0.1:{port}"))
        .env("IVR_AUTH_DATABASE_URL", &db_url)
        .env("IVR_AUTH_SECRET_KEY", SECRET_KEY)
        .env("IVR_AUTH_INBOUND_NUMBER", INBOUND)
        .env("IVR_AUTH_RATE_LIMIT", "0")
        .env("IVR_AUTH_LOG", "debug")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _held = reader(child.stdout.take().unwrap());
    let base = format!("http://127.0.0.1:{port}");
    // A wedged server fails the test instead of hanging it.
    ivr_auth::install_tls_provider();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let mut up = false;
    for _ in 0..100 {
        if http.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status() == 200) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the server never answered (status {:?})", child.try_wait().unwrap());
    for n in 0..requests {
        let resp = http
            .post(format!("{base}/v1/auth-requests"))
            .bearer_auth(&tenant.api_key)
            .json(&json!({ "phone_number": PHONE, "mode": "inbound", "external_id": format!("x{n}") }))
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {n} while stdout goes nowhere: {e}"));
        assert_eq!(resp.status(), 201, "request {n} while stdout goes nowhere");
    }
    let _ = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let exited = tokio::task::spawn_blocking(move || {
        for _ in 0..150 {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        None
    })
    .await
    .unwrap();
    let status = exited.expect("SIGTERM was not obeyed within 15 s");
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stdout_whose_reader_went_away_neither_stops_nor_wedges_the_server() {
    // As `ivr-auth serve | head -1`: the reader takes a line and exits, before the address is printed.
    survives_stdout(200, |out| {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).unwrap();
        None
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stdout_nobody_reads_neither_stops_nor_wedges_the_server() {
    // The pipe stays open and fills up: 3,000 registrations log far more than the 64 KiB a pipe holds.
    survives_stdout(3000, Some).await;
}

/// What `ivr-auth serve` printed when it refused to start.
struct Refusal {
    stdout: String,
    stderr: String,
}

/// Runs `ivr-auth serve` with only `env` (and `args`) and expects it to exit
/// non-zero within 20 s, never having started.
fn refused_start(args: &[&str], env: &[(&str, &str)]) -> Refusal {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ivr-auth"))
        .arg("serve")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("IVR_AUTH_DATABASE_URL", format!("sqlite://{}/ivr.db", dir.path().display()))
        .envs(env.iter().copied())
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if child.try_wait().unwrap().is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let refusal = Refusal {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!out.status.success(), "the server started: {}{}", refusal.stdout, refusal.stderr);
    assert!(!dir.path().join("ivr.db").exists(), "a refused start touched the database");
    refusal
}

impl Refusal {
    /// The one line on stderr, with nothing else printed (no runtime or panic noise).
    fn line(&self) -> &str {
        assert_eq!(self.stdout, "", "nothing on stdout");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line on stderr:\n{}", self.stderr);
        assert!(!self.stderr.contains("panicked") && !self.stderr.contains("untime"), "{}", self.stderr);
        lines[0]
    }
}

#[test]
fn a_port_in_use_names_the_address_and_the_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let refusal = refused_start(&[], &[("IVR_AUTH_LISTEN", &addr)]);
    assert_eq!(
        refusal.line(),
        format!(
            "ivr-auth: cannot listen on {addr}: the address is in use (by another ivr-auth or another program); \
             set IVR_AUTH_LISTEN (or --listen) to another address"
        )
    );
}

#[test]
fn twilio_without_its_settings_names_them_all_at_once() {
    let refusal = refused_start(&[], &[("IVR_AUTH_PROVIDER", "twilio")]);
    let line = refusal.line();
    for name in ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "IVR_AUTH_CALLER_ID"] {
        assert!(line.contains(name), "{name} is named: {line}");
    }
}

#[test]
fn a_toml_error_points_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ivr-auth.toml");
    // A wrong type in the middle of line 3, and a misspelt key at the start of line 3.
    std::fs::write(&file, "# ivr-auth settings\nlisten = \"127.0.0.1:0\"\ngather_timeout = \"ten\"\n").unwrap();
    let refusal = refused_start(&["--config", file.to_str().unwrap()], &[]);
    let line = refusal.line();
    assert!(line.starts_with(&format!("ivr-auth: configuration error: --config: {}:3:18: ", file.display())), "{line}");
    std::fs::write(&file, "# ivr-auth settings\nlisten = \"127.0.0.1:0\"\ngather_timout = 5\n").unwrap();
    let refusal = refused_start(&["--config", file.to_str().unwrap()], &[]);
    let line = refusal.line();
    let at = format!("ivr-auth: configuration error: --config: {}:3:1: unknown field `gather_timout`", file.display());
    assert!(line.starts_with(&at), "{line}");
}

#[test]
fn a_malformed_number_or_boolean_in_the_environment_names_the_variable() {
    let refusal = refused_start(&[], &[("IVR_AUTH_GATHER_TIMEOUT", "abc")]);
    assert_eq!(
        refusal.line(),
        "ivr-auth: configuration error: IVR_AUTH_GATHER_TIMEOUT (or --gather-timeout) (\"abc\"): \
         must be a whole number of 0 or more"
    );
    let refusal = refused_start(&[], &[("IVR_AUTH_ALLOW_PRIVATE_CALLBACKS", "yes")]);
    assert!(refusal.line().starts_with("ivr-auth: configuration error: IVR_AUTH_ALLOW_PRIVATE_CALLBACKS"));
}

#[tokio::test(flavor = "multi_thread")]
async fn twilio_is_warned_when_it_cannot_reach_the_public_url_or_it_is_not_https() {
    let (_db, db_url, _tenant) = setup().await;
    let twilio = [
        ("IVR_AUTH_PROVIDER", "twilio"),
        ("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000000"),
        ("IVR_AUTH_CALLER_ID", "+815011112222"),
    ];
    let mut local = spawn_proc(&db_url, &twilio);
    local.sigterm();
    let log = local.log.lock().unwrap().clone();
    assert!(log.contains("which the provider cannot reach"), "{log}");
    // Only our own lines: not actix-server's narration of its runtime and workers.
    assert!(!log.contains("runtime found") && !log.contains("workers"), "{log}");
    let plain = [&twilio[..], &[("IVR_AUTH_PUBLIC_URL", "http://ivr.example.com")]].concat();
    let mut plain = spawn_proc(&db_url, &plain);
    plain.sigterm();
    let log = plain.log.lock().unwrap().clone();
    assert!(log.contains("provider webhooks should use https://"), "{log}");
    assert!(!log.contains("cannot reach"), "{log}");
}

#[test]
fn a_log_filter_that_names_no_level_is_refused() {
    // `verbose` parses as a target, which would silence every line the server writes.
    let refusal = refused_start(&[], &[("IVR_AUTH_LOG", "verbose")]);
    let line = refusal.line();
    assert!(line.starts_with("ivr-auth: configuration error: IVR_AUTH_LOG (\"verbose\"): "), "{line}");
    assert!(line.contains("debug") && line.contains("trace"), "the accepted levels: {line}");
    let refusal = refused_start(&[], &[("IVR_AUTH_LOG", "info,ivr_auth=loud")]);
    assert!(refusal.line().contains("IVR_AUTH_LOG"), "{}", refusal.line());
}

#[test]
fn postgres_start_up_errors_give_the_server_s_words_and_the_address_tried() {
    let admin = url::Url::parse(&crate::db::admin_url()).unwrap();
    let (host, port) = (admin.host_str().unwrap().to_owned(), admin.port().unwrap_or(5432));
    let key = [("IVR_AUTH_SECRET_KEY", SECRET_KEY)];
    let mut missing = admin.clone();
    missing.set_path("ivr_auth_no_such_database");
    let refusal = refused_start(&[], &[&key[..], &[("IVR_AUTH_DATABASE_URL", missing.as_str())]].concat());
    let line = refusal.line();
    assert!(line.contains(&format!("PostgreSQL at {host}:{port}")), "{line}");
    assert!(line.contains("database \"ivr_auth_no_such_database\" does not exist"), "{line}");
    let mut nobody = admin.clone();
    nobody.set_username("ivr_auth_no_such_role").unwrap();
    let line =
        refused_start(&[], &[&key[..], &[("IVR_AUTH_DATABASE_URL", nobody.as_str())]].concat()).line().to_owned();
    assert!(line.contains("role \"ivr_auth_no_such_role\" does not exist"), "{line}");
    let mut closed = admin;
    let free = free_port();
    closed.set_port(Some(free)).unwrap();
    closed.set_password(Some("s3cret-pw")).unwrap();
    let line =
        refused_start(&[], &[&key[..], &[("IVR_AUTH_DATABASE_URL", closed.as_str())]].concat()).line().to_owned();
    assert!(line.contains(&format!("PostgreSQL at {host}:{free}")) && line.contains("refused"), "{line}");
    assert!(!line.contains("s3cret-pw"), "no password: {line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_notices_are_not_logged_as_the_server_s_lines() {
    let db = TestDb::new(Backend::Postgres).await;
    create_tenant(&db.url, "acme").await; // the schema exists: `IF NOT EXISTS` notices follow
    let mut server = spawn_proc(&db.url, &[("IVR_AUTH_LOG", "info")]);
    server.sigterm();
    let log = server.log.lock().unwrap().clone();
    assert!(!log.contains("NOTICE") && !log.contains("already exists"), "{log}");
}
