//! PostgreSQL's answers to the queries of a registration (`store::register`),
//! asked inside the transaction that stores the request.

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::types::{FromSqlOwned, ToSql};

use super::requests::{NewRequests, by_external_id};
use super::{Fail, numbered};
use crate::domain::budget::Budget;
use crate::domain::request::AuthRequest;
use crate::store::limits::{
    BUDGET_SUM, COUNT_CALL, NUMBER_NTH_NEWEST, NUMBER_NTH_NEWEST_BY_TENANT, Nth, OUTBOUND_NTH_NEWEST,
};
use crate::store::{Inserted, Registrations};

/// One request and its jobs on their way in, in transaction `tx`.
pub(super) struct Registering<'a> {
    pub(super) tx: &'a Transaction<'a>,
    pub(super) request: &'a AuthRequest,
    /// The request and its jobs as the statement that inserts them.
    pub(super) new: &'a NewRequests<'a>,
}

impl Registering<'_> {
    /// The one value the shared statement `sql` selects, if it selects a row.
    async fn one<T: FromSqlOwned>(&self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<Option<T>, Fail> {
        let stmt = self.tx.prepare_cached(&numbered(sql)).await?;
        Ok(self.tx.query_opt(&stmt, p).await?.map(|row| row.get(0)))
    }
}

impl Registrations for Registering<'_> {
    type Error = Fail;

    async fn same_external_id(&mut self, external_id: &str) -> Result<Option<AuthRequest>, Fail> {
        by_external_id(self.tx, self.request.tenant_id, external_id).await
    }

    async fn nth_newest_for_number(&mut self, by_tenant: bool, nth: Nth) -> Result<Option<DateTime<Utc>>, Fail> {
        let r = self.request;
        let number = r.phone_number.as_str();
        match by_tenant {
            true => self.one(NUMBER_NTH_NEWEST_BY_TENANT, &[&number, &nth.since, &nth.offset, &r.tenant_id]).await,
            false => self.one(NUMBER_NTH_NEWEST, &[&number, &nth.since, &nth.offset]).await,
        }
    }

    async fn budget_upper_bound(&mut self, budget: Budget, first_bucket: i64) -> Result<u64, Fail> {
        let sum: Option<i64> = self.one(BUDGET_SUM, &[&self.request.tenant_id, &budget.id(), &first_bucket]).await?;
        Ok(sum.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
    }

    async fn nth_newest_outbound(&mut self, nth: Nth) -> Result<Option<DateTime<Utc>>, Fail> {
        self.one(OUTBOUND_NTH_NEWEST, &[&self.request.tenant_id, &nth.since, &nth.offset]).await
    }

    async fn insert(&mut self) -> Result<Inserted, Fail> {
        self.new.insert_one(self.tx).await
    }

    async fn count_call(&mut self, budget: Budget, bucket: i64) -> Result<(), Fail> {
        let stmt = self.tx.prepare_cached(&numbered(COUNT_CALL)).await?;
        self.tx.execute(&stmt, &[&self.request.tenant_id, &budget.id(), &bucket]).await?;
        Ok(())
    }
}
