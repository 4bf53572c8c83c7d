//! Tenants as the service sees them: found by API key, their voice settings, their numbers, cached for webhooks.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::{Service, ServiceError};
use crate::domain::phone::{Attestation, PhoneNumber};
use crate::domain::tenant::{PresentedKey, Tenant};
use crate::store::StoreError;

/// Tenants as read a moment ago: a call's webhooks need its tenant's words
/// each time, and a change made on any node is seen within `TENANT_TTL`.
#[derive(Default)]
pub struct TenantCache(std::sync::Mutex<std::collections::HashMap<Uuid, (std::time::Instant, Arc<Tenant>)>>);

/// How long a cached tenant is used before it is read again.
const TENANT_TTL: Duration = Duration::from_secs(5);

impl Service {
    /// The tenant whose API key this is, checked in constant time.
    pub async fn tenant_for_key(&self, token: &str) -> Result<Option<Tenant>, ServiceError> {
        let Some(key) = PresentedKey::parse(token) else { return Ok(None) };
        // The key id is public (it only finds the row); the secret half decides.
        let tenant = self.store.tenant_by_key_id(key.key_id).await?;
        Ok(tenant.filter(|t| key.matches(t)))
    }

    /// Replaces `tenant`'s voice settings (checked by the caller). This node
    /// uses them at once; the others within `TENANT_TTL`.
    pub async fn set_voice(
        &self,
        tenant: &Tenant,
        voice: crate::domain::tenant::TenantVoice,
    ) -> Result<(), ServiceError> {
        let mut policy = tenant.policy.clone();
        policy.voice = voice;
        let data = serde_json::json!({ "changed": ["voice"], "by": "api" });
        let event = self.tenant_event(crate::domain::audit::Kind::SettingsChanged, tenant, data);
        if !self.store.set_tenant_policy_recorded(&tenant.name, &policy, vec![event]).await? {
            return Err(ServiceError::NotFound("the tenant was removed"));
        }
        self.tenant_cache.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&tenant.id);
        Ok(())
    }

    /// The tenant named `name`, created with `voice` if there is none; one
    /// without voice settings gets `voice`. Servers starting together agree
    /// on one tenant.
    pub async fn tenant_with_voice(
        &self,
        name: &str,
        voice: crate::domain::tenant::TenantVoice,
    ) -> Result<Tenant, StoreError> {
        let named =
            || async { Ok::<_, StoreError>(self.store.list_tenants().await?.into_iter().find(|t| t.name == name)) };
        if let Some(mut t) = named().await? {
            if t.policy.voice.is_empty() {
                t.policy.voice = voice;
                self.store.set_tenant_policy(&t.name, &t.policy).await?;
            }
            return Ok(t);
        }
        let (mut tenant, _key) = Tenant::create(name.into(), self.now());
        tenant.policy.voice = voice;
        let data = serde_json::json!({ "name": tenant.name, "by": "server" });
        let event = self.tenant_event(crate::domain::audit::Kind::TenantCreated, &tenant, data);
        match self.store.create_tenant_recorded(tenant.clone(), vec![event]).await {
            Ok(()) => Ok(tenant),
            // Another server created it at the same moment: use theirs.
            Err(StoreError::Conflict(_)) => {
                named().await?.ok_or(StoreError::Conflict("the tenant could not be created"))
            }
            Err(e) => Err(e),
        }
    }

    /// Every tenant, for the operator's console.
    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.store.list_tenants().await
    }

    /// Tenant `id` as stored now (a console session checks its key is still this tenant's).
    pub async fn tenant(&self, id: Uuid) -> Result<Option<Tenant>, StoreError> {
        self.store.tenant(id).await
    }

    /// The least STIR/SHAKEN attestation the tenant of `tenant_id` requires of
    /// its inbound calls, if it requires one.
    pub async fn required_attestation(&self, tenant_id: Uuid) -> Result<Option<Attestation>, StoreError> {
        let tenant = self.store.tenant(tenant_id).await?;
        Ok(tenant.and_then(|t| t.policy.min_attestation.as_deref().and_then(Attestation::parse)))
    }

    /// The number `tenant`'s users call in inbound mode: its own, or the server's.
    pub fn inbound_number_of(&self, tenant: &Tenant) -> Option<PhoneNumber> {
        tenant.policy.inbound_number.clone().map(PhoneNumber::from_stored).or_else(|| self.inbound_number.clone())
    }

    /// Tenant `id`, read at most `TENANT_TTL` ago; `None` when it cannot be
    /// read (the call goes on with the server's own words).
    pub async fn tenant_cached(&self, id: Uuid) -> Option<Arc<Tenant>> {
        let lock = || self.tenant_cache.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, t)) = lock().get(&id)
            && at.elapsed() < TENANT_TTL
        {
            return Some(t.clone());
        }
        match self.store.tenant(id).await {
            Ok(Some(t)) => {
                let t = Arc::new(t);
                let mut cache = lock();
                if cache.len() > 10_000 {
                    cache.clear();
                }
                cache.insert(id, (std::time::Instant::now(), t.clone()));
                Some(t)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "reading a tenant's voice settings failed; the server's are used");
                None
            }
        }
    }
}
