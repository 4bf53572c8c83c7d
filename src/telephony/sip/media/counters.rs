//! Counters the engine exposes on `/metrics` and in call logs: kept per
//! session and per node, as plain atomics so the media clock and the
//! receive tasks never wait on each other to count.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where a digit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigitSource {
    Rfc4733,
    Info,
    Inband,
}

#[derive(Debug, Default)]
pub struct Counters {
    pub packets_sent: AtomicU64,
    pub send_failures: AtomicU64,
    pub packets_received: AtomicU64,
    pub dropped_unexpected_source: AtomicU64,
    pub dropped_invalid: AtomicU64,
    pub digits_rfc4733: AtomicU64,
    pub digits_info: AtomicU64,
    pub digits_inband: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub packets_sent: u64,
    pub send_failures: u64,
    pub packets_received: u64,
    pub dropped_unexpected_source: u64,
    pub dropped_invalid: u64,
    pub digits_rfc4733: u64,
    pub digits_info: u64,
    pub digits_inband: u64,
}

impl Counters {
    pub fn snapshot(&self) -> CounterSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            packets_sent: get(&self.packets_sent),
            send_failures: get(&self.send_failures),
            packets_received: get(&self.packets_received),
            dropped_unexpected_source: get(&self.dropped_unexpected_source),
            dropped_invalid: get(&self.dropped_invalid),
            digits_rfc4733: get(&self.digits_rfc4733),
            digits_info: get(&self.digits_info),
            digits_inband: get(&self.digits_inband),
        }
    }

    pub fn digit(&self, source: DigitSource) -> &AtomicU64 {
        match source {
            DigitSource::Rfc4733 => &self.digits_rfc4733,
            DigitSource::Info => &self.digits_info,
            DigitSource::Inband => &self.digits_inband,
        }
    }
}

/// A session's counters and its node's, bumped together.
#[derive(Debug, Clone)]
pub struct CounterPair {
    pub session: Arc<Counters>,
    pub node: Arc<Counters>,
}

impl CounterPair {
    pub fn bump(&self, which: impl Fn(&Counters) -> &AtomicU64) {
        which(&self.session).fetch_add(1, Ordering::Relaxed);
        which(&self.node).fetch_add(1, Ordering::Relaxed);
    }
}
