//! The database itself and the servers sharing it: health, the old server
//! secret, the memory of used tokens, membership and write counts.

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use crate::store::StoreError;

/// Counts of what a store has written since it was opened (for metrics and the bench).
#[derive(Debug, Default)]
pub struct WriteCounters {
    /// Write transactions that changed something (one per registration, transition, job step…).
    pub writes: AtomicU64,
    /// Durable commits; fewer than `writes` where commits are grouped (SQLite).
    pub commits: AtomicU64,
}

impl WriteCounters {
    pub fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn committed(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes back the writes counted since `mark` (`read().0` then): the
    /// transaction they were made in was rolled back, and they run again or
    /// not at all.
    pub fn rewind(&self, mark: u64) {
        let since = self.writes.load(Ordering::Relaxed).saturating_sub(mark);
        self.writes.fetch_sub(since, Ordering::Relaxed);
    }

    /// `(writes, commits)` so far.
    pub fn read(&self) -> (u64, u64) {
        (self.writes.load(Ordering::Relaxed), self.commits.load(Ordering::Relaxed))
    }
}

/// The database and the servers on it.
#[async_trait]
pub trait ClusterStore: Send + Sync + 'static {
    /// Whether the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// The server secret earlier versions kept in the database, if it is still there.
    async fn stored_server_secret(&self) -> Result<Option<Vec<u8>>, StoreError>;
    /// Removes that secret from the database (once it is safe elsewhere).
    async fn forget_server_secret(&self) -> Result<(), StoreError>;
    /// Records the one-time token whose digest is `digest` as used until
    /// `until`: `true` the first time, `false` while an earlier use is
    /// remembered (its `until` not yet passed at `now`). Every server sees
    /// the same memory, and it outlives restarts.
    async fn first_use(&self, digest: [u8; 32], until: DateTime<Utc>, now: DateTime<Utc>) -> Result<bool, StoreError>;
    /// Whether the token whose digest is `digest` is remembered as used at
    /// `now` (recorded by `first_use`, its `until` not yet passed).
    async fn used(&self, digest: [u8; 32], now: DateTime<Utc>) -> Result<bool, StoreError>;
    /// Forgets used tokens and call counts that no longer matter at `now`; returns how many rows went.
    async fn purge_memory(&self, now: DateTime<Utc>) -> Result<usize, StoreError>;
    /// Records that server `node` is alive and answers how many servers are
    /// (this one included). Limits that must hold across servers share
    /// themselves out by this number.
    async fn heartbeat(&self, node: Uuid) -> Result<u32, StoreError>;
    /// Forgets server `node` (it is stopping).
    async fn leave(&self, node: Uuid) -> Result<(), StoreError>;
    /// Reserves the next start slot of provider account `account`, whose
    /// calls start `interval` apart, at `now`: `domain::pacing::reserve` in
    /// one atomic statement, so every server shares one queue. The slot.
    async fn reserve_call_slot(
        &self,
        account: &str,
        interval: TimeDelta,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError>;
    /// Takes a seat of `account`'s cap of `cap` calls up at once for request
    /// `id`, held until its call ends or `until`: `true` if taken (or already
    /// held by `id`), `false` while `cap` seats are held at `now`.
    async fn take_call_seat(
        &self,
        account: &str,
        id: Uuid,
        cap: u32,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Frees request `id`'s seat, if it holds one.
    async fn free_call_seat(&self, id: Uuid) -> Result<(), StoreError>;
    /// What this store has written since it was opened.
    fn counters(&self) -> &WriteCounters;
}

/// Microseconds since the epoch, as the pacing table keeps its slots.
pub fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The time of `micros`.
pub fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}
