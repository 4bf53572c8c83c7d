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
                let schema = format!("ivrt_{}", uuid::Uuid::now_v7().simple());
                admin().await.batch_execute(&format!("CREATE SCHEMA {schema}")).await.unwrap();
                let base = admin_url();
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
                Self { backend, url, _dir: None, schema: Some(schema) }
            }
        }
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
