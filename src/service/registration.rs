//! Registering an auth request: the destination and budget checks, the insert with its limits, idempotent replays.

use std::sync::Arc;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::{Service, ServiceError};
use crate::domain::code::{Code, CodeKeys};
use crate::domain::phone::Region;
use crate::domain::registration::Registration;
use crate::domain::request::{AuthRequest, Sealed};
use crate::domain::status::{Channel, Mode};
use crate::domain::tenant::Tenant;
use crate::metrics::KindLabel;
use crate::store::{Inserted, JobKind, LimitScope, Limits, NewJob, StoreError};

/// What a registration produced: the request, its code, and whether it is new.
pub struct Registered {
    pub request: Arc<AuthRequest>,
    pub code: Code,
    pub created: bool,
}

impl Service {
    /// Stores a new auth request (and, for outbound, the job that places its
    /// call, leased to this process so it runs here at once), or returns the
    /// existing one for a repeated `external_id`.
    pub async fn register(&self, tenant: &Tenant, reg: Registration) -> Result<Registered, ServiceError> {
        let inbound_number = self.inbound_number_of(tenant);
        if reg.mode == Mode::Inbound && inbound_number.is_none() {
            return Err(ServiceError::Invalid {
                field: "mode",
                message: "inbound mode needs a number to call: this tenant has none of its own \
                          (ivr-auth tenant set --inbound-number) and IVR_AUTH_INBOUND_NUMBER is unset"
                    .into(),
            });
        }
        if reg.mode == Mode::Outbound && !self.outbound_enabled {
            return Err(ServiceError::Invalid {
                field: "mode",
                message: "outbound mode is not enabled on this server (IVR_AUTH_CALLER_ID is unset)".into(),
            });
        }
        let now = self.now();
        if reg.mode == Mode::Outbound {
            self.check_destination(tenant, &reg)?;
            self.budgets.check(&self.metrics, tenant, now)?;
        }
        let (mut request, code) = self.new_request(tenant, &reg, now);
        let id = request.id;
        if reg.mode == Mode::Inbound {
            request.inbound_number = inbound_number;
        }
        let first = match (reg.mode, reg.channel) {
            (Mode::Inbound, _) => None,
            (Mode::Outbound, Channel::Sms) => Some(JobKind::SendSms),
            (Mode::Outbound, _) => Some(JobKind::PlaceCall),
        };
        let jobs: Vec<NewJob> =
            first.map(|kind| NewJob { claim: true, ..NewJob::now(kind, id, String::new()) }).into_iter().collect();
        let budgets = if reg.mode == Mode::Outbound { self.budgets.of(tenant) } else { Vec::new() };
        let limits = Limits { number: self.number_limit, budgets };
        // Shared with the store's write and the job that places the call, not copied.
        let request = Arc::new(request);
        match self.store.insert_request(request.clone(), jobs, limits).await? {
            Inserted::Created { claimed, budget_use } => {
                self.metrics.registered.get_or_create(&KindLabel { kind: reg.mode.as_str() }).inc();
                if reg.mode == Mode::Outbound {
                    self.budgets.placed(&self.metrics, tenant, &budget_use, now);
                }
                for job in claimed {
                    // The runner lives as long as the server; if it is gone, the lease runs out and another takes it.
                    let _ = self.claimed_jobs.send((job, request.clone()));
                }
                tracing::info!(request_id = %id, mode = %reg.mode, phone = %reg.phone_number, "auth request registered");
                Ok(Registered { request, code, created: true })
            }
            Inserted::Existing(existing) => self.replay(*existing, reg),
            Inserted::Limited { retry_after, scope: LimitScope::Budget(budget) } => {
                Err(self.budgets.spent(&self.metrics, tenant, budget, retry_after, now).into())
            }
            Inserted::Limited { retry_after, scope } => {
                tracing::warn!(phone = %reg.phone_number, ?scope, "phone number rate limit hit");
                self.metrics.refusals.count(Some(tenant.id), "number_limit");
                Err(number_limited(retry_after, scope))
            }
        }
    }

    /// A new request for `reg` made at `now`, with its code: the site's, or
    /// one generated from a fresh salt under the current key.
    fn new_request(
        &self,
        tenant: &Tenant,
        reg: &Registration,
        now: chrono::DateTime<chrono::Utc>,
    ) -> (AuthRequest, Code) {
        let id = Uuid::now_v7();
        let (key_id, keys) = self.keys.current();
        let (code, salt) = match &reg.code {
            Some(code) => (code.clone(), None),
            None => {
                let salt = CodeKeys::new_salt();
                (keys.generated_code(&salt, reg.code_length), Some(salt.to_vec()))
            }
        };
        let sealed = Sealed {
            key_id: Some(key_id.to_owned()),
            code_hash: keys.hash(id.as_bytes(), code.expose()).to_vec(),
            code_salt: salt,
            fingerprint: keys.fingerprint(&reg.canonical()).to_vec(),
        };
        (AuthRequest::new(id, tenant.id, reg, sealed, now), code)
    }

    /// The stored request that `reg` repeats (same tenant and `external_id`),
    /// answered as `register` would answer it, if there is one.
    pub async fn replay_of(&self, tenant: &Tenant, reg: &Registration) -> Result<Option<Registered>, ServiceError> {
        let Some(external_id) = &reg.external_id else { return Ok(None) };
        let Some(existing) = self.store.request_by_external_id(tenant.id, external_id).await? else { return Ok(None) };
        self.replay(existing, reg.clone()).map(Some)
    }

    /// A repeated `external_id`: the same body gets the stored request back
    /// (with its code, so the site can show it again); another body is a conflict.
    fn replay(&self, existing: AuthRequest, reg: Registration) -> Result<Registered, ServiceError> {
        // Both the fingerprint and the code are the key's that made the request.
        let Some(keys) = self.keys.for_request(existing.key_id.as_deref()) else {
            return Err(ServiceError::Conflict {
                code: "external_id_conflict",
                message: "external_id: used for a request made with a secret key this server no longer has".into(),
            });
        };
        let same: bool = existing.fingerprint.ct_eq(&keys.fingerprint(&reg.canonical())).into();
        if !same {
            return Err(ServiceError::Conflict {
                code: "external_id_conflict",
                message: "external_id: already used for a request with a different body".into(),
            });
        }
        // The code registered, not a fallback's: the site may show this one.
        let Some(code) = existing.generated_code(keys).or(reg.code) else {
            return Err(StoreError::Corrupt("stored request has neither salt nor code".into()).into());
        };
        Ok(Registered { request: Arc::new(existing), code, created: false })
    }

    /// Refuses a call the tenant may not have placed: a line nobody answers
    /// at an ordinary rate, or a country outside the tenant's allowed ones
    /// (the server's default region unless the operator set others).
    fn check_destination(&self, tenant: &Tenant, reg: &Registration) -> Result<(), ServiceError> {
        let mut allowed: Vec<Region> =
            tenant.policy.allowed_countries.iter().filter_map(|c| Region::parse(c)).collect();
        if allowed.is_empty() {
            allowed.push(self.default_region);
        }
        let refusal = match reg.line.or_else(|| reg.phone_number.line()) {
            Some(line) => line.refusal(&allowed),
            None => Some("is a number whose kind of line is unknown, which is never called".into()),
        };
        match refusal {
            Some(message) => {
                self.metrics.refused(tenant.id, &tenant.name, "destination");
                Err(ServiceError::Invalid { field: "phone_number", message })
            }
            None => Ok(()),
        }
    }
}

/// The 429 for a per-number limit: which one, and where it is set.
fn number_limited(retry_after: std::time::Duration, scope: LimitScope) -> ServiceError {
    let message = match scope {
        LimitScope::Tenant => {
            "phone_number: too many registrations of this number by this API key in 10 minutes \
             (the per-number limit, IVR_AUTH_PHONE_RATE_LIMIT); try again later"
        }
        LimitScope::Server | LimitScope::Budget(_) => {
            "phone_number: too many registrations of this number on this server in 10 minutes \
             (the server-wide ceiling per number, IVR_AUTH_PHONE_RATE_LIMIT_SERVER); try again later"
        }
    };
    ServiceError::RateLimited { retry_after, message: message.into() }
}
