//! What the statistics read beside the funnel steps: how long verifications
//! took, and which numbers fail most.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;

/// A tenant's requests over a time range.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestSummary {
    /// The median of `verified_at - created_at` over the requests verified in
    /// the range, in seconds.
    pub median_seconds_to_verify: Option<f64>,
    /// The numbers of the requests that failed in the range (by when they
    /// were last updated), most failures first, at most the limit asked for;
    /// E.164, to be masked before anyone sees them.
    pub top_failing: Vec<(String, u64)>,
    /// Seconds the tenant's calls were up, of the calls whose end was
    /// reported in the range (the usage rows).
    pub call_seconds: u64,
}

#[async_trait]
pub trait StatsStore: Send + Sync + 'static {
    async fn request_summary(
        &self,
        tenant: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        top: usize,
    ) -> Result<RequestSummary, StoreError>;
}
