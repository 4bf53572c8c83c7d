//! The embedded SQLite backend: WAL, `synchronous=FULL`, group commit on one writer thread.

mod pool;
mod rows;

use std::fs::File;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use crate::domain::phone::PhoneNumber;
use crate::domain::request::AuthRequest;
use crate::domain::tenant::Tenant;
use crate::store::{Applied, Decide, Inserted, Job, JobKind, NewJob, Role, Store, StoreError};
use pool::{Pool, db_err};
use rows::{ms, request_columns, tenant_columns};

/// Ordered migrations; the index + 1 is the schema version.
const MIGRATIONS: [&str; 1] = [include_str!("../../../schema.sql")];

/// SQLite-backed store.
pub struct SqliteStore {
    pool: Pool,
    /// Held for the life of a server process: one server per database file.
    _server_lock: Option<File>,
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)").map_err(db_err)?;
    let current: i64 =
        conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_version", [], |r| r.get(0)).map_err(db_err)?;
    if current > MIGRATIONS.len() as i64 {
        return Err(StoreError::Corrupt(format!(
            "database schema version {current} is newer than this ivr-auth understands"
        )));
    }
    for (n, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.unchecked_transaction().map_err(db_err)?;
        tx.execute_batch(sql).map_err(db_err)?;
        tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [n as i64 + 1]).map_err(db_err)?;
        tx.commit().map_err(db_err)?;
    }
    Ok(())
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

fn insert_jobs(conn: &Connection, jobs: &[NewJob], now: DateTime<Utc>) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO jobs (kind, request_id, payload, run_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for j in jobs {
        stmt.execute(params![j.kind.as_str(), j.request_id.as_bytes(), j.payload, ms(j.run_at), ms(now)])?;
    }
    Ok(())
}

fn delete_job(conn: &Connection, id: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM jobs WHERE id = ?1")?.execute([id])
}

fn select_request(conn: &Connection, id: Uuid) -> rusqlite::Result<Option<AuthRequest>> {
    const SQL: &str = concat!("SELECT ", request_columns!(), " FROM auth_requests WHERE id = ?1");
    conn.prepare_cached(SQL)?.query_row([id.as_bytes()], rows::request_from_row).optional()
}

impl SqliteStore {
    /// Opens (creating and migrating) the database at `path`. A server takes
    /// an exclusive lock so that no second server shares the file, and then
    /// frees the job leases a previous, dead server process left behind.
    pub async fn open(path: &Path, role: Role) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(db_err)?;
        }
        let server_lock = match role {
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
        let pool = tokio::task::spawn_blocking(move || Pool::open(&path, migrate)).await.map_err(db_err)??;
        let store = Self { pool, _server_lock: server_lock };
        if role == Role::Server {
            store.pool.write(|c| c.execute("UPDATE jobs SET locked_until = NULL", []).map_err(db_err)).await?;
        }
        Ok(store)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.pool.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(db_err)).await
    }

    async fn server_secret(&self, candidate: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        self.pool
            .write(move |c| {
                c.execute("INSERT OR IGNORE INTO server_secret (id, secret) VALUES (1, ?1)", [&candidate])
                    .map_err(db_err)?;
                c.query_row("SELECT secret FROM server_secret WHERE id = 1", [], |r| r.get(0)).map_err(db_err)
            })
            .await
    }

    async fn create_tenant(&self, tenant: Tenant) -> Result<(), StoreError> {
        self.pool
            .write(move |c| {
                let sql =
                    concat!("INSERT INTO tenants (", tenant_columns!(), ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
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

    async fn insert_request(&self, request: AuthRequest, jobs: Vec<NewJob>) -> Result<Inserted, StoreError> {
        self.pool
            .write(move |c| match rows::insert_request(c, &request) {
                Ok(_) => {
                    insert_jobs(c, &jobs, request.created_at).map_err(db_err)?;
                    Ok(Inserted::Created)
                }
                Err(e) if is_unique_violation(&e) && request.external_id.is_some() => {
                    let sql = concat!(
                        "SELECT ",
                        request_columns!(),
                        " FROM auth_requests WHERE tenant_id = ?1 AND external_id = ?2"
                    );
                    let existing = c
                        .prepare_cached(sql)
                        .and_then(|mut s| {
                            s.query_row(
                                params![request.tenant_id.as_bytes(), request.external_id],
                                rows::request_from_row,
                            )
                        })
                        .map_err(db_err)?;
                    Ok(Inserted::Existing(Box::new(existing)))
                }
                Err(e) => Err(db_err(e)),
            })
            .await
    }

    async fn insert_requests_bulk(&self, requests: Vec<AuthRequest>) -> Result<(), StoreError> {
        self.pool
            .write(move |c| {
                for r in &requests {
                    rows::insert_request(c, r).map_err(db_err)?;
                }
                Ok(())
            })
            .await
    }

    async fn request(&self, id: Uuid) -> Result<Option<AuthRequest>, StoreError> {
        self.pool.read(move |c| select_request(c, id).map_err(db_err)).await
    }

    async fn newest_pending_inbound(
        &self,
        phone: &PhoneNumber,
        now: DateTime<Utc>,
    ) -> Result<Option<AuthRequest>, StoreError> {
        let phone = phone.as_str().to_owned();
        self.pool
            .read(move |c| {
                let sql = concat!(
                    "SELECT ",
                    request_columns!(),
                    " FROM auth_requests WHERE phone_number = ?1 \
                     AND mode = 'inbound' AND status = 'pending' AND expires_at > ?2 \
                     ORDER BY created_at DESC, id DESC LIMIT 1"
                );
                let mut stmt = c.prepare_cached(sql).map_err(db_err)?;
                stmt.query_row(params![phone, ms(now)], rows::request_from_row).optional().map_err(db_err)
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
        finished_job: Option<i64>,
    ) -> Result<Option<Applied>, StoreError> {
        self.pool
            .write(move |c| {
                if let Some(job) = finished_job {
                    delete_job(c, job).map_err(db_err)?;
                }
                let Some(before) = select_request(c, id).map_err(db_err)? else { return Ok(None) };
                let Some(update) = decide(&before) else { return Ok(Some(Applied { before, after: None })) };
                rows::update_request(c, &update.request).map_err(db_err)?;
                insert_jobs(c, &update.jobs, update.request.updated_at).map_err(db_err)?;
                Ok(Some(Applied { before, after: Some(update.request) }))
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
        self.pool
            .write(move |c| {
                c.execute(
                    "DELETE FROM auth_requests WHERE id IN (SELECT id FROM auth_requests \
                     WHERE terminal = 1 AND updated_at < ?1 LIMIT ?2)",
                    params![ms(before), limit as i64],
                )
                .map_err(db_err)
            })
            .await
    }

    async fn claim_jobs(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        self.pool
            .write(move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "UPDATE jobs SET locked_until = ?2, attempts = attempts + 1 WHERE id IN \
                         (SELECT id FROM jobs WHERE dead = 0 AND run_at <= ?1 \
                          AND (locked_until IS NULL OR locked_until <= ?1) ORDER BY run_at LIMIT ?3) \
                         RETURNING id, kind, request_id, payload, attempts - 1 AS attempts, created_at",
                    )
                    .map_err(db_err)?;
                let jobs = stmt
                    .query_map(params![ms(now), ms(lease_until), limit as i64], rows::job_from_row)
                    .map_err(db_err)?;
                jobs.collect::<Result<Vec<_>, _>>().map_err(db_err)
            })
            .await
    }

    async fn finish_job(&self, id: i64) -> Result<(), StoreError> {
        self.pool
            .write(move |c| {
                delete_job(c, id).map_err(db_err)?;
                Ok(())
            })
            .await
    }

    async fn retry_job(&self, id: i64, run_at: DateTime<Utc>, error: &str) -> Result<(), StoreError> {
        let error = error.to_owned();
        self.pool
            .write(move |c| {
                c.prepare_cached("UPDATE jobs SET run_at = ?2, locked_until = NULL, last_error = ?3 WHERE id = ?1")
                    .and_then(|mut s| s.execute(params![id, ms(run_at), error]))
                    .map_err(db_err)?;
                Ok(())
            })
            .await
    }

    async fn bury_job(&self, id: i64, error: &str) -> Result<(), StoreError> {
        let error = error.to_owned();
        self.pool
            .write(move |c| {
                c.execute(
                    "UPDATE jobs SET dead = 1, locked_until = NULL, last_error = ?2 WHERE id = ?1",
                    params![id, error],
                )
                .map_err(db_err)?;
                Ok(())
            })
            .await
    }

    async fn next_job_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.pool
            .read(|c| {
                let next: Option<i64> = c
                    .query_row(
                        "SELECT MIN(COALESCE(MAX(run_at, locked_until), run_at)) FROM jobs WHERE dead = 0",
                        [],
                        |r| r.get(0),
                    )
                    .map_err(db_err)?;
                next.map(rows::from_ms).transpose().map_err(db_err)
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
}
