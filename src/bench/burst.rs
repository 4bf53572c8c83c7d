//! `ivr-auth bench burst`: a burst of outbound registrations against two
//! provider accounts paced at their own rates (issue 15). Every count is the
//! doubles' own: when each call arrived on their clock and which request it
//! is for, so a rate is counted in windows of that clock, and a request with
//! no call or with two is seen as such.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};

use super::burst_report::{self, Placement, Registration, Report};
use super::double::{self, CallForm};
use super::server::{Server, create_tenant, start_server};
use super::{ACCOUNT_SID, AUTH_TOKEN, CALLER_ID, ServerArgs, write_json};

/// The accounts' names, in the order of `--rates`.
const NAMES: [&str; 2] = ["tokyo", "osaka"];
/// Every request's lifetime: the longest the API allows, so that late calls still leave before expiry.
const TTL_SECONDS: u32 = 600;
/// How long the bench keeps watching after every request has its call, for second calls.
const GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, Args)]
pub struct BurstArgs {
    /// Outbound requests to register, each to a number of its own
    #[arg(long, default_value_t = 3000)]
    pub registrations: usize,
    /// Registrations in flight at once
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Calls per second of the two accounts (`tokyo`, `osaka`); their weights are in the same proportion
    #[arg(long, value_delimiter = ',', default_value = "10,5")]
    pub rates: Vec<f64>,
    /// Seconds to wait for the last calls beyond the time the rates need for all of them (and a tenth of that)
    #[arg(long, default_value_t = 30.0)]
    pub margin: f64,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Write the report as JSON here (`-` for stdout)
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Exit non-zero if a request got no call or more than one, or a registration failed
    #[arg(long)]
    pub fail_on_error: bool,
}

impl BurstArgs {
    /// Seconds the accounts need to place every call at their rates.
    fn drain_seconds(&self) -> f64 {
        self.registrations as f64 / self.rates.iter().sum::<f64>()
    }

    fn check(&self) -> Result<(), String> {
        if self.rates.len() != NAMES.len() || self.rates.iter().any(|r| !r.is_finite() || *r <= 0.0) {
            return Err("--rates: two calls-per-second figures above 0, like 10,5".into());
        }
        // A call leaves at the latest 15 s before its request expires (domain::pacing).
        if self.drain_seconds() > f64::from(TTL_SECONDS) - 15.0 {
            return Err(format!(
                "{} registrations at {:?} calls/s take {:.0} s, longer than a request lives ({TTL_SECONDS} s): fewer registrations or higher rates",
                self.registrations,
                self.rates,
                self.drain_seconds()
            ));
        }
        if self.registrations == 0 || self.concurrency == 0 {
            return Err("--registrations and --concurrency: at least 1".into());
        }
        Ok(())
    }
}

/// An account's weight: its rate's share (in thousandths of a call per
/// second). A request keeps the account routing picked for it, so with equal
/// weights the slower account would still be placing its half of the burst
/// long after the faster one had finished, and both together would not keep
/// their summed rate for the whole burst.
fn weight(rate: f64) -> u32 {
    (rate * 1000.0).round().clamp(1.0, f64::from(u32::MAX)) as u32
}

/// The calls one double took: when each arrived (its clock) and for which request.
#[derive(Default)]
struct Calls {
    log: Mutex<Vec<(Instant, String)>>,
    next_sid: AtomicU64,
}

impl Calls {
    fn snapshot(&self) -> Vec<(Instant, String)> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// Takes every call; the call then rings until its request expires (no webhook follows).
fn take_call(body: &[u8], calls: &Calls) -> double::Reply {
    let at = Instant::now();
    let Some(form) = CallForm::parse(body) else { return double::no_url() };
    calls.log.lock().unwrap_or_else(PoisonError::into_inner).push((at, form.id));
    double::created(calls.next_sid.fetch_add(1, Ordering::Relaxed)).1
}

/// A double of one Twilio account on a port of its own: its base URL, its calls, its handle.
fn start_double() -> Result<(String, Arc<Calls>, double::Double), String> {
    let listener = ivr_auth::listen(([127, 0, 0, 1], 0).into()).map_err(|e| e.to_string())?;
    let base = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
    let calls = Arc::new(Calls::default());
    let shared = calls.clone();
    let handle = double::serve(listener, move |body| take_call(body, &calls)).map_err(|e| e.to_string())?;
    Ok((base, shared, handle))
}

/// The servers' TOML file: one `[[accounts]]` table per double, paced at its rate.
fn config_file(dir: &Path, rates: &[f64], doubles: &[String]) -> Result<PathBuf, String> {
    let mut text = String::new();
    for ((name, rate), base) in NAMES.iter().zip(rates).zip(doubles) {
        text.push_str(&format!(
            "[[accounts]]\nname = \"{name}\"\nprovider = \"twilio\"\naccount_sid = \"{ACCOUNT_SID}\"\n\
             auth_token = \"{AUTH_TOKEN}\"\napi_base = \"{base}\"\ncaller_id = \"{CALLER_ID}\"\n\
             calls_per_second = {rate:?}\nweight = {}\n\n",
            weight(*rate)
        ));
    }
    let path = dir.join("burst.toml");
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// `bench burst`.
pub async fn run(args: BurstArgs) -> Result<(), String> {
    ivr_auth::install_tls_provider();
    args.check()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let db_url = args.server.database(dir.path())?;
    let api_key = create_tenant(&args.server, &db_url)?;
    let (mut double_bases, mut doubles, mut handles) = (Vec::new(), Vec::new(), Vec::new());
    for _ in NAMES {
        let (base, calls, handle) = start_double()?;
        double_bases.push(base);
        doubles.push(calls);
        handles.push(handle);
    }
    let config = config_file(dir.path(), &args.rates, &double_bases)?.display().to_string();
    let servers = (0..args.server.nodes)
        .map(|_| start_server(&args.server, &db_url, &double_bases[0], &[("IVR_AUTH_CONFIG", &config)]))
        .collect::<Result<Vec<Server>, String>>()?;
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        // Below the server's 5 s keep-alive, so a request never races the server closing its connection.
        .pool_idle_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(deepest_queues(http.clone(), bases.clone(), stop.clone()));
    let started = Instant::now();
    let registrations = register_all(&http, &bases, &api_key, &args).await;
    let deadline = started + Duration::from_secs_f64(args.drain_seconds() * 1.1 + args.margin);
    let all_placed = wait_placed(&doubles, &registrations, deadline).await;
    stop.store(true, Ordering::Relaxed);
    let depth = sampler.await.unwrap_or_default();
    let metrics = metrics_texts(&http, &bases).await;

    let placements: Vec<Placement> = NAMES
        .iter()
        .zip(&args.rates)
        .zip(&doubles)
        .map(|((name, rate), calls)| Placement {
            name,
            rate: *rate,
            weight: weight(*rate),
            calls: calls.snapshot(),
            deepest_queue: depth.get(*name).copied(),
        })
        .collect();
    let report = Report::new(&args, &registrations, &placements, &metrics, all_placed);
    drop(servers);
    drop(handles);
    finish(&report, &args)
}

/// Registers `--registrations` outbound requests on `--concurrency` tasks, to
/// the servers in turn; in the order they were sent.
async fn register_all(http: &reqwest::Client, bases: &[String], api_key: &str, args: &BurstArgs) -> Vec<Registration> {
    let next = Arc::new(AtomicUsize::new(0));
    let total = args.registrations;
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (http, bases, key, next) = (http.clone(), bases.to_vec(), api_key.to_owned(), next.clone());
            tokio::spawn(async move {
                let mut done = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return done;
                    }
                    done.push((n, register(&http, &bases[n % bases.len()], &key, n).await));
                }
            })
        })
        .collect();
    let mut all = Vec::with_capacity(total);
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    all.sort_by_key(|(n, _)| *n);
    all.into_iter().map(|(_, r)| r).collect()
}

/// One registration, timed from sending to the 201's body.
async fn register(http: &reqwest::Client, base: &str, api_key: &str, n: usize) -> Registration {
    // 090-1000-0000 onwards: a distinct, allocated Japanese mobile number per registration.
    let body = json!({
        "phone_number": format!("+8190{:08}", 10_000_000 + n % 80_000_000),
        "mode": "outbound",
        "ttl_seconds": TTL_SECONDS,
    });
    let sent = Instant::now();
    let resp = http.post(format!("{base}/v1/auth-requests")).bearer_auth(api_key).json(&body).send().await;
    let id = match resp {
        Ok(r) if r.status() == 201 => r.json::<Value>().await.ok().and_then(|v| v["id"].as_str().map(str::to_owned)),
        _ => None,
    };
    Registration { sent, answered: Instant::now(), id }
}

/// Waits until every registered request has a call at one of the doubles (or
/// `deadline`), then `GRACE` more for second calls; whether every one got its call.
async fn wait_placed(doubles: &[Arc<Calls>], registrations: &[Registration], deadline: Instant) -> bool {
    let wanted: Vec<&str> = registrations.iter().filter_map(|r| r.id.as_deref()).collect();
    let done = loop {
        let placed: std::collections::HashSet<String> =
            doubles.iter().flat_map(|d| d.snapshot().into_iter().map(|(_, id)| id)).collect();
        if wanted.iter().all(|id| placed.contains(*id)) {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    tokio::time::sleep(GRACE).await;
    done
}

/// Every server's `/metrics` text (a server that does not answer gives none).
async fn metrics_texts(http: &reqwest::Client, bases: &[String]) -> Vec<String> {
    let mut texts = Vec::new();
    for base in bases {
        if let Ok(r) = http.get(format!("{base}/metrics")).send().await
            && let Ok(text) = r.text().await
        {
            texts.push(text);
        }
    }
    texts
}

/// The largest `ivr_auth_call_queue_depth` of each account any server showed,
/// sampled every 200 ms until `stop`.
async fn deepest_queues(http: reqwest::Client, bases: Vec<String>, stop: Arc<AtomicBool>) -> HashMap<String, i64> {
    let mut deepest: HashMap<String, i64> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        for text in metrics_texts(&http, &bases).await {
            for (account, depth) in burst_report::samples(&text, "ivr_auth_call_queue_depth{") {
                let d = deepest.entry(account.to_owned()).or_default();
                *d = (*d).max(depth as i64);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    deepest
}

/// Prints the report (and writes its JSON), then says whether the run failed.
fn finish(report: &Report, args: &BurstArgs) -> Result<(), String> {
    print!("{}", report.table());
    if let Some(path) = &args.json {
        write_json(path, report)?;
    }
    if args.fail_on_error && (report.lost > 0 || report.placed_twice > 0 || report.registration_errors > 0) {
        return Err(format!(
            "{} requests lost, {} placed twice, {} registrations failed",
            report.lost, report.placed_twice, report.registration_errors
        ));
    }
    Ok(())
}
