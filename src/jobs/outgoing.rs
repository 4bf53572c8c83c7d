//! The jobs that reach the user: placing a call and sending a text message through the provider.

use chrono::Utc;

use super::{Jobs, Outcome};
use crate::domain::request::{AuthRequest, Event};
use crate::store::{Applied, Job};
use crate::telephony::{CallError, OutboundCall, OutboundSms};

impl Jobs {
    /// Places the call of a request; `inserted` is the request as this
    /// process inserted it a moment ago, if it did.
    pub(super) async fn place_call(&self, job: &Job, inserted: Option<Box<AuthRequest>>) -> Outcome {
        let r = match self.request_of(job, inserted).await {
            Ok(r) => r,
            Err(outcome) => return outcome,
        };
        let t = self.service.now();
        if !r.awaits_call(t) {
            return Outcome::Completed;
        }
        let left = (r.expires_at - t).num_seconds().max(1) as u32;
        let urls = self.urls.of(self.telephony.webhooks());
        let call = OutboundCall {
            to: r.phone_number.clone(),
            from: self.caller_id.clone(),
            answer_url: urls.answer(r.id, r.locale),
            status_callback: urls.status(r.id),
            timeout: self.ring_timeout.min(left).max(5),
            detect_machine: r.delivery.channel == crate::domain::status::Channel::VoiceOtp,
        };
        match self.telephony.place_call(&call).await {
            Ok(sid) => {
                tracing::info!(request_id = %r.id, call_sid = %sid, phone = %r.phone_number, "call placed");
                let event = Event::CallPlaced { call_sid: sid.clone() };
                let placed =
                    self.service.transition_finishing(r.id, move |_| Some(event.clone()), Some(job.lease())).await;
                match placed {
                    Ok(Some(Applied { before, after: None })) if before.status.is_terminal() => {
                        // It ended (canceled, say) while the call was being placed: hang up.
                        tracing::info!(request_id = %r.id, call_sid = %sid, "request ended while its call was placed; hanging up");
                        if let Err(e) = self.telephony.end_call(&sid).await {
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
            Err(CallError::Refused(why)) => {
                tracing::warn!(request_id = %r.id, error = %why, "provider refused the call");
                Self::finished(
                    self.service.transition_finishing(r.id, |_| Some(Event::CallRefused), Some(job.lease())).await,
                )
            }
            Err(CallError::Unavailable { message, retry_after }) => {
                Self::retry_before_expiry(job, t, &r, message, retry_after)
            }
        }
    }

    /// Sends the text message with the code of a request (its `sms` channel,
    /// or the fallback of a call nobody answered).
    pub(super) async fn send_sms(&self, job: &Job, inserted: Option<Box<AuthRequest>>) -> Outcome {
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
        let sms = OutboundSms {
            to: r.phone_number.clone(),
            from: self.caller_id.clone(),
            body,
            status_callback: self.urls.of(self.telephony.webhooks()).sms_status(r.id),
        };
        match self.telephony.send_sms(&sms).await {
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
