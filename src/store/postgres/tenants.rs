//! The PostgreSQL backend's tenants, their keys and policies.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::PgStore;
use super::audit::{ADD_EVENTS, EventArrays};
use super::reads;
use super::rows::{TenantParams, tenant_from_row};
use crate::domain::audit::Record;
use crate::domain::tenant::{Tenant, TenantPolicy};
use crate::store::{StoreError, TenantStore};

#[async_trait]
impl TenantStore for PgStore {
    async fn create_tenant_recorded(&self, tenant: Tenant, audit: Vec<Record>) -> Result<(), StoreError> {
        const SQL: &str =
            concat!("INSERT INTO tenants (", tenant_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)");
        let p = TenantParams::new(&tenant);
        let events = EventArrays::new(&audit);
        let result = retrying!(&self.db, "operation", |c, tries| {
            let inserted = {
                let tx = c.transaction().await?;
                match tx.execute(SQL, &p.all(&tenant)).await {
                    Ok(_) => {
                        if !events.is_empty() {
                            tx.execute(ADD_EVENTS, &events.params()).await?;
                        }
                        tx.commit().await
                    }
                    Err(e) => Err(e), // the transaction rolls back when dropped
                }
            };
            match inserted {
                Ok(()) => Ok(()),
                // Our own earlier attempt (and its events) may have committed before its connection was lost.
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

    async fn update_tenant_credentials_recorded(&self, tenant: Tenant, audit: Vec<Record>) -> Result<bool, StoreError> {
        let p = TenantParams::new(&tenant);
        let events = EventArrays::new(&audit);
        retrying!(&self.db, "operation", |c, _tries| {
            let all = p.all(&tenant);
            let tx = c.transaction().await?;
            let n = tx
                .execute(
                    "UPDATE tenants SET key_id = $3, key_hash = $4, callback_secret = $5, \
                     previous_callback_secret = $6, previous_until = $7 WHERE name = $2 AND id = $1",
                    &all[..7],
                )
                .await?;
            if n == 1 && !events.is_empty() {
                tx.execute(ADD_EVENTS, &events.params()).await?;
            }
            tx.commit().await?;
            Ok(n == 1)
        })
    }

    async fn set_tenant_policy_recorded(
        &self,
        name: &str,
        policy: &TenantPolicy,
        audit: Vec<Record>,
    ) -> Result<bool, StoreError> {
        let policy = policy.to_json();
        let events = EventArrays::new(&audit);
        retrying!(&self.db, "operation", |c, _tries| {
            let tx = c.transaction().await?;
            let changed = tx.execute("UPDATE tenants SET policy = $2 WHERE name = $1", &[&name, &policy]).await? == 1;
            if changed && !events.is_empty() {
                tx.execute(ADD_EVENTS, &events.params()).await?;
            }
            tx.commit().await?;
            Ok(changed)
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
}
