//! The embedded SQLite backend: WAL, `synchronous=FULL`, group commit on one writer thread.
//!
//! One server process owns a database file (it holds the file's lock), so
//! the writer thread serializes every read-decide-write, and the process
//! clock is the database's clock.

mod audit;
mod cluster;
mod jobs;
mod lookup;
mod pool;
mod recent;
mod registrations;
mod requests;
mod rows;
mod stats;
mod tenants;
mod usage;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use crate::domain::request::AuthRequest;
use crate::store::{Job, Lease, NewJob, OpenOptions, Role, StoreError, WriteCounters};
use pool::{Pool, Writer, db_err};

/// Ordered migrations; the index + 1 is the schema version.
const MIGRATIONS: [&str; 14] = [
    include_str!("../../../migrations/sqlite/0001_initial.sql"),
    include_str!("../../../migrations/sqlite/0002_leases_and_limits.sql"),
    include_str!("../../../migrations/sqlite/0003_tenant_policy.sql"),
    include_str!("../../../migrations/sqlite/0004_call_budgets.sql"),
    include_str!("../../../migrations/sqlite/0005_key_ids.sql"),
    include_str!("../../../migrations/sqlite/0006_delivery.sql"),
    include_str!("../../../migrations/sqlite/0007_replays_and_call_counts.sql"),
    include_str!("../../../migrations/sqlite/0008_call_pacing.sql"),
    include_str!("../../../migrations/sqlite/0009_audit.sql"),
    include_str!("../../../migrations/sqlite/0010_usage.sql"),
    include_str!("../../../migrations/sqlite/0011_timeline.sql"),
    include_str!("../../../migrations/sqlite/0012_quiet_updates.sql"),
    include_str!("../../../migrations/sqlite/0013_audit_index_ascending.sql"),
    include_str!("../../../migrations/sqlite/0014_inbound_call_sid.sql"),
];

/// SQLite-backed store.
pub struct SqliteStore {
    pool: Pool,
    counters: Arc<WriteCounters>,
    lease_ms: i64,
    /// The requests the writer stored last.
    recent: Arc<recent::Recent>,
    /// Held for the life of a server process: one server per database file.
    _server_lock: Option<File>,
}

/// Applies the migrations the file lacks, in one write transaction: a CLI
/// command and a starting server may migrate the same file at once.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err)?;
    let applied = (|| {
        conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)").map_err(db_err)?;
        let current: i64 =
            conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_version", [], |r| r.get(0)).map_err(db_err)?;
        if current > MIGRATIONS.len() as i64 {
            return Err(StoreError::Corrupt(format!(
                "database schema version {current} is newer than this ivr-auth understands"
            )));
        }
        for (n, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            conn.execute_batch(sql).map_err(db_err)?;
            conn.execute("INSERT INTO schema_version (version) VALUES (?1)", [n as i64 + 1]).map_err(db_err)?;
        }
        Ok(())
    })();
    let end = if applied.is_ok() { "COMMIT" } else { "ROLLBACK" };
    conn.execute_batch(end).map_err(db_err)?;
    applied
}

fn lock_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
        || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

/// The database's clock: this process's, in milliseconds.
fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

/// Inserts `jobs`; those marked `claim` are leased to a new claim token and returned.
fn insert_jobs(conn: &Writer<'_>, jobs: &[NewJob], lease_ms: i64) -> Result<Vec<Job>, StoreError> {
    // Most writes add no job: they skip the statement and the lease token
    // (a `now_v7` reads the kernel's random source: a system call).
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    const SQL: &str = "INSERT INTO jobs (kind, request_id, payload, run_at, created_at, lease_owner, lease_until, \
                       attempts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
    let now = now_ms();
    let token = Uuid::now_v7();
    let mut claimed = Vec::new();
    for j in jobs {
        let (owner, until, attempts) =
            if j.claim { (Some(token.as_bytes().as_slice()), Some(now + lease_ms), 1) } else { (None, None, 0) };
        let run_at = now + millis(j.delay);
        let p = params![j.kind.as_str(), j.request_id.as_bytes(), j.payload, run_at, now, owner, until, attempts];
        conn.with(SQL, |stmt| stmt.execute(p)).map_err(db_err)?;
        if j.claim {
            claimed.push(Job {
                id: conn.last_insert_rowid(),
                kind: j.kind,
                request_id: j.request_id,
                payload: j.payload.clone(),
                attempts: 0,
                created_at: rows::from_ms(now).map_err(db_err)?,
                token,
            });
        }
    }
    Ok(claimed)
}

/// Runs a statement on job `lease.job` that only its lease holder may run.
fn leased(
    conn: &Writer<'_>,
    sql: &'static str,
    lease: Lease,
    extra: &[&dyn rusqlite::ToSql],
) -> Result<(), StoreError> {
    let token: &[u8] = lease.token.as_bytes();
    let mut p: Vec<&dyn rusqlite::ToSql> = vec![&lease.job, &token];
    p.extend_from_slice(extra);
    let n = conn.with(sql, |s| s.execute(p.as_slice())).map_err(db_err)?;
    if n == 0 { Err(StoreError::LeaseLost) } else { Ok(()) }
}

fn select_request(conn: &Connection, id: Uuid) -> rusqlite::Result<Option<AuthRequest>> {
    const SQL: &str = concat!("SELECT ", request_columns!(), " FROM auth_requests WHERE id = ?1");
    conn.prepare_cached(SQL)?.query_row([id.as_bytes()], rows::request_from_row).optional()
}

/// A tenant's request under an external id.
const SELECT_BY_EXTERNAL_ID: &str =
    concat!("SELECT ", request_columns!(), " FROM auth_requests WHERE tenant_id = ?1 AND external_id = ?2");

fn select_by_external_id(conn: &Connection, tenant: Uuid, external_id: &str) -> rusqlite::Result<Option<AuthRequest>> {
    conn.prepare_cached(SELECT_BY_EXTERNAL_ID)?
        .query_row(params![tenant.as_bytes(), external_id], rows::request_from_row)
        .optional()
}

/// Creates the database file, if it does not exist, readable by its owner
/// only (it holds phone numbers and callback secrets); SQLite gives its
/// journal files the same mode.
fn create_private_if_missing(path: &Path) -> std::io::Result<()> {
    match crate::files::create_private(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

impl SqliteStore {
    /// Opens (creating and migrating) the database at `path`. A server takes
    /// an exclusive lock so that no second server shares the file, and then
    /// frees the job leases a previous, dead server process left behind.
    pub async fn open(path: &Path, options: OpenOptions) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(db_err)?;
        }
        create_private_if_missing(path).map_err(db_err)?;
        let server_lock = match options.role {
            Role::Cli => None,
            Role::Server => {
                let file = File::create(lock_path(path)).map_err(db_err)?;
                file.try_lock().map_err(|_| {
                    StoreError::Database(format!("{} is in use by another ivr-auth server", path.display()).into())
                })?;
                Some(file)
            }
        };
        let path = path.to_owned();
        let counters = Arc::new(WriteCounters::default());
        let pool_counters = counters.clone();
        let recent = Arc::new(recent::Recent::default());
        let watching = recent.clone();
        let init = move |c: &mut Connection| {
            migrate(c)?;
            watching.watch(c)
        };
        let pool =
            tokio::task::spawn_blocking(move || Pool::open(&path, init, pool_counters)).await.map_err(db_err)??;
        let store = Self { pool, counters, lease_ms: millis(options.lease), recent, _server_lock: server_lock };
        if options.role == Role::Server {
            // Safe only because the lock above makes this the file's one server.
            store
                .pool
                .write(|c| c.execute("UPDATE jobs SET lease_until = NULL, lease_owner = NULL", []).map_err(db_err))
                .await?;
        }
        Ok(store)
    }

    /// Stores many requests at once, without jobs (benchmark seeding).
    pub async fn insert_requests_bulk(&self, requests: Vec<AuthRequest>) -> Result<(), StoreError> {
        self.pool
            .write(move |c| {
                for r in &requests {
                    rows::insert_request(c, r).map_err(db_err)?;
                }
                Ok(())
            })
            .await
    }

    /// The result of `PRAGMA integrity_check` ("ok" when the file is sound).
    pub async fn integrity_check(&self) -> Result<String, StoreError> {
        self.pool.read(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(db_err)).await
    }
}

/// A migrated database in a directory of its own, on a connection opened
/// as the store opens its writer's; the directory goes with the `TempDir`.
#[cfg(test)]
fn migrated() -> (tempfile::TempDir, Connection, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let conn = pool::connect(&path, false).unwrap();
    migrate(&conn).unwrap();
    (dir, conn, path)
}
