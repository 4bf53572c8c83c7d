//! The audit trail as the service keeps it: events that no request change
//! carries (tenants', the server's, refusals counted per minute), sealing,
//! listing, verifying and purging.

use super::Service;
use crate::domain::audit::{Kind, Record};
use crate::domain::tenant::Tenant;
use crate::store::{AuditQuery, StoreError, StoredEvent, Verdict};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// A page of a tenant's events, newest first.
pub struct AuditPage {
    pub events: Vec<StoredEvent>,
    /// The cursor of the next (older) page, if there may be one.
    pub next: Option<i64>,
}

/// Events sealed per round; more wait for the next round.
const SEAL_BATCH: usize = 5000;

impl Service {
    /// An event about `tenant` (created, key rotated, settings changed), to
    /// be written with the change (`TenantStore::…_recorded`).
    pub fn tenant_event(&self, kind: Kind, tenant: &Tenant, data: Value) -> Record {
        Record { kind, tenant_id: Some(tenant.id), request_id: None, at: self.now(), data }
    }

    /// Appends the server's start, with its settings (secrets masked by the caller).
    pub async fn audit_start(&self, settings: Value) -> Result<(), StoreError> {
        let data = json!({ "version": env!("CARGO_PKG_VERSION"), "settings": settings });
        let record = Record { kind: Kind::ServerStarted, tenant_id: None, request_id: None, at: self.now(), data };
        self.store.append_audit(vec![record]).await
    }

    /// Writes the refusals counted since `since` as one event per chain;
    /// answers how many events were written. Counts that could not be
    /// written are kept for the next flush.
    pub async fn flush_refusals(&self, since: DateTime<Utc>) -> Result<usize, StoreError> {
        let taken = self.metrics.refusals.take();
        if taken.is_empty() {
            return Ok(0);
        }
        let now = self.now();
        let records: Vec<Record> = taken
            .iter()
            .map(|(tenant, counts)| Record {
                kind: Kind::Refusals,
                tenant_id: *tenant,
                request_id: None,
                at: now,
                data: json!({ "since": since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), "counts": counts }),
            })
            .collect();
        let n = records.len();
        if let Err(e) = self.store.append_audit(records).await {
            self.metrics.refusals.put_back(taken);
            return Err(e);
        }
        Ok(n)
    }

    /// Links every event stored so far into its chain (one node at a time).
    pub async fn seal_audit(&self) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let n = self.store.seal_audit(SEAL_BATCH).await?;
            total += n;
            if n < SEAL_BATCH {
                return Ok(total);
            }
        }
    }

    /// A page of `tenant`'s events (the query's tenant is set here).
    pub async fn audit_page(&self, tenant: &Tenant, mut query: AuditQuery) -> Result<AuditPage, StoreError> {
        query.tenant = Some(tenant.id);
        query.oldest_first = false;
        let limit = query.limit;
        query.limit += 1;
        let mut events = self.store.audit_events(query).await?;
        let more = events.len() > limit;
        events.truncate(limit);
        let next = if more { events.last().map(|e| e.id) } else { None };
        Ok(AuditPage { events, next })
    }

    /// Seals what is stored, then checks every chain.
    pub async fn verify_audit(&self) -> Result<Verdict, StoreError> {
        self.seal_audit().await?;
        crate::store::audit::verify(&*self.store).await
    }

    /// Seals what is stored, then checks `tenant`'s chain.
    pub async fn verify_tenant_audit(&self, tenant: &Tenant) -> Result<Verdict, StoreError> {
        self.seal_audit().await?;
        crate::store::audit::verify_chain(&*self.store, &crate::domain::audit::chain_of(Some(tenant.id))).await
    }
}
