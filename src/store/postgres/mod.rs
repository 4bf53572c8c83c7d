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
mod audit;
mod batch;
mod cluster;
mod connect;
mod jobs;
mod limited;
mod listen;
mod lookup;
mod queue;
mod reads;
mod requests;
mod rows;
mod stats;
mod tenants;
mod usage;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::AbortHandle;

use crate::domain::request::AuthRequest;
use crate::store::{NewJob, OpenOptions, Role, StoreError, WriteCounters};
use connect::{naming_server, target};
use retry::{Fail, db};
use rows::RequestParams;

/// Ordered migrations; the index + 1 is the schema version.
const MIGRATIONS: [&str; 13] = [
    include_str!("../../../migrations/postgres/0001_initial.sql"),
    include_str!("../../../migrations/postgres/0002_tenant_policy.sql"),
    include_str!("../../../migrations/postgres/0003_call_budgets.sql"),
    include_str!("../../../migrations/postgres/0004_key_ids.sql"),
    include_str!("../../../migrations/postgres/0005_delivery.sql"),
    include_str!("../../../migrations/postgres/0006_replays_and_call_counts.sql"),
    include_str!("../../../migrations/postgres/0007_call_pacing.sql"),
    include_str!("../../../migrations/postgres/0008_audit.sql"),
    include_str!("../../../migrations/postgres/0009_usage.sql"),
    include_str!("../../../migrations/postgres/0010_timeline.sql"),
    include_str!("../../../migrations/postgres/0011_quiet_updates.sql"),
    include_str!("../../../migrations/postgres/0012_audit_index_ascending.sql"),
    include_str!("../../../migrations/postgres/0013_inbound_call_sid.sql"),
];

/// PostgreSQL-backed store.
pub struct PgStore {
    db: Arc<Db>,
    /// The group-commit writers' queues (`batch`).
    writes: batch::Writers,
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

/// The statements that find requests by a key, each with what it does and the
/// column its key starts with, for the test that checks that PostgreSQL's
/// generic plan of each, made on a new database, looks its keys up in an
/// index (`store::keyed_lookups_use_an_index_on_a_new_database`).
#[doc(hidden)]
pub fn keyed_lookups() -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("a request by id", SELECT_REQUEST.into(), "id"),
        ("requests by id, batched", reads::REQUESTS.into(), "id"),
        ("a batch's requests, locked", batch::LOCK_REQUESTS.into(), "id"),
        ("a request by external id", SELECT_BY_EXTERNAL_ID.into(), "tenant_id"),
        ("a batch's external ids", limited::SAME_EXTERNAL_IDS.into(), "tenant_id"),
        ("a batch's stored ids", limited::STORED.into(), "id"),
        ("a batch's numbers' newest", limited::NEWEST.into(), "phone_number"),
        ("a tenant's nth newest outbound", numbered(crate::store::limits::OUTBOUND_NTH_NEWEST), "tenant_id"),
        ("an inbound request by call sid", requests::BY_INBOUND_CALL_SID.into(), "inbound_call_sid"),
        ("a batch's changes", batch::WRITE_CHANGES.to_string(), "id"),
    ]
}

/// The statement a node seals or purges the audit log under (for a test).
#[doc(hidden)]
pub use audit::LOCK as AUDIT_SEALER_LOCK;

/// The options every session of ours starts with (`-c name=value …`).
#[doc(hidden)]
pub use connect::SESSION_OPTIONS;

const JOB_COLUMNS: &str = "id, kind, request_id, payload, attempts - 1, created_at, lease_owner";

/// A statement shared with SQLite (`?N` parameters) in PostgreSQL's numbering (`$N`).
fn numbered(sql: &str) -> String {
    sql.replace('?', "$")
}

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
        let schema = db.migrate().await.map_err(|e| naming_server(&target.config, e))?;
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
        self.writes.send(op(reply))?;
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
