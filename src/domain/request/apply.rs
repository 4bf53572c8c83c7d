//! `AuthRequest::apply`: the one function that decides every transition, and its helpers.

use chrono::{DateTime, Utc};

use super::{AuthRequest, Effect, Event, NO_INPUT_LIMIT, Refusal, Transition};
use crate::domain::status::{CallStatus, Channel, FailureReason, Mode, Status};

impl AuthRequest {
    /// Decides what `event` does to this request at `now`. This is the only
    /// place in the program where a status changes.
    pub fn apply(&self, event: &Event, now: DateTime<Utc>) -> Result<Transition, Refusal> {
        if self.ignores(event) {
            return Err(Refusal::NoChange);
        }
        if self.status.is_terminal() {
            return self.apply_to_terminal(event, now);
        }
        if now >= self.expires_at || *event == Event::Expire {
            if now < self.expires_at {
                return Err(Refusal::NotNow);
            }
            return Ok(self.expire(event, now));
        }
        // The request as this event leaves it, copied only by the events that change it.
        let fresh = || AuthRequest { updated_at: now, ..self.clone() };
        match event {
            Event::Expire => Err(Refusal::NotNow),
            Event::Cancel => Ok(self.finish(Status::Canceled, None, now)),
            Event::CallPlaced { call_sid, account } => {
                if let Some(bound) = &self.call_sid {
                    // The answer webhook can win the race and bind the call first.
                    return if bound == call_sid { Err(Refusal::NoChange) } else { Err(Refusal::OtherCall) };
                }
                let mut next = fresh();
                next.call_sid = Some(call_sid.clone());
                next.delivery.left_queue();
                next.delivery.account = Some(account.clone());
                if next.call_status == Some(CallStatus::Queued) {
                    next.call_status = Some(CallStatus::Initiated);
                }
                // The call's busy report can overtake this record, and the request
                // may have moved on to a text message: that attempt is not the call's.
                if next.delivery.current() != Channel::Sms {
                    next.delivery.mark("started", Some(call_sid), now);
                }
                if next.status == Status::Pending {
                    next.status = Status::Calling;
                }
                Ok(plain(next))
            }
            Event::CallRefused => Ok(self.finish(Status::Failed, Some(FailureReason::CallFailed), now)),
            Event::CallQueued { account, at } => {
                // Only a call not yet placed (nor reported on by the provider) waits.
                let reported = self.call_status.is_some_and(|c| c != CallStatus::Queued);
                if self.status != Status::Pending || self.mode != Mode::Outbound || self.call_sid.is_some() || reported
                {
                    return Err(Refusal::NotNow);
                }
                if self.delivery.queued_until() == Some(*at) {
                    return Err(Refusal::NoChange);
                }
                let mut next = fresh();
                next.delivery.queue(account, *at);
                next.call_status = Some(CallStatus::Queued);
                Ok(plain(next))
            }
            Event::CallNotPlaced => {
                if self.status != Status::Pending || self.call_sid.is_some() {
                    return Err(Refusal::NotNow);
                }
                Ok(self.finish(Status::Failed, Some(FailureReason::NotPlaced), now))
            }
            Event::CallConnected { call_sid } => {
                self.check_call(call_sid)?;
                if self.delivery.current() == Channel::Sms {
                    return Err(Refusal::NotNow);
                }
                // An `in-progress` status callback may have come first (before
                // even the placed call was recorded): the call is connected but
                // not yet bound, and binding it now serves the caller.
                if self.status == Status::InProgress && self.call_sid.is_some() {
                    return Err(Refusal::NoChange);
                }
                let mut next = fresh();
                next.call_sid = Some(call_sid.clone());
                next.delivery.mark("answered", Some(call_sid), now);
                next.status = Status::InProgress;
                if self.call_status.is_none_or(|c| c.rank() < CallStatus::InProgress.rank()) {
                    next.call_status = Some(CallStatus::InProgress);
                }
                Ok(plain(next))
            }
            Event::CallStatusReported { status, sip_code, .. } => {
                self.apply_call_status(fresh(), *status, *sip_code, now)
            }
            Event::MachineAnswered => {
                let mut next = fresh();
                next.call_status = Some(CallStatus::Completed);
                Ok(self.unanswered(next, FailureReason::Rejected, now))
            }
            Event::CallerIdUnverified => {
                if self.status != Status::Pending || self.mode != Mode::Inbound {
                    return Err(Refusal::NotNow);
                }
                Ok(self.finish(Status::Failed, Some(FailureReason::Attestation), now))
            }
            Event::CodeEntered { correct } => {
                if self.status != Status::InProgress || self.delivery.checked_on_page() {
                    return Err(Refusal::NotNow);
                }
                if *correct {
                    let mut t = self.finish(Status::Verified, None, now);
                    t.next.verified_at = Some(now);
                    return Ok(hangs_up(t));
                }
                let attempts = self.attempts.saturating_add(1);
                if attempts >= self.max_attempts {
                    let mut t = self.finish(Status::Failed, Some(FailureReason::WrongCode), now);
                    t.next.attempts = attempts;
                    return Ok(hangs_up(t));
                }
                let mut next = fresh();
                next.attempts = attempts;
                Ok(plain(next))
            }
            Event::KeysPressed { correct, .. } => self.apply(&Event::CodeEntered { correct: *correct }, now),
            Event::InboundCodeEntered { call_sid, correct } => self.inbound_code(fresh(), call_sid, *correct, now),
            Event::CodeChecked { correct } => self.checked(fresh(), *correct, now),
            Event::CodeRead => {
                if self.status != Status::InProgress || self.delivery.current() != Channel::VoiceOtp {
                    return Err(Refusal::NotNow);
                }
                let mut next = fresh();
                next.delivery.readings = next.delivery.readings.saturating_add(1);
                Ok(plain(next))
            }
            Event::SmsSent { sid } => {
                if !self.delivery.awaits_sending() {
                    return Err(Refusal::NoChange);
                }
                let mut next = fresh();
                next.delivery.mark("sent", Some(sid), now);
                if next.status.rank() < Status::InProgress.rank() {
                    next.status = Status::InProgress;
                }
                Ok(plain(next))
            }
            Event::SmsDelivered { sid } => {
                if self.delivery.current() != Channel::Sms || self.delivery.current_status() == Some("delivered") {
                    return Err(Refusal::NoChange);
                }
                // The report can overtake the record of the sending: it names the message too.
                let mut next = fresh();
                next.delivery.mark("delivered", (!sid.is_empty()).then_some(sid.as_str()), now);
                if next.status.rank() < Status::InProgress.rank() {
                    next.status = Status::InProgress;
                }
                Ok(plain(next))
            }
            Event::SmsFailed => {
                if self.delivery.current() != Channel::Sms {
                    return Err(Refusal::NoChange);
                }
                let mut t = self.finish(Status::Failed, Some(FailureReason::DeliveryFailed), now);
                t.next.delivery.mark("undelivered", None, now);
                Ok(t)
            }
            Event::NoInput => {
                if self.status != Status::InProgress || self.delivery.checked_on_page() {
                    return Err(Refusal::NotNow);
                }
                let count = self.no_input_count.saturating_add(1);
                if count >= NO_INPUT_LIMIT {
                    let mut t = self.finish(Status::Failed, Some(FailureReason::NoInput), now);
                    t.next.no_input_count = count;
                    return Ok(hangs_up(t));
                }
                let mut next = fresh();
                next.no_input_count = count;
                Ok(plain(next))
            }
            Event::CallEnded => {
                if self.delivery.current() == Channel::Sms {
                    // The call is over; the code went out by text and is typed on the page.
                    return Err(Refusal::NoChange);
                }
                if self.status != Status::InProgress {
                    return Ok(self.unanswered(fresh(), FailureReason::NoAnswer, now));
                }
                if self.delivery.channel == Channel::VoiceOtp {
                    // The code was read aloud; the user types it on the page.
                    return Err(Refusal::NoChange);
                }
                let reason = if self.attempts > 0 { FailureReason::WrongCode } else { FailureReason::NoInput };
                Ok(self.finish(Status::Failed, Some(reason), now))
            }
        }
    }

    /// A code typed on an inbound call: binds the call to this pending
    /// request and enters the code, or enters it on the call already bound.
    fn inbound_code(
        &self,
        next: AuthRequest,
        call_sid: &str,
        correct: bool,
        now: DateTime<Utc>,
    ) -> Result<Transition, Refusal> {
        if self.mode != Mode::Inbound {
            return Err(Refusal::NotNow);
        }
        let bound = if self.status == Status::Pending {
            self.apply(&Event::CallConnected { call_sid: call_sid.to_owned() }, now)?.next
        } else if self.is_call(call_sid) {
            next
        } else {
            return Err(Refusal::OtherCall);
        };
        bound.apply(&Event::CodeEntered { correct }, now)
    }

    /// Facts that by the rules change nothing, whatever the request's state
    /// and the time: keys that are no code (a repeat, a code cut short), a
    /// reading of the code past its limit. As if the provider had not called.
    fn ignores(&self, event: &Event) -> bool {
        match event {
            Event::KeysPressed { keys, .. } => !keys.are_a_code(self.code_length),
            Event::CodeRead => !self.delivery.may_read_again(),
            _ => false,
        }
    }

    /// A terminal request keeps its result; only the informational
    /// `call_status` may still advance, so the site sees the call end.
    fn apply_to_terminal(&self, event: &Event, now: DateTime<Utc>) -> Result<Transition, Refusal> {
        if let Event::CallStatusReported { status, .. } = event {
            let advances = self.call_status.is_none_or(|c| status.rank() > c.rank());
            if advances && self.call_sid.is_some() {
                let mut next = self.clone();
                next.call_status = Some(*status);
                next.updated_at = now;
                return Ok(plain(next));
            }
        }
        Err(Refusal::Terminal)
    }

    fn apply_call_status(
        &self,
        mut next: AuthRequest,
        status: CallStatus,
        sip_code: Option<u16>,
        now: DateTime<Utc>,
    ) -> Result<Transition, Refusal> {
        if self.call_status.is_some_and(|c| status.rank() < c.rank() || c == status) {
            return Err(Refusal::NoChange);
        }
        if self.delivery.current() == Channel::Sms {
            // A call's late news after the request moved on to a text message.
            return Err(Refusal::NoChange);
        }
        next.call_status = Some(status);
        match status {
            CallStatus::Queued | CallStatus::Initiated | CallStatus::Ringing => {
                if next.status == Status::Pending {
                    next.status = Status::Calling;
                }
                Ok(plain(next))
            }
            CallStatus::InProgress => {
                if next.status.rank() < Status::InProgress.rank() {
                    next.status = Status::InProgress;
                }
                Ok(plain(next))
            }
            CallStatus::Completed => Ok(Transition { next, effects: vec![Effect::FinalizeCallLater] }),
            // SIP 603 Decline: the callee pressed "decline".
            CallStatus::Busy if sip_code == Some(603) => Ok(self.unanswered(next, FailureReason::Rejected, now)),
            CallStatus::Busy => Ok(self.unanswered(next, FailureReason::Busy, now)),
            CallStatus::NoAnswer => Ok(self.unanswered(next, FailureReason::NoAnswer, now)),
            CallStatus::Failed | CallStatus::Canceled => {
                next.delivery.mark(FailureReason::CallFailed.as_str(), None, now);
                Ok(next.finish(Status::Failed, Some(FailureReason::CallFailed), now))
            }
        }
    }

    /// A call that reached nobody (`reason`: `no_answer`, `busy` or
    /// `rejected`): the next fallback channel is tried if one is left, and
    /// otherwise the request fails. `next` carries the call's last status.
    fn unanswered(&self, mut next: AuthRequest, reason: FailureReason, now: DateTime<Utc>) -> Transition {
        next.delivery.mark(reason.as_str(), None, now);
        if let Some(channel) = next.delivery.next_fallback() {
            next.delivery.start(channel, now);
            next.updated_at = now;
            return Transition { next, effects: vec![Effect::SendSms] };
        }
        next.finish(Status::Failed, Some(reason), now)
    }

    /// The site checked the code its user typed on the page.
    fn checked(&self, mut next: AuthRequest, correct: bool, now: DateTime<Utc>) -> Result<Transition, Refusal> {
        if !self.delivery.checked_on_page() {
            return Err(Refusal::NotNow);
        }
        let mut t = if correct {
            let mut t = self.finish(Status::Verified, None, now);
            t.next.verified_at = Some(now);
            t
        } else {
            next.attempts = self.attempts.saturating_add(1);
            if next.attempts < self.max_attempts {
                return Ok(plain(next));
            }
            let mut t = next.finish(Status::Failed, Some(FailureReason::WrongCode), now);
            t.next.attempts = next.attempts;
            t
        };
        // A call still reading the code aloud has nothing more to say.
        let live = self.call_status.is_none_or(|c| c.rank() != 3);
        if let (Some(sid), true) = (&self.call_sid, live)
            && !t.effects.iter().any(|e| matches!(e, Effect::EndCall { .. }))
        {
            t.effects.push(Effect::EndCall { call_sid: sid.clone() });
        }
        Ok(t)
    }

    fn check_call(&self, call_sid: &str) -> Result<(), Refusal> {
        match &self.call_sid {
            Some(bound) if bound != call_sid => Err(Refusal::OtherCall),
            _ => Ok(()),
        }
    }

    /// Moves to a terminal status and lists the effects every ending has.
    fn finish(&self, status: Status, reason: Option<FailureReason>, now: DateTime<Utc>) -> Transition {
        let mut next = self.clone();
        next.status = status;
        next.failure_reason = reason;
        next.updated_at = now;
        let mut effects = Vec::new();
        if next.callback_url.is_some() {
            effects.push(Effect::NotifySite);
        }
        let call_live = self.call_status.is_none_or(|c| c.rank() != 3);
        if let (Some(sid), true, Status::Canceled | Status::Expired) = (&self.call_sid, call_live, status) {
            effects.push(Effect::EndCall { call_sid: sid.clone() });
        }
        Transition { next, effects }
    }
}

impl AuthRequest {
    /// Expiry. A connected call is not hung up through the provider's API,
    /// which would cut off the "expired" prompt: its own webhook says it and
    /// hangs up — the webhook deciding this expiry, or else the call's next
    /// one (its digits, or the Gather's silence within the gather timeout).
    fn expire(&self, event: &Event, now: DateTime<Utc>) -> Transition {
        let t = self.finish(Status::Expired, None, now);
        let answering = match event {
            Event::CallConnected { call_sid } | Event::InboundCodeEntered { call_sid, .. } => {
                self.may_be_call(call_sid)
            }
            Event::CodeEntered { .. } | Event::KeysPressed { .. } | Event::NoInput | Event::CodeRead => true,
            _ => false,
        };
        let connected = self.status == Status::InProgress
            && self.call_status == Some(CallStatus::InProgress)
            && self.delivery.current() != Channel::Sms;
        if !answering && !connected {
            return t;
        }
        let mut t = if answering { hangs_up(t) } else { t };
        t.effects.retain(|e| !matches!(e, Effect::EndCall { .. }));
        t
    }
}

fn plain(next: AuthRequest) -> Transition {
    Transition { next, effects: Vec::new() }
}

/// An ending decided on a connected call, whose answer ends with `<Hangup/>`:
/// the call's end is recorded in the same write, so the provider's
/// `completed` callback that follows changes nothing and costs no write.
fn hangs_up(mut t: Transition) -> Transition {
    t.next.call_status = Some(CallStatus::Completed);
    t
}
