//! The funnel: which steps of a verification each request reached, so that
//! a site sees where its users give up (no answer, hung up at the greeting,
//! a wrong code, silence) and not only how many got through.
//!
//! A step is recorded by the commit that makes the change it tells of
//! (`steps`): the funnel costs one row per step, never a read.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::request::{AuthRequest, Event};
use super::status::{CallStatus, Channel, FailureReason, Status};

/// A step of a verification, in the order a request reaches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    Registered,
    /// The provider accepted our outbound call (inbound requests skip it).
    CallPlaced,
    Ringing,
    /// The callee answered, or the caller's call was matched to the request.
    Answered,
    /// A code was entered (on the phone, or on the page for `voice_otp`/`sms`).
    CodeEntered,
    /// The code went out by text message.
    SmsSent,
    Verified,
    /// It ended without verification; the detail says why.
    Failed,
    Canceled,
    Expired,
}

impl Step {
    pub const ALL: [Step; 10] = [
        Self::Registered,
        Self::CallPlaced,
        Self::Ringing,
        Self::Answered,
        Self::CodeEntered,
        Self::SmsSent,
        Self::Verified,
        Self::Failed,
        Self::Canceled,
        Self::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::CallPlaced => "call_placed",
            Self::Ringing => "ringing",
            Self::Answered => "answered",
            Self::CodeEntered => "code_entered",
            Self::SmsSent => "sms_sent",
            Self::Verified => "verified",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// A step one request reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    pub request_id: Uuid,
    pub tenant_id: Uuid,
    pub step: Step,
    /// For `Failed`, the reason; for a call that ended without a code, also
    /// the prompt the caller hung up during (`failed:no_input@greeting`);
    /// for `CodeEntered`, `right` or `wrong`.
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

/// The step of a new request.
pub fn registered(r: &AuthRequest) -> Reached {
    Reached { request_id: r.id, tenant_id: r.tenant_id, step: Step::Registered, detail: None, at: r.created_at }
}

/// The steps a change reached.
pub fn steps(before: &AuthRequest, event: &Event, after: &AuthRequest, at: DateTime<Utc>) -> Vec<Reached> {
    let reach = |step: Step, detail: Option<String>| Reached {
        request_id: after.id,
        tenant_id: after.tenant_id,
        step,
        detail,
        at,
    };
    let mut out = Vec::new();
    // Answered: the first change that puts a call in progress, whichever
    // came first — the answer webhook, the provider's `in-progress` status
    // callback, or an inbound caller's code on a shared number.
    // A busy, unanswered or failed call ends the request without ever being
    // answered, though `failed` ranks above `in_progress`.
    let call_event = matches!(
        event,
        Event::CallConnected { .. }
            | Event::CallStatusReported { status: CallStatus::InProgress | CallStatus::Completed, .. }
            | Event::InboundCodeEntered { .. }
    );
    if call_event
        && before.status.rank() < Status::InProgress.rank()
        && after.status.rank() >= Status::InProgress.rank()
    {
        out.push(reach(Step::Answered, None));
    }
    match event {
        Event::CallPlaced { .. } => out.push(reach(Step::CallPlaced, None)),
        Event::CallStatusReported { status: CallStatus::Ringing, .. }
            if before.call_status.is_none_or(|s| s.rank() < CallStatus::Ringing.rank()) =>
        {
            out.push(reach(Step::Ringing, None));
        }
        Event::InboundCodeEntered { correct, .. } => {
            out.push(reach(Step::CodeEntered, Some(right(*correct))));
        }
        Event::CodeEntered { correct } | Event::CodeChecked { correct } => {
            out.push(reach(Step::CodeEntered, Some(right(*correct))));
        }
        Event::KeysPressed { correct, .. } if after.attempts > before.attempts || after.status == Status::Verified => {
            out.push(reach(Step::CodeEntered, Some(right(*correct))));
        }
        Event::SmsSent { .. } => out.push(reach(Step::SmsSent, None)),
        _ => {}
    }
    if before.status != after.status {
        match after.status {
            Status::Verified => out.push(reach(Step::Verified, None)),
            Status::Failed => out.push(reach(Step::Failed, Some(failure(before, event, after)))),
            Status::Canceled => out.push(reach(Step::Canceled, None)),
            Status::Expired => out.push(reach(Step::Expired, None)),
            Status::Pending | Status::Calling | Status::InProgress => {}
        }
    }
    out
}

fn right(correct: bool) -> String {
    if correct { "right" } else { "wrong" }.into()
}

/// The failure reason, and for a call that ended with no code the prompt it
/// ended during: the greeting and code prompt (no code typed yet), the
/// wrong-code prompt (a wrong one typed), or the code read aloud.
fn failure(before: &AuthRequest, event: &Event, after: &AuthRequest) -> String {
    let reason = after.failure_reason.map_or("unknown", FailureReason::as_str);
    if !matches!(event, Event::CallEnded) {
        return reason.to_owned();
    }
    let prompt = match (before.delivery.channel, before.attempts) {
        (Channel::VoiceOtp, _) => "code_read",
        (_, 0) => "greeting",
        _ => "wrong_code",
    };
    format!("{reason}@{prompt}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::request::tests::sample as pending_outbound;

    #[test]
    fn an_outbound_verification_reaches_each_step_once() {
        let now = Utc::now();
        let r0 = pending_outbound(now);
        let mut seen = vec![registered(&r0).step];
        let mut r = r0;
        for event in [
            Event::CallPlaced { call_sid: "CA1".into(), account: "a".into() },
            Event::CallStatusReported { status: CallStatus::Ringing, sip_code: None, seconds: None },
            Event::CallStatusReported { status: CallStatus::Ringing, sip_code: None, seconds: None },
            Event::CallConnected { call_sid: "CA1".into() },
            Event::CodeEntered { correct: true },
        ] {
            let next = r.apply(&event, now).map(|t| t.next).unwrap_or_else(|_| r.clone());
            seen.extend(steps(&r, &event, &next, now).into_iter().map(|s| s.step));
            r = next;
        }
        assert_eq!(
            seen,
            vec![Step::Registered, Step::CallPlaced, Step::Ringing, Step::Answered, Step::CodeEntered, Step::Verified]
        );
    }

    #[test]
    fn a_call_that_is_busy_unanswered_or_failed_was_never_answered() {
        let now = Utc::now();
        for status in [CallStatus::Busy, CallStatus::NoAnswer, CallStatus::Failed, CallStatus::Canceled] {
            let r = pending_outbound(now);
            let placed = Event::CallPlaced { call_sid: "CA1".into(), account: "a".into() };
            let r = r.apply(&placed, now).unwrap().next;
            let event = Event::CallStatusReported { status, sip_code: None, seconds: None };
            let next = r.apply(&event, now).unwrap().next;
            assert_eq!(next.status, Status::Failed, "{status:?}");
            let got: Vec<Step> = steps(&r, &event, &next, now).into_iter().map(|s| s.step).collect();
            assert_eq!(got, vec![Step::Failed], "{status:?}");
        }
    }

    #[test]
    fn an_in_progress_status_before_the_answer_webhook_is_the_answer() {
        let now = Utc::now();
        let mut r = pending_outbound(now);
        r = r.apply(&Event::CallPlaced { call_sid: "CA1".into(), account: "a".into() }, now).unwrap().next;
        let status = Event::CallStatusReported { status: CallStatus::InProgress, sip_code: None, seconds: None };
        let up = r.apply(&status, now).unwrap().next;
        let got: Vec<Step> = steps(&r, &status, &up, now).into_iter().map(|s| s.step).collect();
        assert_eq!(got, vec![Step::Answered]);
        let connected = Event::CallConnected { call_sid: "CA1".into() };
        if let Ok(t) = up.apply(&connected, now) {
            assert!(steps(&up, &connected, &t.next, now).is_empty(), "answered once");
        }
    }

    #[test]
    fn a_call_that_ends_before_any_code_names_the_greeting() {
        let now = Utc::now();
        let mut r = pending_outbound(now);
        for event in [
            Event::CallPlaced { call_sid: "CA1".into(), account: "a".into() },
            Event::CallConnected { call_sid: "CA1".into() },
        ] {
            r = r.apply(&event, now).unwrap().next;
        }
        let ended = r.apply(&Event::CallEnded, now).unwrap().next;
        let got = steps(&r, &Event::CallEnded, &ended, now);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].step, got[0].detail.as_deref()), (Step::Failed, Some("no_input@greeting")));
    }
}
