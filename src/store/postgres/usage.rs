//! The PostgreSQL backend's usage rows (written by the group commit, `batch`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::PgStore;
use super::retry::Fail;
use crate::clock::to_millis;
use crate::domain::usage::Used;
use crate::store::usage::SUMS;
use crate::store::{StoreError, UsageRow, UsageStore};

/// Usage rows as the column arrays of `ADD_USAGE`.
pub(super) struct UsageArrays {
    tenant: Vec<Uuid>,
    request: Vec<Uuid>,
    at: Vec<DateTime<Utc>>,
    kind: Vec<&'static str>,
    account: Vec<String>,
    country: Vec<String>,
    amount: Vec<i64>,
}

pub(super) const ADD_USAGE: &str = "INSERT INTO usage_events (tenant_id, request_id, at, kind, account, country, amount) \
     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::int8[]) \
     ON CONFLICT DO NOTHING";

impl UsageArrays {
    pub(super) fn new<'a>(used: impl IntoIterator<Item = &'a Used>) -> Self {
        let mut a = Self {
            tenant: Vec::new(),
            request: Vec::new(),
            at: Vec::new(),
            kind: Vec::new(),
            account: Vec::new(),
            country: Vec::new(),
            amount: Vec::new(),
        };
        for u in used {
            a.tenant.push(u.tenant_id);
            a.request.push(u.request_id);
            a.at.push(to_millis(u.at));
            a.kind.push(u.kind.as_str());
            a.account.push(u.account.clone());
            a.country.push(u.country.clone());
            a.amount.push(i64::try_from(u.amount).unwrap_or(i64::MAX));
        }
        a
    }

    pub(super) fn is_empty(&self) -> bool {
        self.tenant.is_empty()
    }

    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 7] {
        [&self.tenant, &self.request, &self.at, &self.kind, &self.account, &self.country, &self.amount]
    }
}

/// A row of `SUMS` starting at column `at` (PostgreSQL sums bigints as numeric: cast back).
fn usage_row(r: &Row, at: usize) -> Result<UsageRow, Fail> {
    let n = |i: usize| r.try_get::<_, i64>(at + i).map(|v| v.max(0) as u64);
    Ok(UsageRow {
        account: r.try_get(at)?,
        country: r.try_get(at + 1)?,
        calls_placed: n(2)?,
        calls_taken: n(3)?,
        call_seconds: n(4)?,
        sms: n(5)?,
    })
}

/// `SUMS` with each sum cast to bigint.
fn sums() -> String {
    SUMS.replace(" END)", " END)::int8")
}

#[async_trait]
impl UsageStore for PgStore {
    async fn usage_month(
        &self,
        tenant: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<UsageRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM usage_events WHERE tenant_id = $1 AND at >= $2 AND at < $3 \
             GROUP BY account, country ORDER BY account, country",
            sums()
        );
        retrying!(&self.db, "operation", |c, _tries| {
            let rows = c.query(&sql, &[&tenant, &from, &to]).await?;
            rows.iter().map(|r| usage_row(r, 0)).collect::<Result<Vec<_>, Fail>>()
        })
    }

    async fn usage_month_all(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(String, UsageRow)>, StoreError> {
        // A deleted tenant's usage is still billed: named by its id.
        let sql = format!(
            "SELECT COALESCE(t.name, u.tenant_id::text) AS tenant, {} \
             FROM usage_events u LEFT JOIN tenants t ON t.id = u.tenant_id \
             WHERE u.at >= $1 AND u.at < $2 \
             GROUP BY 1, account, country ORDER BY 1, account, country",
            sums()
        );
        retrying!(&self.db, "operation", |c, _tries| {
            let rows = c.query(&sql, &[&from, &to]).await?;
            rows.iter().map(|r| Ok((r.try_get(0)?, usage_row(r, 1)?))).collect::<Result<Vec<_>, Fail>>()
        })
    }

    async fn purge_usage(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            let gone = c.execute("DELETE FROM usage_events WHERE at < $1", &[&before]).await?;
            Ok(gone as usize)
        })
    }
}
