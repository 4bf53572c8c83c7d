//! Rate limits (GCRA via `governor`): per tenant on the site API, per phone number on registrations.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// A keyed limiter that may be switched off (a limit of 0).
pub struct Limiter<K: Hash + Eq + Clone> {
    inner: Option<DefaultKeyedRateLimiter<K>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// Allows `n` events per `window`, with a burst of `n`; `n == 0` disables the limit.
    pub fn new(n: u32, window: Duration) -> Self {
        let inner = NonZeroU32::new(n).and_then(|burst| {
            Quota::with_period(window / burst.get()).map(|q| RateLimiter::keyed(q.allow_burst(burst)))
        });
        Self { inner }
    }

    /// Counts one event for `key`; `Err` says how long until one more is allowed.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let Some(limiter) = &self.inner else { return Ok(()) };
        limiter.check_key(key).map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Forgets keys whose limits have fully recovered, bounding memory.
    pub fn shrink(&self) {
        if let Some(limiter) = &self.inner {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key_and_zero_means_off() {
        let l = Limiter::new(2, Duration::from_secs(60));
        assert!(l.check(&"a").is_ok());
        assert!(l.check(&"a").is_ok());
        let wait = l.check(&"a").unwrap_err();
        assert!(wait > Duration::from_secs(1));
        assert!(l.check(&"b").is_ok());
        let off = Limiter::new(0, Duration::from_secs(1));
        for _ in 0..100 {
            assert!(off.check(&"a").is_ok());
        }
    }
}
