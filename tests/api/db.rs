//! One fresh database per test, on the backend the run asks for.
//!
//! `IVR_AUTH_TEST_BACKEND=sqlite` (the default) gives each test a SQLite file
//! in a temporary folder; `postgres` gives it a schema of its own in the
//! PostgreSQL database at `IVR_AUTH_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), dropped when the test ends.
//! Store contract tests ask for both backends themselves.

use std::sync::Arc;

use ivr_auth::config::parse_database_url;
use ivr_auth::store::{self, OpenOptions, Role, Store};

use crate::stale;

/// A storage backend under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend of this run (`IVR_AUTH_TEST_BACKEND`).
    pub fn of_run() -> Self {
        match std::env::var("IVR_AUTH_TEST_BACKEND").as_deref() {
            Ok("postgres") => Self::Postgres,
            Ok("sqlite") | Err(_) => Self::Sqlite,
            Ok(other) => panic!("IVR_AUTH_TEST_BACKEND={other}: expected sqlite or postgres"),
        }
    }

    pub const ALL: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];
}

pub fn admin_url() -> String {
    std::env::var("IVR_AUTH_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Schemas that runs before this one left behind (killed, timed out) are
/// dropped once per test process, before its first schema is made.
static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

async fn sweep(admin: &tokio_postgres::Client) {
    let rows = admin
        .query("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'ivrt\\_%'", &[])
        .await
        .unwrap_or_default();
    let now = std::time::SystemTime::now();
    for name in rows.iter().map(|r| r.get::<_, String>(0)).filter(|n| stale::is_stale(n, now)) {
        // Another sweeper may have got there first; a lock held means the schema is in use.
        let _ = admin.batch_execute("SET lock_timeout = '1s'").await;
        if admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).await.is_ok() {
            eprintln!("dropped the stale test schema {name}");
        }
    }
}

/// A database of one test, removed when dropped.
pub struct TestDb {
    pub backend: Backend,
    /// The `IVR_AUTH_DATABASE_URL` of this database.
    pub url: String,
    /// Keeps a SQLite file's folder until the test ends.
    _dir: Option<tempfile::TempDir>,
    schema: Option<String>,
}

async fn admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {} is not reachable ({e}); run `bash test.sh`", admin_url()));
    tokio::spawn(conn);
    client
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("ivr.db").display());
                Self { backend, url, _dir: Some(dir), schema: None }
            }
            Backend::Postgres => {
                let admin = admin().await;
                SWEPT.get_or_init(|| sweep(&admin)).await;
                let schema = stale::name_for_this_process();
                admin.batch_execute(&format!("CREATE SCHEMA {schema}")).await.unwrap();
                let base = admin_url();
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
                Self { backend, url, _dir: None, schema: Some(schema) }
            }
        }
    }

    /// A PostgreSQL database at `url` that the test set up itself and takes
    /// down itself (nothing is dropped here).
    pub fn external(url: String) -> Self {
        Self { backend: Backend::Postgres, url, _dir: None, schema: None }
    }

    /// The store on this database, as a CLI command would open it.
    pub async fn store(&self) -> Arc<dyn Store> {
        store::open(&parse_database_url(&self.url).unwrap(), OpenOptions::new(Role::Cli)).await.unwrap()
    }

    /// The store with other options (e.g. a short lease).
    pub async fn store_with(&self, options: OpenOptions) -> Arc<dyn Store> {
        store::open(&parse_database_url(&self.url).unwrap(), options).await.unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(schema) = self.schema.take() else { return };
        // Drop runs inside the test's runtime: do the async work on a thread of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let admin = admin().await;
                admin.batch_execute("SET lock_timeout = '10s'").await.ok();
                admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test schema: {dropped:?}");
        }
    }
}

async fn schema_exists(admin: &tokio_postgres::Client, name: &str) -> bool {
    let found = admin.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&name]).await.unwrap();
    !found.is_empty()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_test_drops_its_schema_and_a_run_drops_what_dead_runs_left() {
    let admin = admin().await;
    // A test that panics while its server runs: unwinding drops its schema.
    let made = std::thread::spawn(|| {
        let name = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let seen = name.clone();
        let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let db = Arc::new(TestDb::new(Backend::Postgres).await);
                *seen.lock().unwrap() = db.schema.clone().unwrap();
                let _app = crate::helpers::spawn_on(Default::default(), db).await;
                panic!("a test fails");
            })
        }));
        assert!(failed.is_err());
        name.lock().unwrap().clone()
    })
    .join()
    .unwrap();
    assert!(!schema_exists(&admin, &made).await, "{made} was dropped");
    // A run killed mid-test (no unwinding) leaves its schema; the next run drops it, not a live run's.
    let dead = stale::name_for_this_process().replacen(&format!("_{}_", std::process::id()), "_99999999_", 1);
    let live = stale::name_for_this_process();
    admin.batch_execute(&format!("CREATE SCHEMA {dead}; CREATE SCHEMA {live}")).await.unwrap();
    sweep(&admin).await;
    let (dead_left, live_left) = (schema_exists(&admin, &dead).await, schema_exists(&admin, &live).await);
    admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {live}")).await.unwrap();
    assert!(!dead_left, "{dead} is dropped");
    assert!(live_left, "{live} is kept");
}
