//! The SQLite backend's durable outbox: jobs and their leases.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::params;
use tokio::sync::Notify;
use uuid::Uuid;

use super::pool::db_err;
use super::rows;
use super::rows::ms;
use super::{SqliteStore, leased, millis, now_ms};
use crate::store::{Job, JobKind, JobStore, Lease, StoreError};

#[async_trait]
impl JobStore for SqliteStore {
    async fn claim_jobs(&self, limit: usize) -> Result<Vec<Job>, StoreError> {
        let (counters, lease_ms) = (self.counters.clone(), self.lease_ms);
        self.pool
            .write(move |c| {
                let now = now_ms();
                let token = Uuid::now_v7();
                let mut stmt = c
                    .prepare_cached(
                        "UPDATE jobs SET lease_until = ?2, lease_owner = ?4, attempts = attempts + 1 WHERE id IN \
                         (SELECT id FROM jobs WHERE dead = 0 AND run_at <= ?1 \
                          AND (lease_until IS NULL OR lease_until <= ?1) ORDER BY run_at LIMIT ?3) \
                         RETURNING id, kind, request_id, payload, attempts - 1 AS attempts, created_at, lease_owner",
                    )
                    .map_err(db_err)?;
                let jobs = stmt
                    .query_map(params![now, now + lease_ms, limit as i64, token.as_bytes()], rows::job_from_row)
                    .map_err(db_err)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(db_err)?;
                if !jobs.is_empty() {
                    counters.wrote();
                }
                Ok(jobs)
            })
            .await
    }

    async fn renew_leases(&self, leases: Vec<Lease>) -> Result<usize, StoreError> {
        let (counters, lease_ms) = (self.counters.clone(), self.lease_ms);
        self.pool
            .write(move |c| {
                let until = now_ms() + lease_ms;
                let mut renewed = 0;
                for &lease in &leases {
                    let sql = "UPDATE jobs SET lease_until = ?3 WHERE id = ?1 AND lease_owner = ?2";
                    match leased(c, sql, lease, &[&until]) {
                        Ok(()) => renewed += 1,
                        Err(StoreError::LeaseLost) => {}
                        Err(e) => return Err(e),
                    }
                }
                counters.wrote();
                Ok(renewed)
            })
            .await
    }

    async fn finish_job(&self, lease: Lease) -> Result<(), StoreError> {
        let counters = self.counters.clone();
        self.pool
            .write(move |c| {
                leased(c, "DELETE FROM jobs WHERE id = ?1 AND lease_owner = ?2", lease, &[])?;
                counters.wrote();
                Ok(())
            })
            .await
    }

    async fn retry_job(&self, lease: Lease, delay: Duration, error: &str) -> Result<(), StoreError> {
        let (error, counters) = (error.to_owned(), self.counters.clone());
        self.pool
            .write(move |c| {
                let run_at = now_ms() + millis(delay);
                let sql = "UPDATE jobs SET run_at = ?3, lease_until = NULL, lease_owner = NULL, last_error = ?4 \
                           WHERE id = ?1 AND lease_owner = ?2";
                leased(c, sql, lease, &[&run_at, &error])?;
                counters.wrote();
                Ok(())
            })
            .await
    }

    async fn wait_job_until(&self, lease: Lease, at: DateTime<Utc>) -> Result<(), StoreError> {
        let counters = self.counters.clone();
        self.pool
            .write(move |c| {
                let sql = "UPDATE jobs SET run_at = ?3, lease_until = NULL, lease_owner = NULL \
                           WHERE id = ?1 AND lease_owner = ?2";
                leased(c, sql, lease, &[&ms(at)])?;
                counters.wrote();
                Ok(())
            })
            .await
    }

    async fn bury_job(&self, lease: Lease, error: &str) -> Result<(), StoreError> {
        let (error, counters) = (error.to_owned(), self.counters.clone());
        self.pool
            .write(move |c| {
                let sql = "UPDATE jobs SET dead = 1, lease_until = NULL, lease_owner = NULL, last_error = ?3 \
                           WHERE id = ?1 AND lease_owner = ?2";
                leased(c, sql, lease, &[&error])?;
                counters.wrote();
                Ok(())
            })
            .await
    }

    async fn next_job_in(&self) -> Result<Option<Duration>, StoreError> {
        self.pool
            .read(|c| {
                let next: Option<i64> = c
                    .query_row(
                        "SELECT MIN(MAX(run_at, COALESCE(lease_until, run_at))) FROM jobs WHERE dead = 0",
                        [],
                        |r| r.get(0),
                    )
                    .map_err(db_err)?;
                Ok(next.map(|t| Duration::from_millis(u64::try_from(t - now_ms()).unwrap_or(0))))
            })
            .await
    }

    async fn job_backlog(&self) -> Result<Vec<(JobKind, i64)>, StoreError> {
        self.pool
            .read(|c| {
                let mut stmt =
                    c.prepare_cached("SELECT kind, COUNT(*) FROM jobs WHERE dead = 0 GROUP BY kind").map_err(db_err)?;
                let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).map_err(db_err)?;
                let mut out = Vec::new();
                for row in rows {
                    let (kind, n) = row.map_err(db_err)?;
                    if let Some(kind) = JobKind::parse(&kind) {
                        out.push((kind, n));
                    }
                }
                Ok(out)
            })
            .await
    }

    fn job_signal(&self) -> Option<Arc<Notify>> {
        None
    }
}
