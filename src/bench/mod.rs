//! `ivr-auth bench`: a load generator that drives full verification
//! lifecycles against a server on loopback (its own child process by
//! default), with the provider played by an in-process double; and `bench
//! seed`, which fills a database with finished requests.

mod burst;
mod burst_report;
mod client;
mod double;
mod lifecycle;
mod report;
mod seed;
mod server;
mod sip;
mod sip_report;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use rand::RngExt;

use lifecycle::Driver;
use report::{Recorder, Report};
use server::{Server, create_tenant, healthz, process_cpu_seconds, servers_cpu, start_server, store_counters};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Drive full lifecycles and report throughput and latency
    Run(RunArgs),
    /// Fill a database with finished requests (for the scale target)
    Seed(seed::SeedArgs),
    /// Register a burst of outbound requests against two paced accounts; count
    /// the calls per 10-second window and any request lost or placed twice
    Burst(burst::BurstArgs),
    /// Hold N calls on our own SIP trunk (IVR_AUTH_PROVIDER=sip) with SIPp; report
    /// the RTP send interval, CPU per call-second and how many verified, per level
    Sip(sip::SipBenchArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Lifecycles in flight at once
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds of measured load (after the warm-up)
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of unmeasured load first
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Run exactly this many lifecycles (all measured, no warm-up) instead of
    /// `--duration`: for counting instructions per lifecycle (docs/profiling.md)
    #[arg(long, conflicts_with_all = ["duration", "kill_after"])]
    pub lifecycles: Option<u64>,
    /// Share of inbound lifecycles, 0–1
    #[arg(long, default_value_t = 0.0)]
    pub inbound_share: f64,
    /// Share of lifecycles that type a wrong code first, 0–1
    #[arg(long, default_value_t = 0.0)]
    pub wrong_share: f64,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Seconds of the /healthz comparison run
    #[arg(long, default_value_t = 3.0)]
    pub healthz_seconds: f64,
    /// Write the report as JSON here (`-` for stdout)
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Exit non-zero if any lifecycle failed (for CI smoke runs)
    #[arg(long)]
    pub fail_on_error: bool,
    /// Pause between the steps of a lifecycle, in ms (on average; ±50%): real
    /// calls spend seconds ringing and speaking, so many are in flight at a
    /// modest request rate. 0 = back to back (throughput).
    #[arg(long, default_value_t = 0)]
    pub think_ms: u64,
    /// HTTP requests (and so connections) the generator has open to the server at most
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Durability check: SIGKILL the server this many seconds into the measured
    /// run, restart it on the same database, and look up every acknowledged request
    #[arg(long)]
    pub kill_after: Option<f64>,
}

/// The servers a bench starts: their database, how many, which binary, and extra environment.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Database of the servers the bench starts (default: a new SQLite file in a
    /// temp dir; `postgres://…` to measure PostgreSQL)
    #[arg(long)]
    pub database_url: Option<String>,
    /// Servers to start on the database (more than one needs PostgreSQL). `bench
    /// run` sends each step of a lifecycle to another server than the one before;
    /// `bench burst` sends the registrations to each in turn
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// The server binary to start (default: this one)
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Extra environment for the server, NAME=VALUE (repeatable)
    #[arg(long = "server-env")]
    pub server_env: Vec<String>,
}

/// What the durability check found.
#[derive(Debug, serde::Serialize)]
pub struct Durability {
    pub acknowledged: usize,
    pub found_after_restart: usize,
    /// SQLite's `PRAGMA integrity_check`; `NO_INTEGRITY_CHECK` on PostgreSQL.
    pub integrity_check: String,
}

/// The integrity check of a database that has none to run here (PostgreSQL).
const NO_INTEGRITY_CHECK: &str = "n/a";

impl Durability {
    /// Every acknowledged request was found, and the file (if SQLite) is sound.
    fn held(&self) -> bool {
        self.found_after_restart == self.acknowledged
            && matches!(self.integrity_check.as_str(), "ok" | NO_INTEGRITY_CHECK)
    }
}

const AUTH_TOKEN: &str = "bench-auth-token-not-secret";
const SECRET_KEY: &str = "bench-secret-key-shared-by-the-nodes-0123";
/// The public URL every server is told it is reached at (the "load balancer").
const PUBLIC: &str = "http://ivr-auth.bench.invalid";
const ACCOUNT_SID: &str = "AC0000000000000000000000000000bench";
const CALLER_ID: &str = "+815011112222";
const INBOUND: &str = "+81312345678";

/// Runs lifecycles on `concurrency` tasks until `until`, measuring those that
/// start after `measure_from` (the tasks run on through the warm-up, so the
/// measured phase does not begin with every task starting at once).
async fn load(driver: Arc<Driver>, args: &RunArgs, measure_from: Instant, until: Instant) -> Recorder {
    let mut tasks = Vec::with_capacity(args.concurrency);
    // With `--lifecycles`, the tasks share that many and stop when none is left.
    let left = Arc::new(AtomicU64::new(args.lifecycles.unwrap_or(u64::MAX)));
    let until = if args.lifecycles.is_some() { Instant::now() + Duration::from_secs(365 * 86_400) } else { until };
    for _ in 0..args.concurrency {
        let driver = driver.clone();
        let left = left.clone();
        let (inbound_share, wrong_share) = (args.inbound_share, args.wrong_share);
        // With think time, callers arrive spread out, not all in the first instant.
        let stagger = driver.think.mul_f64(5.0 * rand::rng().random::<f64>());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(stagger).await;
            let mut rec = Recorder::default();
            let mut warm = Recorder::default();
            while Instant::now() < until && left.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1)).is_ok() {
                let (inbound, wrong) = {
                    let mut rng = rand::rng();
                    (rng.random_bool(inbound_share.clamp(0.0, 1.0)), rng.random_bool(wrong_share.clamp(0.0, 1.0)))
                };
                let r = if Instant::now() >= measure_from { &mut rec } else { &mut warm };
                // A lifecycle that never ends is an error, not a run that never reports.
                match tokio::time::timeout(driver.deadline(), driver.run(inbound, wrong, r)).await {
                    Ok(Ok(())) => r.lifecycles += 1,
                    Ok(Err((step, what))) => r.error(step, &what),
                    Err(_) => r.overdue(driver.deadline()),
                }
            }
            rec
        }));
    }
    let mut total = Recorder::default();
    for t in tasks {
        if let Ok(rec) = t.await {
            total.merge(rec);
        }
    }
    total
}

/// `bench run`.
pub async fn run(args: RunArgs) -> Result<(), String> {
    ivr_auth::install_tls_provider();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let db_url = args.server.database(dir.path())?;
    if args.server.nodes > 1 && args.kill_after.is_some() {
        return Err("--kill-after measures one server; leave --nodes at 1".into());
    }
    let api_key = create_tenant(&args.server, &db_url)?;
    let listener = ivr_auth::listen(([127, 0, 0, 1], 0).into()).map_err(|e| e.to_string())?;
    let double_base = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
    let (waiting, double) = double::start(listener).map_err(|e| e.to_string())?;
    let mut servers = Vec::new();
    for _ in 0..args.server.nodes {
        servers.push(start_server(&args.server, &db_url, &double_base, &[])?);
    }

    let (http, driver) = driver(&args, &servers, api_key, waiting)?;

    let warmup = if args.lifecycles.is_some() { 0.0 } else { args.warmup };
    let started = Instant::now() + Duration::from_secs_f64(warmup);
    let (rec, cpu_at_start, counters_at_start) = measure(&driver, &args, &mut servers, &http, started).await;
    let elapsed = started.elapsed().as_secs_f64();
    let generator_cpu_at_end = process_cpu_seconds(std::process::id());
    let counters_at_end = store_counters(&http, &servers).await;
    let writes_per_commit_under_load = match (counters_at_start, counters_at_end) {
        (Some(a), Some(b)) if b.1 > a.1 => Some((b.0 - a.0) / (b.1 - a.1)),
        _ => None,
    };
    let per_lifecycle = |delta: f64| (rec.lifecycles > 0).then(|| delta / rec.lifecycles as f64);
    let commits_per_lifecycle_under_load = match (counters_at_start, counters_at_end) {
        (Some(a), Some(b)) => per_lifecycle(b.1 - a.1),
        _ => None,
    };
    let cpu_per_lifecycle_us = match (cpu_at_start, servers_cpu(&servers)) {
        (Some((a, _)), Some(b)) => per_lifecycle((b - a) * 1e6),
        _ => None,
    };
    let generator_cpu_per_lifecycle_us = match (cpu_at_start, generator_cpu_at_end) {
        (Some((_, a)), Some(b)) => per_lifecycle((b - a) * 1e6),
        _ => None,
    };
    let durability = match args.kill_after {
        Some(_) => {
            servers[0] = start_server(&args.server, &db_url, &double_base, &[])?;
            Some(check_durability(&driver, &servers[0].base, &db_url).await?)
        }
        None => None,
    };
    let writes = match args.kill_after {
        // Without think time: 60 probe lifecycles at 500 ms a step took minutes.
        None => probe_writes(&driver.without_think(), &servers).await,
        Some(_) => Vec::new(),
    };
    let cpu_before_healthz = servers[0].cpu_seconds();
    let (healthz_answered, healthz_s) =
        healthz(&http, &servers[0].base, args.concurrency.min(args.max_connections), args.healthz_seconds).await;
    let healthz_per_s = if healthz_s > 0.0 { healthz_answered as f64 / healthz_s } else { 0.0 };
    // The floor a lifecycle's exchanges stand on: the server's CPU for one trivial request.
    let server_cpu_per_healthz_us = match (cpu_before_healthz, servers[0].cpu_seconds()) {
        (Some(a), Some(b)) if healthz_answered > 0 => Some((b - a) * 1e6 / healthz_answered as f64),
        _ => None,
    };
    let lifecycles_per_s = rec.lifecycles as f64 / elapsed;
    let report = Report {
        concurrency: args.concurrency,
        duration_s: elapsed,
        inbound_share: args.inbound_share,
        wrong_code_share: args.wrong_share,
        database: if db_url.starts_with("sqlite") { "sqlite".into() } else { "postgres".into() },
        nodes: args.server.nodes,
        writes_per_lifecycle: writes,
        server_cpu_per_lifecycle_us: cpu_per_lifecycle_us,
        generator_cpu_per_lifecycle_us,
        commits_per_lifecycle_under_load,
        writes_per_commit_under_load,
        lifecycles: rec.lifecycles,
        lifecycles_per_s,
        errors: rec.errors.values().sum(),
        error_kinds: rec.errors.clone(),
        steps: Report::steps_from(&rec),
        healthz_per_s,
        server_cpu_per_healthz_us,
        efficiency_ratio: if healthz_per_s > 0.0 { 5.0 * lifecycles_per_s / healthz_per_s } else { 0.0 },
        // After a kill the process is a new one: its peak says nothing about the run.
        server_peak_rss_mb: if durability.is_some() {
            None
        } else {
            servers.iter().filter_map(Server::peak_rss_mb).reduce(f64::max)
        },
        durability,
    };
    drop(servers);
    drop(double);
    finish(&report, &args)
}

/// The HTTP client and the lifecycle driver over `servers`.
fn driver(
    args: &RunArgs,
    servers: &[Server],
    api_key: String,
    waiting: Arc<double::Waiting>,
) -> Result<(reqwest::Client, Arc<Driver>), String> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.max_connections.min(args.concurrency).max(1))
        // Below the server's 5 s keep-alive, so a request never races the server closing its connection.
        .pool_idle_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let driver = Arc::new(Driver {
        http: http.clone(),
        conns: client::Conns::default(),
        bases: servers.iter().map(|s| s.base.clone()).collect(),
        public: PUBLIC.into(),
        next_server: std::sync::atomic::AtomicUsize::new(0),
        api_key,
        auth_token: AUTH_TOKEN.as_bytes().to_vec(),
        waiting,
        inbound_number: INBOUND.into(),
        caller_id: CALLER_ID.into(),
        counter: AtomicU64::new(rand::rng().random_range(0..50_000_000)),
        acked: args.kill_after.map(|_| std::sync::Mutex::new(Vec::new())),
        think: Duration::from_millis(args.think_ms),
        http_slots: tokio::sync::Semaphore::new(args.max_connections.max(1)),
    });
    Ok((http, driver))
}

/// Runs the load from `started` (after the warm-up): the recorded
/// lifecycles, and the servers' CPU time and store counters when measuring
/// began (none with `--kill-after`, which kills the first server instead).
async fn measure(
    driver: &Arc<Driver>,
    args: &RunArgs,
    servers: &mut [Server],
    http: &reqwest::Client,
    started: Instant,
) -> (Recorder, Option<(f64, f64)>, Option<(f64, f64)>) {
    let mut cpu_at_start = None;
    let mut counters_at_start = None;
    let rec = match args.kill_after {
        None => {
            let running = load(driver.clone(), args, started, started + Duration::from_secs_f64(args.duration));
            let sample = async {
                tokio::time::sleep_until(started.into()).await;
                // The servers' and the generator's own CPU seconds.
                cpu_at_start = servers_cpu(servers).zip(process_cpu_seconds(std::process::id()));
                counters_at_start = store_counters(http, servers).await;
            };
            let (rec, ()) = tokio::join!(running, sample);
            rec
        }
        Some(after) => {
            // New lifecycles stop starting at the kill; those in flight meet it.
            let running = load(driver.clone(), args, started, started + Duration::from_secs_f64(after));
            let killer = async {
                tokio::time::sleep_until((started + Duration::from_secs_f64(after)).into()).await;
                servers[0].kill9();
            };
            let (rec, ()) = tokio::join!(running, killer);
            rec
        }
    };
    (rec, cpu_at_start, counters_at_start)
}

/// Prints the report (and writes its JSON), then says whether the run failed.
fn finish(report: &Report, args: &RunArgs) -> Result<(), String> {
    print!("{}", report.table());
    if let Some(path) = &args.json {
        write_json(path, report)?;
    }
    if let Some(d) = &report.durability
        && !d.held()
    {
        return Err(format!("durability check failed: {d:?}"));
    }
    if args.fail_on_error && args.kill_after.is_none() && (report.errors > 0 || report.lifecycles == 0) {
        return Err(format!("{} lifecycles failed ({} succeeded)", report.errors, report.lifecycles));
    }
    Ok(())
}

/// Writes `report` as JSON to `path` (`-`: stdout).
fn write_json(path: &std::path::Path, report: &impl serde::Serialize) -> Result<(), String> {
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    if path.as_os_str() == "-" {
        println!("{json}");
        Ok(())
    } else {
        std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// After a SIGKILL and restart: every acknowledged request must be there,
/// and the SQLite file must pass `PRAGMA integrity_check`.
async fn check_durability(driver: &Driver, base: &str, db_url: &str) -> Result<Durability, String> {
    let acked = driver.acked.as_ref().map(|a| a.lock().map(|v| v.clone()).unwrap_or_default()).unwrap_or_default();
    let mut found = 0;
    for chunk in acked.chunks(64) {
        let lookups = chunk.iter().map(|id| async move {
            let resp =
                driver.http.get(format!("{base}/v1/auth-requests/{id}")).bearer_auth(&driver.api_key).send().await;
            resp.is_ok_and(|r| r.status() == 200)
        });
        found += futures_util::future::join_all(lookups).await.into_iter().filter(|ok| *ok).count();
    }
    let integrity_check = match db_url.strip_prefix("sqlite://") {
        Some(path) => {
            let options = ivr_auth::store::OpenOptions::new(ivr_auth::store::Role::Cli);
            let store = ivr_auth::store::sqlite::SqliteStore::open(std::path::Path::new(path), options)
                .await
                .map_err(|e| e.to_string())?;
            store.integrity_check().await.map_err(|e| e.to_string())?
        }
        None => NO_INTEGRITY_CHECK.into(),
    };
    Ok(Durability { acknowledged: acked.len(), found_after_restart: found, integrity_check })
}

/// Store writes (and durable commits) per lifecycle of each kind, counted
/// over lifecycles run one after another, so that no other work is mixed in.
async fn probe_writes(driver: &Driver, servers: &[Server]) -> Vec<report::Writes> {
    const EACH: u32 = 20;
    let kinds = [("outbound", false, false), ("inbound", true, false), ("outbound, one wrong code", false, true)];
    let mut out = Vec::new();
    for (kind, inbound, wrong) in kinds {
        let Some(before) = store_counters(&driver.http, servers).await else { return Vec::new() };
        let mut rec = Recorder::default();
        for _ in 0..EACH {
            if driver.run(inbound, wrong, &mut rec).await.is_err() {
                return Vec::new();
            }
        }
        // Writes that follow a lifecycle (a job's last step) land within moments.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let Some(after) = store_counters(&driver.http, servers).await else { return Vec::new() };
        out.push(report::Writes {
            kind,
            writes: (after.0 - before.0) / f64::from(EACH),
            commits: (after.1 - before.1) / f64::from(EACH),
        });
    }
    out
}

/// `bench burst`.
pub async fn burst(args: burst::BurstArgs) -> Result<(), String> {
    burst::run(args).await
}

/// `bench sip`.
pub async fn sip(args: sip::SipBenchArgs) -> Result<(), String> {
    sip::run(args).await
}

/// `bench seed`.
pub async fn seed(args: seed::SeedArgs) -> Result<(), String> {
    seed::run(args).await
}

#[cfg(test)]
mod tests {
    use super::{Durability, NO_INTEGRITY_CHECK};

    fn found(acknowledged: usize, found_after_restart: usize, integrity_check: &str) -> Durability {
        Durability { acknowledged, found_after_restart, integrity_check: integrity_check.into() }
    }

    #[test]
    fn durability_holds_when_every_acknowledged_request_is_found_on_either_database() {
        assert!(found(10, 10, "ok").held(), "SQLite, sound");
        assert!(found(10, 10, NO_INTEGRITY_CHECK).held(), "PostgreSQL has no file to check");
        assert!(!found(10, 9, "ok").held(), "one lost");
        assert!(!found(10, 9, NO_INTEGRITY_CHECK).held(), "one lost on PostgreSQL");
        assert!(!found(10, 10, "*** in database main ***\nPage 3 is never used").held(), "a damaged file");
    }
}
