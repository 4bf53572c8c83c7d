//! The application service: registrations, reads and events become committed transitions and jobs.
//!
//! Edges (site API, webhooks, jobs) call in here; the rules themselves live in
//! `domain::request`, and everything is written through the `Store`. Errors
//! are the service's own (`ServiceError`); each edge turns them into its answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

mod audit;
mod registration;
mod tenants;
mod usage;

pub use audit::AuditPage;
pub use registration::Registered;
pub use tenants::TenantCache;

use crate::budgets::CallBudgets;
use crate::clock::Clock;
use crate::domain::code::{Code, KeyRing};
use crate::domain::phone::{PhoneNumber, Region};
use crate::domain::request::{AuthRequest, Effect, Event, Transition};
use crate::domain::status::Status;
use crate::domain::tenant::Tenant;
use crate::domain::view::RequestView;
use crate::domain::{audit as audit_record, funnel, timeline, usage as usage_record};
use crate::metrics::{KindLabel, Metrics};
use crate::store::stats::RequestSearch;
use crate::store::{Applied, Job, JobKind, Lease, NewJob, NumberLimit, Store, StoreError, Update};

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
    /// Whether a change's audit events, funnel steps and timeline entry are
    /// written (`false` only to measure their cost).
    pub recording: bool,
    /// Registrations per phone number, counted in the store (so across servers).
    pub number_limit: Option<NumberLimit>,
    /// Outbound calls per tenant per minute and per day.
    pub budgets: CallBudgets,
    pub metrics: Arc<Metrics>,
    /// Wakes the job runner when new jobs are committed.
    pub jobs_wakeup: Notify,
    /// Jobs this process inserted already leased to itself, for its runner,
    /// with the request as it was inserted (so the runner need not read it back).
    pub claimed_jobs: mpsc::UnboundedSender<(Job, Arc<AuthRequest>)>,
    /// Tenants read by webhooks (their voice settings), kept a few seconds.
    pub tenant_cache: TenantCache,
    /// Some provider account caps its calls up at once: a call that ends gives its seat back.
    pub call_seats: bool,
}

impl Service {
    /// Now, on the clock every rule reads.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The tenant's request `id`; another tenant's request is "not found" too.
    pub async fn get(&self, tenant: &Tenant, id: Uuid) -> Result<AuthRequest, ServiceError> {
        match self.store.request(id).await? {
            Some(r) if r.tenant_id == tenant.id => Ok(r),
            _ => Err(ServiceError::NotFound("no auth request with this id")),
        }
    }

    /// The tenant's requests a search finds (the search names the tenant).
    pub async fn search_requests(&self, search: RequestSearch) -> Result<Vec<AuthRequest>, StoreError> {
        self.store.search_requests(search).await
    }

    /// The tenant's request and its timeline entries, oldest first.
    pub async fn timeline(
        &self,
        tenant: &Tenant,
        id: Uuid,
    ) -> Result<(AuthRequest, Vec<timeline::Entry>), ServiceError> {
        let r = self.get(tenant, id).await?;
        let entries = self.store.timeline(id).await?;
        Ok((r, entries))
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

    /// Spends one-time token `token` of `kind` (a signed request, a sealed
    /// hold), usable until `until`: `true` the first time it is presented,
    /// `false` while it is remembered as used — by every server, across
    /// restarts. Only its digest is stored.
    pub async fn first_use(&self, kind: &str, token: &str, until: DateTime<Utc>) -> Result<bool, StoreError> {
        self.store.first_use(token_digest(kind, token), until, self.now()).await
    }

    /// Whether token `token` of `kind` is remembered as spent (`first_use`).
    pub async fn spent(&self, kind: &str, token: &str) -> Result<bool, StoreError> {
        self.store.used(token_digest(kind, token), self.now()).await
    }

    /// Forgets the used tokens and call counts that can no longer decide anything.
    pub async fn forget_spent(&self) -> Result<usize, StoreError> {
        self.store.purge_memory(self.now()).await
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

    /// The inbound request a provider call is bound to.
    pub async fn inbound_request_by_call_sid(&self, call_sid: &str) -> Result<Option<AuthRequest>, StoreError> {
        self.store.inbound_request_by_call_sid(call_sid).await
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
        let recording = self.recording;
        // Whether the decision that was written added jobs (it may run more than once).
        let added_jobs = Arc::new(AtomicBool::new(false));
        let added = added_jobs.clone();
        let decide = Arc::new(move |r: &AuthRequest| {
            let event = event_for(r)?;
            let Ok(t) = r.apply(&event, now) else {
                // Nothing changes, but a call's duration may still be billable.
                let usage = usage_record::seconds_of_ended_call(r, &event, now);
                return (!usage.is_empty()).then(|| Update {
                    request: r.clone(),
                    jobs: Vec::new(),
                    audit: Vec::new(),
                    steps: Vec::new(),
                    usage,
                    timeline: vec![timeline::unchanged(r, &event, now)],
                });
            };
            let jobs = jobs_for(&t, now, grace, inbound.as_ref());
            added.store(!jobs.is_empty(), Ordering::Relaxed);
            let usage = usage_record::for_change(r, &event, &t.next, now);
            if !recording {
                let (audit, steps, timeline) = (Vec::new(), Vec::new(), Vec::new());
                return Some(Update { jobs, audit, steps, usage, timeline, request: t.next });
            }
            let audit = audit_record::for_change(r, &event, &t.next, now).into_iter().collect();
            let steps = funnel::steps(r, &event, &t.next, now);
            let timeline = vec![timeline::entry(r, &event, &t.next, &steps, now)];
            Some(Update { jobs, audit, steps, usage, timeline, request: t.next })
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
            if self.call_seats
                && after.call_is_over()
                && !before.call_is_over()
                && let Err(e) = self.store.free_call_seat(id).await
            {
                // Its lease frees it later (`domain::pacing::SEAT_LEASE`).
                tracing::warn!(request_id = %id, error = %e, "giving back the call's seat failed");
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

/// What the store keeps of a one-time token: its kind and the token, hashed.
fn token_digest(kind: &str, token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::new().chain_update(kind).chain_update([0]).chain_update(token).finalize().into()
}
