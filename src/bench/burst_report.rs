//! What `bench burst` found: registration latency early and late in the
//! burst, calls per 10-second window of the doubles' clock, requests lost or
//! placed twice, and the servers' queue waits; as a table and as JSON.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::burst::BurstArgs;

/// The window calls are counted in.
const WINDOW: Duration = Duration::from_secs(10);

/// One registration as the bench saw it (`id`: none unless answered 201).
pub(super) struct Registration {
    pub sent: Instant,
    pub answered: Instant,
    pub id: Option<String>,
}

/// One account, and the calls its double took (arrival, request id).
pub(super) struct Placement<'a> {
    pub name: &'a str,
    pub rate: f64,
    pub weight: u32,
    pub calls: Vec<(Instant, String)>,
    pub deepest_queue: Option<i64>,
}

/// Registrations of one stretch of the burst.
#[derive(Debug, Serialize)]
pub(super) struct Segment {
    registrations: usize,
    /// From the first one sent to the last one answered.
    per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// Calls in 10-second windows of the doubles' clock, one window starting at each call.
#[derive(Debug, Serialize)]
pub(super) struct Windows {
    calls: usize,
    /// From the first call to the span's end: the last call (for both accounts
    /// together, the last call of the account that finished first).
    span_s: f64,
    /// Calls in a window at the rate set.
    expected: f64,
    /// Windows that end inside the span; `min` is over these.
    full_windows: usize,
    /// The first full window, which starts at the first call (the ramp).
    first: Option<usize>,
    min: Option<usize>,
    /// Over every window, the last partial ones too.
    max: usize,
    /// `min` ≥ expected − 1 and `max` ≤ expected + 1 (none without a full window).
    within_one: Option<bool>,
}

/// One account's calls and queue.
#[derive(Debug, Serialize)]
pub(super) struct Account {
    name: String,
    calls_per_second: f64,
    weight: u32,
    calls: usize,
    windows: Windows,
    /// The servers' `ivr_auth_call_queue_wait_seconds`, interpolated within its buckets.
    queue_wait_p50_s: Option<f64>,
    queue_wait_p99_s: Option<f64>,
    /// On the bench's clock: from a request's 201 to its call at the double.
    after_201_p50_s: Option<f64>,
    after_201_p99_s: Option<f64>,
    /// The largest `ivr_auth_call_queue_depth` any server showed.
    deepest_queue: Option<i64>,
    /// How far the nth call came after the nth slot of the server's schedule
    /// (one interval and the pacing guard apart, started as early as every
    /// call allows): p99 and max, in ms.
    late_p99_ms: Option<f64>,
    late_max_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
pub(super) struct Report {
    database: String,
    nodes: usize,
    concurrency: usize,
    registrations: usize,
    pub registration_errors: usize,
    registrations_per_s: f64,
    first_tenth: Segment,
    last_tenth: Segment,
    accounts: Vec<Account>,
    both: Windows,
    calls: usize,
    /// Registered requests that got no call.
    pub lost: usize,
    /// Registered requests that got more than one.
    pub placed_twice: usize,
    /// Calls for no request the bench registered.
    stray_calls: usize,
    all_placed_before_deadline: bool,
}

impl Report {
    pub fn new(
        args: &BurstArgs,
        registrations: &[Registration],
        placements: &[Placement<'_>],
        metrics: &[String],
        all_placed: bool,
    ) -> Self {
        let tenth = (registrations.len() / 10).max(1).min(registrations.len());
        let mut per_request: HashMap<&str, usize> =
            registrations.iter().filter_map(|r| r.id.as_deref()).map(|id| (id, 0)).collect();
        let mut stray_calls = 0;
        for (_, id) in placements.iter().flat_map(|p| &p.calls) {
            match per_request.get_mut(id.as_str()) {
                Some(n) => *n += 1,
                None => stray_calls += 1,
            }
        }
        let wait = queue_waits(metrics);
        let accounts = placements.iter().map(|p| account(p, registrations, wait.get(p.name))).collect();
        // Both together, up to the moment one account ran out of calls.
        let end = placements.iter().filter_map(|p| p.calls.iter().map(|(t, _)| *t).max()).min();
        let mut all: Vec<Instant> = placements.iter().flat_map(|p| p.calls.iter().map(|(t, _)| *t)).collect();
        all.sort_unstable();
        let both = windows(&all, end, placements.iter().map(|p| p.rate).sum());
        let ok = registrations.iter().filter(|r| r.id.is_some()).count();
        Report {
            database: if args.server.database_url.as_deref().is_some_and(|u| u.starts_with("postgres")) {
                "postgres".into()
            } else {
                "sqlite".into()
            },
            nodes: args.server.nodes,
            concurrency: args.concurrency,
            registrations: registrations.len(),
            registration_errors: registrations.len() - ok,
            registrations_per_s: segment(registrations).per_s,
            first_tenth: segment(&registrations[..tenth]),
            last_tenth: segment(&registrations[registrations.len() - tenth..]),
            accounts,
            both,
            calls: all.len(),
            lost: per_request.values().filter(|n| **n == 0).count(),
            placed_twice: per_request.values().filter(|n| **n > 1).count(),
            stray_calls,
            all_placed_before_deadline: all_placed,
        }
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "burst: {} registrations ({} failed) at {:.0}/s   (concurrency {}, {}, {} node{})\n",
            self.registrations,
            self.registration_errors,
            self.registrations_per_s,
            self.concurrency,
            self.database,
            self.nodes,
            if self.nodes == 1 { "" } else { "s" }
        );
        out.push_str(&format!(
            "{:<24} {:>8} {:>8} {:>8} {:>8}\n",
            "registrations", "per s", "p50 ms", "p99 ms", "max ms"
        ));
        for (name, s) in [("first 10 %", &self.first_tenth), ("last 10 %", &self.last_tenth)] {
            out.push_str(&format!(
                "{:<24} {:>8.0} {:>8.2} {:>8.2} {:>8.2}\n",
                format!("{name} ({})", s.registrations),
                s.per_s,
                s.p50_ms,
                s.p99_ms,
                s.max_ms
            ));
        }
        out.push_str(&format!(
            "calls: {}   lost: {}   placed twice: {}   stray: {}   all placed before the deadline: {}\n",
            self.calls, self.lost, self.placed_twice, self.stray_calls, self.all_placed_before_deadline
        ));
        out.push_str("calls per 10 s window of the doubles' clock (a window from each call; min over windows ending in the span)\n");
        out.push_str(&format!(
            "{:<8} {:>6} {:>6} {:>7} {:>7} {:>6} {:>6} {:>6} {:>9} {:>7}\n",
            "account", "rate/s", "calls", "span s", "windows", "first", "min", "max", "expected", "±1"
        ));
        let rows = self.accounts.iter().map(|a| (a.name.as_str(), a.calls_per_second, &a.windows));
        let both_rate = self.accounts.iter().map(|a| a.calls_per_second).sum();
        for (name, rate, w) in rows.chain([("both", both_rate, &self.both)]) {
            let opt = |v: Option<usize>| v.map_or("-".into(), |v| v.to_string());
            out.push_str(&format!(
                "{name:<8} {rate:>6} {:>6} {:>7.1} {:>7} {:>6} {:>6} {:>6} {:>9} {:>7}\n",
                w.calls,
                w.span_s,
                w.full_windows,
                opt(w.first),
                opt(w.min),
                w.max,
                w.expected,
                match w.within_one {
                    Some(true) => "yes",
                    Some(false) => "NO",
                    None => "-",
                }
            ));
        }
        out.push_str(
            "queue wait, s: the servers' histogram p50/p99 | the bench's 201 → call p50/p99 | deepest queue\n",
        );
        let s = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
        for a in &self.accounts {
            out.push_str(&format!(
                "{:<8} {:>7} {:>7} | {:>7} {:>7} | {:>5} | {:>5} {:>5}\n",
                a.name,
                s(a.queue_wait_p50_s),
                s(a.queue_wait_p99_s),
                s(a.after_201_p50_s),
                s(a.after_201_p99_s),
                a.deepest_queue.map_or("-".into(), |d| d.to_string()),
                a.late_p99_ms.map_or("-".into(), |v| format!("{v:.0}")),
                a.late_max_ms.map_or("-".into(), |v| format!("{v:.0}"))
            ));
        }
        out
    }
}

fn account(p: &Placement<'_>, registrations: &[Registration], buckets: Option<&Vec<(f64, f64)>>) -> Account {
    let mut times: Vec<Instant> = p.calls.iter().map(|(t, _)| *t).collect();
    times.sort_unstable();
    let answered: HashMap<&str, Instant> =
        registrations.iter().filter_map(|r| Some((r.id.as_deref()?, r.answered))).collect();
    let mut after: Vec<f64> = p
        .calls
        .iter()
        .filter_map(|(t, id)| Some(t.saturating_duration_since(*answered.get(id.as_str())?).as_secs_f64()))
        .collect();
    after.sort_by(f64::total_cmp);
    // The server spaces calls by its pacing guard; lateness is against that schedule.
    let late = lateness(&times, p.rate / (1.0 + ivr_auth::domain::pacing::GUARD));
    Account {
        name: p.name.to_owned(),
        calls_per_second: p.rate,
        weight: p.weight,
        calls: times.len(),
        windows: windows(&times, times.last().copied(), p.rate),
        queue_wait_p50_s: buckets.and_then(|b| quantile(b, 0.5)),
        queue_wait_p99_s: buckets.and_then(|b| quantile(b, 0.99)),
        after_201_p50_s: percentile(&after, 0.5),
        after_201_p99_s: percentile(&after, 0.99),
        deepest_queue: p.deepest_queue,
        late_p99_ms: percentile(&late, 0.99),
        late_max_ms: late.last().copied(),
    }
}

/// Each call's lateness (sorted, ms) against slots `1 / rate` apart from the
/// earliest start the calls allow: late calls that then catch up show here.
fn lateness(times: &[Instant], rate: f64) -> Vec<f64> {
    let Some(first) = times.first() else { return Vec::new() };
    let offsets: Vec<f64> =
        times.iter().enumerate().map(|(n, t)| (*t - *first).as_secs_f64() - n as f64 / rate).collect();
    let start = offsets.iter().copied().fold(f64::INFINITY, f64::min);
    let mut late: Vec<f64> = offsets.iter().map(|o| (o - start) * 1e3).collect();
    late.sort_by(f64::total_cmp);
    late
}

/// Windows of `times` (sorted) for a rate of `rate` calls a second, whole up to `end`.
fn windows(times: &[Instant], end: Option<Instant>, rate: f64) -> Windows {
    let expected = rate * WINDOW.as_secs_f64();
    let (mut full, mut max, mut j) = (Vec::new(), 0, 0);
    for (i, t) in times.iter().enumerate() {
        while j < times.len() && times[j] < *t + WINDOW {
            j += 1;
        }
        max = max.max(j - i);
        if end.is_some_and(|end| *t + WINDOW <= end) {
            full.push(j - i);
        }
    }
    let min = full.iter().copied().min();
    Windows {
        calls: times.len(),
        span_s: match (times.first(), end) {
            (Some(first), Some(end)) => end.saturating_duration_since(*first).as_secs_f64(),
            _ => 0.0,
        },
        expected,
        full_windows: full.len(),
        first: full.first().copied(),
        min,
        max,
        within_one: min.map(|m| m as f64 >= expected - 1.0 && max as f64 <= expected + 1.0),
    }
}

fn segment(regs: &[Registration]) -> Segment {
    let mut ms: Vec<f64> = regs.iter().map(|r| (r.answered - r.sent).as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let span = match (regs.iter().map(|r| r.sent).min(), regs.iter().map(|r| r.answered).max()) {
        (Some(first), Some(last)) => (last - first).as_secs_f64(),
        _ => 0.0,
    };
    Segment {
        registrations: regs.len(),
        per_s: if span > 0.0 { regs.len() as f64 / span } else { 0.0 },
        p50_ms: percentile(&ms, 0.5).unwrap_or_default(),
        p99_ms: percentile(&ms, 0.99).unwrap_or_default(),
        max_ms: ms.last().copied().unwrap_or_default(),
    }
}

/// The `q` quantile of `sorted` (nearest rank).
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied()
}

/// The value of label `name` in a sample line.
fn label<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let from = line.find(&format!("{name}=\""))? + name.len() + 2;
    Some(&line[from..from + line[from..].find('"')?])
}

/// `(account, value)` of every sample line that starts with `prefix` (a metric's name and `{`).
pub(super) fn samples<'a>(text: &'a str, prefix: &str) -> Vec<(&'a str, f64)> {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| Some((label(l, "account")?, l.rsplit(' ').next()?.parse().ok()?)))
        .collect()
}

/// Each account's `ivr_auth_call_queue_wait_seconds` buckets (upper bound,
/// cumulative count), summed over the servers, in order.
fn queue_waits(texts: &[String]) -> HashMap<String, Vec<(f64, f64)>> {
    let mut sums: HashMap<(String, String), f64> = HashMap::new();
    for text in texts {
        for line in text.lines().filter(|l| l.starts_with("ivr_auth_call_queue_wait_seconds_bucket{")) {
            let (Some(account), Some(le), Some(Ok(n))) =
                (label(line, "account"), label(line, "le"), line.rsplit(' ').next().map(str::parse::<f64>))
            else {
                continue;
            };
            *sums.entry((account.to_owned(), le.to_owned())).or_default() += n;
        }
    }
    let mut out: HashMap<String, Vec<(f64, f64)>> = HashMap::new();
    for ((account, le), n) in sums {
        if let Ok(le) = le.parse::<f64>() {
            out.entry(account).or_default().push((le, n));
        }
    }
    for buckets in out.values_mut() {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// The `q` quantile of a cumulative histogram, interpolated within its bucket
/// (the lower bound of the last, unbounded one).
fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let target = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= target {
            if le.is_infinite() || count <= below {
                return Some(lower);
            }
            return Some(lower + (le - lower) * (target - below) / (count - below));
        }
        (lower, below) = (le, count);
    }
    Some(lower)
}
