//! `StatsStore` on SQLite: two indexed scans of the tenant's requests.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::params;
use uuid::Uuid;

use super::SqliteStore;
use super::pool::db_err;
use super::rows::ms;
use crate::store::StoreError;
use crate::store::stats::{RequestSummary, StatsStore};

#[async_trait]
impl StatsStore for SqliteStore {
    async fn request_summary(
        &self,
        tenant: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        top: usize,
    ) -> Result<RequestSummary, StoreError> {
        let top = i64::try_from(top).unwrap_or(i64::MAX);
        self.pool
            .read(move |c| {
                let verified = "FROM auth_requests WHERE tenant_id = ?1 AND verified_at >= ?2 AND verified_at < ?3";
                let n: i64 = c
                    .query_row(
                        &format!("SELECT COUNT(*) {verified}"),
                        params![tenant.as_bytes(), ms(from), ms(to)],
                        |r| r.get(0),
                    )
                    .map_err(db_err)?;
                // The middle one (or the two in the middle) of the durations, in ms.
                let median = if n == 0 {
                    None
                } else {
                    let mut stmt = c
                        .prepare_cached(&format!(
                            "SELECT verified_at - created_at AS d {verified} ORDER BY d LIMIT ?5 OFFSET ?4"
                        ))
                        .map_err(db_err)?;
                    let (offset, take) = if n % 2 == 1 { (n / 2, 1) } else { (n / 2 - 1, 2) };
                    let middle: Vec<i64> = stmt
                        .query_map(params![tenant.as_bytes(), ms(from), ms(to), offset, take], |r| r.get(0))
                        .map_err(db_err)?
                        .collect::<Result<_, _>>()
                        .map_err(db_err)?;
                    let len = middle.len().max(1) as f64;
                    Some(middle.iter().sum::<i64>() as f64 / len / 1000.0)
                };
                let mut stmt = c
                    .prepare_cached(
                        "SELECT phone_number, COUNT(*) AS n FROM auth_requests \
                         WHERE tenant_id = ?1 AND status = 'failed' AND updated_at >= ?2 AND updated_at < ?3 \
                         GROUP BY phone_number ORDER BY n DESC, phone_number LIMIT ?4",
                    )
                    .map_err(db_err)?;
                let top_failing = stmt
                    .query_map(params![tenant.as_bytes(), ms(from), ms(to), top], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
                    })
                    .map_err(db_err)?
                    .collect::<Result<_, _>>()
                    .map_err(db_err)?;
                let call_seconds: i64 = c
                    .query_row(
                        "SELECT COALESCE(SUM(amount), 0) FROM usage_events \
                         WHERE tenant_id = ?1 AND kind = 'call_seconds' AND at >= ?2 AND at < ?3",
                        params![tenant.as_bytes(), ms(from), ms(to)],
                        |r| r.get(0),
                    )
                    .map_err(db_err)?;
                Ok(RequestSummary {
                    median_seconds_to_verify: median,
                    top_failing,
                    call_seconds: u64::try_from(call_seconds).unwrap_or(0),
                })
            })
            .await
    }
}
