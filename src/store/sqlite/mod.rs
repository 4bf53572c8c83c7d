//! The embedded SQLite backend: WAL, `synchronous=FULL`, group commit on one writer thread.
//!
//! One server process owns a database file (it holds the file's lock), so
//! the writer thread serializes every read-decide-write, and the process
//! clock is the database's clock.

mod pool;
mod registrations;
mod rows;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::domain::budget::Budget;
use crate::domain::phone::PhoneNumber;
use crate::domain::request::AuthRequest;
use crate::domain::tenant::{Tenant, TenantPolicy};
use crate::store::{
    Applied, Decide, Inserted, Job, JobKind, Lease, Limits, NewJob, OpenOptions, PENDING_INBOUND, Role, Store,
    StoreError, WriteCounters, register,
};
use futures_util::FutureExt;
use pool::{Pool, db_err};
use registrations::Registering;
use rows::ms;

/// Ordered migrations; the index + 1 is the schema version.
const MIGRATIONS: [&str; 7] = [
    include_str!("../../../migrations/sqlite/0001_initial.sql"),
    include_str!("../../../migrations/sqlite/0002_leases_and_limits.sql"),
    include_str!("../../../migrations/sqlite/0003_tenant_policy.sql"),
    include_str!("../../../migrations/sqlite/0004_call_budgets.sql"),
    include_str!("../../../migrations/sqlite/0005_key_ids.sql"),
    include_str!("../../../migrations/sqlite/0006_delivery.sql"),
    include_str!("../../../migrations/sqlite/0007_replays_and_call_counts.sql"),
];

/// SQLite-backed store.
pub struct SqliteStore {
    pool: Pool,
    counters: Arc<WriteCounters>,
    lease_ms: i64,
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
fn insert_jobs(conn: &Connection, jobs: &[NewJob], lease_ms: i64) -> Result<Vec<Job>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO jobs (kind, request_id, payload, run_at, created_at, lease_owner, lease_until, attempts) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(db_err)?;
    let now = now_ms();
    let token = Uuid::now_v7();
    let mut claimed = Vec::new();
    for j in jobs {
        let (owner, until, attempts) =
            if j.claim { (Some(token.as_bytes().as_slice()), Some(now + lease_ms), 1) } else { (None, None, 0) };
        let run_at = now + millis(j.delay);
        stmt.execute(params![j.kind.as_str(), j.request_id.as_bytes(), j.payload, run_at, now, owner, until, attempts])
            .map_err(db_err)?;
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
fn leased(conn: &Connection, sql: &str, lease: Lease, extra: &[&dyn rusqlite::ToSql]) -> Result<(), StoreError> {
    let token: &[u8] = lease.token.as_bytes();
    let mut p: Vec<&dyn rusqlite::ToSql> = vec![&lease.job, &token];
    p.extend_from_slice(extra);
    let n = conn.prepare_cached(sql).and_then(|mut s| s.execute(p.as_slice())).map_err(db_err)?;
    if n == 0 { Err(StoreError::LeaseLost) } else { Ok(()) }
}

fn select_request(conn: &Connection, id: Uuid) -> rusqlite::Result<Option<AuthRequest>> {
    const SQL: &str = concat!("SELECT ", request_columns!(), " FROM auth_requests WHERE id = ?1");
    conn.prepare_cached(SQL)?.query_row([id.as_bytes()], rows::request_from_row).optional()
}

fn select_by_external_id(conn: &Connection, tenant: Uuid, external_id: &str) -> rusqlite::Result<Option<AuthRequest>> {
    const SQL: &str =
        concat!("SELECT ", request_columns!(), " FROM auth_requests WHERE tenant_id = ?1 AND external_id = ?2");
    conn.prepare_cached(SQL)?.query_row(params![tenant.as_bytes(), external_id], rows::request_from_row).optional()
}

/// Creates the database file, if it does not exist, readable by its owner
/// only (it holds phone numbers and callback secrets); SQLite gives its
/// journal files the same mode.
fn create_private_if_missing(path: &Path) -> std::io::Result<()> {
    match crate::secrets::create_private(path) {
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
        let pool =
            tokio::task::spawn_blocking(move || Pool::open(&path, migrate, pool_counters)).await.map_err(db_err)??;
        let store = Self { pool, counters, lease_ms: millis(options.lease), _server_lock: server_lock };
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

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.pool.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(db_err)).await
    }

    async fn stored_server_secret(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.pool
            .read(|c| {
                c.query_row("SELECT secret FROM server_secret WHERE id = 1", [], |r| r.get(0))
                    .optional()
                    .map_err(db_err)
            })
            .await
    }

    async fn forget_server_secret(&self) -> Result<(), StoreError> {
        // The freed page is overwritten with zeros, not left for a later copy to find.
        self.pool
            .write(|c| {
                c.execute_batch("PRAGMA secure_delete = ON; DELETE FROM server_secret; PRAGMA secure_delete = OFF;")
                    .map_err(db_err)
            })
            .await
    }

    async fn create_tenant(&self, tenant: Tenant) -> Result<(), StoreError> {
        self.pool
            .write(move |c| {
                let sql = concat!(
                    "INSERT INTO tenants (",
                    tenant_columns!(),
                    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                );
                let p = rows::tenant_params(&tenant);
                match c.execute(sql, rusqlite::params_from_iter(p.iter())) {
                    Ok(_) => Ok(()),
                    Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict("a tenant with this name exists")),
                    Err(e) => Err(db_err(e)),
                }
            })
            .await
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.pool
            .read(|c| {
                let sql = concat!("SELECT ", tenant_columns!(), " FROM tenants ORDER BY name");
                let mut stmt = c.prepare(sql).map_err(db_err)?;
                let rows = stmt.query_map([], rows::tenant_from_row).map_err(db_err)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
            })
            .await
    }

    async fn update_tenant_credentials(&self, tenant: Tenant) -> Result<bool, StoreError> {
        self.pool
            .write(move |c| {
                let p = rows::tenant_params(&tenant);
                let n = c
                    .execute(
                        "UPDATE tenants SET key_id = ?3, key_hash = ?4, callback_secret = ?5, \
                         previous_callback_secret = ?6, previous_until = ?7 WHERE name = ?2 AND id = ?1",
                        rusqlite::params_from_iter(p.iter().take(7)),
                    )
                    .map_err(db_err)?;
                Ok(n == 1)
            })
            .await
    }

    async fn set_tenant_policy(&self, name: &str, policy: &TenantPolicy) -> Result<bool, StoreError> {
        let (name, policy) = (name.to_owned(), policy.to_json());
        self.pool
            .write(move |c| {
                let n = c
                    .execute("UPDATE tenants SET policy = ?2 WHERE name = ?1", params![name, policy])
                    .map_err(db_err)?;
                Ok(n == 1)
            })
            .await
    }

    async fn tenant_by_key_id(&self, key_id: &str) -> Result<Option<Tenant>, StoreError> {
        let key_id = key_id.to_owned();
        self.pool
            .read(move |c| {
                let sql = concat!("SELECT ", tenant_columns!(), " FROM tenants WHERE key_id = ?1");
                let mut stmt = c.prepare_cached(sql).map_err(db_err)?;
                stmt.query_row([key_id], rows::tenant_from_row).optional().map_err(db_err)
            })
            .await
    }

    async fn tenant(&self, id: Uuid) -> Result<Option<Tenant>, StoreError> {
        self.pool
            .read(move |c| {
                let sql = concat!("SELECT ", tenant_columns!(), " FROM tenants WHERE id = ?1");
                let mut stmt = c.prepare_cached(sql).map_err(db_err)?;
                stmt.query_row([id.as_bytes()], rows::tenant_from_row).optional().map_err(db_err)
            })
            .await
    }

    async fn insert_request(
        &self,
        request: AuthRequest,
        jobs: Vec<NewJob>,
        limits: Limits,
    ) -> Result<Inserted, StoreError> {
        let (counters, lease_ms) = (self.counters.clone(), self.lease_ms);
        self.pool
            .write(move |c| {
                // One writer: nothing interleaves between the counts and the insert.
                let mut registering = Registering { conn: c, request: &request, jobs: &jobs, lease_ms };
                let inserted = register(&mut registering, &request, &limits)
                    .now_or_never()
                    .ok_or_else(|| StoreError::Corrupt("a SQLite registration waited".into()))??;
                if matches!(inserted, Inserted::Created { .. }) {
                    counters.wrote();
                }
                Ok(inserted)
            })
            .await
    }

    async fn request(&self, id: Uuid) -> Result<Option<AuthRequest>, StoreError> {
        self.pool.read(move |c| select_request(c, id).map_err(db_err)).await
    }

    async fn request_by_external_id(&self, tenant: Uuid, external_id: &str) -> Result<Option<AuthRequest>, StoreError> {
        let external_id = external_id.to_owned();
        self.pool.read(move |c| select_by_external_id(c, tenant, &external_id).map_err(db_err)).await
    }

    async fn pending_inbound(
        &self,
        caller: &PhoneNumber,
        called: &PhoneNumber,
        called_is_servers: bool,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AuthRequest>, StoreError> {
        let (caller, called) = (caller.as_str().to_owned(), called.as_str().to_owned());
        self.pool
            .read(move |c| {
                let mut stmt = c.prepare_cached(PENDING_INBOUND).map_err(db_err)?;
                let rows = stmt
                    .query_map(
                        params![caller, ms(now), called, called_is_servers, limit as i64],
                        rows::request_from_row,
                    )
                    .map_err(db_err)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
            })
            .await
    }

    async fn request_by_call_sid(&self, call_sid: &str) -> Result<Option<AuthRequest>, StoreError> {
        let sid = call_sid.to_owned();
        self.pool
            .read(move |c| {
                let sql = concat!(
                    "SELECT ",
                    request_columns!(),
                    " FROM auth_requests WHERE call_sid = ?1 ORDER BY created_at DESC LIMIT 1"
                );
                let mut stmt = c.prepare_cached(sql).map_err(db_err)?;
                stmt.query_row([sid], rows::request_from_row).optional().map_err(db_err)
            })
            .await
    }

    async fn update_request(
        &self,
        id: Uuid,
        decide: Decide,
        finishing: Option<Lease>,
    ) -> Result<Option<Applied>, StoreError> {
        let counters = self.counters.clone();
        self.pool
            .write(move |c| {
                if let Some(lease) = finishing {
                    leased(c, "DELETE FROM jobs WHERE id = ?1 AND lease_owner = ?2", lease, &[])?;
                    counters.wrote();
                }
                let Some(before) = select_request(c, id).map_err(db_err)? else { return Ok(None) };
                let Some(update) = decide(&before) else { return Ok(Some(Applied { before, after: None })) };
                rows::update_request(c, &update.request).map_err(db_err)?;
                insert_jobs(c, &update.jobs, 0)?;
                if finishing.is_none() {
                    counters.wrote();
                }
                Ok(Some(Applied { before, after: Some(update.request) }))
            })
            .await
    }

    async fn count_requests(&self, tenant: Uuid) -> Result<u64, StoreError> {
        self.pool
            .read(move |c| {
                c.query_row("SELECT COUNT(*) FROM auth_requests WHERE tenant_id = ?1", [tenant.as_bytes()], |r| {
                    r.get::<_, i64>(0)
                })
                .map(|n| u64::try_from(n).unwrap_or(0))
                .map_err(db_err)
            })
            .await
    }

    async fn overdue_requests(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Uuid>, StoreError> {
        self.pool
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT id FROM auth_requests WHERE terminal = 0 AND expires_at <= ?1 \
                         ORDER BY expires_at LIMIT ?2",
                    )
                    .map_err(db_err)?;
                let ids = stmt.query_map(params![ms(now), limit as i64], |r| r.get::<_, Vec<u8>>(0)).map_err(db_err)?;
                ids.map(|b| b.map_err(db_err).and_then(|b| Uuid::from_slice(&b).map_err(db_err))).collect()
            })
            .await
    }

    async fn purge_finished(&self, before: DateTime<Utc>, limit: usize) -> Result<usize, StoreError> {
        let counters = self.counters.clone();
        self.pool
            .write(move |c| {
                let n = c
                    .execute(
                        "DELETE FROM auth_requests WHERE id IN (SELECT id FROM auth_requests \
                         WHERE terminal = 1 AND updated_at < ?1 LIMIT ?2)",
                        params![ms(before), limit as i64],
                    )
                    .map_err(db_err)?;
                if n > 0 {
                    counters.wrote();
                }
                Ok(n)
            })
            .await
    }

    async fn first_use(&self, digest: [u8; 32], until: DateTime<Utc>, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let counters = self.counters.clone();
        self.pool
            .write(move |c| {
                // A remembered use that has passed its `until` is forgotten, not a conflict.
                let n = c
                    .prepare_cached(
                        "INSERT INTO used_tokens (digest, until) VALUES (?1, ?2) \
                         ON CONFLICT (digest) DO UPDATE SET until = excluded.until WHERE used_tokens.until < ?3",
                    )
                    .and_then(|mut s| s.execute(params![digest.as_slice(), ms(until), ms(now)]))
                    .map_err(db_err)?;
                counters.wrote();
                Ok(n == 1)
            })
            .await
    }

    async fn purge_memory(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let counters = self.counters.clone();
        self.pool
            .write(move |c| {
                let tokens = c.execute("DELETE FROM used_tokens WHERE until < ?1", [ms(now)]).map_err(db_err)?;
                let mut counts = 0;
                for b in Budget::ALL {
                    counts += c
                        .execute(
                            "DELETE FROM call_counts WHERE budget = ?1 AND bucket < ?2",
                            params![b.id(), b.first_bucket(now)],
                        )
                        .map_err(db_err)?;
                }
                if tokens + counts > 0 {
                    counters.wrote();
                }
                Ok(tokens + counts)
            })
            .await
    }

    async fn claim_jobs(&self, limit: usize) -> Result<Vec<Job>, StoreError> {
        let (counters, lease_ms) = (self.counters.clone(), self.lease_ms);
        self.pool
            .write(move |c| {
                let now = now_ms();
                let token = Uuid::now_v7();
                let mut stmt = c
                    .prepare_cached(
                        "UPDATE jobs SET lease_until = ?2, lease_owner = ?4, attempts = attempts + 1 WHERE id IN \
                         (SELECT id FROM jobs WHERE dead = 0 AND run_at <= ?1 \
                          AND (lease_until IS NULL OR lease_until <= ?1) ORDER BY run_at LIMIT ?3) \
                         RETURNING id, kind, request_id, payload, attempts - 1 AS attempts, created_at, lease_owner",
                    )
                    .map_err(db_err)?;
                let jobs = stmt
                    .query_map(params![now, now + lease_ms, limit as i64, token.as_bytes()], rows::job_from_row)
                    .map_err(db_err)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(db_err)?;
                if !jobs.is_empty() {
                    counters.wrote();
                }
                Ok(jobs)
            })
            .await
    }

    async fn renew_leases(&self, leases: Vec<Lease>) -> Result<usize, StoreError> {
        let (counters, lease_ms) = (self.counters.clone(), self.lease_ms);
        self.pool
            .write(move |c| {
                let until = now_ms() + lease_ms;
                let mut renewed = 0;
                for lease in leases {
                    let sql = "UPDATE jobs SET lease_until = ?3 WHERE id = ?1 AND lease_owner = ?2";
                    match leased(c, sql, lease, &[&until]) {
                        Ok(()) => renewed += 1,
                        Err(StoreError::LeaseLost) => {}
                        Err(e) => return Err(e),
                    }
                }
                counters.wrote();
                Ok(renewed)
            })
            .await
    }

    async fn finish_job(&self, lease: Lease) -> Result<(), StoreError> {
        let counters = self.counters.clone();
        self.pool
            .write(move |c| {
                leased(c, "DELETE FROM jobs WHERE id = ?1 AND lease_owner = ?2", lease, &[])?;
                counters.wrote();
                Ok(())
            })
            .await
    }

    async fn retry_job(&self, lease: Lease, delay: Duration, error: &str) -> Result<(), StoreError> {
        let (error, counters) = (error.to_owned(), self.counters.clone());
        self.pool
            .write(move |c| {
                let run_at = now_ms() + millis(delay);
                let sql = "UPDATE jobs SET run_at = ?3, lease_until = NULL, lease_owner = NULL, last_error = ?4 \
                           WHERE id = ?1 AND lease_owner = ?2";
                leased(c, sql, lease, &[&run_at, &error])?;
                counters.wrote();
                Ok(())
            })
            .await
    }

    async fn bury_job(&self, lease: Lease, error: &str) -> Result<(), StoreError> {
        let (error, counters) = (error.to_owned(), self.counters.clone());
        self.pool
            .write(move |c| {
                let sql = "UPDATE jobs SET dead = 1, lease_until = NULL, lease_owner = NULL, last_error = ?3 \
                           WHERE id = ?1 AND lease_owner = ?2";
                leased(c, sql, lease, &[&error])?;
                counters.wrote();
                Ok(())
            })
            .await
    }

    async fn next_job_in(&self) -> Result<Option<Duration>, StoreError> {
        self.pool
            .read(|c| {
                let next: Option<i64> = c
                    .query_row(
                        "SELECT MIN(MAX(run_at, COALESCE(lease_until, run_at))) FROM jobs WHERE dead = 0",
                        [],
                        |r| r.get(0),
                    )
                    .map_err(db_err)?;
                Ok(next.map(|t| Duration::from_millis(u64::try_from(t - now_ms()).unwrap_or(0))))
            })
            .await
    }

    async fn job_backlog(&self) -> Result<Vec<(JobKind, i64)>, StoreError> {
        self.pool
            .read(|c| {
                let mut stmt =
                    c.prepare_cached("SELECT kind, COUNT(*) FROM jobs WHERE dead = 0 GROUP BY kind").map_err(db_err)?;
                let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).map_err(db_err)?;
                let mut out = Vec::new();
                for row in rows {
                    let (kind, n) = row.map_err(db_err)?;
                    if let Some(kind) = JobKind::parse(&kind) {
                        out.push((kind, n));
                    }
                }
                Ok(out)
            })
            .await
    }

    async fn heartbeat(&self, _node: Uuid) -> Result<u32, StoreError> {
        // The file lock admits one server: it is alone.
        Ok(1)
    }

    async fn leave(&self, _node: Uuid) -> Result<(), StoreError> {
        Ok(())
    }

    fn job_signal(&self) -> Option<Arc<Notify>> {
        None
    }

    fn counters(&self) -> &WriteCounters {
        &self.counters
    }
}
