//! Storage behind one trait object, chosen once at start-up from `IVR_AUTH_DATABASE_URL`.
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

pub mod audit;
mod cluster;
pub mod jobs;
pub(crate) mod limits;
pub mod postgres;
mod requests;
pub mod seed;
pub mod sqlite;
pub mod stats;
mod tenants;
mod url;
pub mod usage;

use std::sync::Arc;
use std::time::Duration;

pub use audit::{AuditQuery, AuditStore, ChainHead, StoredEvent, Verdict};
pub use cluster::{ClusterStore, WriteCounters};
pub use jobs::{Job, JobKind, JobStore, Lease, NewJob};
pub use limits::{LimitScope, Limits, NumberLimit};
pub(crate) use limits::{Registrations, register};
pub(crate) use requests::PENDING_INBOUND;
pub use requests::{Applied, Decide, Inserted, RequestStore, Update};
pub use tenants::TenantStore;
pub use url::DatabaseUrl;
pub use usage::{UsageRow, UsageStore};

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

/// Everything the server keeps: one trait per concern below, and `Store`
/// for all of them, so that a backend is one `Arc<dyn Store>`. Each method
/// is atomic and durable before it returns. Job leases are handed out by the
/// database, so several server processes on one database never run the same
/// job at once, and a job whose runner died is taken over when its lease ends.
pub trait Store:
    RequestStore + JobStore + TenantStore + ClusterStore + AuditStore + UsageStore + stats::StatsStore + stats::LookupStore
{
}

impl<
    T: RequestStore
        + JobStore
        + TenantStore
        + ClusterStore
        + AuditStore
        + UsageStore
        + stats::StatsStore
        + stats::LookupStore,
> Store for T
{
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
