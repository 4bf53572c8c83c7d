//! The PostgreSQL backend's durable outbox: jobs and their leases.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Object};
use tokio::sync::Notify;
use uuid::Uuid;

use super::retry::Fail;
use super::rows::job_from_row;
use super::{JOB_COLUMNS, PgStore, millis_f64};
use crate::store::{Job, JobKind, JobStore, Lease, StoreError};

const DELETE_LEASED_JOB: &str = "DELETE FROM jobs WHERE id = $1 AND lease_owner = $2";

impl PgStore {
    /// A write of job `lease.job` that only its lease holder may make.
    async fn leased_write(
        &self,
        sql: &str,
        lease: Lease,
        extra: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<(), StoreError> {
        let counters = &self.db.counters;
        retrying!(&self.db, "operation", |c, tries| {
            let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&lease.job, &lease.token];
            params.extend_from_slice(extra);
            let stmt = c.prepare_cached(sql).await?;
            let n = c.execute(&stmt, &params).await?;
            // On a retry, "not ours" may be our own earlier write having landed.
            if n == 0 && tries == 1 {
                return Err(Fail::Stop(StoreError::LeaseLost));
            }
            counters.wrote();
            counters.committed();
            Ok(())
        })
    }
}

/// Deletes a finished job if the lease is still ours. On a retry a missing
/// row is our own earlier delete; a row leased to someone else is not.
async fn finish_leased(c: &Object, lease: Lease, tries: u32) -> Result<(), Fail> {
    let stmt = c.prepare_cached(DELETE_LEASED_JOB).await?;
    if c.execute(&stmt, &[&lease.job, &lease.token]).await? == 1 {
        return Ok(());
    }
    if tries > 1 && c.query_opt("SELECT 1 FROM jobs WHERE id = $1", &[&lease.job]).await?.is_none() {
        return Ok(());
    }
    Err(Fail::Stop(StoreError::LeaseLost))
}
#[async_trait]
impl JobStore for PgStore {
    async fn claim_jobs(&self, limit: usize) -> Result<Vec<Job>, StoreError> {
        let sql = format!(
            "UPDATE jobs SET lease_owner = $1, lease_until = now() + $2::float8 * interval '1 millisecond', \
             attempts = attempts + 1 WHERE id IN (SELECT id FROM jobs WHERE NOT dead AND run_at <= now() \
             AND (lease_until IS NULL OR lease_until <= now()) ORDER BY run_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING {JOB_COLUMNS}"
        );
        let token = Uuid::now_v7();
        let lease_ms = millis_f64(self.db.lease);
        let counters = &self.db.counters;
        retrying!(&self.db, "operation", |c, _tries| {
            let stmt = c.prepare_cached(&sql).await?;
            let rows = c.query(&stmt, &[&token, &lease_ms, &(limit as i64)]).await?;
            if !rows.is_empty() {
                counters.wrote();
                counters.committed();
            }
            Ok(rows.iter().map(job_from_row).collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn renew_leases(&self, leases: Vec<Lease>) -> Result<usize, StoreError> {
        let ids: Vec<i64> = leases.iter().map(|l| l.job).collect();
        let tokens: Vec<Uuid> = leases.iter().map(|l| l.token).collect();
        let lease_ms = millis_f64(self.db.lease);
        let counters = &self.db.counters;
        retrying!(&self.db, "operation", |c, _tries| {
            let n = c
                .execute(
                    "UPDATE jobs SET lease_until = now() + $3::float8 * interval '1 millisecond' \
                     FROM unnest($1::int8[], $2::uuid[]) AS l(id, token) \
                     WHERE jobs.id = l.id AND jobs.lease_owner = l.token",
                    &[&ids, &tokens, &lease_ms],
                )
                .await?;
            counters.wrote();
            counters.committed();
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }

    async fn finish_job(&self, lease: Lease) -> Result<(), StoreError> {
        let counters = &self.db.counters;
        retrying!(&self.db, "operation", |c, tries| {
            finish_leased(c, lease, tries).await?;
            counters.wrote();
            counters.committed();
            Ok(())
        })
    }

    async fn retry_job(&self, lease: Lease, delay: Duration, error: &str) -> Result<(), StoreError> {
        let delay_ms = millis_f64(delay);
        self.leased_write(
            "UPDATE jobs SET run_at = now() + $3::float8 * interval '1 millisecond', lease_owner = NULL, \
             lease_until = NULL, last_error = $4 WHERE id = $1 AND lease_owner = $2",
            lease,
            &[&delay_ms, &error],
        )
        .await
    }

    async fn wait_job_until(&self, lease: Lease, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.leased_write(
            "UPDATE jobs SET run_at = $3, lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2",
            lease,
            &[&at],
        )
        .await
    }

    async fn bury_job(&self, lease: Lease, error: &str) -> Result<(), StoreError> {
        self.leased_write(
            "UPDATE jobs SET dead = true, lease_owner = NULL, lease_until = NULL, last_error = $3 \
             WHERE id = $1 AND lease_owner = $2",
            lease,
            &[&error],
        )
        .await
    }

    async fn next_job_in(&self) -> Result<Option<Duration>, StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            let stmt = c
                .prepare_cached(
                    "SELECT EXTRACT(EPOCH FROM min(GREATEST(run_at, COALESCE(lease_until, run_at))) - now())::float8 \
                     FROM jobs WHERE NOT dead",
                )
                .await?;
            let secs: Option<f64> = c.query_one(&stmt, &[]).await?.get(0);
            Ok(secs.map(|s| Duration::from_secs_f64(s.clamp(0.0, 86_400.0))))
        })
    }

    async fn job_backlog(&self) -> Result<Vec<(JobKind, i64)>, StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            let rows = c.query("SELECT kind, count(*) FROM jobs WHERE NOT dead GROUP BY kind", &[]).await?;
            Ok(rows.iter().filter_map(|r| JobKind::parse(r.get(0)).map(|k| (k, r.get::<_, i64>(1)))).collect())
        })
    }

    fn job_signal(&self) -> Option<Arc<Notify>> {
        self.signal.clone()
    }
}
