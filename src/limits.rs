//! Rate limits (GCRA via `governor`) kept in memory: the per-tenant limit of
//! the site API, shared out between the servers on one database.
//!
//! (The per-number limit on registrations is counted in the store, from the
//! stored requests, so it holds across servers exactly.)

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
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

/// A limit of `n` per `window` for the whole cluster: each of the `N` live
/// servers allows `n / N` (at least 1), so N servers never allow N times the
/// limit. A load balancer that spreads requests evenly gives a client the
/// whole limit; one that pins a client to one server gives it that server's share.
pub struct SharedLimiter<K: Hash + Eq + Clone> {
    n: u32,
    window: Duration,
    nodes: Arc<AtomicU32>,
    current: RwLock<(u32, Arc<Limiter<K>>)>,
}

impl<K: Hash + Eq + Clone> SharedLimiter<K> {
    /// `n == 0` disables the limit; `nodes` is the live server count, kept current elsewhere.
    pub fn new(n: u32, window: Duration, nodes: Arc<AtomicU32>) -> Self {
        let share = share(n, nodes.load(Ordering::Relaxed));
        Self { n, window, nodes, current: RwLock::new((share, Arc::new(Limiter::new(share, window)))) }
    }

    fn limiter(&self) -> Arc<Limiter<K>> {
        let share = share(self.n, self.nodes.load(Ordering::Relaxed));
        let current = self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.0 == share {
            return current.1.clone();
        }
        drop(current);
        let mut current = self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.0 != share {
            *current = (share, Arc::new(Limiter::new(share, self.window)));
        }
        current.1.clone()
    }

    /// Counts one event for `key`; `Err` says how long until one more is allowed.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.limiter().check(key)
    }

    /// Forgets keys whose limits have fully recovered.
    pub fn shrink(&self) {
        self.limiter().shrink();
    }
}

/// This server's part of a limit of `n` shared by `nodes` servers (0 stays "off").
fn share(n: u32, nodes: u32) -> u32 {
    if n == 0 { 0 } else { (n / nodes.max(1)).max(1) }
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

    #[test]
    fn a_shared_limit_is_split_between_live_servers() {
        let nodes = Arc::new(AtomicU32::new(1));
        let l = SharedLimiter::new(6, Duration::from_secs(60), nodes.clone());
        let allowed = |l: &SharedLimiter<&str>, key| (0..20).filter(|_| l.check(&key).is_ok()).count();
        assert_eq!(allowed(&l, "a"), 6);
        nodes.store(3, Ordering::Relaxed);
        assert_eq!(allowed(&l, "b"), 2, "each of 3 servers allows a third");
        nodes.store(100, Ordering::Relaxed);
        assert_eq!(allowed(&l, "c"), 1, "never below one");
        assert_eq!(share(0, 3), 0, "off stays off");
    }
}
