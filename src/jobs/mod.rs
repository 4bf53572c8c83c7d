//! The durable job runner: claims due jobs from the store and runs them; plus the sweeper.
//!
//! A job is run by whoever holds its lease: the server that inserted it
//! already leased (a call placement, run at once), or a runner that claimed
//! it when it fell due. Leases are renewed while a job runs; a server that
//! dies lets its leases run out, and another server's runner takes the jobs.

mod backoff;
pub mod callback;
pub mod lines;
mod outgoing;
mod sweeper;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use crate::call::prompts::Prompts;
use crate::call::urls::Urls;
use crate::domain::phone::PhoneNumber;
use crate::domain::request::{AuthRequest, Event};
use crate::domain::timeline::{self, Delivery};
use crate::service::Service;
use crate::store::{Job, JobKind, Lease, StoreError};
use crate::telephony::{CallError, ProviderText};

pub use lines::{Line, Lines};
pub use sweeper::spawn_sweeper;

/// Jobs run at once by one process.
const CONCURRENCY: usize = 256;
/// Callbacks are retried for this long after the result, then kept as dead.
const CALLBACK_WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// What became of one run of a job.
enum Outcome {
    /// The work is done; the runner removes the job's row.
    Completed,
    /// The work is done, and the job's row was deleted in the same commit
    /// as its last write: nothing is left for the runner to remove.
    CompletedAndRemoved,
    RetryIn(Duration, String),
    /// Not a failure: the work waits until then (a queued call's start slot).
    WaitUntil(chrono::DateTime<Utc>),
    GiveUp(String),
}

/// Everything jobs need to do their work.
pub struct Jobs {
    pub service: Arc<Service>,
    /// The provider accounts calls go out on.
    pub lines: Arc<Lines>,
    pub urls: Urls,
    /// The text of the message that carries a code.
    pub prompts: Arc<Prompts>,
    pub caller_id: Option<PhoneNumber>,
    pub ring_timeout: u32,
    pub callbacks: reqwest::Client,
    /// The store's lease time: leases of running jobs are renewed well before it ends.
    pub lease: Duration,
    /// Callbacks may go to private addresses (development only).
    pub allow_private_callbacks: bool,
}

/// Leases of the jobs running in this process, renewed while they run.
#[derive(Default)]
struct Running(Mutex<HashMap<i64, Lease>>);

impl Running {
    fn start(&self, lease: Lease) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(lease.job, lease);
    }

    fn end(&self, lease: Lease) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(&lease.job);
    }

    fn leases(&self) -> Vec<Lease> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).values().copied().collect()
    }
}

impl Jobs {
    /// Starts the runner; it stops claiming when `shutdown` turns true and
    /// waits (briefly) for running jobs. `claimed` brings the jobs this
    /// process inserted already leased.
    pub fn spawn(
        self: Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
        mut claimed: mpsc::UnboundedReceiver<(Job, Arc<AuthRequest>)>,
    ) -> JoinHandle<()> {
        let running = Arc::new(Running::default());
        let renewer = self.clone().spawn_renewer(running.clone(), shutdown.clone());
        let signal = self.service.store.job_signal();
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(CONCURRENCY));
            // The store is asked for due jobs when something may have become due
            // (a wake-up, another server's notice, the next job's time), not for
            // every job this process leased to itself.
            let mut look = true;
            let mut next_look = tokio::time::Instant::now();
            while !*shutdown.borrow() {
                if look || tokio::time::Instant::now() >= next_look {
                    look = false;
                    let free = slots.available_permits();
                    let jobs = if free == 0 {
                        Vec::new()
                    } else {
                        match self.service.store.claim_jobs(free.min(128)).await {
                            Ok(jobs) => jobs,
                            Err(e) => {
                                tracing::error!(error = %e, "claiming jobs failed");
                                Vec::new()
                            }
                        }
                    };
                    let any = !jobs.is_empty();
                    for job in jobs {
                        self.start(job, None, &slots, &running).await;
                    }
                    if any {
                        look = true;
                        continue;
                    }
                    let wait = match self.service.store.next_job_in().await {
                        Ok(Some(d)) => d.clamp(Duration::from_millis(5), Duration::from_secs(1)),
                        _ => Duration::from_secs(1),
                    };
                    next_look = tokio::time::Instant::now() + wait;
                }
                let elsewhere = async {
                    match &signal {
                        Some(s) => s.notified().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    Some((job, request)) = claimed.recv() => self.start(job, Some(request), &slots, &running).await,
                    () = self.service.jobs_wakeup.notified() => look = true,
                    () = elsewhere => look = true,
                    () = tokio::time::sleep_until(next_look) => look = true,
                    _ = shutdown.changed() => {}
                }
            }
            // Let running jobs finish; unfinished ones are taken up again when their leases end.
            let _ = tokio::time::timeout(Duration::from_secs(10), slots.acquire_many(CONCURRENCY as u32)).await;
            renewer.abort();
        })
    }

    async fn start(
        self: &Arc<Self>,
        job: Job,
        request: Option<Arc<AuthRequest>>,
        slots: &Arc<Semaphore>,
        running: &Arc<Running>,
    ) {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let (me, running) = (self.clone(), running.clone());
        running.start(job.lease());
        tokio::spawn(async move {
            let lease = job.lease();
            me.run_one(job, request).await;
            running.end(lease);
            drop(permit);
        });
    }

    /// Renews the leases of running jobs every third of the lease time.
    fn spawn_renewer(self: Arc<Self>, running: Arc<Running>, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let every = self.lease / 3;
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    _ = shutdown.changed() => {}
                }
                let leases = running.leases();
                if leases.is_empty() {
                    if *shutdown.borrow() {
                        break;
                    }
                    continue;
                }
                if let Err(e) = self.service.store.renew_leases(leases).await {
                    tracing::warn!(error = %e, "renewing job leases failed");
                }
            }
        })
    }

    async fn run_one(&self, job: Job, request: Option<Arc<AuthRequest>>) {
        let kind = job.kind.as_str();
        let lease = job.lease();
        let outcome = match job.kind {
            JobKind::PlaceCall => self.place_call(&job, request).await,
            JobKind::Callback => self.deliver_callback(&job).await,
            JobKind::EndCall => self.end_call(&job).await,
            JobKind::FinalizeCall => self.finalize_call(&job).await,
            JobKind::SendSms => self.send_sms(&job, request).await,
        };
        let store = &self.service.store;
        let stored = match &outcome {
            Outcome::CompletedAndRemoved => {
                self.service.metrics.job(kind, "done");
                Ok(())
            }
            Outcome::Completed => {
                self.service.metrics.job(kind, "done");
                store.finish_job(lease).await
            }
            Outcome::RetryIn(delay, why) => {
                self.service.metrics.job(kind, "retry");
                tracing::warn!(job = job.id, kind, attempt = job.attempts + 1, error = %why, "job will be retried");
                store.retry_job(lease, *delay, why).await
            }
            Outcome::WaitUntil(at) => {
                self.service.metrics.job(kind, "wait");
                tracing::debug!(job = job.id, kind, until = %at, "job waits");
                let stored = store.wait_job_until(lease, *at).await;
                // The runner's next look may be later than this job's slot: have it look again.
                self.service.jobs_wakeup.notify_one();
                stored
            }
            Outcome::GiveUp(why) => {
                self.service.metrics.job(kind, "dead");
                tracing::error!(job = job.id, kind, error = %why, "job gave up");
                store.bury_job(lease, why).await
            }
        };
        match stored {
            Ok(()) => {}
            Err(StoreError::LeaseLost) => {
                tracing::warn!(job = job.id, kind, "job's lease had passed to another runner; its outcome is theirs");
            }
            // The lease runs out and the job is run again: at least once.
            Err(e) => tracing::error!(job = job.id, error = %e, "recording a job outcome failed"),
        }
    }

    /// The outcome of a job's last transition, written with the job's removal.
    fn finished(result: Result<Option<crate::store::Applied>, StoreError>) -> Outcome {
        match result {
            Ok(_) => Outcome::CompletedAndRemoved,
            Err(StoreError::LeaseLost) => {
                tracing::warn!("job's lease had passed to another runner; its transition was not written");
                Outcome::CompletedAndRemoved
            }
            Err(e) => Outcome::RetryIn(Duration::from_secs(1), e.to_string()),
        }
    }

    /// The request of `job`: `inserted` (as this process inserted it a
    /// moment ago), or read back; the outcome to give when there is none.
    async fn request_of(&self, job: &Job, inserted: Option<Arc<AuthRequest>>) -> Result<Arc<AuthRequest>, Outcome> {
        match inserted {
            Some(r) => Ok(r),
            None => match self.service.store.request(job.request_id).await {
                Ok(Some(r)) => Ok(Arc::new(r)),
                Ok(None) => Err(Outcome::Completed),
                Err(e) => Err(Outcome::RetryIn(Duration::from_secs(1), e.to_string())),
            },
        }
    }

    /// A provider that cannot take a call or message now: try again with
    /// backoff (at least its `Retry-After`), unless the code will have
    /// expired by then (the sweeper records the expiry).
    fn retry_before_expiry(
        job: &Job,
        now: chrono::DateTime<Utc>,
        r: &AuthRequest,
        message: ProviderText,
        retry_after: Option<Duration>,
    ) -> Outcome {
        let wait = backoff::delay(job.attempts, Duration::from_secs(1), Duration::from_secs(30))
            .max(retry_after.unwrap_or_default());
        if now + chrono::Duration::from_std(wait).unwrap_or_default() >= r.expires_at {
            return Outcome::Completed;
        }
        Outcome::RetryIn(wait, message.into())
    }

    async fn deliver_callback(&self, job: &Job) -> Outcome {
        let retry = |why: String| {
            if self.service.now() - job.created_at > CALLBACK_WINDOW {
                Outcome::GiveUp(format!("gave up after 24 h: {why}"))
            } else {
                Outcome::RetryIn(backoff::delay(job.attempts, Duration::from_secs(5), Duration::from_secs(3600)), why)
            }
        };
        let r = match self.service.store.request(job.request_id).await {
            Ok(Some(r)) => r,
            Ok(None) => return Outcome::Completed,
            Err(e) => return retry(e.to_string()),
        };
        let tenant = match self.service.store.tenant(r.tenant_id).await {
            Ok(Some(tenant)) => tenant,
            Ok(None) => return Outcome::Completed,
            Err(e) => return retry(e.to_string()),
        };
        let Some(url) = r.callback_url.as_deref() else { return Outcome::Completed };
        // Checked at registration, and again here: an address literal never meets the resolver's filter.
        if !self.allow_private_callbacks && callback::names_private_address(url) {
            return Outcome::GiveUp("callback_url names a private or special-purpose address".into());
        }
        let t = self.service.now();
        let header = callback::signature_header(&tenant.signing_secrets(t), t.timestamp(), &job.payload);
        let sent = self
            .callbacks
            .post(url)
            .header("Content-Type", "application/json")
            .header("IVR-Auth-Signature", header)
            .body(job.payload.clone())
            .send()
            .await;
        let (outcome, delivery) = match sent {
            Ok(resp) if resp.status().is_success() => {
                tracing::info!(request_id = %r.id, "result callback delivered");
                (Outcome::Completed, Delivery::Delivered { http_status: resp.status().as_u16() })
            }
            Ok(resp) => {
                let why = format!("callback answered HTTP {}", resp.status().as_u16());
                (retry(why.clone()), Delivery::Retry { http_status: Some(resp.status().as_u16()), error: why })
            }
            Err(e) => {
                let why = format!("callback failed: {}", if e.is_timeout() { "timeout" } else { "network error" });
                (retry(why.clone()), Delivery::Retry { http_status: None, error: why })
            }
        };
        let delivery = match (&outcome, delivery) {
            (Outcome::GiveUp(why), _) => Delivery::GaveUp { error: why.clone() },
            (_, d) => d,
        };
        // The attempt is told in the request's timeline; telling it is not worth a retry.
        let entry = timeline::callback_attempt(&r, job.attempts + 1, &delivery, self.service.now());
        if let Err(e) = self.service.store.append_timeline(vec![entry]).await {
            tracing::warn!(request_id = %r.id, error = %e, "recording the callback attempt in the timeline failed");
        }
        outcome
    }

    async fn end_call(&self, job: &Job) -> Outcome {
        // The call is hung up through the account that placed it.
        let account = match self.service.store.request(job.request_id).await {
            Ok(r) => r.and_then(|r| r.delivery.account),
            Err(e) => return Outcome::RetryIn(Duration::from_secs(1), e.to_string()),
        };
        let line = self.lines.named(account.as_deref());
        match line.telephony.end_call(&job.payload).await {
            Ok(()) | Err(CallError::Refused(_)) => Outcome::Completed,
            Err(CallError::Account(message) | CallError::Uncertain(message)) if job.attempts < 5 => Outcome::RetryIn(
                backoff::delay(job.attempts, Duration::from_secs(1), Duration::from_secs(30)),
                message.into(),
            ),
            Err(CallError::Unavailable { message, .. }) if job.attempts < 5 => Outcome::RetryIn(
                backoff::delay(job.attempts, Duration::from_secs(1), Duration::from_secs(30)),
                message.into(),
            ),
            Err(
                CallError::Unavailable { message, .. } | CallError::Account(message) | CallError::Uncertain(message),
            ) => Outcome::GiveUp(message.into()),
        }
    }

    async fn finalize_call(&self, job: &Job) -> Outcome {
        Self::finished(
            self.service.transition_finishing(job.request_id, |_| Some(Event::CallEnded), Some(job.lease())).await,
        )
    }
}
