//! `ivr-auth bench sip`: how many calls one node holds on its own SIP trunk.
//! For each level of `--calls`, a fresh server (IVR_AUTH_PROVIDER=sip) and
//! one SIPp caller process with N calls, each an inbound request of its own
//! with the same code; all N calls sit in the Gather (the server streaming
//! RTP to each) for `--hold` seconds, then send the code and wait for the
//! server's BYE. Measured over the hold: the RTP send interval from
//! `/metrics`, the CPU of the server and of SIPp, and then how many requests
//! ended verified.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use futures_util::StreamExt;
use rand::RngExt;

use super::server::{Server, create_tenant, process_cpu_seconds, server_bin, start_server};
use super::sip_report::{Level, SipReport, callers_csv, metric, sipp_counts};
use super::{INBOUND, ServerArgs, write_json};

const SCENARIO: &str = include_str!("sip_scenario.xml");
/// SIPp's stock RFC 2833 captures (Debian `sip-tester`).
const RFC2833: &str = "/usr/share/sip-tester";
/// The code every caller types: four distinct keys, so the stock captures
/// (one fixed timestamp per key) read as four presses without renumbering.
const CODE: &str = "1234";
/// IVR_AUTH_GATHER_TIMEOUT's most: a call must send its keys before this.
const GATHER_TIMEOUT_S: f64 = 60.0;
/// 6,000 calls' worth (each takes an even port, its odd neighbour left for
/// RTCP), below the kernel's ephemeral ports (32768 up) that SIPp and the
/// bench's own sockets get.
const RTP_PORTS: &str = "20000-31999";

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Keys {
    /// RFC 2833 events (SIPp's play_pcap_audio of its stock captures)
    Rfc2833,
    /// SIP INFO, application/dtmf-relay
    Info,
}

#[derive(Debug, Args)]
pub struct SipBenchArgs {
    /// Calls held up together; a comma-separated list is a sweep, one fresh server per level
    #[arg(long, value_delimiter = ',', default_value = "100,200,300,400")]
    pub calls: Vec<usize>,
    /// Seconds all the calls of a level are held up together before they send the code
    /// (the server refreshes its send-interval figures every 5 s: below ~6 s there are none)
    #[arg(long, default_value_t = 30.0)]
    pub hold: f64,
    /// New calls per second while a level ramps up (SIPp -r)
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// How the callers send the code
    #[arg(long, value_enum, default_value_t = Keys::Rfc2833)]
    pub dtmf: Keys,
    /// The SIPp binary
    #[arg(long, default_value = "sipp")]
    pub sipp: PathBuf,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Write the report as JSON here (`-` for stdout)
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Exit non-zero if any call of any level did not verify (never on timing; for CI)
    #[arg(long)]
    pub fail_unverified: bool,
}

/// `bench sip`.
pub async fn run(args: SipBenchArgs) -> Result<(), String> {
    ivr_auth::install_tls_provider();
    if args.server.nodes != 1 {
        return Err("bench sip measures one node; leave --nodes at 1".into());
    }
    if args.calls.is_empty() || args.calls.contains(&0) || args.rate <= 0.0 || args.hold < 1.0 {
        return Err("--calls: levels of at least 1; --rate above 0; --hold at least 1 s".into());
    }
    for &n in &args.calls {
        // The first caller holds through the ramp and the hold, then types; the Gather must still wait.
        if ramp_s(n, args.rate) + args.hold + 5.0 > GATHER_TIMEOUT_S {
            return Err(format!(
                "{n} calls at {} calls/s ramp for {:.0} s: with --hold {} the first caller would outwait the \
                 Gather's {GATHER_TIMEOUT_S} s; raise --rate or lower --hold",
                args.rate,
                ramp_s(n, args.rate),
                args.hold
            ));
        }
    }
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().map_err(|e| e.to_string())?;
    let mut levels = Vec::new();
    for &n in &args.calls {
        eprintln!("bench sip: {n} calls…");
        let level = run_level(&args, &http, n).await?;
        eprintln!(
            "bench sip: {n} calls: {} verified, p99 {:?} ms, server CPU {:?} s",
            level.verified, level.send_interval_p99_ms, level.server_cpu_s
        );
        levels.push(level);
    }
    let database = match &args.server.database_url {
        Some(u) if u.starts_with("postgres") => "postgres",
        _ => "sqlite",
    };
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let dtmf = format!("{:?}", args.dtmf).to_lowercase();
    let report = SipReport::new(database.into(), dtmf, args.hold, args.rate, cores, levels);
    print!("{}", report.table());
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    let unverified: Vec<String> = report
        .levels
        .iter()
        .filter(|l| !l.level.all_verified())
        .map(|l| format!("{} of {} verified", l.level.verified, l.level.calls))
        .collect();
    if args.fail_unverified && !unverified.is_empty() {
        return Err(format!("calls not verified: {}", unverified.join("; ")));
    }
    Ok(())
}

fn ramp_s(calls: usize, rate: f64) -> f64 {
    calls.saturating_sub(1) as f64 / rate
}

/// One level: a fresh server and database (or a fresh tenant on `--database-url`), N calls.
async fn run_level(args: &SipBenchArgs, http: &reqwest::Client, n: usize) -> Result<Level, String> {
    let dir = tempfile::Builder::new().prefix("bench-sip-").tempdir().map_err(|e| e.to_string())?;
    let db_url = args.server.database(dir.path())?;
    let api_key = create_tenant(&args.server, &db_url)?;
    let audio = dir.path().join("audio");
    render_tones(&args.server, &db_url, &audio)?;
    let sip_port = free_port()?;
    let max_calls = (args.calls.iter().max().copied().unwrap_or(n) + 50).to_string();
    let env = [
        ("IVR_AUTH_PROVIDER", "sip"),
        ("IVR_AUTH_SIP_LISTEN", &format!("127.0.0.1:{sip_port}")),
        ("IVR_AUTH_SIP_ALLOWED_PEERS", "127.0.0.1"),
        ("IVR_AUTH_RTP_PORTS", RTP_PORTS),
        ("IVR_AUTH_PROMPT_AUDIO_DIR", &audio.display().to_string()),
        ("IVR_AUTH_GATHER_TIMEOUT", "60"),
        ("IVR_AUTH_MAX_CONCURRENT_CALLS", &max_calls),
    ];
    let server = start_server(&args.server, &db_url, "http://127.0.0.1:9", &env)?;

    let phones = phones(n);
    let ids = register(http, &server.base, &api_key, &phones).await?;
    std::fs::write(dir.path().join("callers.csv"), callers_csv(&phones, (args.hold * 1000.0) as u64, args.rate))
        .map_err(|e| e.to_string())?;
    let scenario = dir.path().join("bench.xml");
    let bye_wait_ms = (30_000 + n * 20).to_string();
    let xml = SCENARIO.replace("@@KEYS@@", &keys(args.dtmf)).replace("@@BYE_WAIT_MS@@", &bye_wait_ms);
    std::fs::write(&scenario, xml).map_err(|e| e.to_string())?;

    let mut sipp = start_sipp(args, dir.path(), &scenario, n, sip_port)?;
    let sipp_pid = sipp.id().ok_or("sipp exited at once")?;
    let mut level = measure(args, http, &server, sipp_pid, n).await;
    let limit = Duration::from_secs_f64(ramp_s(n, args.rate) + args.hold + 120.0);
    let status = match tokio::time::timeout(limit, sipp.wait()).await {
        Ok(status) => status.map_err(|e| e.to_string())?,
        Err(_) => {
            let _ = sipp.kill().await;
            return Err(format!("sipp did not finish within {} s; its files: {}", limit.as_secs(), keep(dir)));
        }
    };
    let stats = std::fs::read_to_string(dir.path().join("stat.csv")).unwrap_or_default();
    (level.sipp_successful, level.sipp_failed) = sipp_counts(&stats).unwrap_or(match status.success() {
        true => (n as u64, 0),
        false => (0, n as u64),
    });
    level.verified = count_verified(http, &server.base, &api_key, &ids).await;
    drop(server);
    if !level.all_verified() {
        eprintln!("bench sip: {n} calls: not all verified; SIPp's files: {}", keep(dir));
    }
    Ok(level)
}

/// Keeps the level's temp dir (SIPp's logs) for a look after a failure.
fn keep(dir: tempfile::TempDir) -> String {
    dir.keep().display().to_string()
}

/// Waits until all `n` calls are up, then measures for the rest of the hold.
async fn measure(args: &SipBenchArgs, http: &reqwest::Client, server: &Server, sipp_pid: u32, n: usize) -> Level {
    let started = Instant::now();
    // The last call is answered about `ramp` s in; the keys go `hold` s after that.
    let keys_due = started + Duration::from_secs_f64(ramp_s(n, args.rate) + args.hold);
    let give_up = started + Duration::from_secs_f64(ramp_s(n, args.rate) + args.hold / 2.0);
    let mut level = Level { calls: n, ..Level::default() };
    let metrics = |http: &reqwest::Client| {
        let url = format!("{}/metrics", server.base);
        let http = http.clone();
        async move { http.get(url).send().await.ok()?.text().await.ok() }
    };
    loop {
        let active = metrics(http).await.and_then(|t| metric(&t, "ivr_auth_sip_active_calls")).unwrap_or(0.0);
        level.peak_active_calls = level.peak_active_calls.max(active as usize);
        if active as usize >= n {
            level.all_up = true;
            break;
        }
        if Instant::now() >= give_up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let from = Instant::now();
    // Stop just short of the keys: the window is calls sitting in the Gather.
    let until = keys_due.checked_sub(Duration::from_millis(500)).unwrap_or(keys_due).max(from);
    let cpu = process_cpu_seconds;
    let at_start = (cpu(server.pid()), cpu(sipp_pid), cpu(std::process::id()));
    let mut last = None;
    while Instant::now() < until {
        tokio::time::sleep(until.saturating_duration_since(Instant::now()).min(Duration::from_secs(1))).await;
        if let Some(text) = metrics(http).await {
            let active = metric(&text, "ivr_auth_sip_active_calls").unwrap_or(0.0);
            level.peak_active_calls = level.peak_active_calls.max(active as usize);
            last = Some(text);
        }
    }
    let at_end = (cpu(server.pid()), cpu(sipp_pid), cpu(std::process::id()));
    level.window_s = from.elapsed().as_secs_f64();
    let diff = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
    level.server_cpu_s = diff(at_start.0, at_end.0);
    level.sipp_cpu_s = diff(at_start.1, at_end.1);
    level.bench_cpu_s = diff(at_start.2, at_end.2);
    if let Some(text) = last {
        // 0 until the engine's first 5-second refresh with samples in it: no figure yet.
        let q = |q: &str| {
            metric(&text, &format!("ivr_auth_rtp_send_interval_seconds{{quantile=\"{q}\"}}")).filter(|v| *v > 0.0)
        };
        level.send_interval_p50_ms = q("0.5").map(|s| s * 1e3);
        level.send_interval_p99_ms = q("0.99").map(|s| s * 1e3);
        level.send_interval_max_ms = q("max").map(|s| s * 1e3);
    }
    level
}

/// `ivr-auth prompts render --tone` into `audio` for the tenants on `db_url`.
fn render_tones(server: &ServerArgs, db_url: &str, audio: &Path) -> Result<(), String> {
    let out = std::process::Command::new(server_bin(server)?)
        .args(["prompts", "render", "--tone", "--audio-dir"])
        .arg(audio)
        .env("IVR_AUTH_DATABASE_URL", db_url)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run prompts render: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!("prompts render --tone failed: {}", String::from_utf8_lossy(&out.stderr).trim())),
    }
}

/// `n` distinct Japanese mobile numbers (090-1000-0000 … 090-8999-9999), from a random start.
fn phones(n: usize) -> Vec<String> {
    let start: usize = rand::rng().random_range(0..70_000_000);
    (0..n).map(|i| format!("+8190{:08}", 10_000_000 + (start + i) % 80_000_000)).collect()
}

/// Registers an inbound request with the code `CODE` for each phone; their ids, in order.
async fn register(http: &reqwest::Client, base: &str, api_key: &str, phones: &[String]) -> Result<Vec<String>, String> {
    let one = |phone: String| async move {
        let body = serde_json::json!({ "phone_number": phone, "mode": "inbound", "code": CODE });
        let resp = http
            .post(format!("{base}/v1/auth-requests"))
            .bearer_auth(api_key)
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let v: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
        match (status.as_u16(), v["id"].as_str()) {
            (201, Some(id)) => Ok(id.to_owned()),
            _ => Err(format!("registering {phone}: {status} {v}")),
        }
    };
    futures_util::stream::iter(phones.iter().cloned())
        .map(one)
        .buffered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Requests that ended verified (waiting a little for the last ones to settle).
async fn count_verified(http: &reqwest::Client, base: &str, api_key: &str, ids: &[String]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let one = |id: String| async move {
            let resp = http.get(format!("{base}/v1/auth-requests/{id}")).bearer_auth(api_key).send().await.ok()?;
            let v: serde_json::Value = resp.json().await.ok()?;
            v["status"].as_str().map(str::to_owned)
        };
        let statuses: Vec<Option<String>> =
            futures_util::stream::iter(ids.iter().cloned()).map(one).buffered(32).collect().await;
        let verified = statuses.iter().filter(|s| s.as_deref() == Some("verified")).count();
        if verified == ids.len() || Instant::now() >= deadline {
            return verified;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The scenario's key presses: the code, as RFC 2833 captures or as INFO.
fn keys(dtmf: Keys) -> String {
    let step = |key: char| match dtmf {
        // Each capture plays ~160 ms; a new one would cut the one still playing.
        Keys::Rfc2833 => format!(
            "<nop><action><exec play_pcap_audio=\"{RFC2833}/dtmf_2833_{key}.pcap\"/></action></nop>\n  \
             <pause milliseconds=\"210\"/>"
        ),
        Keys::Info => format!(
            r#"<send><![CDATA[

      INFO [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: [cseq] INFO
      Contact: <sip:[field0]@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Type: application/dtmf-relay
      Content-Length: [len]

      Signal={key}
      Duration=160

    ]]></send>
  <recv response="200" crlf="true"/>
  <pause milliseconds="50"/>"#
        ),
    };
    CODE.chars().map(step).collect::<Vec<_>>().join("\n  ")
}

/// One SIPp process placing all `n` calls to the server at `sip_port`.
fn start_sipp(
    args: &SipBenchArgs,
    dir: &Path,
    scenario: &Path,
    n: usize,
    sip_port: u16,
) -> Result<tokio::process::Child, String> {
    let (own_port, media_port) = (free_port()?, free_media_port()?);
    let timeout = format!("{}s", (ramp_s(n, args.rate) + args.hold + 90.0).ceil());
    let out = std::fs::File::create(dir.join("sipp.out")).map_err(|e| e.to_string())?;
    tokio::process::Command::new(&args.sipp)
        .arg("-sf")
        .arg(scenario)
        .arg("-inf")
        .arg(dir.join("callers.csv"))
        .args(["-s", INBOUND])
        .args(["-l", &n.to_string(), "-m", &n.to_string(), "-r", &args.rate.to_string(), "-rp", "1000"])
        .args(["-i", "127.0.0.1", "-p", &own_port.to_string(), "-mi", "127.0.0.1", "-mp", &media_port.to_string()])
        .args(["-nostdin", "-timeout", &timeout, "-timeout_error"])
        .args(["-trace_err", "-error_file"])
        .arg(dir.join("errors.log"))
        .args(["-trace_stat", "-fd", "1", "-stf"])
        .arg(dir.join("stat.csv"))
        .arg(format!("127.0.0.1:{sip_port}"))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {} (Debian package sip-tester): {e}", args.sipp.display()))
}

/// A loopback port free for both UDP and TCP (the SIP engine listens on both).
fn free_port() -> Result<u16, String> {
    for _ in 0..100 {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = tcp.local_addr().map_err(|e| e.to_string())?.port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err("no free loopback port".into())
}

/// A UDP port free with the one two above it (SIPp binds -mp and -mp+2).
fn free_media_port() -> Result<u16, String> {
    for _ in 0..100 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = udp.local_addr().map_err(|e| e.to_string())?.port();
        if port < 65_000 && std::net::UdpSocket::bind(("127.0.0.1", port + 2)).is_ok() {
            return Ok(port);
        }
    }
    Err("no free media port".into())
}
