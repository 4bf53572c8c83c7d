//! Outbound call pacing: a provider account starts at most so many calls a
//! second and keeps at most so many up at once, across every node.
//!
//! The rate is a reservation queue (the generic cell rate algorithm): each
//! call reserves the account's next free start slot, `max(now, next free)`,
//! and moves the next free slot one interval later. A burst therefore gets
//! slots one interval apart in the order it asked, each call knows when it
//! will leave (the estimate a site sees), and no waiting call asks again.
//! The store keeps the next free slot per account and applies this rule in
//! one atomic statement, so three nodes together keep one account's rate.

use chrono::{DateTime, TimeDelta, Utc};

/// An account's pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Between two call starts.
    pub interval: TimeDelta,
    /// Calls up at once, at most.
    pub max_concurrent: Option<u32>,
}

/// Calls are not started later than this before their request expires: a
/// call needs time to ring and for the code to be typed.
pub const LAST_START_BEFORE_EXPIRY: TimeDelta = TimeDelta::seconds(15);

/// Calls are spaced this share wider than the account's rate asks: a call
/// that leaves a few milliseconds late while the one a second on leaves on
/// time would otherwise make a window of the provider's clock hold one call
/// more than the rate (a 429, or a skipped account). 0.5 % keeps that from
/// happening for jitter up to 50 ms per 100 calls, and costs a 3,000-call
/// burst one second in two hundred.
pub const GUARD: f64 = 0.005;

/// How long a seat of the concurrent-call cap is held when no end of the
/// call is reported (a lost status callback must not shrink the cap for good).
pub const SEAT_LEASE: TimeDelta = TimeDelta::minutes(15);

impl Pace {
    /// `calls_per_second` (more than 0, kept with a `GUARD`) and an optional cap.
    pub fn new(calls_per_second: f64, max_concurrent: Option<u32>) -> Self {
        let micros = (1_000_000.0 * (1.0 + GUARD) / calls_per_second).round().clamp(1.0, 3_600_000_000.0) as i64;
        Self { interval: TimeDelta::microseconds(micros), max_concurrent }
    }

    /// Only a cap on calls up at once, no rate.
    pub fn cap_only(max_concurrent: u32) -> Self {
        Self { interval: TimeDelta::zero(), max_concurrent: Some(max_concurrent) }
    }
}

/// The rule: the slot a call gets when the account's next free slot is
/// `next_free` (none yet: now), and the next free slot after it.
pub fn reserve(
    next_free: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    interval: TimeDelta,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let slot = next_free.map_or(now, |free| free.max(now));
    (slot, slot + interval)
}

/// Whether a call whose start slot is `slot` may still be placed for a
/// request that expires at `expires_at`; if not, the request fails as
/// `not_placed` instead of ringing someone after the code has expired.
pub fn in_time(slot: DateTime<Utc>, expires_at: DateTime<Utc>) -> bool {
    slot + LAST_START_BEFORE_EXPIRY <= expires_at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_764_900_000_000 + ms).unwrap()
    }

    #[test]
    fn a_burst_gets_slots_one_interval_apart_in_order() {
        let pace = Pace::new(10.0, None);
        assert_eq!(pace.interval, TimeDelta::microseconds(100_500), "100 ms and the guard");
        let mut free = None;
        let slots: Vec<_> = (0..4)
            .map(|_| {
                let (slot, next) = reserve(free, at(0), pace.interval);
                free = Some(next);
                slot
            })
            .collect();
        let step = |n: i32| at(0) + pace.interval * n;
        assert_eq!(slots, vec![step(0), step(1), step(2), step(3)]);
    }

    #[test]
    fn an_idle_account_starts_at_once_and_does_not_bank_slots() {
        let interval = TimeDelta::milliseconds(200);
        assert_eq!(reserve(Some(at(0)), at(5_000), interval), (at(5_000), at(5_200)));
        assert_eq!(reserve(None, at(7), interval), (at(7), at(207)));
    }

    #[test]
    fn a_slot_too_close_to_expiry_is_not_placed() {
        assert!(in_time(at(0), at(15_000)));
        assert!(!in_time(at(1), at(15_000)));
        assert_eq!(Pace::new(3.0, Some(2)).interval, TimeDelta::microseconds(335_000));
    }
}
