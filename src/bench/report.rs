//! Latency histograms (HdrHistogram) per step, and the run's report as a table and as JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The steps of a lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Site: POST /v1/auth-requests (durable before the 201).
    Register,
    /// Server: from the 201 to the provider's `Calls.json` (the job queue).
    PlaceCall,
    /// Provider: the answer (outbound) or inbound webhook.
    Answer,
    /// Provider: the Gather action with the digits.
    Gather,
    /// Provider: the `completed` status callback.
    Status,
    /// Site: GET /v1/auth-requests/{id}.
    Poll,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Register => "register",
            Step::PlaceCall => "place_call",
            Step::Answer => "answer",
            Step::Gather => "gather",
            Step::Status => "status",
            Step::Poll => "poll",
        }
    }
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| unreachable!("valid bounds"))
}

/// One worker's measurements: raw samples (a few bytes each), turned into
/// histograms only once, when the workers' samples are merged. (A histogram
/// per worker and step is ~400 KB; with 10,000 workers that is gigabytes.)
#[derive(Default)]
pub struct Recorder {
    samples: Vec<(Step, u32)>,
    pub lifecycles: u64,
    pub errors: BTreeMap<String, u64>,
}

impl Recorder {
    pub fn record(&mut self, step: Step, took: Duration) {
        self.samples.push((step, took.as_micros().clamp(1, u128::from(u32::MAX)) as u32));
    }

    pub fn error(&mut self, step: Step, what: &str) {
        *self.errors.entry(format!("{}: {what}", step.name())).or_default() += 1;
    }

    /// A lifecycle that did not end within `deadline`.
    pub fn overdue(&mut self, deadline: Duration) {
        *self.errors.entry(format!("lifecycle: no end within {} s", deadline.as_secs())).or_default() += 1;
    }

    pub fn merge(&mut self, other: Recorder) {
        self.samples.extend(other.samples);
        self.lifecycles += other.lifecycles;
        for (k, n) in other.errors {
            *self.errors.entry(k).or_default() += n;
        }
    }

    fn histograms(&self) -> BTreeMap<Step, Histogram<u64>> {
        let mut steps: BTreeMap<Step, Histogram<u64>> = BTreeMap::new();
        for (step, us) in &self.samples {
            steps.entry(*step).or_insert_with(histogram).saturating_record(u64::from(*us));
        }
        steps
    }
}

/// Latency of one step, in milliseconds.
#[derive(Debug, Serialize)]
pub struct StepLatency {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// Everything a run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    pub concurrency: usize,
    pub duration_s: f64,
    pub inbound_share: f64,
    pub wrong_code_share: f64,
    pub database: String,
    /// Servers on the database.
    pub nodes: usize,
    /// Store writes and commits per lifecycle, by kind (empty when the server does not count them).
    pub writes_per_lifecycle: Vec<Writes>,
    /// Server CPU time (user + system, all servers) per measured lifecycle, in µs.
    pub server_cpu_per_lifecycle_us: Option<f64>,
    /// The load generator's own CPU time (this process, the provider double
    /// included) per measured lifecycle, in µs.
    pub generator_cpu_per_lifecycle_us: Option<f64>,
    /// Durable commits (the servers' own counters) per measured lifecycle.
    pub commits_per_lifecycle_under_load: Option<f64>,
    /// Writes that shared one durable commit, on average, during the measured run (group commit).
    pub writes_per_commit_under_load: Option<f64>,
    pub lifecycles: u64,
    pub lifecycles_per_s: f64,
    pub errors: u64,
    pub error_kinds: BTreeMap<String, u64>,
    pub steps: BTreeMap<&'static str, StepLatency>,
    pub healthz_per_s: f64,
    /// The server's CPU time per `GET /healthz` answered in the same run,
    /// in µs: what one trivial exchange costs it on this machine.
    pub server_cpu_per_healthz_us: Option<f64>,
    /// `5 × lifecycles/s ÷ healthz req/s`: how close a lifecycle's five
    /// requests come to five trivial ones.
    pub efficiency_ratio: f64,
    pub server_peak_rss_mb: Option<f64>,
    /// With `--kill-after`: what survived the SIGKILL.
    pub durability: Option<super::Durability>,
}

/// Store writes per lifecycle of one kind.
#[derive(Debug, serde::Serialize)]
pub struct Writes {
    pub kind: &'static str,
    /// Write transactions (each a commit on its own without group commit).
    pub writes: f64,
    /// Durable commits (fewer than writes where commits are grouped).
    pub commits: f64,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl Report {
    pub fn steps_from(rec: &Recorder) -> BTreeMap<&'static str, StepLatency> {
        rec.histograms()
            .iter()
            .filter(|(_, h)| !h.is_empty())
            .map(|(step, h)| {
                let latency = StepLatency {
                    count: h.len(),
                    p50_ms: ms(h.value_at_quantile(0.50)),
                    p99_ms: ms(h.value_at_quantile(0.99)),
                    p999_ms: ms(h.value_at_quantile(0.999)),
                    max_ms: ms(h.max()),
                };
                (step.name(), latency)
            })
            .collect()
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "lifecycles: {} in {:.1} s = {:.0}/s   errors: {}   (concurrency {}, inbound {:.0}%, wrong code {:.0}%, {}, {} node{})\n",
            self.lifecycles,
            self.duration_s,
            self.lifecycles_per_s,
            self.errors,
            self.concurrency,
            self.inbound_share * 100.0,
            self.wrong_code_share * 100.0,
            self.database,
            self.nodes,
            if self.nodes == 1 { "" } else { "s" }
        ));
        out.push_str(&format!(
            "{:<11} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            "step", "count", "p50 ms", "p99 ms", "p99.9 ms", "max ms"
        ));
        for (name, s) in &self.steps {
            out.push_str(&format!(
                "{name:<11} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2}\n",
                s.count, s.p50_ms, s.p99_ms, s.p999_ms, s.max_ms
            ));
        }
        out.push_str(&format!(
            "healthz: {:.0} req/s   efficiency ratio (5 × lifecycles/s ÷ healthz/s): {:.3}\n",
            self.healthz_per_s, self.efficiency_ratio
        ));
        if let Some(cpu) = self.server_cpu_per_lifecycle_us {
            out.push_str(&format!("server CPU per lifecycle: {cpu:.0} µs (user + system, all servers)\n"));
        }
        if let Some(h) = self.server_cpu_per_healthz_us {
            let of = match self.server_cpu_per_lifecycle_us {
                Some(cpu) if h > 0.0 => format!(" (a lifecycle: {:.1} of them)", cpu / h),
                _ => String::new(),
            };
            out.push_str(&format!("server CPU per /healthz request: {h:.1} µs{of}\n"));
        }
        if let Some(cpu) = self.generator_cpu_per_lifecycle_us {
            out.push_str(&format!("generator CPU per lifecycle: {cpu:.0} µs (user + system, this process)\n"));
        }
        if let Some(c) = self.commits_per_lifecycle_under_load {
            out.push_str(&format!("durable commits per lifecycle under load: {c:.2}\n"));
        }
        if let Some(g) = self.writes_per_commit_under_load {
            out.push_str(&format!("writes per durable commit under load: {g:.1}\n"));
        }
        for w in &self.writes_per_lifecycle {
            out.push_str(&format!(
                "store writes per lifecycle ({}): {:.2}   durable commits: {:.2}\n",
                w.kind, w.writes, w.commits
            ));
        }
        if let Some(rss) = self.server_peak_rss_mb {
            out.push_str(&format!("server peak RSS: {rss:.1} MB\n"));
        }
        if let Some(d) = &self.durability {
            out.push_str(&format!(
                "durability after SIGKILL: {} acknowledged, {} found after restart, integrity_check: {}\n",
                d.acknowledged, d.found_after_restart, d.integrity_check
            ));
        }
        for (kind, n) in &self.error_kinds {
            out.push_str(&format!("error {n:>7} × {kind}\n"));
        }
        out
    }
}
