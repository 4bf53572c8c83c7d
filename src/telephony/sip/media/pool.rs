//! A node's media resources, built once at start-up: the port range, the
//! address to bind, the one media clock and the node-wide counters.

use std::net::IpAddr;
use std::sync::Arc;

use super::clock::{IntervalStats, MediaClock};
use super::counters::{CounterSnapshot, Counters};
use super::ports::{PortPool, PortRange};

#[derive(Clone)]
pub struct MediaPool {
    pub(super) ports: PortPool,
    pub(super) ip: IpAddr,
    pub(super) clock: Arc<MediaClock>,
    pub(super) counters: Arc<Counters>,
}

impl MediaPool {
    /// Starts the node's media clock; call inside the tokio runtime.
    pub fn start(ip: IpAddr, range: PortRange) -> MediaPool {
        MediaPool { ports: PortPool::new(range), ip, clock: MediaClock::start(), counters: Arc::default() }
    }

    pub fn free_ports(&self) -> usize {
        self.ports.free()
    }

    pub fn counters(&self) -> CounterSnapshot {
        self.counters.snapshot()
    }

    /// The send intervals of all sessions since the last reset.
    pub fn send_intervals(&self) -> IntervalStats {
        self.clock.intervals()
    }

    pub fn reset_send_intervals(&self) {
        self.clock.reset_intervals();
    }
}
