//! The time the domain sees: wall-clock time at the millisecond precision every backend keeps.
//!
//! Handlers, jobs and the sweeper read the time from one `Clock`, so a test can
//! move it forward (an expiry, say) without writing into the database.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, truncated to whole milliseconds.
    fn now(&self) -> DateTime<Utc>;
}

/// `t` without its sub-millisecond part: stores keep milliseconds, so a time
/// read back equals the time written.
pub fn to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// The system clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        to_millis(Utc::now())
    }
}

/// The system clock plus an offset that only grows: for tests and simulations
/// that need time to pass faster than it does.
#[derive(Debug, Default)]
pub struct ShiftedClock {
    offset_ms: AtomicI64,
}

impl ShiftedClock {
    /// Moves this clock forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        self.offset_ms.fetch_add(by.num_milliseconds().max(0), Ordering::SeqCst);
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> DateTime<Utc> {
        to_millis(Utc::now()) + chrono::Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_whole_milliseconds_and_shifts_add_up() {
        let c = ShiftedClock::default();
        let before = SystemClock.now();
        c.advance(chrono::Duration::minutes(10));
        let shifted = c.now();
        assert_eq!(shifted.timestamp_subsec_nanos() % 1_000_000, 0);
        assert!(shifted - before >= chrono::Duration::minutes(10));
        c.advance(chrono::Duration::seconds(-5));
        assert!(c.now() >= shifted, "a shifted clock never goes back");
    }
}
