//! What the server keeps about tenants (the sites that use it).

use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::audit::Record;
use crate::domain::tenant::{Tenant, TenantPolicy};
use crate::store::StoreError;

/// Tenants, their keys and their policies. Each change is written with the
/// audit events that tell of it (`domain::audit`) in one commit, the events
/// only if the change was made; the plain forms write none (seeding, tests).
#[async_trait]
pub trait TenantStore: Send + Sync + 'static {
    /// Adds a tenant; `Conflict` if the name is taken.
    async fn create_tenant_recorded(&self, tenant: Tenant, audit: Vec<Record>) -> Result<(), StoreError>;
    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError>;
    /// Replaces the key and callback secret of the tenant named `tenant.name`.
    async fn update_tenant_credentials_recorded(&self, tenant: Tenant, audit: Vec<Record>) -> Result<bool, StoreError>;
    /// Replaces the policy of the tenant named `name`; `false` if there is none.
    async fn set_tenant_policy_recorded(
        &self,
        name: &str,
        policy: &TenantPolicy,
        audit: Vec<Record>,
    ) -> Result<bool, StoreError>;
    async fn tenant_by_key_id(&self, key_id: &str) -> Result<Option<Tenant>, StoreError>;
    async fn tenant(&self, id: Uuid) -> Result<Option<Tenant>, StoreError>;

    async fn create_tenant(&self, tenant: Tenant) -> Result<(), StoreError> {
        self.create_tenant_recorded(tenant, Vec::new()).await
    }

    async fn update_tenant_credentials(&self, tenant: Tenant) -> Result<bool, StoreError> {
        self.update_tenant_credentials_recorded(tenant, Vec::new()).await
    }

    async fn set_tenant_policy(&self, name: &str, policy: &TenantPolicy) -> Result<bool, StoreError> {
        self.set_tenant_policy_recorded(name, policy, Vec::new()).await
    }
}
