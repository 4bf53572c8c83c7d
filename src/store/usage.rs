//! What the server keeps of usage for billing: rows appended in the commits
//! of the changes they come from (`Update::usage`), summed per month, purged
//! by age.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::store::StoreError;

/// A month's usage on one provider account in one destination country.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageRow {
    pub account: String,
    pub country: String,
    pub calls_placed: u64,
    pub calls_taken: u64,
    pub call_seconds: u64,
    pub sms: u64,
}

/// Sums a month's rows per (account, country): every backend selects these
/// columns, in this order, after its own leading columns.
pub(crate) const SUMS: &str = "account, country, \
     SUM(CASE WHEN kind = 'call_placed' THEN amount ELSE 0 END), \
     SUM(CASE WHEN kind = 'call_taken' THEN amount ELSE 0 END), \
     SUM(CASE WHEN kind = 'call_seconds' THEN amount ELSE 0 END), \
     SUM(CASE WHEN kind = 'sms' THEN amount ELSE 0 END)";

/// Usage rows.
#[async_trait]
pub trait UsageStore: Send + Sync + 'static {
    /// The tenant's usage at or after `from` and before `to`, per account and
    /// country, ordered by account then country.
    async fn usage_month(
        &self,
        tenant: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<UsageRow>, StoreError>;
    /// Every tenant's, with the tenant's name, ordered by name, account, country.
    async fn usage_month_all(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(String, UsageRow)>, StoreError>;
    /// Deletes the rows older than `before`; answers how many went.
    async fn purge_usage(&self, before: DateTime<Utc>) -> Result<usize, StoreError>;
}
