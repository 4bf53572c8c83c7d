//! The application service: registrations, reads and events become committed transitions and jobs.
//!
//! Edges (site API, webhooks, jobs) call in here; the rules themselves live in
//! `domain::request`, and everything is written through the `Store`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::domain::code::{Code, CodeKeys};
use crate::domain::phone::PhoneNumber;
use crate::domain::registration::Registration;
use crate::domain::request::{AuthRequest, Effect, Event, Sealed, Transition};
use crate::domain::status::{Mode, Status};
use crate::domain::tenant::Tenant;
use crate::domain::view::RequestView;
use crate::error::AppError;
use crate::limits::Limiter;
use crate::metrics::{KindLabel, Metrics};
use crate::store::{Applied, Inserted, JobKind, NewJob, Store, StoreError, Update};

/// The clock, at the millisecond precision the store keeps.
pub fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// What a registration produced: the request, its code, and whether it is new.
pub struct Registered {
    pub request: AuthRequest,
    pub code: Code,
    pub created: bool,
}

/// Shared state of the running server's core.
pub struct Core {
    pub store: Arc<dyn Store>,
    pub keys: CodeKeys,
    pub inbound_number: Option<PhoneNumber>,
    pub outbound_enabled: bool,
    pub call_end_grace: Duration,
    pub phone_limiter: Limiter<String>,
    pub metrics: Arc<Metrics>,
    /// Wakes the job runner when new jobs are committed.
    pub jobs_wakeup: Notify,
}

impl Core {
    /// Stores a new auth request (and, for outbound, the job that places its
    /// call), or returns the existing one for a repeated `external_id`.
    pub async fn register(&self, tenant: &Tenant, reg: Registration) -> Result<Registered, AppError> {
        if reg.mode == Mode::Inbound && self.inbound_number.is_none() {
            return Err(AppError::invalid(
                "mode",
                "inbound mode is not enabled on this server (IVR_AUTH_INBOUND_NUMBER is unset)",
            ));
        }
        if reg.mode == Mode::Outbound && !self.outbound_enabled {
            return Err(AppError::invalid(
                "mode",
                "outbound mode is not enabled on this server (IVR_AUTH_CALLER_ID is unset)",
            ));
        }
        let now = now();
        let id = Uuid::now_v7();
        let (code, salt) = match &reg.code {
            Some(code) => (code.clone(), None),
            None => {
                let salt = CodeKeys::new_salt();
                (self.keys.generated_code(&salt, reg.code_length), Some(salt.to_vec()))
            }
        };
        let fingerprint = self.keys.fingerprint(&reg.canonical()).to_vec();
        let sealed = Sealed {
            code_hash: self.keys.hash(id.as_bytes(), code.expose()).to_vec(),
            code_salt: salt,
            fingerprint: fingerprint.clone(),
        };
        let request = AuthRequest::new(id, tenant.id, &reg, sealed, now);
        let jobs = match reg.mode {
            Mode::Outbound => {
                vec![NewJob { kind: JobKind::PlaceCall, request_id: id, payload: String::new(), run_at: now }]
            }
            Mode::Inbound => Vec::new(),
        };
        self.check_phone_limit(&reg.phone_number)?;
        match self.store.insert_request(request.clone(), jobs).await? {
            Inserted::Created => {
                self.metrics.registered.get_or_create(&KindLabel { kind: reg.mode.as_str() }).inc();
                if reg.mode == Mode::Outbound {
                    self.jobs_wakeup.notify_one();
                }
                tracing::info!(request_id = %id, mode = %reg.mode, phone = %reg.phone_number, "auth request registered");
                Ok(Registered { request, code, created: true })
            }
            Inserted::Existing(existing) => self.replay(*existing, &fingerprint, reg),
        }
    }

    /// A repeated `external_id`: the same body gets the stored request back
    /// (with its code, so the site can show it again); another body is a conflict.
    fn replay(&self, existing: AuthRequest, fingerprint: &[u8], reg: Registration) -> Result<Registered, AppError> {
        let same: bool = existing.fingerprint.ct_eq(fingerprint).into();
        if !same {
            return Err(AppError::Conflict {
                code: "external_id_conflict",
                message: "external_id: already used for a request with a different body".into(),
            });
        }
        let code = match (&existing.code_salt, reg.code) {
            (Some(salt), _) => self.keys.generated_code(salt, existing.code_length),
            (None, Some(code)) => code,
            (None, None) => return Err(AppError::Internal("stored request has neither salt nor code".into())),
        };
        Ok(Registered { request: existing, code, created: false })
    }

    /// Registrations per phone number are limited, so that nobody can make
    /// the server ring a stranger's phone over and over.
    fn check_phone_limit(&self, phone: &PhoneNumber) -> Result<(), AppError> {
        self.phone_limiter.check(&phone.as_str().to_owned()).map_err(|retry_after| {
            tracing::warn!(phone = %phone, "phone number rate limit hit");
            AppError::RateLimited { retry_after }
        })
    }

    /// The tenant's request `id`; another tenant's request is "not found" too.
    pub async fn get(&self, tenant: &Tenant, id: Uuid) -> Result<AuthRequest, AppError> {
        match self.store.request(id).await? {
            Some(r) if r.tenant_id == tenant.id => Ok(r),
            _ => Err(AppError::NotFound("no auth request with this id")),
        }
    }

    /// Cancels the tenant's request; 409 if it has already ended.
    pub async fn cancel(&self, tenant: &Tenant, id: Uuid) -> Result<AuthRequest, AppError> {
        let tenant_id = tenant.id;
        let applied = self.transition(id, move |r| (r.tenant_id == tenant_id).then_some(Event::Cancel)).await?;
        match applied {
            Some(Applied { before, after: Some(after) }) if before.tenant_id == tenant_id => {
                if after.status == Status::Canceled {
                    Ok(after)
                } else {
                    // It expired at this very moment: that is the result.
                    Err(AppError::Conflict {
                        code: "already_terminal",
                        message: format!("request is already {}", after.status),
                    })
                }
            }
            Some(Applied { before, after: None }) if before.tenant_id == tenant_id => Err(AppError::Conflict {
                code: "already_terminal",
                message: format!("request is already {}", before.status_at(now())),
            }),
            _ => Err(AppError::NotFound("no auth request with this id")),
        }
    }

    /// Applies the event that `event_for` picks for the current state of
    /// request `id` (it may pick none), writing the transition and its jobs
    /// atomically.
    pub async fn transition(
        &self,
        id: Uuid,
        event_for: impl FnOnce(&AuthRequest) -> Option<Event> + Send + 'static,
    ) -> Result<Option<Applied>, StoreError> {
        self.transition_finishing(id, event_for, None).await
    }

    /// `transition`, deleting job `finished_job` in the same commit (a job's last step).
    pub async fn transition_finishing(
        &self,
        id: Uuid,
        event_for: impl FnOnce(&AuthRequest) -> Option<Event> + Send + 'static,
        finished_job: Option<i64>,
    ) -> Result<Option<Applied>, StoreError> {
        let now = now();
        let grace = self.call_end_grace;
        let inbound = self.inbound_number.clone();
        let applied = self
            .store
            .update_request(
                id,
                Box::new(move |r| {
                    let event = event_for(r)?;
                    let t = r.apply(&event, now).ok()?;
                    Some(Update { jobs: jobs_for(&t, now, grace, inbound.as_ref()), request: t.next })
                }),
                finished_job,
            )
            .await?;
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
            if !after.status.is_terminal() || before.status != after.status {
                self.jobs_wakeup.notify_one();
            }
        }
        Ok(applied)
    }

    /// Applies `event` to request `id` as it stands.
    pub async fn apply(&self, id: Uuid, event: Event) -> Result<Option<Applied>, StoreError> {
        self.transition(id, move |_| Some(event)).await
    }
}

/// The jobs a transition's effects ask for.
fn jobs_for(t: &Transition, now: DateTime<Utc>, grace: Duration, inbound: Option<&PhoneNumber>) -> Vec<NewJob> {
    let id = t.next.id;
    t.effects
        .iter()
        .map(|effect| match effect {
            Effect::NotifySite => NewJob {
                kind: JobKind::Callback,
                request_id: id,
                payload: serde_json::to_string(&RequestView::at(&t.next, inbound, now)).unwrap_or_default(),
                run_at: now,
            },
            Effect::EndCall { call_sid } => {
                NewJob { kind: JobKind::EndCall, request_id: id, payload: call_sid.clone(), run_at: now }
            }
            Effect::FinalizeCallLater => NewJob {
                kind: JobKind::FinalizeCall,
                request_id: id,
                payload: String::new(),
                run_at: now + chrono::Duration::from_std(grace).unwrap_or_default(),
            },
        })
        .collect()
}
