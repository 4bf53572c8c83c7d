//! SQLite's answers to the queries of a registration (`store::register`),
//! asked on the writer thread inside the write that stores the request.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, ToSql, params};

use super::pool::{Writer, db_err};
use super::rows::{self, ms};
use super::{insert_jobs, select_by_external_id};
use crate::domain::budget::Budget;
use crate::domain::request::AuthRequest;
use crate::domain::{audit, funnel};
use crate::store::limits::{
    BUDGET_SUM, COUNT_CALL, NUMBER_NTH_NEWEST, NUMBER_NTH_NEWEST_BY_TENANT, Nth, OUTBOUND_NTH_NEWEST,
};
use crate::store::{Inserted, NewJob, Registrations, StoreError};

/// One request and its jobs on their way in.
pub(super) struct Registering<'a, 'c> {
    pub(super) conn: &'a Writer<'c>,
    pub(super) request: &'a AuthRequest,
    pub(super) jobs: &'a [NewJob],
    pub(super) lease_ms: i64,
}

impl Registering<'_, '_> {
    /// The one value `sql` selects, if it selects a row.
    fn one<T: rusqlite::types::FromSql>(&self, sql: &'static str, p: &[&dyn ToSql]) -> Result<Option<T>, StoreError> {
        self.conn.with(sql, |s| s.query_row(p, |row| row.get(0)).optional()).map_err(db_err)
    }

    /// When the row `sql` selects was created.
    fn created(&self, sql: &'static str, p: &[&dyn ToSql]) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.one::<i64>(sql, p)?.map(rows::from_ms).transpose().map_err(db_err)
    }
}

impl Registrations for Registering<'_, '_> {
    type Error = StoreError;

    async fn same_external_id(&mut self, external_id: &str) -> Result<Option<AuthRequest>, StoreError> {
        select_by_external_id(self.conn, self.request.tenant_id, external_id).map_err(db_err)
    }

    async fn nth_newest_for_number(&mut self, by_tenant: bool, nth: Nth) -> Result<Option<DateTime<Utc>>, StoreError> {
        let r = self.request;
        let (number, since) = (r.phone_number.as_str(), ms(nth.since));
        match by_tenant {
            true => {
                self.created(NUMBER_NTH_NEWEST_BY_TENANT, params![number, since, nth.offset, r.tenant_id.as_bytes()])
            }
            false => self.created(NUMBER_NTH_NEWEST, params![number, since, nth.offset]),
        }
    }

    async fn budget_upper_bound(&mut self, budget: Budget, first_bucket: i64) -> Result<u64, StoreError> {
        let sum: Option<i64> =
            self.one(BUDGET_SUM, params![self.request.tenant_id.as_bytes(), budget.id(), first_bucket])?;
        Ok(sum.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
    }

    async fn nth_newest_outbound(&mut self, nth: Nth) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.created(OUTBOUND_NTH_NEWEST, params![self.request.tenant_id.as_bytes(), ms(nth.since), nth.offset])
    }

    async fn insert(&mut self) -> Result<Inserted, StoreError> {
        rows::insert_request(self.conn, self.request).map_err(db_err)?;
        let claimed = insert_jobs(self.conn, self.jobs, self.lease_ms)?;
        super::audit::insert_records(self.conn, &[audit::registered(self.request)])?;
        super::audit::insert_steps(self.conn, &[funnel::registered(self.request)])?;
        Ok(Inserted::Created { claimed, budget_use: Vec::new() })
    }

    async fn count_call(&mut self, budget: Budget, bucket: i64) -> Result<(), StoreError> {
        let p = params![self.request.tenant_id.as_bytes(), budget.id(), bucket];
        self.conn.with(COUNT_CALL, |s| s.execute(p)).map_err(db_err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::limits::{NUMBER_NTH_NEWEST, NUMBER_NTH_NEWEST_BY_TENANT, OUTBOUND_NTH_NEWEST};

    /// A fresh database's writer connection, opened and migrated as the
    /// store does (the folder holds the file while it is kept).
    fn fresh() -> (tempfile::TempDir, rusqlite::Connection) {
        let (dir, conn, _) = super::super::migrated();
        (dir, conn)
    }

    /// How SQLite runs `sql` on the schema of a fresh database (no
    /// statistics), on a connection opened as the store opens them.
    fn plan(sql: &str) -> String {
        let (_dir, conn) = fresh();
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        // Its parameters unbound: the plan does not depend on them.
        let mut rows = stmt.raw_query();
        let mut steps = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            steps.push(row.get::<_, String>(3).unwrap());
        }
        steps.join("; ")
    }

    #[test]
    fn a_numbers_registrations_are_counted_along_the_numbers_index() {
        for sql in [NUMBER_NTH_NEWEST_BY_TENANT, NUMBER_NTH_NEWEST] {
            let plan = plan(sql);
            assert!(plan.contains("auth_requests_phone_created (phone_number=? AND created_at>?)"), "{sql}: {plan}");
        }
        // The tenant's outbound requests, by contrast, along the tenant's.
        let outbound = plan(OUTBOUND_NTH_NEWEST);
        assert!(outbound.contains("auth_requests_outbound_tenant (tenant_id=? AND created_at>?)"), "{outbound}");
    }

    /// Plans never depend on bound values (QPSG): the lookups by key still
    /// take the partial indexes made for them, whose conditions their own
    /// conditions imply without any value bound.
    #[test]
    fn keyed_lookups_take_their_partial_indexes_whatever_is_bound() {
        let by_external_id = plan(super::super::SELECT_BY_EXTERNAL_ID);
        assert!(
            by_external_id.contains("auth_requests_external_id (tenant_id=? AND external_id=?)"),
            "{by_external_id}"
        );
        let by_call = plan(super::super::requests::BY_INBOUND_CALL_SID);
        assert!(by_call.contains("auth_requests_inbound_call_sid (inbound_call_sid=?)"), "{by_call}");
        let inbound = plan(crate::store::requests::PENDING_INBOUND);
        assert!(inbound.contains("auth_requests_inbound_open (phone_number=?"), "{inbound}");
    }

    /// Each registration asks about another number and tenant: the limit
    /// queries stay compiled whatever values are bound to them. (SQLite marks
    /// a parameter it compared with a partial index's condition while
    /// planning, and compiles the statement again whenever that parameter gets
    /// another value, unless a connection asks for plans that never depend on
    /// bound values.)
    #[test]
    fn the_limit_queries_are_compiled_once_whatever_is_bound() {
        let (_dir, conn) = fresh();
        for sql in [NUMBER_NTH_NEWEST_BY_TENANT, NUMBER_NTH_NEWEST, OUTBOUND_NTH_NEWEST] {
            for n in 0..5 {
                let mut stmt = conn.prepare_cached(sql).unwrap();
                stmt.raw_bind_parameter(1, format!("+8190123456{n:02}")).unwrap();
                for i in 2..=stmt.parameter_count() {
                    stmt.raw_bind_parameter(i, n).unwrap();
                }
                let mut rows = stmt.raw_query();
                while rows.next().unwrap().is_some() {}
            }
            let stmt = conn.prepare_cached(sql).unwrap();
            assert_eq!(stmt.get_status(rusqlite::StatementStatus::Run), 5, "{sql}");
            assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0, "{sql}");
        }
    }
}
