//! One media clock per node. A timer per call would mean hundreds of timer
//! wake-ups every 20 ms competing for two cores; one task on an absolute
//! 20 ms grid sends the next frame of every live session in turn, so the
//! pace holds as calls are added and never drifts.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::{Instant, MissedTickBehavior};

/// The packet interval: 20 ms, 160 samples at 8 kHz.
pub const PTIME: Duration = Duration::from_millis(20);

/// Something the clock drives: sends its next frame, tells whether it is
/// still alive, and reports the interval since its previous send.
pub trait Paced: Send + Sync {
    /// Sends the next frame; returns the time since the previous send.
    fn tick(&self, now: Instant) -> Option<Duration>;
}

/// The node's clock and the sessions it paces.
pub struct MediaClock {
    sessions: Mutex<Vec<Arc<dyn Paced>>>,
    /// `None` only if the histogram could not be made (fixed bounds: never).
    intervals: Mutex<Option<Histogram<u64>>>,
}

/// Send intervals across all sessions, for `/metrics` and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntervalStats {
    pub count: u64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl MediaClock {
    /// Starts the clock task; it ends when the clock is dropped.
    pub fn start() -> Arc<MediaClock> {
        let clock = Arc::new(MediaClock { sessions: Mutex::new(Vec::new()), intervals: Mutex::new(new_histogram()) });
        tokio::spawn(run(Arc::downgrade(&clock)));
        clock
    }

    pub fn add(&self, session: Arc<dyn Paced>) {
        self.lock_sessions().push(session);
    }

    /// Removes a session. Sending happens under the same lock, so once this
    /// returns the clock holds no reference to it.
    pub fn remove(&self, session: &Arc<dyn Paced>) {
        self.lock_sessions().retain(|s| !Arc::ptr_eq(s, session));
    }

    pub fn intervals(&self) -> IntervalStats {
        let h = self.intervals.lock().unwrap_or_else(PoisonError::into_inner);
        let us = Duration::from_micros;
        let quantile = |q| h.as_ref().map_or(0, |h| h.value_at_quantile(q));
        IntervalStats {
            count: h.as_ref().map_or(0, |h| h.len()),
            p50: us(quantile(0.5)),
            p99: us(quantile(0.99)),
            max: us(h.as_ref().map_or(0, |h| h.max())),
        }
    }

    pub fn reset_intervals(&self) {
        let mut h = self.intervals.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(h) = h.as_mut() {
            h.reset();
        }
    }

    fn tick(&self, now: Instant) {
        let measured: Vec<Duration> = self.lock_sessions().iter().filter_map(|s| s.tick(now)).collect();
        let mut h = self.intervals.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(h) = h.as_mut() else { return };
        for interval in measured {
            h.saturating_record(interval.as_micros().try_into().unwrap_or(u64::MAX));
        }
    }

    fn lock_sessions(&self) -> std::sync::MutexGuard<'_, Vec<Arc<dyn Paced>>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// 1 µs to 60 s with three significant digits.
fn new_histogram() -> Option<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000, 3).ok()
}

async fn run(clock: Weak<MediaClock>) {
    let mut grid = tokio::time::interval_at(Instant::now() + PTIME, PTIME);
    // Skip keeps the absolute grid after a stall instead of bursting.
    grid.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        grid.tick().await;
        let Some(clock) = clock.upgrade() else { break };
        clock.tick(Instant::now());
    }
}
