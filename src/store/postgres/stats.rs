//! `StatsStore` on PostgreSQL: the median by `percentile_cont`, the most
//! failing numbers by one grouped scan.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::PgStore;
use crate::store::StoreError;
use crate::store::stats::{RequestSummary, StatsStore};

#[async_trait]
impl StatsStore for PgStore {
    async fn request_summary(
        &self,
        tenant: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        top: usize,
    ) -> Result<RequestSummary, StoreError> {
        let top = i64::try_from(top).unwrap_or(i64::MAX);
        retrying!(&self.db, "operation", |c, _tries| {
            let median = c
                .query_one(
                    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM verified_at - created_at)::float8) \
                     FROM auth_requests WHERE tenant_id = $1 AND verified_at >= $2 AND verified_at < $3",
                    &[&tenant, &from, &to],
                )
                .await?
                .try_get::<_, Option<f64>>(0)?;
            let rows = c
                .query(
                    "SELECT phone_number, count(*) AS n FROM auth_requests \
                     WHERE tenant_id = $1 AND status = 'failed' AND updated_at >= $2 AND updated_at < $3 \
                     GROUP BY phone_number ORDER BY n DESC, phone_number LIMIT $4",
                    &[&tenant, &from, &to, &top],
                )
                .await?;
            let mut top_failing = Vec::with_capacity(rows.len());
            for r in &rows {
                let n: i64 = r.try_get(1)?;
                top_failing.push((r.try_get::<_, String>(0)?, n.max(0) as u64));
            }
            let call_seconds: i64 = c
                .query_one(
                    "SELECT COALESCE(SUM(amount), 0)::bigint FROM usage_events \
                     WHERE tenant_id = $1 AND kind = 'call_seconds' AND at >= $2 AND at < $3",
                    &[&tenant, &from, &to],
                )
                .await?
                .try_get(0)?;
            Ok(RequestSummary {
                median_seconds_to_verify: median,
                top_failing,
                call_seconds: u64::try_from(call_seconds).unwrap_or(0),
            })
        })
    }
}
