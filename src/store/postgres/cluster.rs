//! The PostgreSQL backend's health, the old server secret, used tokens, servers and write counts.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use deadpool_postgres::GenericClient;
use tokio::time::Instant;
use uuid::Uuid;

use super::PgStore;
use super::retry::Fail;
use crate::domain::budget::Budget;
use crate::store::cluster::{from_micros, micros};
use crate::store::{ClusterStore, StoreError, WriteCounters};

#[async_trait]
impl ClusterStore for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        // One attempt, briefly: readiness must answer fast, not retry.
        let deadline = Instant::now() + Duration::from_secs(2);
        let check = async {
            let conn = self.db.connection(deadline).await?;
            conn.simple_query("SELECT 1").await?;
            Ok::<(), Fail>(())
        };
        match tokio::time::timeout_at(deadline, check).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(fail)) => Err(fail.transient().map_or_else(|e| e, StoreError::Unavailable)),
            Err(_) => Err(StoreError::Unavailable("the database did not answer in time".into())),
        }
    }

    async fn stored_server_secret(&self) -> Result<Option<Vec<u8>>, StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            Ok(c.query_opt("SELECT secret FROM server_secret WHERE id = 1", &[]).await?.map(|row| row.get(0)))
        })
    }

    async fn forget_server_secret(&self) -> Result<(), StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            c.execute("DELETE FROM server_secret", &[]).await?;
            Ok(())
        })
    }

    async fn first_use(&self, digest: [u8; 32], until: DateTime<Utc>, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let counters = &self.db.counters;
        retrying!(&self.db, "operation", |c, _tries| {
            // A remembered use that has passed its `until` is forgotten, not a conflict.
            let stmt = c
                .prepare_cached(
                    "INSERT INTO used_tokens (digest, until) VALUES ($1, $2) \
                     ON CONFLICT (digest) DO UPDATE SET until = excluded.until WHERE used_tokens.until < $3",
                )
                .await?;
            let n = c.execute(&stmt, &[&digest.as_slice(), &until, &now]).await?;
            counters.wrote();
            counters.committed();
            Ok(n == 1)
        })
    }

    async fn used(&self, digest: [u8; 32], now: DateTime<Utc>) -> Result<bool, StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            let stmt = c.prepare_cached("SELECT 1 FROM used_tokens WHERE digest = $1 AND until >= $2").await?;
            Ok(c.query_opt(&stmt, &[&digest.as_slice(), &now]).await?.is_some())
        })
    }

    async fn purge_memory(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let counters = &self.db.counters;
        retrying!(&self.db, "operation", |c, _tries| {
            let mut n = c.execute("DELETE FROM used_tokens WHERE until < $1", &[&now]).await?;
            n += c.execute("DELETE FROM call_seats WHERE until < $1", &[&now]).await?;
            for b in Budget::ALL {
                n += c
                    .execute(
                        "DELETE FROM call_counts WHERE budget = $1 AND bucket < $2",
                        &[&b.id(), &b.first_bucket(now)],
                    )
                    .await?;
            }
            if n > 0 {
                counters.wrote();
                counters.committed();
            }
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }

    async fn heartbeat(&self, node: Uuid) -> Result<u32, StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            c.execute(
                "INSERT INTO nodes (id, started_at, last_seen) VALUES ($1, now(), now()) \
                 ON CONFLICT (id) DO UPDATE SET last_seen = now()",
                &[&node],
            )
            .await?;
            // Servers that stopped without saying so are forgotten after a day.
            let row = c
                .query_one(
                    "WITH gone AS (DELETE FROM nodes WHERE last_seen < now() - interval '1 day') \
                     SELECT count(*) FROM nodes WHERE last_seen > now() - interval '15 seconds'",
                    &[],
                )
                .await?;
            Ok(u32::try_from(row.get::<_, i64>(0)).unwrap_or(1).max(1))
        })
    }

    async fn leave(&self, node: Uuid) -> Result<(), StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            c.execute("DELETE FROM nodes WHERE id = $1", &[&node]).await?;
            Ok(())
        })
    }

    async fn reserve_call_slot(
        &self,
        account: &str,
        interval: TimeDelta,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError> {
        let counters = &self.db.counters;
        let (now_us, step) = (micros(now), interval.num_microseconds().unwrap_or(i64::MAX));
        retrying!(&self.db, "operation", |c, _tries| {
            // `domain::pacing::reserve`: slot = max(next free, now); next free = slot + interval.
            let stmt = c
                .prepare_cached(
                    "INSERT INTO call_pacing (account, next_free) VALUES ($1, $2::BIGINT + $3::BIGINT) \
                     ON CONFLICT (account) DO UPDATE \
                     SET next_free = GREATEST(call_pacing.next_free, $2::BIGINT) + $3::BIGINT \
                     RETURNING next_free",
                )
                .await?;
            let next_free: i64 = c.query_one(&stmt, &[&account, &now_us, &step]).await?.get(0);
            counters.wrote();
            counters.committed();
            Ok(from_micros(next_free - step))
        })
    }

    async fn take_call_seat(
        &self,
        account: &str,
        id: Uuid,
        cap: u32,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let counters = &self.db.counters;
        retrying!(&self.db, "operation", |c, _tries| {
            let tx = c.transaction().await?;
            // The account's pacing row is the lock every server takes before counting seats.
            tx.execute(
                "INSERT INTO call_pacing (account, next_free) VALUES ($1, 0) ON CONFLICT (account) DO NOTHING",
                &[&account],
            )
            .await?;
            tx.execute("SELECT 1 FROM call_pacing WHERE account = $1 FOR UPDATE", &[&account]).await?;
            let held: i64 = tx
                .query_one(
                    "SELECT count(*) FROM call_seats WHERE account = $1 AND until >= $2 AND request_id <> $3",
                    &[&account, &now, &id],
                )
                .await?
                .get(0);
            let taken = held < i64::from(cap);
            if taken {
                tx.execute(
                    "INSERT INTO call_seats (request_id, account, until) VALUES ($1, $2, $3) \
                     ON CONFLICT (request_id) DO UPDATE SET account = excluded.account, until = excluded.until",
                    &[&id, &account, &until],
                )
                .await?;
            }
            tx.commit().await?;
            counters.wrote();
            counters.committed();
            Ok(taken)
        })
    }

    async fn free_call_seat(&self, id: Uuid) -> Result<(), StoreError> {
        let counters = &self.db.counters;
        retrying!(&self.db, "operation", |c, _tries| {
            if c.execute("DELETE FROM call_seats WHERE request_id = $1", &[&id]).await? > 0 {
                counters.wrote();
                counters.committed();
            }
            Ok(())
        })
    }

    fn counters(&self) -> &WriteCounters {
        &self.db.counters
    }
}
