//! The SQLite backend's tenants, their keys and policies.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::pool::db_err;
use super::rows;
use super::{SqliteStore, is_unique_violation};
use crate::domain::audit::Record;
use crate::domain::tenant::{Tenant, TenantPolicy};
use crate::store::{StoreError, TenantStore};

/// Stores a new tenant.
pub(super) fn insert_tenant(c: &Connection, tenant: &Tenant) -> rusqlite::Result<usize> {
    let sql = concat!("INSERT INTO tenants (", tenant_columns!(), ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    c.execute(sql, rusqlite::params_from_iter(rows::tenant_params(tenant).iter()))
}

#[async_trait]
impl TenantStore for SqliteStore {
    async fn create_tenant_recorded(&self, tenant: Tenant, audit: Vec<Record>) -> Result<(), StoreError> {
        self.pool
            .write(move |c| match insert_tenant(c, &tenant) {
                Ok(_) => super::audit::insert_records(c, &audit),
                Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict("a tenant with this name exists")),
                Err(e) => Err(db_err(e)),
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

    async fn update_tenant_credentials_recorded(&self, tenant: Tenant, audit: Vec<Record>) -> Result<bool, StoreError> {
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
                if n == 1 {
                    super::audit::insert_records(c, &audit)?;
                }
                Ok(n == 1)
            })
            .await
    }

    async fn set_tenant_policy_recorded(
        &self,
        name: &str,
        policy: &TenantPolicy,
        audit: Vec<Record>,
    ) -> Result<bool, StoreError> {
        let (name, policy) = (name.to_owned(), policy.to_json());
        self.pool
            .write(move |c| {
                let n = c
                    .execute("UPDATE tenants SET policy = ?2 WHERE name = ?1", params![name, policy])
                    .map_err(db_err)?;
                if n == 1 {
                    super::audit::insert_records(c, &audit)?;
                }
                Ok(n == 1)
            })
            .await
    }

    async fn tenant_by_key_id(&self, key_id: &str) -> Result<Option<Tenant>, StoreError> {
        self.pool.read_here(|c| {
            let sql = concat!("SELECT ", tenant_columns!(), " FROM tenants WHERE key_id = ?1");
            let mut stmt = c.prepare_cached(sql).map_err(db_err)?;
            stmt.query_row([key_id], rows::tenant_from_row).optional().map_err(db_err)
        })
    }

    async fn tenant(&self, id: Uuid) -> Result<Option<Tenant>, StoreError> {
        self.pool.read_here(|c| {
            let sql = concat!("SELECT ", tenant_columns!(), " FROM tenants WHERE id = ?1");
            let mut stmt = c.prepare_cached(sql).map_err(db_err)?;
            stmt.query_row([id.as_bytes()], rows::tenant_from_row).optional().map_err(db_err)
        })
    }
}
