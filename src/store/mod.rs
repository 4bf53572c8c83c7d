//! Storage behind one trait, chosen once at start-up from `IVR_AUTH_DATABASE_URL`.
//!
//! Two backends: SQLite (embedded, one server process per file) and
//! PostgreSQL (several server processes on one database). Both keep the same
//! contract, checked by one test suite (`tests/api/store.rs`).

/// The columns every backend's `request_from_row` reads, in its order (a
/// macro, so queries can `concat!` it).
macro_rules! request_columns {
    () => {
        "id, tenant_id, external_id, fingerprint, mode, phone_number, code_hash, code_salt, code_length, \
         user_id, locale, max_attempts, attempts, no_input_count, callback_url, status, failure_reason, \
         call_sid, call_status, created_at, updated_at, expires_at, verified_at, inbound_number, key_id, delivery"
    };
}

/// The columns every backend's `tenant_from_row` reads, in its order.
macro_rules! tenant_columns {
    () => {
        "id, name, key_id, key_hash, callback_secret, previous_callback_secret, previous_until, created_at, policy"
    };
}

pub mod jobs;
pub(crate) mod limits;
pub mod postgres;
pub mod seed;
pub mod sqlite;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::config::DatabaseUrl;
use crate::domain::budget::Budget;
use crate::domain::phone::PhoneNumber;
use crate::domain::request::AuthRequest;
use crate::domain::tenant::{Tenant, TenantPolicy};
pub use jobs::{Job, JobKind, Lease, NewJob};
pub use limits::{LimitScope, Limits, NumberLimit};
pub(crate) use limits::{Registrations, register};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken (e.g. a tenant name that exists).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The database cannot be reached, or the connection was lost and a fresh
    /// one did not help in time. Nothing was written; try again later.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The job's lease has passed to another runner; nothing was written.
    #[error("the job's lease was lost to another runner")]
    LeaseLost,
    #[error("database error: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// The storage is shutting down (its threads or pool are gone).
    pub fn closed() -> Self {
        Self::Unavailable("storage is shutting down".into())
    }
}

/// `pending_inbound` for every backend, with `?N` parameters (PostgreSQL
/// numbers them `$N`): caller, now, called number, whether the called number
/// is the server's, limit. Each tenant's newest, then the newest tenants: one
/// tenant's many requests cannot push another tenant's out of the limit.
pub(crate) const PENDING_INBOUND: &str = concat!(
    "SELECT ",
    request_columns!(),
    " FROM (SELECT ",
    request_columns!(),
    ", row_number() OVER (PARTITION BY tenant_id ORDER BY created_at DESC, id DESC) AS nth \
     FROM auth_requests WHERE phone_number = ?1 AND mode = 'inbound' AND status = 'pending' AND expires_at > ?2 \
     AND (inbound_number = ?3 OR (?4 AND inbound_number IS NULL))) newest \
     WHERE nth = 1 ORDER BY created_at DESC, id DESC LIMIT ?5"
);

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

/// What a decision writes: the request's new state and the jobs that follow from it.
#[derive(Debug)]
pub struct Update {
    pub request: AuthRequest,
    pub jobs: Vec<NewJob>,
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

/// Counts of what a store has written since it was opened (for metrics and the bench).
#[derive(Debug, Default)]
pub struct WriteCounters {
    /// Write transactions that changed something (one per registration, transition, job step…).
    pub writes: AtomicU64,
    /// Durable commits; fewer than `writes` where commits are grouped (SQLite).
    pub commits: AtomicU64,
}

impl WriteCounters {
    pub fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn committed(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
    }

    /// `(writes, commits)` so far.
    pub fn read(&self) -> (u64, u64) {
        (self.writes.load(Ordering::Relaxed), self.commits.load(Ordering::Relaxed))
    }
}

/// Everything the server keeps. Each method is atomic and durable before it
/// returns. Job leases are handed out by the database, so several server
/// processes on one database never run the same job at once, and a job whose
/// runner died is taken over when its lease ends.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Whether the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// The server secret earlier versions kept in the database, if it is still there.
    async fn stored_server_secret(&self) -> Result<Option<Vec<u8>>, StoreError>;
    /// Removes that secret from the database (once it is safe elsewhere).
    async fn forget_server_secret(&self) -> Result<(), StoreError>;

    /// Adds a tenant; `Conflict` if the name is taken.
    async fn create_tenant(&self, tenant: Tenant) -> Result<(), StoreError>;
    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError>;
    /// Replaces the key and callback secret of the tenant named `tenant.name`.
    async fn update_tenant_credentials(&self, tenant: Tenant) -> Result<bool, StoreError>;
    /// Replaces the policy of the tenant named `name`; `false` if there is none.
    async fn set_tenant_policy(&self, name: &str, policy: &TenantPolicy) -> Result<bool, StoreError>;
    async fn tenant_by_key_id(&self, key_id: &str) -> Result<Option<Tenant>, StoreError>;
    async fn tenant(&self, id: Uuid) -> Result<Option<Tenant>, StoreError>;

    /// Stores a new request and its jobs in one commit. A request whose
    /// tenant already used its `external_id` is answered `Existing` before
    /// any limit is looked at; then `limits.number` counts the requests for
    /// the same phone number created within its window before
    /// `request.created_at`, the tenant's own and everybody's; then each of
    /// `limits.budgets` counts the tenant's outbound requests within its
    /// window. Counting and inserting are one transaction that no other
    /// server's registration of the same number or tenant interleaves with.
    async fn insert_request(
        &self,
        request: AuthRequest,
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
    async fn request_by_call_sid(&self, call_sid: &str) -> Result<Option<AuthRequest>, StoreError>;
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
    /// Deletes terminal requests last changed before `before`; returns how many.
    async fn purge_finished(&self, before: DateTime<Utc>, limit: usize) -> Result<usize, StoreError>;

    /// Records the one-time token whose digest is `digest` as used until
    /// `until`: `true` the first time, `false` while an earlier use is
    /// remembered (its `until` not yet passed at `now`). Every server sees
    /// the same memory, and it outlives restarts.
    async fn first_use(&self, digest: [u8; 32], until: DateTime<Utc>, now: DateTime<Utc>) -> Result<bool, StoreError>;
    /// Forgets used tokens and call counts that no longer matter at `now`; returns how many rows went.
    async fn purge_memory(&self, now: DateTime<Utc>) -> Result<usize, StoreError>;

    /// Leases up to `limit` due jobs to the caller, for the store's lease time
    /// counted on the database's clock.
    async fn claim_jobs(&self, limit: usize) -> Result<Vec<Job>, StoreError>;
    /// Extends the leases that are still the caller's; returns how many were.
    async fn renew_leases(&self, leases: Vec<Lease>) -> Result<usize, StoreError>;
    /// Removes a job that is done (`LeaseLost` if the lease is not the caller's any more).
    async fn finish_job(&self, lease: Lease) -> Result<(), StoreError>;
    /// Schedules another attempt of a job `delay` from now and gives up the lease.
    async fn retry_job(&self, lease: Lease, delay: Duration, error: &str) -> Result<(), StoreError>;
    /// Keeps a job that gave up for the operator to see, and stops running it.
    async fn bury_job(&self, lease: Lease, error: &str) -> Result<(), StoreError>;
    /// How long until the next job is due or its lease ends, if there is one.
    async fn next_job_in(&self) -> Result<Option<Duration>, StoreError>;
    /// Number of jobs waiting, by kind, for metrics.
    async fn job_backlog(&self) -> Result<Vec<(JobKind, i64)>, StoreError>;

    /// Records that server `node` is alive and answers how many servers are
    /// (this one included). Limits that must hold across servers share
    /// themselves out by this number.
    async fn heartbeat(&self, node: Uuid) -> Result<u32, StoreError>;
    /// Forgets server `node` (it is stopping).
    async fn leave(&self, node: Uuid) -> Result<(), StoreError>;
    /// Notified when another process adds a job that is due now (`None`:
    /// this backend has no such signal, or no other process can add jobs).
    fn job_signal(&self) -> Option<Arc<Notify>>;
    /// What this store has written since it was opened.
    fn counters(&self) -> &WriteCounters;
}

/// What the opening process is, which decides how a backend sets itself up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A server: it runs jobs, so it needs a few connections and, with
    /// PostgreSQL, a listener for new jobs. With SQLite it takes the file's
    /// server lock (one server per file) and may therefore free the leases a
    /// dead predecessor left behind.
    Server,
    /// A one-shot command (`tenant …`, `migrate`): one connection, no jobs.
    Cli,
}

/// How to open a store.
#[derive(Debug, Clone, Copy)]
pub struct OpenOptions {
    pub role: Role,
    /// How long a claimed job stays the claimer's before another may take it.
    pub lease: Duration,
    /// Connections at most (PostgreSQL; the server's `max_connections` is
    /// shared by every node, so keep it small).
    pub max_connections: u32,
}

impl OpenOptions {
    /// The defaults for `role`.
    pub fn new(role: Role) -> Self {
        let max_connections = if role == Role::Server { 8 } else { 2 };
        Self { role, lease: Duration::from_secs(30), max_connections }
    }
}

/// Opens the backend named by the database URL, creating or upgrading its schema first.
pub async fn open(url: &DatabaseUrl, options: OpenOptions) -> Result<Arc<dyn Store>, StoreError> {
    match url {
        DatabaseUrl::Sqlite(path) => Ok(Arc::new(sqlite::SqliteStore::open(path, options).await?)),
        DatabaseUrl::Postgres(url) => Ok(Arc::new(postgres::PgStore::open(url, options).await?)),
    }
}
