//! The servers under load: `ivr-auth serve` child processes, their tenant, and their CPU time.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{ACCOUNT_SID, AUTH_TOKEN, CALLER_ID, INBOUND, PUBLIC, SECRET_KEY, ServerArgs};

/// A server child process, killed when dropped.
pub(super) struct Server {
    child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        // A child already reaped (`kill9`) is not signalled again: its pid
        // may belong to another process by now.
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        }
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(super) fn cpu_seconds(&self) -> Option<f64> {
        process_cpu_seconds(self.child.id())
    }

    /// Peak resident set size (VmHWM) in MB, from /proc.
    pub fn peak_rss_mb(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    }
}

/// CPU seconds process `pid` has used so far (user + system), from /proc.
pub(super) fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces) end with ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clock_ticks_per_second())
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU seconds used so far by all the servers.
pub(super) fn servers_cpu(servers: &[Server]) -> Option<f64> {
    servers.iter().map(Server::cpu_seconds).sum()
}

impl ServerArgs {
    /// The database URL: `--database-url`, else a new SQLite file in `dir`;
    /// checked against `--nodes` (SQLite has one server per file).
    pub(super) fn database(&self, dir: &std::path::Path) -> Result<String, String> {
        let db_url =
            self.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", dir.join("bench.db").display()));
        if self.nodes == 0 || (self.nodes > 1 && !db_url.starts_with("postgres")) {
            return Err("--nodes: 1, or more with a postgres:// --database-url (SQLite has one server per file)".into());
        }
        Ok(db_url)
    }
}

/// The bench's call budgets, a minute and a day: on, never spent.
const BENCH_BUDGET: &str = "4000000000";

/// Starts `ivr-auth serve` on `db_url` with the bench's settings, then `extra_env`
/// (a bench's own), then `--server-env` (the operator's, which wins).
pub(super) fn start_server(
    args: &ServerArgs,
    db_url: &str,
    double_base: &str,
    extra_env: &[(&str, &str)],
) -> Result<Server, String> {
    let mut cmd = Command::new(server_bin(args)?);
    cmd.arg("serve")
        .env("IVR_AUTH_LISTEN", "127.0.0.1:0")
        .env("IVR_AUTH_DATABASE_URL", db_url)
        .env("IVR_AUTH_PROVIDER", "twilio")
        .env("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
        .env("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
        .env("TWILIO_API_BASE", double_base)
        .env("IVR_AUTH_CALLER_ID", CALLER_ID)
        .env("IVR_AUTH_PUBLIC_URL", PUBLIC)
        .env("IVR_AUTH_SECRET_KEY", SECRET_KEY)
        .env("IVR_AUTH_INBOUND_NUMBER", INBOUND)
        .env("IVR_AUTH_RATE_LIMIT", "0")
        // The registration limits are counted as with the defaults: the
        // per-number limits are left at theirs (each lifecycle has a number of
        // its own, so they never refuse one), and the call budgets are on, but
        // high enough that the bench's rate is not refused.
        .env("IVR_AUTH_TENANT_CALLS_PER_MINUTE", BENCH_BUDGET)
        .env("IVR_AUTH_TENANT_CALLS_PER_DAY", BENCH_BUDGET)
        .env("IVR_AUTH_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd.envs(extra_env.iter().copied());
    for kv in &args.server_env {
        let (k, v) = kv.split_once('=').ok_or_else(|| format!("--server-env {kv}: expected NAME=VALUE"))?;
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot start the server: {e}"))?;
    let stdout = child.stdout.take().ok_or("no server stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("ivr-auth is listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let base = rx.recv_timeout(Duration::from_secs(120)).map_err(|_| "the server did not start".to_owned())?;
    Ok(Server { child, base })
}

/// Creates the bench's tenant with the server binary itself, so that the
/// database's schema is the one that binary knows (an older build in an A/B run).
pub(super) fn create_tenant(args: &ServerArgs, db_url: &str) -> Result<String, String> {
    let name = format!("bench-{}", uuid::Uuid::now_v7().simple());
    let out = Command::new(server_bin(args)?)
        .args(["tenant", "create", &name])
        .env("IVR_AUTH_DATABASE_URL", db_url)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run tenant create: {e}"))?;
    if !out.status.success() {
        return Err(format!("tenant create failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    v["api_key"].as_str().map(str::to_owned).ok_or_else(|| "tenant create printed no key".into())
}

pub(super) fn server_bin(args: &ServerArgs) -> Result<PathBuf, String> {
    match &args.server_bin {
        Some(b) => Ok(b.clone()),
        None => std::env::current_exe().map_err(|e| e.to_string()),
    }
}

/// GET /healthz at the same concurrency: the requests answered and the seconds they took.
pub(super) async fn healthz(http: &reqwest::Client, base: &str, concurrency: usize, seconds: f64) -> (u64, f64) {
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let url = format!("{base}/healthz");
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, url) = (http.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                if let Ok(r) = http.get(&url).send().await
                    && r.status() == 200
                    && r.bytes().await.is_ok()
                {
                    n += 1;
                }
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    (total, started.elapsed().as_secs_f64())
}

/// The servers' store write and commit counters, summed (`None` if a server has none: an older build).
pub(super) async fn store_counters(http: &reqwest::Client, servers: &[Server]) -> Option<(f64, f64)> {
    let mut total = (0.0, 0.0);
    for s in servers {
        let text = http.get(format!("{}/metrics", s.base)).send().await.ok()?.text().await.ok()?;
        let value =
            |name: &str| text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse::<f64>().ok()));
        total.0 += value("ivr_auth_store_writes ")?;
        total.1 += value("ivr_auth_store_commits ")?;
    }
    Some(total)
}
