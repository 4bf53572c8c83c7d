//! Bulk loading for benchmark seeding: not part of the server's `Store` trait.

use super::DatabaseUrl;
use crate::domain::request::AuthRequest;
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{OpenOptions, Role, StoreError};

/// A database opened for bulk loading.
pub enum Seeder {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Seeder {
    /// Opens (creating or upgrading the schema of) the database at `url`.
    pub async fn open(url: &DatabaseUrl) -> Result<Self, StoreError> {
        let options = OpenOptions::new(Role::Cli);
        Ok(match url {
            DatabaseUrl::Sqlite(path) => Self::Sqlite(SqliteStore::open(path, options).await?),
            DatabaseUrl::Postgres(url) => Self::Postgres(PgStore::open(url, options).await?),
        })
    }

    /// Stores many requests at once, without jobs, in one commit.
    pub async fn insert_requests(&self, requests: Vec<AuthRequest>) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.insert_requests_bulk(requests).await,
            Self::Postgres(s) => s.insert_requests_bulk(requests).await,
        }
    }
}
