//! A tenant's call budgets: outbound calls a minute and a day. They are not
//! there to shape traffic (the defaults are far above what a site does) but
//! to stop a stolen API key from running up the telephone bill.

use chrono::{DateTime, TimeDelta, Utc};

/// A budget: how many calls in which window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Budget {
    PerMinute,
    PerDay,
}

impl Budget {
    pub const ALL: [Budget; 2] = [Budget::PerMinute, Budget::PerDay];

    /// The sliding window the budget counts in.
    pub fn window(self) -> TimeDelta {
        match self {
            Self::PerMinute => TimeDelta::minutes(1),
            Self::PerDay => TimeDelta::days(1),
        }
    }

    /// The width of the buckets a store keeps this budget's counts in: the
    /// sum of the buckets that overlap the window is an upper bound of the
    /// calls in it, read from a few rows (2 for the minute, 25 for the day).
    pub fn bucket_seconds(self) -> i64 {
        match self {
            Self::PerMinute => 60,
            Self::PerDay => 3600,
        }
    }

    /// The bucket `at` falls in.
    pub fn bucket(self, at: DateTime<Utc>) -> i64 {
        at.timestamp().div_euclid(self.bucket_seconds())
    }

    /// The oldest bucket that may hold a call of the window ending at `now`.
    pub fn first_bucket(self, now: DateTime<Utc>) -> i64 {
        self.bucket(now - self.window())
    }

    /// The number a store keeps it under.
    pub fn id(self) -> i16 {
        match self {
            Self::PerMinute => 1,
            Self::PerDay => 2,
        }
    }

    /// The name in messages, logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::PerMinute => "calls_per_minute",
            Self::PerDay => "calls_per_day",
        }
    }

    /// Where an operator changes it.
    pub fn setting(self) -> &'static str {
        match self {
            Self::PerMinute => "ivr-auth tenant set --calls-per-minute, default IVR_AUTH_TENANT_CALLS_PER_MINUTE",
            Self::PerDay => "ivr-auth tenant set --calls-per-day, default IVR_AUTH_TENANT_CALLS_PER_DAY",
        }
    }

    /// The window in words.
    pub fn period(self) -> &'static str {
        match self {
            Self::PerMinute => "minute",
            Self::PerDay => "24 hours",
        }
    }
}

/// A budget and its limit for one tenant (never 0: a budget of 0 is none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallBudget {
    pub budget: Budget,
    pub max: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buckets_that_overlap_a_window_cover_it() {
        let now = DateTime::from_timestamp(1_800_000_030, 0).unwrap();
        for budget in Budget::ALL {
            let first = budget.first_bucket(now);
            let oldest_counted = now - budget.window() + TimeDelta::milliseconds(1);
            assert!(budget.bucket(oldest_counted) >= first);
            let buckets = budget.bucket(now) - first + 1;
            assert!(buckets <= budget.window().num_seconds() / budget.bucket_seconds() + 1, "{budget:?}: {buckets}");
        }
    }
}
