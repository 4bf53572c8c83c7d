//! Storage behind one trait, chosen once at start-up from `IVR_AUTH_DATABASE_URL`.

pub mod jobs;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::config::DatabaseUrl;
use crate::domain::phone::PhoneNumber;
use crate::domain::request::AuthRequest;
use crate::domain::tenant::Tenant;
pub use jobs::{Job, JobKind, NewJob};

/// A storage failure. Conflicts are the only kind callers act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken (e.g. a tenant name that exists).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The storage thread or server has gone away.
    #[error("storage is shutting down")]
    Closed,
    #[error("database error: {0}")]
    Database(Box<dyn std::error::Error + Send + Sync>),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// The result of inserting an auth request.
#[derive(Debug)]
pub enum Inserted {
    /// Stored, together with its jobs, durably.
    Created,
    /// A request with the same tenant and `external_id` exists; nothing was written.
    Existing(Box<AuthRequest>),
}

/// What a decision writes: the request's new state and the jobs that follow from it.
#[derive(Debug)]
pub struct Update {
    pub request: AuthRequest,
    pub jobs: Vec<NewJob>,
}

/// Looks at the current state and decides the update, if any. Runs inside the
/// store's transaction, so nothing can change the row between read and write.
pub type Decide = Box<dyn FnOnce(&AuthRequest) -> Option<Update> + Send>;

/// A request before and after a decision (`after` is `None` when nothing changed).
#[derive(Debug)]
pub struct Applied {
    pub before: AuthRequest,
    pub after: Option<AuthRequest>,
}

/// Everything the server keeps. Implementations must make each method atomic
/// and durable before it returns, and `claim_jobs` must hand each due job to
/// exactly one caller, even with several server processes on one database.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Whether the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// The server secret: the stored one, or `candidate` stored now if there is none.
    async fn server_secret(&self, candidate: Vec<u8>) -> Result<Vec<u8>, StoreError>;

    /// Adds a tenant; `Conflict` if the name is taken.
    async fn create_tenant(&self, tenant: Tenant) -> Result<(), StoreError>;
    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError>;
    /// Replaces the key and callback secret of the tenant named `tenant.name`.
    async fn update_tenant_credentials(&self, tenant: Tenant) -> Result<bool, StoreError>;
    async fn tenant_by_key_id(&self, key_id: &str) -> Result<Option<Tenant>, StoreError>;
    async fn tenant(&self, id: Uuid) -> Result<Option<Tenant>, StoreError>;

    /// Stores a new request and its jobs in one commit.
    async fn insert_request(&self, request: AuthRequest, jobs: Vec<NewJob>) -> Result<Inserted, StoreError>;
    /// Stores many requests at once, without jobs (imports, benchmark seeding).
    async fn insert_requests_bulk(&self, requests: Vec<AuthRequest>) -> Result<(), StoreError>;
    async fn request(&self, id: Uuid) -> Result<Option<AuthRequest>, StoreError>;
    /// The newest `pending` inbound request for `phone` that has not expired at `now`.
    async fn newest_pending_inbound(
        &self,
        phone: &PhoneNumber,
        now: DateTime<Utc>,
    ) -> Result<Option<AuthRequest>, StoreError>;
    async fn request_by_call_sid(&self, call_sid: &str) -> Result<Option<AuthRequest>, StoreError>;
    /// Reads request `id`, lets `decide` choose an update, writes it and its
    /// jobs, all atomically. `None` if there is no such request. With
    /// `finished_job`, that job is deleted in the same commit whatever `decide`
    /// chose: a job's last step and its removal cannot come apart.
    async fn update_request(
        &self,
        id: Uuid,
        decide: Decide,
        finished_job: Option<i64>,
    ) -> Result<Option<Applied>, StoreError>;
    /// Ids of requests that are not terminal but whose `expires_at` is past.
    async fn overdue_requests(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Uuid>, StoreError>;
    /// Deletes terminal requests last changed before `before`; returns how many.
    async fn purge_finished(&self, before: DateTime<Utc>, limit: usize) -> Result<usize, StoreError>;

    /// Leases up to `limit` due jobs to the caller until `lease_until`.
    async fn claim_jobs(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError>;
    /// Removes a job that is done.
    async fn finish_job(&self, id: i64) -> Result<(), StoreError>;
    /// Schedules another attempt of a job.
    async fn retry_job(&self, id: i64, run_at: DateTime<Utc>, error: &str) -> Result<(), StoreError>;
    /// Keeps a job that gave up for the operator to see, and stops running it.
    async fn bury_job(&self, id: i64, error: &str) -> Result<(), StoreError>;
    /// When the next job becomes due, if any.
    async fn next_job_at(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// Number of jobs waiting, by kind, for metrics.
    async fn job_backlog(&self) -> Result<Vec<(JobKind, i64)>, StoreError>;
}

/// Whether this process is the server (it owns job leases) or a CLI command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Cli,
}

/// Opens the backend named by the database URL.
pub async fn open(url: &DatabaseUrl, role: Role) -> Result<Arc<dyn Store>, StoreError> {
    match url {
        DatabaseUrl::Sqlite(path) => Ok(Arc::new(sqlite::SqliteStore::open(path, role).await?)),
        DatabaseUrl::Postgres(_) => {
            Err(StoreError::Database("the PostgreSQL backend is not available in this build yet; use sqlite://".into()))
        }
    }
}
