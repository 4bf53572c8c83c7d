//! What the server keeps about tenants (the sites that use it).

use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::tenant::{Tenant, TenantPolicy};
use crate::store::StoreError;

/// Tenants, their keys and their policies.
#[async_trait]
pub trait TenantStore: Send + Sync + 'static {
    /// Adds a tenant; `Conflict` if the name is taken.
    async fn create_tenant(&self, tenant: Tenant) -> Result<(), StoreError>;
    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError>;
    /// Replaces the key and callback secret of the tenant named `tenant.name`.
    async fn update_tenant_credentials(&self, tenant: Tenant) -> Result<bool, StoreError>;
    /// Replaces the policy of the tenant named `name`; `false` if there is none.
    async fn set_tenant_policy(&self, name: &str, policy: &TenantPolicy) -> Result<bool, StoreError>;
    async fn tenant_by_key_id(&self, key_id: &str) -> Result<Option<Tenant>, StoreError>;
    async fn tenant(&self, id: Uuid) -> Result<Option<Tenant>, StoreError>;
}
