//! What the server keeps about auth requests: registering, reading, deciding, purging.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::audit::Record;
use crate::domain::budget::Budget;
use crate::domain::funnel::Reached;
use crate::domain::phone::PhoneNumber;
use crate::domain::request::AuthRequest;
use crate::domain::timeline::Entry;
use crate::domain::usage::Used;
use crate::store::{Job, Lease, LimitScope, Limits, NewJob, StoreError};

/// The result of inserting an auth request.
#[derive(Debug, Clone)]
pub enum Inserted {
    /// Stored, together with its jobs, durably. `claimed` are the jobs that
    /// were inserted already leased to this process (`NewJob::claim`).
    Created {
        claimed: Vec<Job>,
        /// Each call budget's use with this request (an upper bound; empty without budgets).
        budget_use: Vec<(Budget, u64)>,
    },
    /// A request with the same tenant and `external_id` exists; nothing was written.
    Existing(Box<AuthRequest>),
    /// The phone number has had as many registrations within the window as
    /// the limit of `scope` allows; nothing was written. A slot frees up after `retry_after`.
    Limited { retry_after: Duration, scope: LimitScope },
}

/// What a decision writes: the request's new state, the jobs that follow
/// from it, and the audit events and funnel steps of the change (written in
/// the same commit).
#[derive(Debug)]
pub struct Update {
    pub request: AuthRequest,
    pub jobs: Vec<NewJob>,
    pub audit: Vec<Record>,
    pub steps: Vec<Reached>,
    /// Usage for billing, appended in the same commit.
    pub usage: Vec<Used>,
    /// The request's timeline entry of this change.
    pub timeline: Vec<Entry>,
}

/// Looks at the current state and decides the update, if any. The store runs
/// it against the row it is about to write, and may run it again (on a
/// concurrent change, a serialization failure or a lost connection), so it
/// must be a pure function of the request it is given.
pub type Decide = Arc<dyn Fn(&AuthRequest) -> Option<Update> + Send + Sync>;

/// A request before and after a decision (`after` is `None` when nothing changed).
#[derive(Debug, Clone)]
pub struct Applied {
    pub before: AuthRequest,
    pub after: Option<AuthRequest>,
}

/// `pending_inbound` for every backend, with `?N` parameters (PostgreSQL
/// numbers them `$N`): caller, now, called number, whether the called number
/// is the server's, limit (`NOT terminal` names PostgreSQL's partial index;
/// a pending request is never terminal). Each tenant's newest, then the newest tenants: one
/// tenant's many requests cannot push another tenant's out of the limit.
pub(crate) const PENDING_INBOUND: &str = concat!(
    "SELECT ",
    request_columns!(),
    " FROM (SELECT ",
    request_columns!(),
    ", row_number() OVER (PARTITION BY tenant_id ORDER BY created_at DESC, id DESC) AS nth \
     FROM auth_requests WHERE phone_number = ?1 AND mode = 'inbound' AND status = 'pending' AND NOT terminal \
     AND expires_at > ?2 AND (inbound_number = ?3 OR (?4 AND inbound_number IS NULL))) newest \
     WHERE nth = 1 ORDER BY created_at DESC, id DESC LIMIT ?5"
);

/// Auth requests: stored with their jobs and limits, changed only by a decision.
#[async_trait]
pub trait RequestStore: Send + Sync + 'static {
    /// Stores a new request and its jobs in one commit, with its
    /// registration's audit event and funnel step (`domain::audit::registered`,
    /// `domain::funnel::registered`). A request whose
    /// tenant already used its `external_id` is answered `Existing` before
    /// any limit is looked at; then `limits.number` counts the requests for
    /// the same phone number created within its window before
    /// `request.created_at`, the tenant's own and everybody's; then each of
    /// `limits.budgets` counts the tenant's outbound requests within its
    /// window. Counting and inserting are one transaction that no other
    /// server's registration of the same number or tenant interleaves with.
    async fn insert_request(
        &self,
        request: Arc<AuthRequest>,
        jobs: Vec<NewJob>,
        limits: Limits,
    ) -> Result<Inserted, StoreError>;
    async fn request(&self, id: Uuid) -> Result<Option<AuthRequest>, StoreError>;
    /// The tenant's request with this `external_id`, if there is one.
    async fn request_by_external_id(&self, tenant: Uuid, external_id: &str) -> Result<Option<AuthRequest>, StoreError>;
    /// The `pending` inbound requests for calls from `caller` to `called`
    /// that have not expired at `now`: of each tenant only its newest, newest
    /// first, at most `limit` (tenants). However many requests one tenant
    /// registers, every other tenant waiting for the caller is still found.
    /// Requests stored without a number count as the server's
    /// (`called_is_servers`).
    async fn pending_inbound(
        &self,
        caller: &PhoneNumber,
        called: &PhoneNumber,
        called_is_servers: bool,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AuthRequest>, StoreError>;
    /// The newest inbound request whose call is `call_sid`. Outbound requests
    /// are not found this way: their calls' webhooks carry the request id.
    async fn inbound_request_by_call_sid(&self, call_sid: &str) -> Result<Option<AuthRequest>, StoreError>;
    /// Reads request `id`, lets `decide` choose an update, writes it and its
    /// jobs, all atomically; nothing is written when `decide` chooses none.
    /// `None` if there is no such request. With `finishing`, that job is
    /// deleted in the same commit whatever `decide` chose, and only if the
    /// lease is still the caller's (`LeaseLost` otherwise, with nothing
    /// written): a job's last step and its removal cannot come apart.
    async fn update_request(
        &self,
        id: Uuid,
        decide: Decide,
        finishing: Option<Lease>,
    ) -> Result<Option<Applied>, StoreError>;
    /// How many requests `tenant` has stored.
    async fn count_requests(&self, tenant: Uuid) -> Result<u64, StoreError>;
    /// Ids of requests that are not terminal but whose `expires_at` is at or before `now`.
    async fn overdue_requests(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Uuid>, StoreError>;
    /// Deletes terminal requests last changed and expired before `before`
    /// (one that ended early is kept until it expires too); returns how many.
    async fn purge_finished(&self, before: DateTime<Utc>, limit: usize) -> Result<usize, StoreError>;
}
