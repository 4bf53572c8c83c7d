//! The durable job runner: claims due jobs from the store and runs them; plus the sweeper.

mod backoff;
pub mod callback;
mod sweeper;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::domain::phone::PhoneNumber;
use crate::domain::request::Event;
use crate::domain::status::Status;
use crate::service::{Core, now};
use crate::store::{Job, JobKind};
use crate::telephony::{CallError, OutboundCall, Telephony};
use crate::voice::urls::Urls;
pub use sweeper::spawn_sweeper;

/// Jobs run at once by one process.
const CONCURRENCY: usize = 256;
/// How long a claimed job is ours before another process may take it over.
const LEASE: chrono::Duration = chrono::Duration::seconds(60);
/// Callbacks are retried for this long after the result, then kept as dead.
const CALLBACK_WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// What became of one run of a job.
enum Outcome {
    Done,
    /// Done, and the job row was deleted with the job's last write.
    Finished,
    RetryAt(DateTime<Utc>, String),
    GiveUp(String),
}

/// Everything jobs need to do their work.
pub struct Jobs {
    pub core: Arc<Core>,
    pub telephony: Arc<dyn Telephony>,
    pub urls: Urls,
    pub caller_id: Option<PhoneNumber>,
    pub ring_timeout: u32,
    pub callbacks: reqwest::Client,
}

fn later(d: Duration) -> DateTime<Utc> {
    now() + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::seconds(60))
}

impl Jobs {
    /// Starts the runner; it stops claiming when `shutdown` turns true and
    /// waits (briefly) for running jobs.
    pub fn spawn(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(CONCURRENCY));
            while !*shutdown.borrow() {
                let free = slots.available_permits();
                let claimed = if free == 0 {
                    Vec::new()
                } else {
                    let t = now();
                    match self.core.store.claim_jobs(t, t + LEASE, free.min(128)).await {
                        Ok(jobs) => jobs,
                        Err(e) => {
                            tracing::error!(error = %e, "claiming jobs failed");
                            Vec::new()
                        }
                    }
                };
                let any = !claimed.is_empty();
                for job in claimed {
                    let Ok(permit) = slots.clone().acquire_owned().await else { break };
                    let me = self.clone();
                    tokio::spawn(async move {
                        me.run_one(job).await;
                        drop(permit);
                    });
                }
                if any {
                    continue;
                }
                let wait = match self.core.store.next_job_at().await {
                    Ok(Some(t)) => {
                        (t - now()).to_std().unwrap_or_default().clamp(Duration::from_millis(5), Duration::from_secs(1))
                    }
                    _ => Duration::from_secs(1),
                };
                tokio::select! {
                    () = self.core.jobs_wakeup.notified() => {}
                    () = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
            }
            // Let running jobs finish; unfinished ones are retried after a restart.
            let _ = tokio::time::timeout(Duration::from_secs(10), slots.acquire_many(CONCURRENCY as u32)).await;
        })
    }

    async fn run_one(&self, job: Job) {
        let kind = job.kind.as_str();
        let outcome = match job.kind {
            JobKind::PlaceCall => self.place_call(&job).await,
            JobKind::Callback => self.deliver_callback(&job).await,
            JobKind::EndCall => self.end_call(&job).await,
            JobKind::FinalizeCall => self.finalize_call(&job).await,
        };
        let stored = match &outcome {
            Outcome::Finished => {
                self.core.metrics.job(kind, "done");
                Ok(())
            }
            Outcome::Done => {
                self.core.metrics.job(kind, "done");
                self.core.store.finish_job(job.id).await
            }
            Outcome::RetryAt(at, why) => {
                self.core.metrics.job(kind, "retry");
                tracing::warn!(job = job.id, kind, attempt = job.attempts + 1, error = %why, "job will be retried");
                self.core.store.retry_job(job.id, *at, why).await
            }
            Outcome::GiveUp(why) => {
                self.core.metrics.job(kind, "dead");
                tracing::error!(job = job.id, kind, error = %why, "job gave up");
                self.core.store.bury_job(job.id, why).await
            }
        };
        if let Err(e) = stored {
            // The lease runs out and the job is run again: at least once.
            tracing::error!(job = job.id, error = %e, "recording a job outcome failed");
        }
    }

    async fn place_call(&self, job: &Job) -> Outcome {
        let r = match self.core.store.request(job.request_id).await {
            Ok(Some(r)) => r,
            Ok(None) => return Outcome::Done,
            Err(e) => return Outcome::RetryAt(later(Duration::from_secs(1)), e.to_string()),
        };
        let t = now();
        if r.status_at(t) != Status::Pending || r.call_sid.is_some() {
            return Outcome::Done;
        }
        let left = (r.expires_at - t).num_seconds().max(1) as u32;
        let call = OutboundCall {
            to: r.phone_number.clone(),
            from: self.caller_id.clone(),
            answer_url: self.urls.answer(r.id),
            status_callback: self.urls.status(r.id),
            timeout: self.ring_timeout.min(left).max(5),
        };
        match self.telephony.place_call(&call).await {
            Ok(sid) => {
                tracing::info!(request_id = %r.id, call_sid = %sid, phone = %r.phone_number, "call placed");
                let event = Event::CallPlaced { call_sid: sid };
                match self.core.transition_finishing(r.id, move |_| Some(event), Some(job.id)).await {
                    Ok(_) => Outcome::Finished,
                    Err(e) => {
                        // The call exists; the answer webhook binds it. Placing it again would ring twice.
                        tracing::error!(request_id = %r.id, error = %e, "recording the placed call failed");
                        Outcome::Done
                    }
                }
            }
            Err(CallError::Refused(why)) => {
                tracing::warn!(request_id = %r.id, error = %why, "provider refused the call");
                match self.core.transition_finishing(r.id, |_| Some(Event::CallRefused), Some(job.id)).await {
                    Ok(_) => Outcome::Finished,
                    Err(e) => Outcome::RetryAt(later(Duration::from_secs(1)), e.to_string()),
                }
            }
            Err(CallError::Unavailable { message, retry_after }) => {
                let wait = backoff::delay(job.attempts, Duration::from_secs(1), Duration::from_secs(30))
                    .max(retry_after.unwrap_or_default());
                let at = later(wait);
                if at >= r.expires_at {
                    // No point calling after the code has expired; the sweeper records the expiry.
                    return Outcome::Done;
                }
                Outcome::RetryAt(at, message)
            }
        }
    }

    async fn deliver_callback(&self, job: &Job) -> Outcome {
        let t = now();
        let retry = |why: String| {
            if t - job.created_at > CALLBACK_WINDOW {
                Outcome::GiveUp(format!("gave up after 24 h: {why}"))
            } else {
                Outcome::RetryAt(
                    later(backoff::delay(job.attempts, Duration::from_secs(5), Duration::from_secs(3600))),
                    why,
                )
            }
        };
        let r = match self.core.store.request(job.request_id).await {
            Ok(Some(r)) => r,
            Ok(None) => return Outcome::Done,
            Err(e) => return retry(e.to_string()),
        };
        let (Some(url), Ok(Some(tenant))) = (r.callback_url.as_deref(), self.core.store.tenant(r.tenant_id).await)
        else {
            return Outcome::Done;
        };
        let header = callback::signature_header(&tenant.signing_secrets(t), t.timestamp(), &job.payload);
        let sent = self
            .callbacks
            .post(url)
            .header("Content-Type", "application/json")
            .header("IVR-Auth-Signature", header)
            .body(job.payload.clone())
            .send()
            .await;
        match sent {
            Ok(resp) if resp.status().is_success() => {
                tracing::info!(request_id = %r.id, "result callback delivered");
                Outcome::Done
            }
            Ok(resp) => retry(format!("callback answered HTTP {}", resp.status().as_u16())),
            Err(e) => retry(format!("callback failed: {}", if e.is_timeout() { "timeout" } else { "network error" })),
        }
    }

    async fn end_call(&self, job: &Job) -> Outcome {
        match self.telephony.end_call(&job.payload).await {
            Ok(()) | Err(CallError::Refused(_)) => Outcome::Done,
            Err(CallError::Unavailable { message, .. }) if job.attempts < 5 => Outcome::RetryAt(
                later(backoff::delay(job.attempts, Duration::from_secs(1), Duration::from_secs(30))),
                message,
            ),
            Err(CallError::Unavailable { message, .. }) => Outcome::GiveUp(message),
        }
    }

    async fn finalize_call(&self, job: &Job) -> Outcome {
        match self.core.transition_finishing(job.request_id, |_| Some(Event::CallEnded), Some(job.id)).await {
            Ok(_) => Outcome::Finished,
            Err(e) => Outcome::RetryAt(later(Duration::from_secs(1)), e.to_string()),
        }
    }
}
