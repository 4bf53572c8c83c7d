//! The SQLite backend's health, the old server secret, used tokens, servers and write counts.

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

use super::SqliteStore;
use super::pool::db_err;
use super::rows::ms;
use crate::domain::budget::Budget;
use crate::store::cluster::{from_micros, micros};
use crate::store::{ClusterStore, StoreError, WriteCounters};

#[async_trait]
impl ClusterStore for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.pool.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(db_err)).await
    }

    async fn stored_server_secret(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.pool
            .read(|c| {
                c.query_row("SELECT secret FROM server_secret WHERE id = 1", [], |r| r.get(0))
                    .optional()
                    .map_err(db_err)
            })
            .await
    }

    async fn forget_server_secret(&self) -> Result<(), StoreError> {
        // The freed page is overwritten with zeros, not left for a later copy to find.
        self.pool
            .write(|c| {
                c.execute_batch("PRAGMA secure_delete = ON; DELETE FROM server_secret; PRAGMA secure_delete = OFF;")
                    .map_err(db_err)
            })
            .await
    }

    async fn first_use(&self, digest: [u8; 32], until: DateTime<Utc>, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let counters = self.counters.clone();
        self.pool
            .write(move |c| {
                // A remembered use that has passed its `until` is forgotten, not a conflict.
                let n = c
                    .prepare_cached(
                        "INSERT INTO used_tokens (digest, until) VALUES (?1, ?2) \
                         ON CONFLICT (digest) DO UPDATE SET until = excluded.until WHERE used_tokens.until < ?3",
                    )
                    .and_then(|mut s| s.execute(params![digest.as_slice(), ms(until), ms(now)]))
                    .map_err(db_err)?;
                counters.wrote();
                Ok(n == 1)
            })
            .await
    }

    async fn used(&self, digest: [u8; 32], now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.pool.read_here(|c| {
            c.prepare_cached("SELECT 1 FROM used_tokens WHERE digest = ?1 AND until >= ?2")
                .and_then(|mut s| s.exists(params![digest.as_slice(), ms(now)]))
                .map_err(db_err)
        })
    }

    async fn purge_memory(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let counters = self.counters.clone();
        self.pool
            .write(move |c| {
                let tokens = c.execute("DELETE FROM used_tokens WHERE until < ?1", [ms(now)]).map_err(db_err)?
                    + c.execute("DELETE FROM call_seats WHERE until < ?1", [ms(now)]).map_err(db_err)?;
                let mut counts = 0;
                for b in Budget::ALL {
                    counts += c
                        .execute(
                            "DELETE FROM call_counts WHERE budget = ?1 AND bucket < ?2",
                            params![b.id(), b.first_bucket(now)],
                        )
                        .map_err(db_err)?;
                }
                if tokens + counts > 0 {
                    counters.wrote();
                }
                Ok(tokens + counts)
            })
            .await
    }

    async fn heartbeat(&self, _node: Uuid) -> Result<u32, StoreError> {
        // The file lock admits one server: it is alone.
        Ok(1)
    }

    async fn leave(&self, _node: Uuid) -> Result<(), StoreError> {
        Ok(())
    }

    async fn reserve_call_slot(
        &self,
        account: &str,
        interval: TimeDelta,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError> {
        let counters = self.counters.clone();
        let account = account.to_owned();
        let (now_us, step) = (micros(now), interval.num_microseconds().unwrap_or(i64::MAX));
        self.pool
            .write(move |c| {
                // `domain::pacing::reserve`: slot = max(next free, now); next free = slot + interval.
                let next_free: i64 = c
                    .prepare_cached(
                        "INSERT INTO call_pacing (account, next_free) VALUES (?1, ?2 + ?3) \
                         ON CONFLICT (account) DO UPDATE SET next_free = max(call_pacing.next_free, ?2) + ?3 \
                         RETURNING next_free",
                    )
                    .and_then(|mut s| s.query_row(params![account, now_us, step], |r| r.get(0)))
                    .map_err(db_err)?;
                counters.wrote();
                Ok(from_micros(next_free - step))
            })
            .await
    }

    async fn take_call_seat(
        &self,
        account: &str,
        id: Uuid,
        cap: u32,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let counters = self.counters.clone();
        let account = account.to_owned();
        // One writer: the count and the insert are one transaction of the writer thread.
        self.pool
            .write(move |c| {
                let held: i64 = c
                    .prepare_cached(
                        "SELECT count(*) FROM call_seats WHERE account = ?1 AND until >= ?2 AND request_id <> ?3",
                    )
                    .and_then(|mut s| s.query_row(params![account, ms(now), id.as_bytes()], |r| r.get(0)))
                    .map_err(db_err)?;
                let taken = held < i64::from(cap);
                if taken {
                    c.prepare_cached(
                        "INSERT INTO call_seats (request_id, account, until) VALUES (?1, ?2, ?3) \
                         ON CONFLICT (request_id) DO UPDATE SET account = excluded.account, until = excluded.until",
                    )
                    .and_then(|mut s| s.execute(params![id.as_bytes(), account, ms(until)]))
                    .map_err(db_err)?;
                    counters.wrote();
                }
                Ok(taken)
            })
            .await
    }

    async fn free_call_seat(&self, id: Uuid) -> Result<(), StoreError> {
        let counters = self.counters.clone();
        self.pool
            .write(move |c| {
                let n = c
                    .prepare_cached("DELETE FROM call_seats WHERE request_id = ?1")
                    .and_then(|mut s| s.execute([id.as_bytes()]))
                    .map_err(db_err)?;
                if n > 0 {
                    counters.wrote();
                }
                Ok(())
            })
            .await
    }

    fn counters(&self) -> &WriteCounters {
        &self.counters
    }
}
