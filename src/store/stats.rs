//! What the statistics read beside the funnel steps (how long verifications
//! took, which numbers fail most), and what the console reads of single
//! requests (a search, one request's timeline).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;
use crate::domain::request::AuthRequest;
use crate::domain::status::Status;
use crate::domain::timeline::Entry;

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

/// A search of one tenant's requests, newest first (`created_at`, then id).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestSearch {
    pub tenant: Uuid,
    pub external_id: Option<String>,
    pub user_id: Option<String>,
    /// The last digits of the phone number (1 to 4 ASCII digits).
    pub phone_last4: Option<String>,
    /// The status as the result API shows it: a request past `expires_at`
    /// that no job has ended yet is `expired`, not what its row says.
    pub status: Option<Status>,
    /// Created at or after.
    pub from: Option<DateTime<Utc>>,
    /// Created before.
    pub to: Option<DateTime<Utc>>,
    /// The page after: requests that come after this one in the order.
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: usize,
    /// The time the statuses are read at.
    pub now: DateTime<Utc>,
}

/// A value bound to a search's statement; each backend binds it its way.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(String),
    Time(DateTime<Utc>),
    Id(Uuid),
}

impl RequestSearch {
    /// The `WHERE … ORDER BY … LIMIT` of the search with `?N` parameters
    /// (PostgreSQL numbers them `$N`), and the values.
    pub fn clauses(&self) -> (String, Vec<Param>) {
        let now = self.now;
        let mut sql = String::from(" WHERE tenant_id = ?1");
        let mut params = vec![Param::Id(self.tenant)];
        let mut bind = |sql: &mut String, clause: &str, p: Param| {
            params.push(p);
            sql.push_str(&clause.replace("?", &format!("?{}", params.len())));
        };
        if let Some(v) = &self.external_id {
            bind(&mut sql, " AND external_id = ?", Param::Text(v.clone()));
        }
        if let Some(v) = &self.user_id {
            bind(&mut sql, " AND user_id = ?", Param::Text(v.clone()));
        }
        if let Some(v) = &self.phone_last4 {
            bind(&mut sql, " AND phone_number LIKE ?", Param::Text(format!("%{v}")));
        }
        if let Some(from) = self.from {
            bind(&mut sql, " AND created_at >= ?", Param::Time(from));
        }
        if let Some(to) = self.to {
            bind(&mut sql, " AND created_at < ?", Param::Time(to));
        }
        if let Some(status) = self.status {
            const OPEN: &str = "('pending', 'calling', 'in_progress')";
            let clause = match status {
                Status::Expired => format!(" AND (status = 'expired' OR (status IN {OPEN} AND expires_at <= ?))"),
                s if !s.is_terminal() => format!(" AND status = '{}' AND expires_at > ?", s.as_str()),
                s => {
                    sql.push_str(&format!(" AND status = '{}'", s.as_str()));
                    String::new()
                }
            };
            if !clause.is_empty() {
                bind(&mut sql, &clause, Param::Time(now));
            }
        }
        if let Some((at, id)) = self.after {
            params.push(Param::Time(at));
            let n = params.len();
            params.push(Param::Id(id));
            sql.push_str(&format!(" AND (created_at < ?{n} OR (created_at = ?{n} AND id < ?{}))", n + 1));
        }
        sql.push_str(&format!(" ORDER BY created_at DESC, id DESC LIMIT {}", self.limit));
        (sql, params)
    }
}

/// What the console reads of single requests: a search, and one's timeline.
#[async_trait]
pub trait LookupStore: Send + Sync + 'static {
    async fn search_requests(&self, search: RequestSearch) -> Result<Vec<AuthRequest>, StoreError>;
    /// The request's timeline entries, oldest first.
    async fn timeline(&self, request: Uuid) -> Result<Vec<Entry>, StoreError>;
    /// Appends timeline entries in a commit of their own (a callback attempt).
    async fn append_timeline(&self, entries: Vec<Entry>) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_binds_what_it_names_and_pages_after_the_cursor() {
        let now = Utc::now();
        let tenant = Uuid::now_v7();
        let q = RequestSearch {
            tenant,
            now,
            user_id: Some("u1".into()),
            phone_last4: Some("5678".into()),
            status: Some(Status::Pending),
            after: Some((now, tenant)),
            limit: 20,
            ..RequestSearch::default()
        };
        let (sql, params) = q.clauses();
        assert_eq!(
            sql,
            " WHERE tenant_id = ?1 AND user_id = ?2 AND phone_number LIKE ?3 AND status = 'pending' AND \
             expires_at > ?4 AND (created_at < ?5 OR (created_at = ?5 AND id < ?6)) \
             ORDER BY created_at DESC, id DESC LIMIT 20"
        );
        assert_eq!(params[2], Param::Text("%5678".into()));
        assert_eq!(params.len(), 6);
        let expired = RequestSearch { tenant, status: Some(Status::Expired), limit: 5, ..RequestSearch::default() };
        assert!(
            expired.clauses().0.contains(
                "status = 'expired' OR (status IN ('pending', 'calling', 'in_progress') AND expires_at <= ?2)"
            )
        );
    }
}
