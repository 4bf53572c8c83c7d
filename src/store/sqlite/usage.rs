//! The SQLite backend's usage rows.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Row, params};
use uuid::Uuid;

use super::SqliteStore;
use super::pool::{Writer, db_err};
use super::rows::ms;
use crate::domain::usage::Used;
use crate::store::usage::SUMS;
use crate::store::{StoreError, UsageRow, UsageStore};

/// Appends usage rows (in the caller's transaction).
pub(super) fn insert_usage(c: &Writer<'_>, used: &[Used]) -> Result<(), StoreError> {
    if used.is_empty() {
        return Ok(());
    }
    let sql = "INSERT OR IGNORE INTO usage_events (tenant_id, request_id, at, kind, account, country, amount) \
               VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
    c.with(sql, |stmt| {
        for u in used {
            let amount = i64::try_from(u.amount).unwrap_or(i64::MAX);
            let (tenant, request) = (u.tenant_id.as_bytes(), u.request_id.as_bytes());
            stmt.execute(params![tenant, request, ms(u.at), u.kind.as_str(), u.account, u.country, amount])?;
        }
        Ok(())
    })
    .map_err(db_err)
}

/// A row of `SUMS` starting at column `at`.
fn usage_row(r: &Row<'_>, at: usize) -> rusqlite::Result<UsageRow> {
    let n = |i: usize| r.get::<_, i64>(at + i).map(|v| v.max(0) as u64);
    Ok(UsageRow {
        account: r.get(at)?,
        country: r.get(at + 1)?,
        calls_placed: n(2)?,
        calls_taken: n(3)?,
        call_seconds: n(4)?,
        sms: n(5)?,
    })
}

#[async_trait]
impl UsageStore for SqliteStore {
    async fn usage_month(
        &self,
        tenant: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<UsageRow>, StoreError> {
        self.pool
            .read(move |c| {
                let sql = format!(
                    "SELECT {SUMS} FROM usage_events WHERE tenant_id = ?1 AND at >= ?2 AND at < ?3 \
                     GROUP BY account, country ORDER BY account, country"
                );
                let mut stmt = c.prepare_cached(&sql).map_err(db_err)?;
                let rows = stmt.query_map(params![tenant.as_bytes(), ms(from), ms(to)], |r| usage_row(r, 0));
                rows.map_err(db_err)?.collect::<Result<Vec<_>, _>>().map_err(db_err)
            })
            .await
    }

    async fn usage_month_all(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(String, UsageRow)>, StoreError> {
        self.pool
            .read(move |c| {
                // A deleted tenant's usage is still billed: named by its id.
                let sql = format!(
                    "SELECT COALESCE(t.name, lower(hex(u.tenant_id))) AS tenant, {SUMS} \
                     FROM usage_events u LEFT JOIN tenants t ON t.id = u.tenant_id \
                     WHERE u.at >= ?1 AND u.at < ?2 \
                     GROUP BY tenant, account, country ORDER BY tenant, account, country"
                );
                let mut stmt = c.prepare_cached(&sql).map_err(db_err)?;
                let rows = stmt.query_map(params![ms(from), ms(to)], |r| Ok((r.get(0)?, usage_row(r, 1)?)));
                rows.map_err(db_err)?.collect::<Result<Vec<_>, _>>().map_err(db_err)
            })
            .await
    }

    async fn purge_usage(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        self.pool
            .write(move |c| c.execute("DELETE FROM usage_events WHERE at < ?1", [ms(before)]).map_err(db_err))
            .await
    }
}
