//! The jobs that reach the user: placing a call and sending a text message through the provider.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::lines::Line;
use super::{Jobs, Outcome};
use crate::domain::pacing::{self, Pace};
use crate::domain::request::{AuthRequest, Event};
use crate::store::{Applied, Job};
use crate::telephony::{CallError, Lookup, OutboundCall, OutboundSms, ProviderText};

/// A slot this close is taken now rather than waited for.
const SLACK: TimeDelta = TimeDelta::milliseconds(20);
/// How long an account that refused the account itself (credentials, funds) is skipped.
const ACCOUNT_SKIP: TimeDelta = TimeDelta::minutes(5);
/// How long an account that answered 5xx or could not be reached is skipped
/// (a 429 says how long itself, in seconds).
const UNAVAILABLE_SKIP: TimeDelta = TimeDelta::seconds(30);
/// How long before a call waiting for a seat of its account's cap asks again.
const SEAT_RETRY: TimeDelta = TimeDelta::seconds(1);
/// How long after an unanswered call request the request is looked at again.
const UNCERTAIN_WAIT: TimeDelta = TimeDelta::seconds(15);

impl Jobs {
    /// Places the call of a request through the first line that takes it;
    /// `inserted` is the request as this process inserted it a moment ago, if it did.
    pub(super) async fn place_call(&self, job: &Job, inserted: Option<Arc<AuthRequest>>) -> Outcome {
        let r = match self.request_of(job, inserted).await {
            Ok(r) => r,
            Err(outcome) => return outcome,
        };
        let t = self.service.now();
        if !r.awaits_call(t) {
            return Outcome::Completed;
        }
        // A queued call waits for its slot (the job may wake early, on another node).
        if let Some(at) = r.delivery.queued_until().filter(|at| *at > t + SLACK) {
            return Outcome::WaitUntil(at);
        }
        let mut lines = self.lines.order(&r.phone_number, r.id, t);
        if lines.is_empty() {
            tracing::warn!(request_id = %r.id, "no provider account may call this number's country");
            return self.refused(job, &r).await;
        }
        // The line the call was queued for keeps its place in that line's queue.
        if let Some(pos) = lines.iter().position(|l| Some(l.name.as_str()) == r.delivery.account.as_deref()) {
            let queued_for = lines.remove(pos);
            lines.insert(0, queued_for);
        }
        let mut last = ProviderText::new("no provider account took the call");
        for line in lines {
            match self.through(line, job, &r, t).await {
                Ok(outcome) => return outcome,
                Err(why) => last = why,
            }
        }
        Self::retry_before_expiry(job, t, &r, last, None)
    }

    /// Tries `line`: its pace first, then the provider. `Err`: the next line may try.
    async fn through(
        &self,
        line: &Line,
        job: &Job,
        r: &AuthRequest,
        t: DateTime<Utc>,
    ) -> Result<Outcome, ProviderText> {
        if let Some(pace) = line.pace
            && let Some(wait) = self.wait_for_pace(line, pace, job, r, t).await
        {
            return Ok(wait);
        }
        let call = self.call_for(line, r, t);
        let placed = match line.telephony.place_call(&call).await {
            Err(CallError::Uncertain(why)) => match line.telephony.find_call(&call, t - TimeDelta::seconds(1)).await {
                Lookup::Found(sid) => Ok(sid),
                Lookup::NotFound => Err(CallError::Unavailable { message: why, retry_after: None }),
                Lookup::CannotTell => {
                    // The call may exist: its status callbacks will say so. Look again later.
                    tracing::warn!(request_id = %r.id, account = %line.name, error = %why, "call request unanswered");
                    return Ok(Outcome::WaitUntil(t + UNCERTAIN_WAIT));
                }
            },
            other => other,
        };
        match placed {
            Ok(sid) => Ok(self.placed(job, r, line, sid).await),
            Err(CallError::Refused(why)) => {
                tracing::warn!(request_id = %r.id, account = %line.name, error = %why, "provider refused the call");
                Ok(self.refused(job, r).await)
            }
            Err(CallError::Account(why)) => Err(self.skip(line, r, t, ACCOUNT_SKIP, why).await),
            Err(CallError::Unavailable { message, retry_after }) => {
                let skip = retry_after.and_then(|d| TimeDelta::from_std(d).ok()).unwrap_or(UNAVAILABLE_SKIP);
                Err(self.skip(line, r, t, skip, message).await)
            }
            Err(CallError::Uncertain(why)) => Err(why),
        }
    }

    /// Holds the call to `line`'s pace: `Some(outcome)` when it must wait (queued) or cannot be placed in time.
    async fn wait_for_pace(
        &self,
        line: &Line,
        pace: Pace,
        job: &Job,
        r: &AuthRequest,
        t: DateTime<Utc>,
    ) -> Option<Outcome> {
        let store = &self.service.store;
        let holds_slot = r.delivery.account.as_deref() == Some(line.name.as_str())
            && r.delivery.queued_until().is_some_and(|at| at <= t + SLACK);
        if !holds_slot && pace.interval > TimeDelta::zero() {
            let slot = match store.reserve_call_slot(&line.name, pace.interval, t).await {
                Ok(slot) => slot,
                Err(e) => return Some(Outcome::RetryIn(Duration::from_secs(1), e.to_string())),
            };
            self.service.metrics.call_queue_wait(
                &line.name,
                (slot - t).to_std().unwrap_or_default(),
                pace.interval.to_std().unwrap_or_default(),
            );
            if slot > t + SLACK {
                return Some(self.queue(job, r, line, slot).await);
            }
        }
        if let Some(cap) = pace.max_concurrent {
            match store.take_call_seat(&line.name, r.id, cap, t + pacing::SEAT_LEASE, t).await {
                Ok(true) => {}
                Ok(false) => return Some(self.queue(job, r, line, t + SEAT_RETRY).await),
                Err(e) => return Some(Outcome::RetryIn(Duration::from_secs(1), e.to_string())),
            }
        }
        None
    }

    /// Records that the call waits for `at` on `line` (or, past the time a
    /// call can still be placed, fails the request as `not_placed`).
    async fn queue(&self, job: &Job, r: &AuthRequest, line: &Line, at: DateTime<Utc>) -> Outcome {
        if !pacing::in_time(at, r.expires_at) {
            tracing::warn!(request_id = %r.id, account = %line.name, "no call slot before the request expires");
            return Self::finished(
                self.service.transition_finishing(r.id, |_| Some(Event::CallNotPlaced), Some(job.lease())).await,
            );
        }
        let event = Event::CallQueued { account: line.name.clone(), at };
        match self.service.transition(r.id, move |_| Some(event.clone())).await {
            Ok(_) => Outcome::WaitUntil(at),
            Err(e) => Outcome::RetryIn(Duration::from_secs(1), e.to_string()),
        }
    }

    /// `line` failed: skip it for `skip`, give back the seat the call held.
    async fn skip(
        &self,
        line: &Line,
        r: &AuthRequest,
        t: DateTime<Utc>,
        skip: TimeDelta,
        why: ProviderText,
    ) -> ProviderText {
        tracing::warn!(request_id = %r.id, account = %line.name, error = %why, skip_s = skip.num_seconds(), "provider account failed; trying the next");
        self.lines.skip(line, t + skip);
        self.service.metrics.account_failed(&line.name);
        if line.pace.is_some_and(|p| p.max_concurrent.is_some())
            && let Err(e) = self.service.store.free_call_seat(r.id).await
        {
            tracing::warn!(request_id = %r.id, error = %e, "freeing the call's seat failed");
        }
        why
    }

    fn call_for(&self, line: &Line, r: &AuthRequest, t: DateTime<Utc>) -> OutboundCall {
        let left = (r.expires_at - t).num_seconds().max(1) as u32;
        let urls = self.urls.of(line.telephony.webhooks());
        OutboundCall {
            to: r.phone_number.clone(),
            from: line.caller_id.clone().or_else(|| self.caller_id.clone()),
            answer_url: urls.answer(r.id, r.locale),
            status_callback: urls.status(r.id),
            timeout: self.ring_timeout.min(left).max(5),
            detect_machine: r.delivery.channel == crate::domain::status::Channel::VoiceOtp,
        }
    }

    async fn refused(&self, job: &Job, r: &AuthRequest) -> Outcome {
        Self::finished(self.service.transition_finishing(r.id, |_| Some(Event::CallRefused), Some(job.lease())).await)
    }

    /// The provider took the call through `line`: record it (and which line).
    async fn placed(&self, job: &Job, r: &AuthRequest, line: &Line, sid: String) -> Outcome {
        tracing::info!(request_id = %r.id, call_sid = %sid, account = %line.name, phone = %r.phone_number, "call placed");
        let event = Event::CallPlaced { call_sid: sid.clone(), account: line.name.clone() };
        let placed = self.service.transition_finishing(r.id, move |_| Some(event.clone()), Some(job.lease())).await;
        match placed {
            Ok(Some(Applied { before, after: None })) if before.status.is_terminal() => {
                // It ended (canceled, say) while the call was being placed: hang up.
                tracing::info!(request_id = %r.id, call_sid = %sid, "request ended while its call was placed; hanging up");
                if let Err(e) = line.telephony.end_call(&sid).await {
                    tracing::warn!(request_id = %r.id, error = ?e, "hanging up the call failed");
                }
                Outcome::CompletedAndRemoved
            }
            Ok(_) => Outcome::CompletedAndRemoved,
            Err(e) => {
                // The call exists; the answer webhook binds it. Placing it again would ring twice.
                tracing::error!(request_id = %r.id, error = %e, "recording the placed call failed");
                Outcome::Completed
            }
        }
    }

    /// Sends the text message with the code of a request (its `sms` channel,
    /// or the fallback of a call nobody answered).
    pub(super) async fn send_sms(&self, job: &Job, inserted: Option<Arc<AuthRequest>>) -> Outcome {
        let r = match self.request_of(job, inserted).await {
            Ok(r) => r,
            Err(outcome) => return outcome,
        };
        let t = self.service.now();
        if r.status_at(t).is_terminal() || !r.delivery.awaits_sending() {
            return Outcome::Completed;
        }
        let Some(body) = self.sms_text(&r, t).await else {
            tracing::error!(request_id = %r.id, "no code can be derived for this request's message");
            return Self::finished(
                self.service.transition_finishing(r.id, |_| Some(Event::SmsFailed), Some(job.lease())).await,
            );
        };
        // Texts go out through the line the call took (or would take first).
        let order = self.lines.order(&r.phone_number, r.id, t);
        let line = match r.delivery.account.as_deref() {
            Some(name) => self.lines.named(Some(name)),
            None => order.first().copied().unwrap_or_else(|| self.lines.first()),
        };
        let sms = OutboundSms {
            to: r.phone_number.clone(),
            from: line.caller_id.clone().or_else(|| self.caller_id.clone()),
            body,
            status_callback: self.urls.of(line.telephony.webhooks()).sms_status(r.id),
        };
        match line.telephony.send_sms(&sms).await {
            Ok(sid) => {
                tracing::info!(request_id = %r.id, message_sid = %sid, phone = %r.phone_number, "text message sent");
                let event = Event::SmsSent { sid };
                Self::finished(
                    self.service.transition_finishing(r.id, move |_| Some(event.clone()), Some(job.lease())).await,
                )
            }
            Err(CallError::Refused(why)) => {
                tracing::warn!(request_id = %r.id, error = %why, "provider refused the text message");
                Self::finished(
                    self.service.transition_finishing(r.id, |_| Some(Event::SmsFailed), Some(job.lease())).await,
                )
            }
            Err(CallError::Unavailable { message, retry_after }) => {
                Self::retry_before_expiry(job, t, &r, message, retry_after)
            }
            Err(CallError::Account(message) | CallError::Uncertain(message)) => {
                Self::retry_before_expiry(job, t, &r, message, None)
            }
        }
    }

    /// The message carrying the code of `r`, in its locale, with its tenant's
    /// name and words: the request's own code, or (a `voice_dtmf` request
    /// falling back) the second code. `None` when no code can be derived.
    pub(super) async fn sms_text(&self, r: &AuthRequest, now: chrono::DateTime<Utc>) -> Option<String> {
        let code = r.expected_code(self.service.keys.for_request(r.key_id.as_deref())?)?;
        let tenant = self.service.tenant_cached(r.tenant_id).await;
        let minutes = ((r.expires_at - now).num_seconds().max(60) as u32).div_ceil(60);
        Some(self.prompts.sms(r.locale, code.expose(), minutes, tenant.as_ref().map(|t| &t.policy.voice)))
    }
}
