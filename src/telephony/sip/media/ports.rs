//! The UDP ports media may use. Firewalls and SBCs are opened for a range,
//! so ports come from `IVR_AUTH_RTP_PORTS` and go back when the call ends,
//! however it ends. RTP takes even ports (RFC 3550), leaving each odd
//! neighbour for RTCP.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

pub use crate::telephony::sip::settings::{PORTS_ENV, PortRange, PortRangeError};

/// Free ports, handed out oldest-freed first so a port just released (whose
/// old peer may still be sending) rests as long as possible.
#[derive(Debug, Clone)]
pub struct PortPool {
    free: Arc<Mutex<VecDeque<u16>>>,
}

impl PortPool {
    pub fn new(range: PortRange) -> PortPool {
        PortPool { free: Arc::new(Mutex::new(range.even_ports().collect())) }
    }

    /// Takes a port; `None` when all are in use.
    pub fn take(&self) -> Option<PortLease> {
        let port = self.lock().pop_front()?;
        Some(PortLease { port, pool: self.clone() })
    }

    /// How many ports are free.
    pub fn free(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<u16>> {
        // The queue is valid after any panic: a push or a pop either happened or not.
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A port in use; it returns to the pool when dropped.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    pool: PortPool,
}

impl PortLease {
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        self.pool.lock().push_back(self.port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges() {
        assert_eq!("20000-20999".parse(), Ok(PortRange { first: 20000, last: 20999 }));
        assert_eq!(" 30000 - 30010 ".parse::<PortRange>().map(|r| r.last), Ok(30010));
        for bad in ["", "20000", "20000-", "x-20010", "20010-20000", "80-90", "1-70000"] {
            let error = bad.parse::<PortRange>().unwrap_err();
            assert!(error.to_string().contains(PORTS_ENV), "{bad}");
        }
    }

    #[test]
    fn hands_out_even_ports_and_takes_them_back() {
        let pool = PortPool::new("30001-30006".parse().unwrap());
        assert_eq!(pool.free(), 3);
        let a = pool.take().unwrap();
        let b = pool.take().unwrap();
        let c = pool.take().unwrap();
        assert_eq!([a.port(), b.port(), c.port()], [30002, 30004, 30006]);
        assert!(pool.take().is_none());
        drop(b);
        assert_eq!(pool.take().map(|l| l.port()), Some(30004));
        assert_eq!(pool.free(), 1, "the lease above was dropped at once");
    }
}
