//! Retry delays for durable jobs.
//!
//! The attempt count lives in the jobs table (it must survive restarts), so
//! the delay is a pure function of it rather than an in-memory retry loop:
//! exponential growth, a cap, and "equal jitter" so that many jobs failing
//! together do not retry together.

use std::time::Duration;

use rand::RngExt;

/// The delay before attempt `attempt + 1`: `base · 2^attempt`, capped, half of it jittered.
pub fn delay(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX)).min(cap);
    let half = exp / 2;
    half + half.mul_f64(rand::rng().random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_stays_capped() {
        let base = Duration::from_secs(5);
        let cap = Duration::from_secs(3600);
        for attempt in 0..40 {
            let d = delay(attempt, base, cap);
            let exp = base.saturating_mul(1 << attempt.min(31)).min(cap);
            assert!(d >= exp / 2 && d <= exp, "{attempt}: {d:?}");
        }
        assert!(delay(30, base, cap) >= Duration::from_secs(1800));
    }
}
