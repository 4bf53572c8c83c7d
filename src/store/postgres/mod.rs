//! The PostgreSQL backend: several server processes on one database.
//!
//! - Every operation runs on a pooled connection; a lost connection, a
//!   serialization failure or a deadlock runs it again on a fresh one until
//!   the operation's time budget is spent, and only then is the database
//!   "unavailable" (the site API answers 503).
//! - Writes (`update_request`, and `insert_request` without a number limit)
//!   go through group commit (`batch`): the writes queued together lock their
//!   rows, decide in order, and commit as one transaction. A batch retried
//!   after a lost connection recognises its own earlier commit by the batch
//!   id it wrote, so no event is applied twice.
//! - Job leases carry a claim token and are timed by the database's clock;
//!   claims skip rows that other servers are claiming (`FOR UPDATE SKIP LOCKED`).

#[macro_use]
mod retry;
mod batch;
mod connect;
mod listen;
mod reads;
mod registrations;
mod rows;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use uuid::Uuid;

use crate::domain::budget::Budget;
use crate::domain::phone::PhoneNumber;
use crate::domain::request::AuthRequest;
use crate::domain::tenant::{Tenant, TenantPolicy};
use crate::store::{
    Applied, Decide, Inserted, Job, JobKind, Lease, Limits, NewJob, OpenOptions, PENDING_INBOUND, Role, Store,
    StoreError, WriteCounters, register,
};
use connect::target;
use registrations::Registering;
use retry::{Fail, db};
use rows::{RequestParams, TenantParams, job_from_row, job_from_row_at, request_from_row, tenant_from_row};

/// Ordered migrations; the index + 1 is the schema version.
const MIGRATIONS: [&str; 6] = [
    include_str!("../../../migrations/postgres/0001_initial.sql"),
    include_str!("../../../migrations/postgres/0002_tenant_policy.sql"),
    include_str!("../../../migrations/postgres/0003_call_budgets.sql"),
    include_str!("../../../migrations/postgres/0004_key_ids.sql"),
    include_str!("../../../migrations/postgres/0005_delivery.sql"),
    include_str!("../../../migrations/postgres/0006_replays_and_call_counts.sql"),
];

/// PostgreSQL-backed store.
pub struct PgStore {
    db: Arc<Db>,
    /// The group-commit writers' queue (`batch`).
    writes: mpsc::UnboundedSender<batch::Op>,
    /// The batched point readers' queue (`reads`).
    reads: mpsc::UnboundedSender<reads::Read>,
    signal: Option<Arc<Notify>>,
    /// The job listener and the writers, stopped with the store.
    tasks: Vec<AbortHandle>,
}

/// What every operation needs: the pool and its limits.
struct Db {
    pool: Pool,
    counters: Arc<WriteCounters>,
    lease: Duration,
    /// How long one operation may take, retries included.
    budget: Duration,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.db.pool.close();
    }
}

fn millis_f64(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

const SELECT_REQUEST: &str = concat!("SELECT ", request_columns!(), " FROM auth_requests WHERE id = $1");
const SELECT_BY_EXTERNAL_ID: &str =
    concat!("SELECT ", request_columns!(), " FROM auth_requests WHERE tenant_id = $1 AND external_id = $2");
const JOB_COLUMNS: &str = "id, kind, request_id, payload, attempts - 1, created_at, lease_owner";

/// Inserts a request and its jobs in one statement; a conflict on any unique
/// key inserts nothing. Answers how many requests were inserted (0 or 1) and
/// the jobs inserted already leased (one row with NULLs when there are none).
const INSERT_REQUEST: &str = concat!(
    "WITH req AS (INSERT INTO auth_requests (",
    request_columns!(),
    ", terminal) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
     $19, $20, $21, $22, $23, $24, $25, $26, $27) ON CONFLICT DO NOTHING RETURNING id), \
     job AS (INSERT INTO jobs (kind, request_id, payload, run_at, created_at, lease_owner, lease_until, attempts) \
       SELECT k, req.id, p, now() + d * interval '1 millisecond', now(), \
              CASE WHEN c THEN $32::uuid END, \
              CASE WHEN c THEN now() + $33::float8 * interval '1 millisecond' END, \
              CASE WHEN c THEN 1 ELSE 0 END \
       FROM req, unnest($28::text[], $29::text[], $30::float8[], $31::bool[]) AS j(k, p, d, c) \
       RETURNING id, kind, request_id, payload, attempts - 1 AS attempts, created_at, lease_owner) \
     SELECT n.inserted, job.id, job.kind, job.request_id, job.payload, job.attempts, job.created_at, job.lease_owner \
     FROM (SELECT count(*) AS inserted FROM req) n \
     LEFT JOIN job ON job.lease_owner IS NOT NULL"
);

/// A request alone (no jobs): a conflict on any unique key inserts nothing.
const INSERT_REQUEST_ALONE: &str = concat!(
    "INSERT INTO auth_requests (",
    request_columns!(),
    ", terminal) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
     $19, $20, $21, $22, $23, $24, $25, $26, $27) ON CONFLICT DO NOTHING"
);

/// A statement shared with SQLite (`?N` parameters) in PostgreSQL's numbering (`$N`).
fn numbered(sql: &str) -> String {
    sql.replace('?', "$")
}

const DELETE_LEASED_JOB: &str = "DELETE FROM jobs WHERE id = $1 AND lease_owner = $2";

/// The `$28..$31` job arrays of `INSERT_REQUEST` (and of the batch's job inserts).
struct JobArrays {
    kinds: Vec<&'static str>,
    payloads: Vec<String>,
    delays: Vec<f64>,
    claims: Vec<bool>,
}

impl JobArrays {
    fn new(jobs: &[NewJob]) -> Self {
        Self {
            kinds: jobs.iter().map(|j| j.kind.as_str()).collect(),
            payloads: jobs.iter().map(|j| j.payload.clone()).collect(),
            delays: jobs.iter().map(|j| millis_f64(j.delay)).collect(),
            claims: jobs.iter().map(|j| j.claim).collect(),
        }
    }
}

impl PgStore {
    /// Connects to the database at `url`, creating or upgrading its schema
    /// (several servers may do this at once: one migrates, the others wait).
    pub async fn open(url: &str, options: OpenOptions) -> Result<Self, StoreError> {
        crate::install_tls_provider();
        let target = Arc::new(target(url)?);
        let manager = Manager::from_config(
            target.config.clone(),
            target.tls.clone(),
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1) as usize)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(2)))
            .create_timeout(Some(Duration::from_secs(3)))
            .recycle_timeout(Some(Duration::from_secs(2)))
            .build()
            .map_err(|e| StoreError::Database(Box::new(e)))?;
        let budget = match options.role {
            Role::Server => Duration::from_secs(4),
            Role::Cli => Duration::from_secs(60),
        };
        let db = Arc::new(Db { pool, counters: Arc::new(WriteCounters::default()), lease: options.lease, budget });
        let schema = db.migrate().await?;
        let (writes, mut tasks) = batch::spawn(db.clone());
        let (reads, readers) = reads::spawn(db.clone());
        tasks.extend(readers);
        let mut signal = None;
        if options.role == Role::Server {
            let wake = Arc::new(Notify::new());
            tasks.push(listen::spawn(target, schema, wake.clone()).abort_handle());
            signal = Some(wake);
        }
        Ok(Self { db, writes, reads, signal, tasks })
    }
}

impl Db {
    /// Applies the migrations the database lacks, under a lock per schema; answers the schema.
    async fn migrate(&self) -> Result<String, StoreError> {
        retrying!(self, "operation", |c, _tries| {
            let tx = c.transaction().await?;
            let schema: Option<String> = tx.query_one("SELECT current_schema()", &[]).await?.get(0);
            let Some(schema) = schema else {
                return Err(Fail::Stop(StoreError::Database(
                    "the database URL's search_path names no existing schema to create the tables in".into(),
                )));
            };
            tx.execute("SELECT pg_advisory_xact_lock(hashtextextended('ivr-auth migrate ' || $1, 0))", &[&schema])
                .await?;
            tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)").await?;
            let current: i32 = tx.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[]).await?.get(0);
            if current > MIGRATIONS.len() as i32 {
                return Err(Fail::Stop(StoreError::Corrupt(format!(
                    "database schema version {current} is newer than this ivr-auth understands"
                ))));
            }
            for (n, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
                tx.batch_execute(sql).await?;
                tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&(n as i32 + 1)]).await?;
            }
            tx.commit().await?;
            Ok(schema)
        })
    }
}

impl PgStore {
    /// Sends a write to the group-commit writers and waits for its answer.
    async fn write<T>(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> batch::Op,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writes.send(op(reply)).map_err(|_| StoreError::closed())?;
        answer.await.map_err(|_| StoreError::closed())?
    }

    /// Sends a point read to the batched readers and waits for its answer.
    async fn read<T>(
        &self,
        read: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> reads::Read,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.reads.send(read(reply)).map_err(|_| StoreError::closed())?;
        answer.await.map_err(|_| StoreError::closed())?
    }

    /// Stores many requests at once, without jobs, in one transaction (benchmark seeding).
    pub async fn insert_requests_bulk(&self, requests: Vec<AuthRequest>) -> Result<(), StoreError> {
        const SQL: &str = concat!(
            "INSERT INTO auth_requests (",
            request_columns!(),
            ", terminal) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)"
        );
        retrying!(&self.db, "operation", |c, _tries| {
            let tx = c.transaction().await?;
            let stmt = tx.prepare_cached(SQL).await?;
            let params: Vec<RequestParams<'_>> = requests.iter().map(RequestParams::new).collect();
            // Pipelined: all inserts are sent before the first answer is awaited.
            let inserts = params.iter().map(|p| {
                let stmt = &stmt;
                let tx = &tx;
                async move { tx.execute(stmt, &p.all()).await }
            });
            for done in futures_util::future::join_all(inserts).await {
                done?;
            }
            tx.commit().await?;
            Ok(())
        })
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        // One attempt, briefly: readiness must answer fast, not retry.
        let deadline = Instant::now() + Duration::from_secs(2);
        let check = async {
            let conn = self.db.connection(deadline).await?;
            conn.simple_query("SELECT 1").await?;
            Ok::<(), Fail>(())
        };
        match tokio::time::timeout_at(deadline, check).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(fail)) => Err(fail.transient().map_or_else(|e| e, StoreError::Unavailable)),
            Err(_) => Err(StoreError::Unavailable("the database did not answer in time".into())),
        }
    }

    async fn stored_server_secret(&self) -> Result<Option<Vec<u8>>, StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            Ok(c.query_opt("SELECT secret FROM server_secret WHERE id = 1", &[]).await?.map(|row| row.get(0)))
        })
    }

    async fn forget_server_secret(&self) -> Result<(), StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            c.execute("DELETE FROM server_secret", &[]).await?;
            Ok(())
        })
    }

    async fn create_tenant(&self, tenant: Tenant) -> Result<(), StoreError> {
        const SQL: &str =
            concat!("INSERT INTO tenants (", tenant_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)");
        let p = TenantParams::new(&tenant);
        let result = retrying!(&self.db, "operation", |c, tries| {
            match c.execute(SQL, &p.all(&tenant)).await {
                Ok(_) => Ok(()),
                // Our own earlier attempt may have committed before its connection was lost.
                Err(e) if tries > 1 && e.code().is_some_and(|s| s.code() == "23505") => {
                    let again = c.query_opt("SELECT 1 FROM tenants WHERE id = $1", &[&tenant.id]).await?;
                    if again.is_some() { Ok(()) } else { Err(e.into()) }
                }
                Err(e) => Err(e.into()),
            }
        });
        match result {
            Err(StoreError::Conflict(_)) => Err(StoreError::Conflict("a tenant with this name exists")),
            other => other,
        }
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        const SQL: &str = concat!("SELECT ", tenant_columns!(), " FROM tenants ORDER BY name");
        retrying!(&self.db, "operation", |c, _tries| {
            let rows = c.query(SQL, &[]).await?;
            Ok(rows.iter().map(tenant_from_row).collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn update_tenant_credentials(&self, tenant: Tenant) -> Result<bool, StoreError> {
        let p = TenantParams::new(&tenant);
        retrying!(&self.db, "operation", |c, _tries| {
            let all = p.all(&tenant);
            let n = c
                .execute(
                    "UPDATE tenants SET key_id = $3, key_hash = $4, callback_secret = $5, \
                     previous_callback_secret = $6, previous_until = $7 WHERE name = $2 AND id = $1",
                    &all[..7],
                )
                .await?;
            Ok(n == 1)
        })
    }

    async fn set_tenant_policy(&self, name: &str, policy: &TenantPolicy) -> Result<bool, StoreError> {
        let policy = policy.to_json();
        retrying!(&self.db, "operation", |c, _tries| {
            Ok(c.execute("UPDATE tenants SET policy = $2 WHERE name = $1", &[&name, &policy]).await? == 1)
        })
    }

    async fn tenant_by_key_id(&self, key_id: &str) -> Result<Option<Tenant>, StoreError> {
        let key_id = key_id.to_owned();
        self.read(|reply| reads::Read::Tenant { key_id, reply }).await
    }

    async fn tenant(&self, id: Uuid) -> Result<Option<Tenant>, StoreError> {
        const SQL: &str = concat!("SELECT ", tenant_columns!(), " FROM tenants WHERE id = $1");
        retrying!(&self.db, "operation", |c, _tries| {
            let stmt = c.prepare_cached(SQL).await?;
            Ok(c.query_opt(&stmt, &[&id]).await?.as_ref().map(tenant_from_row).transpose()?)
        })
    }

    async fn insert_request(
        &self,
        request: AuthRequest,
        jobs: Vec<NewJob>,
        limits: Limits,
    ) -> Result<Inserted, StoreError> {
        if limits.is_empty() {
            return self.write(|reply| batch::Op::Insert { request, jobs, reply }).await;
        }
        let new = NewRequest::new(&request, &jobs, Uuid::now_v7(), self.db.lease);
        let inserted = retrying!(&self.db, "operation", |c, _tries| {
            let tx = c.transaction().await?;
            // One registration per number, and per tenant with budgets, at a
            // time across every server (always in this order: no deadlock).
            if limits.number.is_some() {
                tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 1))", &[&request.phone_number.as_str()])
                    .await?;
            }
            if !limits.budgets.is_empty() {
                tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text, 2))", &[&request.tenant_id])
                    .await?;
            }
            // A retry after a lost connection finds its own earlier commit before counting it.
            let inserted = if tx.query_opt("SELECT 1 FROM auth_requests WHERE id = $1", &[&request.id]).await?.is_none()
            {
                register(&mut Registering { tx: &tx, new: &new }, &request, &limits).await?
            } else {
                new.insert(&tx).await?
            };
            tx.commit().await?;
            Ok(inserted)
        })?;
        if matches!(inserted, Inserted::Created { .. }) {
            self.db.counters.wrote();
            self.db.counters.committed();
        }
        Ok(inserted)
    }

    async fn request(&self, id: Uuid) -> Result<Option<AuthRequest>, StoreError> {
        self.read(|reply| reads::Read::Request { id, reply }).await
    }

    async fn request_by_external_id(&self, tenant: Uuid, external_id: &str) -> Result<Option<AuthRequest>, StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            let stmt = c.prepare_cached(SELECT_BY_EXTERNAL_ID).await?;
            Ok(c.query_opt(&stmt, &[&tenant, &external_id]).await?.as_ref().map(request_from_row).transpose()?)
        })
    }

    async fn pending_inbound(
        &self,
        caller: &PhoneNumber,
        called: &PhoneNumber,
        called_is_servers: bool,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AuthRequest>, StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            let stmt = c.prepare_cached(&numbered(PENDING_INBOUND)).await?;
            let rows = c
                .query(&stmt, &[&caller.as_str(), &now, &called.as_str(), &called_is_servers, &(limit as i64)])
                .await?;
            Ok(rows.iter().map(request_from_row).collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn request_by_call_sid(&self, call_sid: &str) -> Result<Option<AuthRequest>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            request_columns!(),
            " FROM auth_requests WHERE call_sid = $1 ORDER BY created_at DESC LIMIT 1"
        );
        retrying!(&self.db, "operation", |c, _tries| {
            let stmt = c.prepare_cached(SQL).await?;
            Ok(c.query_opt(&stmt, &[&call_sid]).await?.as_ref().map(request_from_row).transpose()?)
        })
    }

    async fn update_request(
        &self,
        id: Uuid,
        decide: Decide,
        finishing: Option<Lease>,
    ) -> Result<Option<Applied>, StoreError> {
        self.write(|reply| batch::Op::Update { id, decide, finishing, reply }).await
    }

    async fn count_requests(&self, tenant: Uuid) -> Result<u64, StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            let n: i64 =
                c.query_one("SELECT count(*) FROM auth_requests WHERE tenant_id = $1", &[&tenant]).await?.get(0);
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    async fn overdue_requests(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Uuid>, StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            let stmt = c
                .prepare_cached(
                    "SELECT id FROM auth_requests WHERE NOT terminal AND expires_at <= $1 \
                     ORDER BY expires_at LIMIT $2",
                )
                .await?;
            let rows = c.query(&stmt, &[&now, &(limit as i64)]).await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    async fn purge_finished(&self, before: DateTime<Utc>, limit: usize) -> Result<usize, StoreError> {
        let counters = &self.db.counters;
        retrying!(&self.db, "operation", |c, _tries| {
            // Servers purging at once skip each other's rows instead of waiting on them.
            let n = c
                .execute(
                    "DELETE FROM auth_requests WHERE id IN (SELECT id FROM auth_requests \
                     WHERE terminal AND updated_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
                    &[&before, &(limit as i64)],
                )
                .await?;
            if n > 0 {
                counters.wrote();
                counters.committed();
            }
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }

    async fn first_use(&self, digest: [u8; 32], until: DateTime<Utc>, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let counters = &self.db.counters;
        retrying!(&self.db, "operation", |c, _tries| {
            // A remembered use that has passed its `until` is forgotten, not a conflict.
            let stmt = c
                .prepare_cached(
                    "INSERT INTO used_tokens (digest, until) VALUES ($1, $2) \
                     ON CONFLICT (digest) DO UPDATE SET until = excluded.until WHERE used_tokens.until < $3",
                )
                .await?;
            let n = c.execute(&stmt, &[&digest.as_slice(), &until, &now]).await?;
            counters.wrote();
            counters.committed();
            Ok(n == 1)
        })
    }

    async fn purge_memory(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let counters = &self.db.counters;
        retrying!(&self.db, "operation", |c, _tries| {
            let mut n = c.execute("DELETE FROM used_tokens WHERE until < $1", &[&now]).await?;
            for b in Budget::ALL {
                n += c
                    .execute(
                        "DELETE FROM call_counts WHERE budget = $1 AND bucket < $2",
                        &[&b.id(), &b.first_bucket(now)],
                    )
                    .await?;
            }
            if n > 0 {
                counters.wrote();
                counters.committed();
            }
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }

    async fn claim_jobs(&self, limit: usize) -> Result<Vec<Job>, StoreError> {
        let sql = format!(
            "UPDATE jobs SET lease_owner = $1, lease_until = now() + $2::float8 * interval '1 millisecond', \
             attempts = attempts + 1 WHERE id IN (SELECT id FROM jobs WHERE NOT dead AND run_at <= now() \
             AND (lease_until IS NULL OR lease_until <= now()) ORDER BY run_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING {JOB_COLUMNS}"
        );
        let token = Uuid::now_v7();
        let lease_ms = millis_f64(self.db.lease);
        let counters = &self.db.counters;
        retrying!(&self.db, "operation", |c, _tries| {
            let stmt = c.prepare_cached(&sql).await?;
            let rows = c.query(&stmt, &[&token, &lease_ms, &(limit as i64)]).await?;
            if !rows.is_empty() {
                counters.wrote();
                counters.committed();
            }
            Ok(rows.iter().map(job_from_row).collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn renew_leases(&self, leases: Vec<Lease>) -> Result<usize, StoreError> {
        let ids: Vec<i64> = leases.iter().map(|l| l.job).collect();
        let tokens: Vec<Uuid> = leases.iter().map(|l| l.token).collect();
        let lease_ms = millis_f64(self.db.lease);
        let counters = &self.db.counters;
        retrying!(&self.db, "operation", |c, _tries| {
            let n = c
                .execute(
                    "UPDATE jobs SET lease_until = now() + $3::float8 * interval '1 millisecond' \
                     FROM unnest($1::int8[], $2::uuid[]) AS l(id, token) \
                     WHERE jobs.id = l.id AND jobs.lease_owner = l.token",
                    &[&ids, &tokens, &lease_ms],
                )
                .await?;
            counters.wrote();
            counters.committed();
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }

    async fn finish_job(&self, lease: Lease) -> Result<(), StoreError> {
        let counters = &self.db.counters;
        retrying!(&self.db, "operation", |c, tries| {
            finish_leased(c, lease, tries).await?;
            counters.wrote();
            counters.committed();
            Ok(())
        })
    }

    async fn retry_job(&self, lease: Lease, delay: Duration, error: &str) -> Result<(), StoreError> {
        let delay_ms = millis_f64(delay);
        self.leased_write(
            "UPDATE jobs SET run_at = now() + $3::float8 * interval '1 millisecond', lease_owner = NULL, \
             lease_until = NULL, last_error = $4 WHERE id = $1 AND lease_owner = $2",
            lease,
            &[&delay_ms, &error],
        )
        .await
    }

    async fn bury_job(&self, lease: Lease, error: &str) -> Result<(), StoreError> {
        self.leased_write(
            "UPDATE jobs SET dead = true, lease_owner = NULL, lease_until = NULL, last_error = $3 \
             WHERE id = $1 AND lease_owner = $2",
            lease,
            &[&error],
        )
        .await
    }

    async fn next_job_in(&self) -> Result<Option<Duration>, StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            let stmt = c
                .prepare_cached(
                    "SELECT EXTRACT(EPOCH FROM min(GREATEST(run_at, COALESCE(lease_until, run_at))) - now())::float8 \
                     FROM jobs WHERE NOT dead",
                )
                .await?;
            let secs: Option<f64> = c.query_one(&stmt, &[]).await?.get(0);
            Ok(secs.map(|s| Duration::from_secs_f64(s.clamp(0.0, 86_400.0))))
        })
    }

    async fn job_backlog(&self) -> Result<Vec<(JobKind, i64)>, StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            let rows = c.query("SELECT kind, count(*) FROM jobs WHERE NOT dead GROUP BY kind", &[]).await?;
            Ok(rows.iter().filter_map(|r| JobKind::parse(r.get(0)).map(|k| (k, r.get::<_, i64>(1)))).collect())
        })
    }

    async fn heartbeat(&self, node: Uuid) -> Result<u32, StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            c.execute(
                "INSERT INTO nodes (id, started_at, last_seen) VALUES ($1, now(), now()) \
                 ON CONFLICT (id) DO UPDATE SET last_seen = now()",
                &[&node],
            )
            .await?;
            // Servers that stopped without saying so are forgotten after a day.
            let row = c
                .query_one(
                    "WITH gone AS (DELETE FROM nodes WHERE last_seen < now() - interval '1 day') \
                     SELECT count(*) FROM nodes WHERE last_seen > now() - interval '15 seconds'",
                    &[],
                )
                .await?;
            Ok(u32::try_from(row.get::<_, i64>(0)).unwrap_or(1).max(1))
        })
    }

    async fn leave(&self, node: Uuid) -> Result<(), StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            c.execute("DELETE FROM nodes WHERE id = $1", &[&node]).await?;
            Ok(())
        })
    }

    fn job_signal(&self) -> Option<Arc<Notify>> {
        self.signal.clone()
    }

    fn counters(&self) -> &WriteCounters {
        &self.db.counters
    }
}

/// A request on its way in, with its jobs, as statement parameters.
struct NewRequest<'a> {
    request: &'a AuthRequest,
    params: RequestParams<'a>,
    jobs: JobArrays,
    /// The claim token of the jobs inserted already leased.
    token: Uuid,
    lease_ms: f64,
}

impl<'a> NewRequest<'a> {
    fn new(request: &'a AuthRequest, jobs: &[NewJob], token: Uuid, lease: Duration) -> Self {
        Self {
            params: RequestParams::new(request),
            jobs: JobArrays::new(jobs),
            token,
            lease_ms: millis_f64(lease),
            request,
        }
    }

    /// Inserts the request and its jobs in one statement. When a unique key
    /// is taken, finds out by whom: our own earlier attempt (whose answer was
    /// lost with its connection) or a request with the same external_id.
    async fn insert(&self, c: &impl GenericClient) -> Result<Inserted, Fail> {
        let r = self.request;
        let j = &self.jobs;
        if j.kinds.is_empty() {
            let stmt = c.prepare_cached(INSERT_REQUEST_ALONE).await?;
            if c.execute(&stmt, &self.params.all()).await? == 1 {
                return Ok(Inserted::Created { claimed: Vec::new(), budget_use: Vec::new() });
            }
        } else {
            let stmt = c.prepare_cached(INSERT_REQUEST).await?;
            let mut params = self.params.all().to_vec();
            params.extend_from_slice(&[&j.kinds, &j.payloads, &j.delays, &j.claims, &self.token, &self.lease_ms]);
            let rows = c.query(&stmt, &params).await?;
            if rows.first().is_some_and(|row| row.get::<_, i64>(0) == 1) {
                let claimed = rows.iter().filter(|row| row.get::<_, Option<i64>>(1).is_some());
                return Ok(Inserted::Created {
                    claimed: claimed.map(|row| job_from_row_at(row, 1)).collect::<Result<_, _>>()?,
                    budget_use: Vec::new(),
                });
            }
        }
        let stmt = c.prepare_cached(SELECT_REQUEST).await?;
        if c.query_opt(&stmt, &[&r.id]).await?.is_some() {
            let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE request_id = $1 AND lease_owner = $2");
            let rows = c.query(&sql, &[&r.id, &self.token]).await?;
            let claimed = rows.iter().map(job_from_row).collect::<Result<_, _>>()?;
            return Ok(Inserted::Created { claimed, budget_use: Vec::new() });
        }
        match self.same_external_id(c).await? {
            Some(existing) => Ok(existing),
            None => Err(Fail::Retry("the conflicting request disappeared; trying again".into())),
        }
    }

    /// The tenant's request with the same external_id, if there is one.
    async fn same_external_id(&self, c: &impl GenericClient) -> Result<Option<Inserted>, Fail> {
        let Some(ext) = &self.request.external_id else { return Ok(None) };
        Ok(by_external_id(c, self.request.tenant_id, ext).await?.map(|r| Inserted::Existing(Box::new(r))))
    }
}

/// The tenant's request with this external_id, if there is one.
async fn by_external_id(c: &impl GenericClient, tenant: Uuid, external_id: &str) -> Result<Option<AuthRequest>, Fail> {
    let stmt = c.prepare_cached(SELECT_BY_EXTERNAL_ID).await?;
    Ok(c.query_opt(&stmt, &[&tenant, &external_id]).await?.as_ref().map(request_from_row).transpose()?)
}

impl PgStore {
    /// A write of job `lease.job` that only its lease holder may make.
    async fn leased_write(
        &self,
        sql: &str,
        lease: Lease,
        extra: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<(), StoreError> {
        let counters = &self.db.counters;
        retrying!(&self.db, "operation", |c, tries| {
            let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&lease.job, &lease.token];
            params.extend_from_slice(extra);
            let stmt = c.prepare_cached(sql).await?;
            let n = c.execute(&stmt, &params).await?;
            // On a retry, "not ours" may be our own earlier write having landed.
            if n == 0 && tries == 1 {
                return Err(Fail::Stop(StoreError::LeaseLost));
            }
            counters.wrote();
            counters.committed();
            Ok(())
        })
    }
}

/// Deletes a finished job if the lease is still ours. On a retry a missing
/// row is our own earlier delete; a row leased to someone else is not.
async fn finish_leased(c: &Object, lease: Lease, tries: u32) -> Result<(), Fail> {
    let stmt = c.prepare_cached(DELETE_LEASED_JOB).await?;
    if c.execute(&stmt, &[&lease.job, &lease.token]).await? == 1 {
        return Ok(());
    }
    if tries > 1 && c.query_opt("SELECT 1 FROM jobs WHERE id = $1", &[&lease.job]).await?.is_none() {
        return Ok(());
    }
    Err(Fail::Stop(StoreError::LeaseLost))
}
