//! PostgreSQL's answers to the queries of a registration (`store::register`),
//! asked inside the transaction that stores the request.

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use uuid::Uuid;

use super::{Fail, NewRequest, by_external_id};
use crate::domain::budget::Budget;
use crate::domain::phone::PhoneNumber;
use crate::domain::request::AuthRequest;
use crate::store::{Inserted, Registrations};

/// One request and its jobs on their way in, in transaction `tx`.
pub(super) struct Registering<'a> {
    pub(super) tx: &'a Transaction<'a>,
    pub(super) new: &'a NewRequest<'a>,
}

impl Registering<'_> {
    /// When the row `sql` selects was created.
    async fn created(
        &self,
        sql: &str,
        p: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<DateTime<Utc>>, Fail> {
        let stmt = self.tx.prepare_cached(sql).await?;
        Ok(self.tx.query_opt(&stmt, p).await?.map(|row| row.get(0)))
    }
}

impl Registrations for Registering<'_> {
    type Error = Fail;

    async fn same_external_id(&mut self, tenant: Uuid, external_id: &str) -> Result<Option<AuthRequest>, Fail> {
        by_external_id(self.tx, tenant, external_id).await
    }

    async fn nth_newest_for_number(
        &mut self,
        number: &PhoneNumber,
        tenant: Option<Uuid>,
        since: DateTime<Utc>,
        n: u32,
    ) -> Result<Option<DateTime<Utc>>, Fail> {
        let (number, offset) = (number.as_str(), i64::from(n) - 1);
        match tenant {
            Some(tenant) => {
                self.created(
                    "SELECT created_at FROM auth_requests WHERE phone_number = $1 AND created_at > $2 \
                     AND tenant_id = $4 ORDER BY created_at DESC LIMIT 1 OFFSET $3",
                    &[&number, &since, &offset, &tenant],
                )
                .await
            }
            None => {
                self.created(
                    "SELECT created_at FROM auth_requests WHERE phone_number = $1 AND created_at > $2 \
                     ORDER BY created_at DESC LIMIT 1 OFFSET $3",
                    &[&number, &since, &offset],
                )
                .await
            }
        }
    }

    async fn budget_upper_bound(&mut self, tenant: Uuid, budget: Budget, first_bucket: i64) -> Result<u64, Fail> {
        let stmt = self
            .tx
            .prepare_cached(
                "SELECT coalesce(sum(calls), 0)::bigint FROM call_counts \
                 WHERE tenant_id = $1 AND budget = $2 AND bucket >= $3",
            )
            .await?;
        let sum: i64 = self.tx.query_one(&stmt, &[&tenant, &budget.id(), &first_bucket]).await?.get(0);
        Ok(u64::try_from(sum).unwrap_or(0))
    }

    async fn nth_newest_outbound(
        &mut self,
        tenant: Uuid,
        since: DateTime<Utc>,
        n: u32,
    ) -> Result<Option<DateTime<Utc>>, Fail> {
        self.created(
            "SELECT created_at FROM auth_requests WHERE tenant_id = $1 AND mode = 'outbound' \
             AND created_at > $2 ORDER BY created_at DESC LIMIT 1 OFFSET $3",
            &[&tenant, &since, &(i64::from(n) - 1)],
        )
        .await
    }

    async fn insert(&mut self) -> Result<Inserted, Fail> {
        self.new.insert(self.tx).await
    }

    async fn count_call(&mut self, tenant: Uuid, budget: Budget, bucket: i64) -> Result<(), Fail> {
        let stmt = self
            .tx
            .prepare_cached(
                "INSERT INTO call_counts (tenant_id, budget, bucket, calls) VALUES ($1, $2, $3, 1) \
                 ON CONFLICT (tenant_id, budget, bucket) DO UPDATE SET calls = call_counts.calls + 1",
            )
            .await?;
        self.tx.execute(&stmt, &[&tenant, &budget.id(), &bucket]).await?;
        Ok(())
    }
}
