//! The application service: registrations, reads and events become committed transitions and jobs.
//!
//! Edges (site API, webhooks, jobs) call in here; the rules themselves live in
//! `domain::request`, and everything is written through the `Store`. Errors
//! are the service's own (`ServiceError`); each edge turns them into its answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

use crate::budgets::CallBudgets;
use crate::clock::Clock;
use crate::domain::code::{Code, CodeKeys, KeyRing};
use crate::domain::phone::{Attestation, PhoneNumber, Region};
use crate::domain::registration::Registration;
use crate::domain::request::{AuthRequest, Effect, Event, Sealed, Transition};
use crate::domain::status::{Channel, Mode, Status};
use crate::domain::tenant::{PresentedKey, Tenant};
use crate::domain::view::RequestView;
use crate::metrics::{KindLabel, Metrics};
use crate::store::{
    Applied, Inserted, Job, JobKind, Lease, LimitScope, Limits, NewJob, NumberLimit, Store, StoreError, Update,
};

/// Why a service call did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A field breaks a rule of this server's configuration.
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// No such request for this tenant.
    #[error("{0}")]
    NotFound(&'static str),
    /// The request conflicts with the current state.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A limit was reached; `message` names it.
    #[error("{message}")]
    RateLimited { retry_after: Duration, message: String },
    /// Storage failed (unavailable, or worse).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::budgets::Spent> for ServiceError {
    fn from(spent: crate::budgets::Spent) -> Self {
        Self::RateLimited { retry_after: spent.retry_after, message: spent.to_string() }
    }
}

/// What a registration produced: the request, its code, and whether it is new.
pub struct Registered {
    pub request: AuthRequest,
    pub code: Code,
    pub created: bool,
}

/// The service: turns the edges' facts into committed transitions and jobs,
/// over the store, the clock and the code keys.
pub struct Service {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub keys: KeyRing,
    pub inbound_number: Option<PhoneNumber>,
    pub outbound_enabled: bool,
    /// The region of national-format numbers, and the one country calls go to
    /// for tenants that allow no others.
    pub default_region: Region,
    pub call_end_grace: Duration,
    /// Registrations per phone number, counted in the store (so across servers).
    pub number_limit: Option<NumberLimit>,
    /// Outbound calls per tenant per minute and per day.
    pub budgets: CallBudgets,
    pub metrics: Arc<Metrics>,
    /// Wakes the job runner when new jobs are committed.
    pub jobs_wakeup: Notify,
    /// Jobs this process inserted already leased to itself, for its runner,
    /// with the request as it was inserted (so the runner need not read it back).
    pub claimed_jobs: mpsc::UnboundedSender<(Job, Box<AuthRequest>)>,
    /// Tenants read by webhooks (their voice settings), kept a few seconds.
    pub tenant_cache: TenantCache,
}

/// Tenants as read a moment ago: a call's webhooks need its tenant's words
/// each time, and a change made on any node is seen within `TENANT_TTL`.
#[derive(Default)]
pub struct TenantCache(std::sync::Mutex<std::collections::HashMap<Uuid, (std::time::Instant, Arc<Tenant>)>>);

/// How long a cached tenant is used before it is read again.
const TENANT_TTL: Duration = Duration::from_secs(5);

impl Service {
    /// Now, on the clock every rule reads.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The tenant whose API key this is, checked in constant time.
    pub async fn tenant_for_key(&self, token: &str) -> Result<Option<Tenant>, ServiceError> {
        let Some(key) = PresentedKey::parse(token) else { return Ok(None) };
        // The key id is public (it only finds the row); the secret half decides.
        let tenant = self.store.tenant_by_key_id(key.key_id).await?;
        Ok(tenant.filter(|t| key.matches(t)))
    }

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
        let mut request = AuthRequest::new(id, tenant.id, &reg, sealed, now);
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
        let _turn = match budgets.is_empty() {
            true => None,
            false => Some(self.budgets.turn(tenant.id).await),
        };
        let limits = Limits { number: self.number_limit, budgets };
        match self.store.insert_request(request.clone(), jobs, limits).await? {
            Inserted::Created { claimed, budget_use } => {
                self.metrics.registered.get_or_create(&KindLabel { kind: reg.mode.as_str() }).inc();
                if reg.mode == Mode::Outbound {
                    self.budgets.placed(&self.metrics, tenant, &budget_use, now);
                }
                for job in claimed {
                    // The runner lives as long as the server; if it is gone, the lease runs out and another takes it.
                    let _ = self.claimed_jobs.send((job, Box::new(request.clone())));
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
                Err(ServiceError::RateLimited { retry_after, message: message.into() })
            }
        }
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
        Ok(Registered { request: existing, code, created: false })
    }

    /// The tenant's request `id`; another tenant's request is "not found" too.
    pub async fn get(&self, tenant: &Tenant, id: Uuid) -> Result<AuthRequest, ServiceError> {
        match self.store.request(id).await? {
            Some(r) if r.tenant_id == tenant.id => Ok(r),
            _ => Err(ServiceError::NotFound("no auth request with this id")),
        }
    }

    /// Cancels the tenant's request; a conflict if it has already ended.
    pub async fn cancel(&self, tenant: &Tenant, id: Uuid) -> Result<AuthRequest, ServiceError> {
        let tenant_id = tenant.id;
        let applied = self.transition(id, move |r| (r.tenant_id == tenant_id).then_some(Event::Cancel)).await?;
        match applied {
            Some(Applied { before, after: Some(after) }) if before.tenant_id == tenant_id => {
                if after.status == Status::Canceled {
                    Ok(after)
                } else {
                    // It expired at this very moment: that is the result.
                    Err(ServiceError::Conflict {
                        code: "already_terminal",
                        message: format!("request is already {}", after.status),
                    })
                }
            }
            Some(Applied { before, after: None }) if before.tenant_id == tenant_id => Err(ServiceError::Conflict {
                code: "already_terminal",
                message: format!("request is already {}", before.status_at(self.now())),
            }),
            _ => Err(ServiceError::NotFound("no auth request with this id")),
        }
    }

    /// Checks the code the tenant's user typed on its page against request
    /// `id` (a `voice_otp` or `sms` request, or a voice request that fell
    /// back to SMS), with the same attempt limit and the same constant-time
    /// comparison of keyed hashes as a code typed on the phone.
    pub async fn check(&self, tenant: &Tenant, id: Uuid, entered: Code) -> Result<AuthRequest, ServiceError> {
        let tenant_id = tenant.id;
        let ring = self.keys.clone();
        let applied = self
            .transition(id, move |r| {
                (r.tenant_id == tenant_id)
                    .then(|| Event::CodeChecked { correct: r.is_expected_code(&ring, entered.expose()) })
            })
            .await?;
        let Some(Applied { before, after }) = applied.filter(|a| a.before.tenant_id == tenant_id) else {
            return Err(ServiceError::NotFound("no auth request with this id"));
        };
        if let Some(after) = after {
            return Ok(after);
        }
        let status = before.status_at(self.now());
        if status.is_terminal() {
            return Err(ServiceError::Conflict {
                code: "already_terminal",
                message: format!("request is already {status}"),
            });
        }
        Err(ServiceError::Conflict {
            code: "not_checked_here",
            message: format!(
                "this request's code is typed on the phone (channel {}), not checked with /check",
                before.delivery.channel
            ),
        })
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
        if !self.store.set_tenant_policy(&tenant.name, &policy).await? {
            return Err(ServiceError::NotFound("the tenant was removed"));
        }
        self.tenant_cache.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&tenant.id);
        Ok(())
    }

    /// Spends one-time token `token` of `kind` (a signed request, a sealed
    /// hold), usable until `until`: `true` the first time it is presented,
    /// `false` while it is remembered as used — by every server, across
    /// restarts. Only its digest is stored.
    pub async fn first_use(&self, kind: &str, token: &str, until: DateTime<Utc>) -> Result<bool, StoreError> {
        use sha2::Digest;
        let digest: [u8; 32] =
            sha2::Sha256::new().chain_update(kind).chain_update([0]).chain_update(token).finalize().into();
        self.store.first_use(digest, until, self.now()).await
    }

    /// Forgets the used tokens and call counts that can no longer decide anything.
    pub async fn forget_spent(&self) -> Result<usize, StoreError> {
        self.store.purge_memory(self.now()).await
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
        match self.store.create_tenant(tenant.clone()).await {
            Ok(()) => Ok(tenant),
            // Another server created it at the same moment: use theirs.
            Err(StoreError::Conflict(_)) => {
                named().await?.ok_or(StoreError::Conflict("the tenant could not be created"))
            }
            Err(e) => Err(e),
        }
    }

    /// Any tenant's request `id` (the simulator's development view; the site
    /// API reads through `get`, which keeps tenants apart).
    pub async fn request_of_any_tenant(&self, id: Uuid) -> Result<Option<AuthRequest>, StoreError> {
        self.store.request(id).await
    }

    /// Jobs waiting, by kind, and the store's `(writes, commits)` so far, for metrics.
    pub async fn store_figures(&self) -> (Option<Vec<(JobKind, i64)>>, (u64, u64)) {
        (self.store.job_backlog().await.ok(), self.store.counters().read())
    }

    /// Whether the database answers now.
    pub async fn ready(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }

    /// The requests a call from `caller` to `called` may be for: of each
    /// tenant waiting for this caller on this number, its newest pending
    /// inbound request (an older one of the same tenant is superseded).
    /// Requests of other numbers, and so of tenants with a number of their
    /// own, are never among them.
    pub async fn inbound_candidates(
        &self,
        caller: &PhoneNumber,
        called: &PhoneNumber,
    ) -> Result<Vec<AuthRequest>, StoreError> {
        let servers = self.inbound_number.as_ref() == Some(called);
        self.store.pending_inbound(caller, called, servers, self.now(), 50).await
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
                self.metrics.refused(&tenant.name, "destination");
                Err(ServiceError::Invalid { field: "phone_number", message })
            }
            None => Ok(()),
        }
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

    /// The request a provider call is bound to.
    pub async fn request_by_call_sid(&self, call_sid: &str) -> Result<Option<AuthRequest>, StoreError> {
        self.store.request_by_call_sid(call_sid).await
    }

    /// Applies the event that `event_for` picks for the current state of
    /// request `id` (it may pick none), writing the transition and its jobs
    /// atomically. `event_for` may run more than once (see `store::Decide`).
    pub async fn transition(
        &self,
        id: Uuid,
        event_for: impl Fn(&AuthRequest) -> Option<Event> + Send + Sync + 'static,
    ) -> Result<Option<Applied>, StoreError> {
        self.transition_finishing(id, event_for, None).await
    }

    /// `transition`, deleting the job of `finishing` in the same commit (a job's last step).
    pub async fn transition_finishing(
        &self,
        id: Uuid,
        event_for: impl Fn(&AuthRequest) -> Option<Event> + Send + Sync + 'static,
        finishing: Option<Lease>,
    ) -> Result<Option<Applied>, StoreError> {
        let now = self.now();
        let grace = self.call_end_grace;
        let inbound = self.inbound_number.clone();
        // Whether the decision that was written added jobs (it may run more than once).
        let added_jobs = Arc::new(AtomicBool::new(false));
        let added = added_jobs.clone();
        let decide = Arc::new(move |r: &AuthRequest| {
            let event = event_for(r)?;
            let t = r.apply(&event, now).ok()?;
            let jobs = jobs_for(&t, now, grace, inbound.as_ref());
            added.store(!jobs.is_empty(), Ordering::Relaxed);
            Some(Update { jobs, request: t.next })
        });
        let applied = self.store.update_request(id, decide, finishing).await?;
        if let Some(Applied { before, after: Some(after) }) = &applied {
            if after.status != before.status {
                self.metrics.transitions.get_or_create(&KindLabel { kind: after.status.as_str() }).inc();
                tracing::info!(
                    request_id = %after.id,
                    from = %before.status,
                    to = %after.status,
                    reason = after.failure_reason.map(|r| r.as_str()),
                    "auth request status changed"
                );
            }
            if added_jobs.load(Ordering::Relaxed) {
                self.jobs_wakeup.notify_one();
            }
        }
        Ok(applied)
    }

    /// Applies `event` to request `id` as it stands.
    pub async fn apply(&self, id: Uuid, event: Event) -> Result<Option<Applied>, StoreError> {
        self.transition(id, move |_| Some(event.clone())).await
    }
}

/// The jobs a transition's effects ask for.
fn jobs_for(t: &Transition, now: DateTime<Utc>, grace: Duration, inbound: Option<&PhoneNumber>) -> Vec<NewJob> {
    let id = t.next.id;
    t.effects
        .iter()
        .map(|effect| match effect {
            Effect::NotifySite => NewJob::now(
                JobKind::Callback,
                id,
                serde_json::to_string(&RequestView::at(&t.next, inbound, now)).unwrap_or_default(),
            ),
            Effect::EndCall { call_sid } => NewJob::now(JobKind::EndCall, id, call_sid.clone()),
            Effect::FinalizeCallLater => {
                NewJob { delay: grace, ..NewJob::now(JobKind::FinalizeCall, id, String::new()) }
            }
            Effect::SendSms => NewJob::now(JobKind::SendSms, id, String::new()),
        })
        .collect()
}
