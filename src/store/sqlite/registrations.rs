//! SQLite's answers to the queries of a registration (`store::register`),
//! asked on the writer thread inside the write that stores the request.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::pool::db_err;
use super::rows::{self, ms};
use super::{insert_jobs, select_by_external_id};
use crate::domain::budget::Budget;
use crate::domain::phone::PhoneNumber;
use crate::domain::request::AuthRequest;
use crate::store::{Inserted, NewJob, Registrations, StoreError};

/// One request and its jobs on their way in.
pub(super) struct Registering<'a> {
    pub(super) conn: &'a Connection,
    pub(super) request: &'a AuthRequest,
    pub(super) jobs: &'a [NewJob],
    pub(super) lease_ms: i64,
}

impl Registering<'_> {
    /// When the `n`-th newest of the rows `sql` selects (with `?3` the offset) was created.
    fn nth_newest(&self, sql: &str, p: &[&dyn rusqlite::ToSql]) -> Result<Option<DateTime<Utc>>, StoreError> {
        let created: Option<i64> = self
            .conn
            .prepare_cached(sql)
            .and_then(|mut s| s.query_row(p, |row| row.get(0)).optional())
            .map_err(db_err)?;
        created.map(rows::from_ms).transpose().map_err(db_err)
    }
}

impl Registrations for Registering<'_> {
    type Error = StoreError;

    async fn same_external_id(&mut self, tenant: Uuid, external_id: &str) -> Result<Option<AuthRequest>, StoreError> {
        select_by_external_id(self.conn, tenant, external_id).map_err(db_err)
    }

    async fn nth_newest_for_number(
        &mut self,
        number: &PhoneNumber,
        tenant: Option<Uuid>,
        since: DateTime<Utc>,
        n: u32,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let (number, since, offset) = (number.as_str(), ms(since), i64::from(n) - 1);
        match tenant {
            Some(tenant) => self.nth_newest(
                "SELECT created_at FROM auth_requests WHERE phone_number = ?1 AND created_at > ?2 \
                 AND tenant_id = ?4 ORDER BY created_at DESC LIMIT 1 OFFSET ?3",
                params![number, since, offset, tenant.as_bytes()],
            ),
            None => self.nth_newest(
                "SELECT created_at FROM auth_requests WHERE phone_number = ?1 AND created_at > ?2 \
                 ORDER BY created_at DESC LIMIT 1 OFFSET ?3",
                params![number, since, offset],
            ),
        }
    }

    async fn budget_upper_bound(&mut self, tenant: Uuid, budget: Budget, first_bucket: i64) -> Result<u64, StoreError> {
        let sum: i64 = self
            .conn
            .prepare_cached(
                "SELECT coalesce(sum(calls), 0) FROM call_counts WHERE tenant_id = ?1 AND budget = ?2 AND bucket >= ?3",
            )
            .and_then(|mut s| s.query_row(params![tenant.as_bytes(), budget.id(), first_bucket], |row| row.get(0)))
            .map_err(db_err)?;
        Ok(u64::try_from(sum).unwrap_or(0))
    }

    async fn nth_newest_outbound(
        &mut self,
        tenant: Uuid,
        since: DateTime<Utc>,
        n: u32,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.nth_newest(
            "SELECT created_at FROM auth_requests WHERE tenant_id = ?1 AND mode = 'outbound' \
             AND created_at > ?2 ORDER BY created_at DESC LIMIT 1 OFFSET ?3",
            params![tenant.as_bytes(), ms(since), i64::from(n) - 1],
        )
    }

    async fn insert(&mut self) -> Result<Inserted, StoreError> {
        rows::insert_request(self.conn, self.request).map_err(db_err)?;
        let claimed = insert_jobs(self.conn, self.jobs, self.lease_ms)?;
        Ok(Inserted::Created { claimed, budget_use: Vec::new() })
    }

    async fn count_call(&mut self, tenant: Uuid, budget: Budget, bucket: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO call_counts (tenant_id, budget, bucket, calls) VALUES (?1, ?2, ?3, 1) \
                 ON CONFLICT (tenant_id, budget, bucket) DO UPDATE SET calls = calls + 1",
            )
            .and_then(|mut s| s.execute(params![tenant.as_bytes(), budget.id(), bucket]))
            .map_err(db_err)?;
        Ok(())
    }
}
