//! The auth request and its state machine: every status change of the system is decided here.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::delivery::Delivery;
use super::phone::PhoneNumber;
use super::registration::Registration;
use super::status::{CallStatus, Channel, FailureReason, Locale, Mode, Status};

/// How many times "no input" repeats the prompt before the request fails.
pub const NO_INPUT_LIMIT: u8 = 3;

/// An auth request as stored. Timestamps are UTC; `code_hash` is a keyed hash.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthRequest {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub external_id: Option<String>,
    /// Keyed hash of the canonical registration body (idempotency check).
    pub fingerprint: Vec<u8>,
    pub mode: Mode,
    pub phone_number: PhoneNumber,
    pub code_hash: Vec<u8>,
    /// Set when the server generated the code, so a replay can derive it again.
    pub code_salt: Option<Vec<u8>>,
    pub code_length: u8,
    pub user_id: Option<String>,
    pub locale: Locale,
    pub max_attempts: u8,
    pub attempts: u8,
    pub no_input_count: u8,
    pub callback_url: Option<String>,
    pub status: Status,
    pub failure_reason: Option<FailureReason>,
    pub call_sid: Option<String>,
    pub call_status: Option<CallStatus>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub verified_at: Option<DateTime<Utc>>,
    /// Inbound mode: the number the user is to call, the tenant's own or the
    /// server's (`None` on requests stored before tenants had numbers: the server's).
    pub inbound_number: Option<PhoneNumber>,
    /// The id of the secret key its code hash and fingerprint were made with
    /// (`None` on requests stored before keys had ids: the current key).
    pub key_id: Option<String>,
    /// The channel the code goes out on, its fallback, and each attempt.
    pub delivery: Delivery,
}

/// Something that happened to a request: from the site, the provider, or the clock.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The provider accepted our outbound call and named it.
    CallPlaced { call_sid: String },
    /// The provider refused the call for good (a 4xx answer).
    CallRefused,
    /// A call for this request was connected (outbound answered, or inbound matched).
    CallConnected { call_sid: String },
    /// A status callback from the provider.
    CallStatusReported { status: CallStatus, sip_code: Option<u16> },
    /// Answering-machine detection says no human answered.
    MachineAnswered,
    /// An inbound call for this pending request carried a weaker STIR/SHAKEN
    /// attestation of its caller ID than the tenant requires.
    CallerIdUnverified,
    /// The caller typed a code; `correct` was decided by a constant-time compare.
    CodeEntered { correct: bool },
    /// The site checked the code the user typed on its page (`voice_otp`,
    /// `sms`, or after a fallback to SMS); `correct` as for `CodeEntered`.
    CodeChecked { correct: bool },
    /// A `voice_otp` call read the code aloud (once more).
    CodeRead,
    /// The provider accepted the text message carrying the code.
    SmsSent { sid: String },
    /// The provider reported the message delivered to the handset.
    SmsDelivered { sid: String },
    /// The provider refused the message, or reported it undelivered.
    SmsFailed,
    /// The gather timed out with no digits.
    NoInput,
    /// The call ended (after a grace period) without a result.
    CallEnded,
    /// The site canceled the request.
    Cancel,
    /// The clock passed `expires_at`.
    Expire,
}

/// Side effects a transition asks for; the store records them in the same commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Deliver the result to the site's `callback_url`.
    NotifySite,
    /// Hang up the provider call, if any, because the request ended first.
    EndCall { call_sid: String },
    /// Check back after a grace period: a `completed` status callback can
    /// overtake the Gather action that carries the caller's last digits.
    FinalizeCallLater,
    /// Send the code as a text message (the `sms` channel, or a fallback).
    SendSms,
}

/// Why an event did not change a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The request is terminal and never changes again.
    Terminal,
    /// The event belongs to another call than the one bound to this request.
    OtherCall,
    /// The event makes no sense in the current status (e.g. digits before answer).
    NotNow,
    /// Nothing to change (duplicate or late callback).
    NoChange,
}

/// The outcome of applying an event: the new state and what must follow from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub next: AuthRequest,
    pub effects: Vec<Effect>,
}

/// The stored forms of a new request's secrets (see `domain::code`).
#[derive(Debug, Clone, Default)]
pub struct Sealed {
    /// The id of the secret key the hash and fingerprint were made with.
    pub key_id: Option<String>,
    pub code_hash: Vec<u8>,
    pub code_salt: Option<Vec<u8>>,
    pub fingerprint: Vec<u8>,
}

impl AuthRequest {
    /// A new `pending` request of `tenant_id` for `reg`, registered at `now`.
    pub fn new(id: Uuid, tenant_id: Uuid, reg: &Registration, sealed: Sealed, now: DateTime<Utc>) -> Self {
        let mut delivery = Delivery::new(reg.channel, reg.fallback.clone());
        delivery.start(reg.channel, now);
        Self {
            delivery,
            id,
            tenant_id,
            external_id: reg.external_id.clone(),
            fingerprint: sealed.fingerprint,
            mode: reg.mode,
            phone_number: reg.phone_number.clone(),
            code_hash: sealed.code_hash,
            code_salt: sealed.code_salt,
            key_id: sealed.key_id,
            code_length: reg.code_length,
            user_id: reg.user_id.clone(),
            locale: reg.locale,
            max_attempts: reg.max_attempts,
            attempts: 0,
            no_input_count: 0,
            callback_url: reg.callback_url.clone(),
            status: Status::Pending,
            failure_reason: None,
            call_sid: None,
            call_status: None,
            created_at: now,
            updated_at: now,
            expires_at: now + chrono::Duration::seconds(i64::from(reg.ttl_seconds)),
            verified_at: None,
            inbound_number: None,
        }
    }

    /// The status a reader sees at `now`: past `expires_at`, a request that
    /// has not ended is shown as expired even before the sweeper stores it.
    pub fn status_at(&self, now: DateTime<Utc>) -> Status {
        if !self.status.is_terminal() && now >= self.expires_at { Status::Expired } else { self.status }
    }

    /// How the request reads at `now`: with expiry applied, without storing it.
    pub fn as_seen_at(&self, now: DateTime<Utc>) -> AuthRequest {
        let mut seen = self.clone();
        if seen.status_at(now) != seen.status {
            seen.status = Status::Expired;
            seen.updated_at = seen.expires_at;
        }
        seen
    }

    /// Attempts the caller has left.
    pub fn attempts_left(&self) -> u8 {
        self.max_attempts.saturating_sub(self.attempts)
    }

    /// Decides what `event` does to this request at `now`. This is the only
    /// place in the program where a status changes.
    pub fn apply(&self, event: &Event, now: DateTime<Utc>) -> Result<Transition, Refusal> {
        if self.status.is_terminal() {
            return self.apply_to_terminal(event, now);
        }
        if now >= self.expires_at || *event == Event::Expire {
            if now < self.expires_at {
                return Err(Refusal::NotNow);
            }
            return Ok(self.expire(event, now));
        }
        let mut next = self.clone();
        next.updated_at = now;
        match event {
            Event::Expire => Err(Refusal::NotNow),
            Event::Cancel => Ok(self.finish(Status::Canceled, None, now)),
            Event::CallPlaced { call_sid } => {
                if let Some(bound) = &self.call_sid {
                    // The answer webhook can win the race and bind the call first.
                    return if bound == call_sid { Err(Refusal::NoChange) } else { Err(Refusal::OtherCall) };
                }
                next.call_sid = Some(call_sid.clone());
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
                next.call_sid = Some(call_sid.clone());
                next.delivery.mark("answered", Some(call_sid), now);
                next.status = Status::InProgress;
                if self.call_status.is_none_or(|c| c.rank() < CallStatus::InProgress.rank()) {
                    next.call_status = Some(CallStatus::InProgress);
                }
                Ok(plain(next))
            }
            Event::CallStatusReported { status, sip_code } => self.apply_call_status(next, *status, *sip_code, now),
            Event::MachineAnswered => {
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
                next.attempts = attempts;
                Ok(plain(next))
            }
            Event::CodeChecked { correct } => self.checked(next, *correct, now),
            Event::CodeRead => {
                if self.status != Status::InProgress || self.delivery.current() != Channel::VoiceOtp {
                    return Err(Refusal::NotNow);
                }
                next.delivery.readings = next.delivery.readings.saturating_add(1);
                Ok(plain(next))
            }
            Event::SmsSent { sid } => {
                if self.delivery.current() != Channel::Sms || self.delivery.current_status() != Some("started") {
                    return Err(Refusal::NoChange);
                }
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
                next.no_input_count = count;
                Ok(plain(next))
            }
            Event::CallEnded => {
                if self.delivery.current() == Channel::Sms {
                    // The call is over; the code went out by text and is typed on the page.
                    return Err(Refusal::NoChange);
                }
                if self.status != Status::InProgress {
                    return Ok(self.unanswered(next, FailureReason::NoAnswer, now));
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
        let bound = |sid: &str| self.call_sid.as_deref().is_none_or(|c| c == sid);
        let answering = match event {
            Event::CallConnected { call_sid } => bound(call_sid),
            Event::CodeEntered { .. } | Event::NoInput | Event::CodeRead => true,
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample(now: DateTime<Utc>) -> AuthRequest {
        let mut reg = Registration::with_defaults(PhoneNumber::from_stored("+819012345678".into()));
        reg.callback_url = Some("https://example.com/cb".into());
        AuthRequest::new(Uuid::now_v7(), Uuid::now_v7(), &reg, Sealed::default(), now)
    }

    fn step(r: &AuthRequest, e: Event, now: DateTime<Utc>) -> AuthRequest {
        r.apply(&e, now).unwrap().next
    }

    #[test]
    fn happy_outbound_path() {
        let now = Utc::now();
        let r = sample(now);
        let r = step(&r, Event::CallPlaced { call_sid: "CA1".into() }, now);
        assert_eq!(r.status, Status::Calling);
        let r = step(&r, Event::CallConnected { call_sid: "CA1".into() }, now);
        assert_eq!(r.status, Status::InProgress);
        let t = r.apply(&Event::CodeEntered { correct: true }, now).unwrap();
        assert_eq!(t.next.status, Status::Verified);
        assert_eq!(t.next.verified_at, Some(now));
        assert_eq!(t.effects, vec![Effect::NotifySite]);
    }

    #[test]
    fn wrong_codes_until_max_attempts() {
        let now = Utc::now();
        let mut r = step(&sample(now), Event::CallConnected { call_sid: "CA1".into() }, now);
        for n in 1..3 {
            r = step(&r, Event::CodeEntered { correct: false }, now);
            assert_eq!((r.status, r.attempts), (Status::InProgress, n));
        }
        r = step(&r, Event::CodeEntered { correct: false }, now);
        assert_eq!(r.status, Status::Failed);
        assert_eq!(r.failure_reason, Some(FailureReason::WrongCode));
        assert_eq!(r.attempts, 3);
        assert_eq!(r.apply(&Event::CodeEntered { correct: true }, now), Err(Refusal::Terminal));
    }

    #[test]
    fn answer_webhook_before_call_placed_is_fine() {
        let now = Utc::now();
        let r = step(&sample(now), Event::CallConnected { call_sid: "CA1".into() }, now);
        assert_eq!(r.apply(&Event::CallPlaced { call_sid: "CA1".into() }, now), Err(Refusal::NoChange));
        assert_eq!(r.apply(&Event::CallConnected { call_sid: "CA2".into() }, now), Err(Refusal::OtherCall));
    }

    #[test]
    fn an_in_progress_callback_before_the_answer_still_lets_the_answer_bind_the_call() {
        let now = Utc::now();
        let in_progress = Event::CallStatusReported { status: CallStatus::InProgress, sip_code: None };
        let r = step(&sample(now), in_progress, now);
        assert_eq!((r.status, r.call_sid.as_deref()), (Status::InProgress, None));
        let r = step(&r, Event::CallConnected { call_sid: "CA1".into() }, now);
        assert_eq!((r.status, r.call_sid.as_deref()), (Status::InProgress, Some("CA1")));
        assert_eq!(r.apply(&Event::CallConnected { call_sid: "CA1".into() }, now), Err(Refusal::NoChange));
    }

    #[test]
    fn late_status_callbacks_never_go_backwards() {
        let now = Utc::now();
        let r = step(&sample(now), Event::CallConnected { call_sid: "CA1".into() }, now);
        let ringing = Event::CallStatusReported { status: CallStatus::Ringing, sip_code: None };
        assert_eq!(r.apply(&ringing, now), Err(Refusal::NoChange));
        let done = Event::CallStatusReported { status: CallStatus::Completed, sip_code: None };
        let t = r.apply(&done, now).unwrap();
        assert_eq!(t.next.status, Status::InProgress);
        assert_eq!(t.effects, vec![Effect::FinalizeCallLater]);
        let r = step(&t.next, Event::CallEnded, now);
        assert_eq!((r.status, r.failure_reason), (Status::Failed, Some(FailureReason::NoInput)));
    }

    #[test]
    fn decline_busy_and_no_answer() {
        let now = Utc::now();
        let r = sample(now);
        let busy = |sip| Event::CallStatusReported { status: CallStatus::Busy, sip_code: sip };
        assert_eq!(step(&r, busy(Some(603)), now).failure_reason, Some(FailureReason::Rejected));
        assert_eq!(step(&r, busy(Some(486)), now).failure_reason, Some(FailureReason::Busy));
        let na = Event::CallStatusReported { status: CallStatus::NoAnswer, sip_code: None };
        assert_eq!(step(&r, na, now).failure_reason, Some(FailureReason::NoAnswer));
    }

    #[test]
    fn expiry_wins_over_any_event_and_shows_on_read() {
        let now = Utc::now();
        let r = sample(now);
        let later = r.expires_at;
        assert_eq!(r.status_at(later), Status::Expired);
        let t = r.apply(&Event::CodeEntered { correct: true }, later).unwrap();
        assert_eq!(t.next.status, Status::Expired);
        assert_eq!(r.apply(&Event::Expire, now), Err(Refusal::NotNow));
    }

    #[test]
    fn an_expiry_on_a_connected_call_leaves_the_hang_up_to_the_call_s_own_answer() {
        let now = Utc::now();
        let placed = step(&sample(now), Event::CallPlaced { call_sid: "CA9".into() }, now);
        let talking = step(&placed, Event::CallConnected { call_sid: "CA9".into() }, now);
        let later = talking.expires_at;
        // Decided by the call's webhook: its answer says "expired" and hangs up.
        for event in [Event::CodeEntered { correct: true }, Event::NoInput] {
            let t = talking.apply(&event, later).unwrap();
            assert_eq!((t.next.status, t.next.call_status), (Status::Expired, Some(CallStatus::Completed)));
            assert!(!t.effects.iter().any(|e| matches!(e, Effect::EndCall { .. })), "{event:?}: {:?}", t.effects);
        }
        // By the sweeper: the call's next webhook says it.
        let t = talking.apply(&Event::Expire, later).unwrap();
        assert_eq!((t.next.status, t.next.call_status), (Status::Expired, Some(CallStatus::InProgress)));
        assert!(!t.effects.iter().any(|e| matches!(e, Effect::EndCall { .. })), "{:?}", t.effects);
        // A call still ringing is hung up: nobody would hear anything.
        let t = placed.apply(&Event::Expire, placed.expires_at).unwrap();
        assert!(t.effects.contains(&Effect::EndCall { call_sid: "CA9".into() }));
    }

    #[test]
    fn cancel_hangs_up_a_live_call() {
        let now = Utc::now();
        let r = step(&sample(now), Event::CallPlaced { call_sid: "CA9".into() }, now);
        let t = r.apply(&Event::Cancel, now).unwrap();
        assert_eq!(t.next.status, Status::Canceled);
        assert!(t.effects.contains(&Effect::EndCall { call_sid: "CA9".into() }));
    }

    fn with_channel(now: DateTime<Utc>, channel: Channel, fallback: Vec<Channel>) -> AuthRequest {
        let mut reg = Registration::with_defaults(PhoneNumber::from_stored("+819012345678".into()));
        reg.channel = channel;
        reg.fallback = fallback;
        AuthRequest::new(Uuid::now_v7(), Uuid::now_v7(), &reg, Sealed::default(), now)
    }

    #[test]
    fn an_unanswered_call_with_a_fallback_sends_a_text_instead_of_failing() {
        let now = Utc::now();
        let r = step(
            &with_channel(now, Channel::VoiceDtmf, vec![Channel::Sms]),
            Event::CallPlaced { call_sid: "CA1".into() },
            now,
        );
        let busy = Event::CallStatusReported { status: CallStatus::Busy, sip_code: Some(603) };
        let t = r.apply(&busy, now).unwrap();
        assert_eq!((t.next.status, t.effects.clone()), (Status::Calling, vec![Effect::SendSms]));
        assert_eq!(t.next.delivery.attempts[0].status, "rejected");
        assert!(t.next.delivery.uses_fallback_code());
        // The call's later news changes nothing; the code is now checked on the page.
        assert!(t.next.apply(&Event::CallEnded, now).is_err());
        assert!(t.next.apply(&Event::CodeEntered { correct: true }, now).is_err());
        let sent = step(&t.next, Event::SmsSent { sid: "SM1".into() }, now);
        assert_eq!(sent.status, Status::InProgress);
        assert_eq!(step(&sent, Event::CodeChecked { correct: true }, now).status, Status::Verified);
        // No second fallback: a failed text fails the request.
        let failed = step(&sent, Event::SmsFailed, now);
        assert_eq!((failed.status, failed.failure_reason), (Status::Failed, Some(FailureReason::DeliveryFailed)));
    }

    #[test]
    fn a_busy_report_that_overtakes_the_placed_call_leaves_the_text_s_attempt_alone() {
        let now = Utc::now();
        let r = with_channel(now, Channel::VoiceDtmf, vec![Channel::Sms]);
        let busy = Event::CallStatusReported { status: CallStatus::Busy, sip_code: None };
        let r = step(&r, busy, now);
        let r = step(&r, Event::SmsSent { sid: "SM1".into() }, now);
        let r = step(&r, Event::CallPlaced { call_sid: "CA1".into() }, now);
        let sms = r.delivery.attempts.last().unwrap();
        assert_eq!((sms.channel, sms.status.as_str(), sms.sid.as_deref()), (Channel::Sms, "sent", Some("SM1")));
        assert_eq!(r.call_sid.as_deref(), Some("CA1"));
    }

    #[test]
    fn a_voice_otp_request_waits_for_the_page_after_its_call() {
        let now = Utc::now();
        let r = with_channel(now, Channel::VoiceOtp, Vec::new());
        let r = step(&r, Event::CallConnected { call_sid: "CA1".into() }, now);
        assert_eq!(r.apply(&Event::CallEnded, now), Err(Refusal::NoChange), "the code was read");
        assert!(r.apply(&Event::CodeEntered { correct: true }, now).is_err(), "not typed on the phone");
        let r = step(&r, Event::CodeChecked { correct: false }, now);
        assert_eq!((r.status, r.attempts), (Status::InProgress, 1));
        let t = r.apply(&Event::CodeChecked { correct: true }, now).unwrap();
        assert_eq!(t.next.status, Status::Verified);
        assert!(t.effects.contains(&Effect::EndCall { call_sid: "CA1".into() }), "a call still reading hangs up");
        // Unanswered without fallback: fails as before.
        let r =
            step(&with_channel(now, Channel::VoiceOtp, Vec::new()), Event::CallPlaced { call_sid: "CA2".into() }, now);
        let na = step(&r, Event::CallStatusReported { status: CallStatus::NoAnswer, sip_code: None }, now);
        assert_eq!(na.failure_reason, Some(FailureReason::NoAnswer));
    }

    #[test]
    fn a_voice_dtmf_request_is_never_checked_on_the_page() {
        let now = Utc::now();
        let r = step(&sample(now), Event::CallConnected { call_sid: "CA1".into() }, now);
        assert_eq!(r.apply(&Event::CodeChecked { correct: true }, now), Err(Refusal::NotNow));
    }
}
