//! What `bench sip` writes and reads without I/O: the SIPp caller file, the
//! figures read back from `/metrics` and SIPp's statistics, and the report
//! of each level (the pass rule, CPU per call-second, the sweep's answer).

use serde::Serialize;

/// The RTP send interval (p99) a level must keep: 20 ms ± 5.
pub(super) const P99_TARGET_MS: f64 = 20.0;
pub(super) const P99_TOLERANCE_MS: f64 = 5.0;

/// The SIPp injection file: one caller per line, read in order (SEQUENTIAL).
/// `[field0]` is the caller, `[field1]` how long it holds after the ACK, in
/// ms. Calls start `1/rate` s apart, so caller `i` of `n` holds
/// `hold_ms + (n-1-i) × 1000/rate`: all of them reach their keys at about
/// the same moment, `hold_ms` after the last one was answered.
pub(super) fn callers_csv(phones: &[String], hold_ms: u64, rate: f64) -> String {
    let mut out = String::from("SEQUENTIAL\n");
    let n = phones.len();
    for (i, phone) in phones.iter().enumerate() {
        let stagger = ((n - 1 - i) as f64 * 1000.0 / rate).round() as u64;
        out.push_str(&format!("{phone};{};\n", hold_ms + stagger));
    }
    out
}

/// The value of the first `/metrics` line for exactly `series` (name and labels).
pub(super) fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Successful and failed calls from SIPp's statistics file (`-trace_stat`,
/// `;`-separated with a header line); the last line is the final count.
pub(super) fn sipp_counts(stat_csv: &str) -> Option<(u64, u64)> {
    let mut lines = stat_csv.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next()?.split(';').collect();
    let last: Vec<&str> = lines.next_back()?.split(';').collect();
    let column = |name: &str| -> Option<u64> {
        let i = header.iter().position(|h| h.trim() == name)?;
        last.get(i)?.trim().parse().ok()
    };
    Some((column("SuccessfulCall(C)")?, column("FailedCall(C)")?))
}

/// One level of the sweep: `calls` held up together.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct Level {
    pub calls: usize,
    /// Seconds from the moment every call was up to the end of the hold.
    pub window_s: f64,
    /// Calls the server held at once at most (`ivr_auth_sip_active_calls`).
    pub peak_active_calls: usize,
    pub sipp_successful: u64,
    pub sipp_failed: u64,
    pub verified: usize,
    /// `ivr_auth_rtp_send_interval_seconds` at the end of the hold, in ms.
    pub send_interval_p50_ms: Option<f64>,
    pub send_interval_p99_ms: Option<f64>,
    pub send_interval_max_ms: Option<f64>,
    /// CPU seconds over the window (user + system).
    pub server_cpu_s: Option<f64>,
    pub sipp_cpu_s: Option<f64>,
    /// The bench's own (registrations, /metrics polls; otherwise idle in the window).
    pub bench_cpu_s: Option<f64>,
    /// Whether the calls were all up for the window (else it is the hold's end).
    pub all_up: bool,
}

impl Level {
    /// Server CPU per call-second: CPU seconds / (calls × window seconds), in µs.
    pub fn server_cpu_per_call_second_us(&self) -> Option<f64> {
        per_call_second_us(self.server_cpu_s?, self.calls, self.window_s)
    }

    pub fn sipp_cpu_per_call_second_us(&self) -> Option<f64> {
        per_call_second_us(self.sipp_cpu_s?, self.calls, self.window_s)
    }

    /// Every call verified (and SIPp saw none fail).
    pub fn all_verified(&self) -> bool {
        self.calls > 0 && self.verified == self.calls && self.sipp_failed == 0
    }

    /// p99 within 20 ± 5 ms (unknown counts as outside).
    pub fn p99_within(&self) -> bool {
        self.send_interval_p99_ms.is_some_and(|p| (p - P99_TARGET_MS).abs() <= P99_TOLERANCE_MS)
    }

    pub fn holds(&self) -> bool {
        self.all_up && self.all_verified() && self.p99_within()
    }
}

fn per_call_second_us(cpu_s: f64, calls: usize, window_s: f64) -> Option<f64> {
    (calls > 0 && window_s > 0.0).then(|| cpu_s * 1e6 / (calls as f64 * window_s))
}

/// The sweep: each level, and the largest that held.
#[derive(Debug, Serialize)]
pub(super) struct SipReport {
    pub database: String,
    pub dtmf: String,
    pub hold_s: f64,
    pub rate: f64,
    pub cores: usize,
    pub levels: Vec<SipLevelJson>,
    /// The most calls at which every call verified with p99 within 20 ± 5 ms.
    pub capacity: Option<usize>,
}

/// A level with its derived figures, as written to JSON.
#[derive(Debug, Serialize)]
pub(super) struct SipLevelJson {
    #[serde(flatten)]
    pub level: Level,
    pub server_cpu_per_call_second_us: Option<f64>,
    pub sipp_cpu_per_call_second_us: Option<f64>,
    pub holds: bool,
}

impl SipReport {
    pub fn new(database: String, dtmf: String, hold_s: f64, rate: f64, cores: usize, levels: Vec<Level>) -> Self {
        let capacity = levels.iter().filter(|l| l.holds()).map(|l| l.calls).max();
        let levels = levels
            .into_iter()
            .map(|level| SipLevelJson {
                server_cpu_per_call_second_us: level.server_cpu_per_call_second_us(),
                sipp_cpu_per_call_second_us: level.sipp_cpu_per_call_second_us(),
                holds: level.holds(),
                level,
            })
            .collect();
        SipReport { database, dtmf, hold_s, rate, cores, levels, capacity }
    }

    pub fn table(&self) -> String {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.1}"));
        let us = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.0}"));
        let pct = |v: Option<f64>, w: f64| v.map_or_else(|| "-".into(), |v| format!("{:.0}%", 100.0 * v / w));
        let mut out = format!(
            "bench sip: {} · keys as {} · hold {:.0} s · {:.0} calls/s · {} cores\n\n",
            self.database, self.dtmf, self.hold_s, self.rate, self.cores
        );
        out.push_str(
            "calls  verified  sipp ok/failed  window s  p50 ms  p99 ms  max ms  server CPU  µs/call-s  sipp CPU  µs/call-s  holds\n",
        );
        for l in &self.levels {
            let lv = &l.level;
            let window = lv.window_s.max(f64::MIN_POSITIVE);
            out.push_str(&format!(
                "{:>5}  {:>8}  {:>14}  {:>8.1}  {:>6}  {:>6}  {:>6}  {:>10}  {:>9}  {:>8}  {:>9}  {}\n",
                lv.calls,
                lv.verified,
                format!("{}/{}", lv.sipp_successful, lv.sipp_failed),
                lv.window_s,
                ms(lv.send_interval_p50_ms),
                ms(lv.send_interval_p99_ms),
                ms(lv.send_interval_max_ms),
                pct(lv.server_cpu_s, window),
                us(l.server_cpu_per_call_second_us),
                pct(lv.sipp_cpu_s, window),
                us(l.sipp_cpu_per_call_second_us),
                match (l.holds, lv.all_up) {
                    (true, _) => "yes",
                    (false, false) => "no (not all up)",
                    (false, true) => "no",
                },
            ));
        }
        out.push_str(&match self.capacity {
            Some(n) => format!("\ncapacity: {n} calls (every call verified, p99 within 20 ± 5 ms)\n"),
            None => "\ncapacity: no level held (every call verified, p99 within 20 ± 5 ms)\n".into(),
        });
        out.push_str("CPU % is of one core over the window; 100% per core available.\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callers_file_staggers_the_holds_so_all_keys_go_together() {
        let phones: Vec<String> = ["+819010000000", "+819010000001", "+819010000002"].map(String::from).into();
        assert_eq!(
            callers_csv(&phones, 10_000, 4.0),
            "SEQUENTIAL\n+819010000000;10500;\n+819010000001;10250;\n+819010000002;10000;\n"
        );
        assert_eq!(callers_csv(&[], 1000, 1.0), "SEQUENTIAL\n");
    }

    #[test]
    fn metrics_are_read_by_their_exact_series() {
        let text = "# HELP x\n\
            ivr_auth_rtp_send_interval_seconds{quantile=\"0.5\"} 0.02\n\
            ivr_auth_rtp_send_interval_seconds{quantile=\"0.99\"} 0.0213\n\
            ivr_auth_sip_active_calls_peak 9\n\
            ivr_auth_sip_active_calls 200\n";
        assert_eq!(metric(text, "ivr_auth_rtp_send_interval_seconds{quantile=\"0.99\"}"), Some(0.0213));
        assert_eq!(metric(text, "ivr_auth_sip_active_calls"), Some(200.0));
        assert_eq!(metric(text, "ivr_auth_rtp_free_ports"), None);
    }

    #[test]
    fn sipp_counts_come_from_the_last_line_of_its_statistics() {
        let csv = "StartTime;SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C);\n\
            2026-01-01;0;0;0;0;\n\
            2026-01-01;5;198;1;2;\n";
        assert_eq!(sipp_counts(csv), Some((198, 2)));
        assert_eq!(sipp_counts("StartTime;\n"), None);
    }

    fn level(calls: usize, verified: usize, p99_ms: f64) -> Level {
        Level {
            calls,
            verified,
            sipp_successful: verified as u64,
            send_interval_p99_ms: Some(p99_ms),
            window_s: 10.0,
            all_up: true,
            ..Level::default()
        }
    }

    #[test]
    fn cpu_per_call_second_divides_by_calls_and_window() {
        let l = Level { server_cpu_s: Some(2.0), sipp_cpu_s: Some(0.5), ..level(200, 200, 20.0) };
        // 2 CPU-s over 200 calls × 10 s = 1 ms per call-second.
        assert_eq!(l.server_cpu_per_call_second_us(), Some(1000.0));
        assert_eq!(l.sipp_cpu_per_call_second_us(), Some(250.0));
        assert_eq!(Level { window_s: 0.0, ..l }.server_cpu_per_call_second_us(), None);
    }

    #[test]
    fn a_level_holds_only_with_every_call_verified_and_p99_within_20_plus_minus_5() {
        assert!(level(100, 100, 25.0).holds());
        assert!(level(100, 100, 15.0).holds());
        assert!(!level(100, 100, 25.1).holds());
        assert!(!level(100, 100, 14.9).holds());
        assert!(!level(100, 99, 20.0).holds());
        assert!(!Level { sipp_failed: 1, ..level(100, 100, 20.0) }.holds());
        assert!(!Level { send_interval_p99_ms: None, ..level(100, 100, 20.0) }.holds());
        assert!(!Level { all_up: false, ..level(100, 100, 20.0) }.holds());
        assert!(!level(0, 0, 20.0).holds());
    }

    #[test]
    fn capacity_is_the_largest_level_that_held() {
        let levels = vec![level(100, 100, 20.1), level(200, 200, 21.0), level(300, 300, 31.0), level(400, 399, 20.0)];
        let report = SipReport::new("sqlite".into(), "rfc2833".into(), 20.0, 50.0, 2, levels);
        assert_eq!(report.capacity, Some(200));
        assert!(report.table().contains("capacity: 200 calls"));
        let none = SipReport::new("sqlite".into(), "rfc2833".into(), 20.0, 50.0, 2, vec![level(100, 0, 20.0)]);
        assert_eq!(none.capacity, None);
    }
}
