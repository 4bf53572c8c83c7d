//! The SQLite backend's health, the old server secret, used tokens, servers and write counts.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

use super::SqliteStore;
use super::pool::db_err;
use super::rows::ms;
use crate::domain::budget::Budget;
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

    async fn purge_memory(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let counters = self.counters.clone();
        self.pool
            .write(move |c| {
                let tokens = c.execute("DELETE FROM used_tokens WHERE until < ?1", [ms(now)]).map_err(db_err)?;
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

    fn counters(&self) -> &WriteCounters {
        &self.counters
    }
}
