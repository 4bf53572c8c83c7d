//! The auth request and its state machine: every status change of the system is decided here.

use chrono::{DateTime, Utc};
use uuid::Uuid;

mod apply;

use super::call::Keys;
use super::code::{Code, CodeKeys, KeyRing};
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
    /// The provider account `account` accepted our outbound call and named it.
    CallPlaced { call_sid: String, account: String },
    /// The provider refused the call for good (a 4xx answer).
    CallRefused,
    /// The call waits for a start slot of provider account `account`'s pace,
    /// and leaves at `at` (see `domain::pacing`).
    CallQueued { account: String, at: DateTime<Utc> },
    /// No start slot came before the request would expire: it fails (`not_placed`).
    CallNotPlaced,
    /// A call for this request was connected (outbound answered, or inbound matched).
    CallConnected { call_sid: String },
    /// A status callback from the provider.
    /// `seconds`: how long the call was up, in a final report that says.
    CallStatusReported { status: CallStatus, sip_code: Option<u16>, seconds: Option<u32> },
    /// Answering-machine detection says no human answered.
    MachineAnswered,
    /// An inbound call for this pending request carried a weaker STIR/SHAKEN
    /// attestation of its caller ID than the tenant requires.
    CallerIdUnverified,
    /// The caller typed a code; `correct` was decided by a constant-time compare.
    CodeEntered { correct: bool },
    /// The caller pressed `keys` at the code prompt; `correct` says whether
    /// their digits are the code. Keys that are no code (see
    /// `Keys::are_a_code`) change nothing and cost no attempt.
    KeysPressed { keys: Keys, correct: bool },
    /// A caller on an inbound number typed the code of this request (the code
    /// picked it among the requests waiting on a shared number): binds call
    /// `call_sid` to it, if not yet, and enters the code, in one transition.
    InboundCodeEntered { call_sid: String, correct: bool },
    /// The site checked the code the user typed on its page (`voice_otp`,
    /// `sms`, or after a fallback to SMS); `correct` as for `CodeEntered`.
    CodeChecked { correct: bool },
    /// A `voice_otp` call read the code aloud (once more); at most
    /// `OTP_REPEATS` times, more change nothing.
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

    /// The status and the time of its last change that a reader sees at
    /// `now`: an overdue request expired at `expires_at`.
    pub fn seen_at(&self, now: DateTime<Utc>) -> (Status, DateTime<Utc>) {
        match self.status_at(now) {
            Status::Expired if self.status != Status::Expired => (Status::Expired, self.expires_at),
            status => (status, self.updated_at),
        }
    }

    /// How the request reads at `now`: with expiry applied, without storing it.
    pub fn as_seen_at(&self, now: DateTime<Utc>) -> AuthRequest {
        let mut seen = self.clone();
        (seen.status, seen.updated_at) = self.seen_at(now);
        seen
    }

    /// Attempts the caller has left.
    pub fn attempts_left(&self) -> u8 {
        self.max_attempts.saturating_sub(self.attempts)
    }

    /// Whether the site is given the code to show its user: only for
    /// `voice_dtmf`, whose code is typed on the phone. Every other channel
    /// brings the code to the user, and a code the page shows would prove nothing.
    pub fn site_sees_code(&self) -> bool {
        self.delivery.channel == Channel::VoiceDtmf
    }

    /// The code the server generated for this request (`None`: the site chose it).
    pub fn generated_code(&self, keys: &CodeKeys) -> Option<Code> {
        Some(keys.generated_code(self.code_salt.as_deref()?, self.code_length))
    }

    /// The code the user is to enter now, when the server can derive it:
    /// after a `voice_dtmf` request fell back to SMS, the second code (the
    /// first was shown on the site's page); otherwise the generated one.
    /// `keys` are this request's (`KeyRing::for_request`).
    pub fn expected_code(&self, keys: &CodeKeys) -> Option<Code> {
        if self.delivery.uses_fallback_code() {
            return Some(keys.fallback_code(self.id.as_bytes(), self.code_length));
        }
        self.generated_code(keys)
    }

    /// Whether `entered` is the code the user is to enter now (see
    /// `expected_code`), compared in constant time as keyed hashes.
    pub fn is_expected_code(&self, ring: &KeyRing, entered: &str) -> bool {
        let Some(keys) = ring.for_request(self.key_id.as_deref()) else { return false };
        let id = self.id.as_bytes();
        if self.delivery.uses_fallback_code() {
            let expected = keys.fallback_code(id, self.code_length);
            return keys.verify(id, entered, &keys.hash(id, expected.expose()));
        }
        keys.verify(id, entered, &self.code_hash)
    }

    /// Whether call `sid` is the call bound to this request.
    pub fn is_call(&self, sid: &str) -> bool {
        self.call_sid.as_deref() == Some(sid)
    }

    /// Whether news of call `sid` may be about this request: its bound call,
    /// or any call before one is bound (only this request's own URL names it then).
    pub fn may_be_call(&self, sid: &str) -> bool {
        self.call_sid.as_deref().is_none_or(|bound| bound == sid)
    }

    /// Whether this request's outbound call is still to be placed at `now`.
    pub fn awaits_call(&self, now: DateTime<Utc>) -> bool {
        self.status_at(now) == Status::Pending && self.call_sid.is_none()
    }

    /// Whether this request's call, if it had one, is over: its provider
    /// reported an end, or the request ended (a hang-up job follows).
    pub fn call_is_over(&self) -> bool {
        self.status.is_terminal() || self.call_status.is_some_and(|c| c.rank() == CallStatus::Completed.rank())
    }
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
    fn an_overdue_request_reads_expired_at_its_expiry_and_an_ended_one_as_it_ended() {
        let now = Utc::now();
        let r = sample(now);
        let late = r.expires_at + chrono::Duration::seconds(5);
        assert_eq!(r.seen_at(now), (Status::Pending, now));
        assert_eq!(r.seen_at(late), (Status::Expired, r.expires_at));
        let seen = r.as_seen_at(late);
        assert_eq!((seen.status, seen.updated_at), (Status::Expired, r.expires_at));
        let view = crate::domain::view::RequestView::at(&r, None, late);
        assert_eq!(
            (view.status, view.updated_at),
            (Status::Expired, seen.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        );
        let verified = step(
            &step(&r, Event::CallConnected { call_sid: "CA1".into() }, now),
            Event::CodeEntered { correct: true },
            now,
        );
        assert_eq!(verified.seen_at(late), (Status::Verified, now));
    }

    #[test]
    fn happy_outbound_path() {
        let now = Utc::now();
        let r = sample(now);
        let r = step(&r, Event::CallPlaced { call_sid: "CA1".into(), account: "twilio".into() }, now);
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
        assert_eq!(
            r.apply(&Event::CallPlaced { call_sid: "CA1".into(), account: "twilio".into() }, now),
            Err(Refusal::NoChange)
        );
        assert_eq!(r.apply(&Event::CallConnected { call_sid: "CA2".into() }, now), Err(Refusal::OtherCall));
    }

    #[test]
    fn an_in_progress_callback_before_the_answer_still_lets_the_answer_bind_the_call() {
        let now = Utc::now();
        let in_progress = Event::CallStatusReported { status: CallStatus::InProgress, sip_code: None, seconds: None };
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
        let ringing = Event::CallStatusReported { status: CallStatus::Ringing, sip_code: None, seconds: None };
        assert_eq!(r.apply(&ringing, now), Err(Refusal::NoChange));
        let done = Event::CallStatusReported { status: CallStatus::Completed, sip_code: None, seconds: None };
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
        let busy = |sip| Event::CallStatusReported { status: CallStatus::Busy, sip_code: sip, seconds: None };
        assert_eq!(step(&r, busy(Some(603)), now).failure_reason, Some(FailureReason::Rejected));
        assert_eq!(step(&r, busy(Some(486)), now).failure_reason, Some(FailureReason::Busy));
        let na = Event::CallStatusReported { status: CallStatus::NoAnswer, sip_code: None, seconds: None };
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
        let placed = step(&sample(now), Event::CallPlaced { call_sid: "CA9".into(), account: "twilio".into() }, now);
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
        let r = step(&sample(now), Event::CallPlaced { call_sid: "CA9".into(), account: "twilio".into() }, now);
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
            Event::CallPlaced { call_sid: "CA1".into(), account: "twilio".into() },
            now,
        );
        let busy = Event::CallStatusReported { status: CallStatus::Busy, sip_code: Some(603), seconds: None };
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
        let busy = Event::CallStatusReported { status: CallStatus::Busy, sip_code: None, seconds: None };
        let r = step(&r, busy, now);
        let r = step(&r, Event::SmsSent { sid: "SM1".into() }, now);
        let r = step(&r, Event::CallPlaced { call_sid: "CA1".into(), account: "twilio".into() }, now);
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
        let r = step(
            &with_channel(now, Channel::VoiceOtp, Vec::new()),
            Event::CallPlaced { call_sid: "CA2".into(), account: "twilio".into() },
            now,
        );
        let na =
            step(&r, Event::CallStatusReported { status: CallStatus::NoAnswer, sip_code: None, seconds: None }, now);
        assert_eq!(na.failure_reason, Some(FailureReason::NoAnswer));
    }

    #[test]
    fn a_voice_dtmf_request_is_never_checked_on_the_page() {
        let now = Utc::now();
        let r = step(&sample(now), Event::CallConnected { call_sid: "CA1".into() }, now);
        assert_eq!(r.apply(&Event::CodeChecked { correct: true }, now), Err(Refusal::NotNow));
    }

    #[test]
    fn keys_that_are_no_code_cost_no_attempt_even_past_expiry() {
        let now = Utc::now();
        let r = step(&sample(now), Event::CallConnected { call_sid: "CA1".into() }, now);
        let pressed =
            |typed: &str, finished: &str| Event::KeysPressed { keys: Keys::parse(typed, finished), correct: false };
        for ignored in [pressed("12", "*"), pressed("123#", "")] {
            assert_eq!(r.apply(&ignored, now), Err(Refusal::NoChange), "{ignored:?}");
            assert_eq!(r.apply(&ignored, r.expires_at), Err(Refusal::NoChange), "as if nothing came");
        }
        let wrong = step(&r, pressed("123456#", ""), now);
        assert_eq!((wrong.status, wrong.attempts), (Status::InProgress, 1));
        let right = Event::KeysPressed { keys: Keys::parse("123456", ""), correct: true };
        assert_eq!(step(&wrong, right, now).status, Status::Verified);
    }

    #[test]
    fn the_code_is_read_aloud_again_at_most_otp_repeats_times() {
        let now = Utc::now();
        let mut r = step(
            &with_channel(now, Channel::VoiceOtp, Vec::new()),
            Event::CallPlaced { call_sid: "CA1".into(), account: "twilio".into() },
            now,
        );
        r = step(&r, Event::CallConnected { call_sid: "CA1".into() }, now);
        for n in 1..=crate::domain::delivery::OTP_REPEATS {
            r = step(&r, Event::CodeRead, now);
            assert_eq!(r.delivery.readings, n);
        }
        assert_eq!(r.apply(&Event::CodeRead, now), Err(Refusal::NoChange));
        assert_eq!(r.apply(&Event::CodeRead, r.expires_at), Err(Refusal::NoChange), "past the limit even at expiry");
    }

    fn inbound(now: DateTime<Utc>) -> AuthRequest {
        let mut reg = Registration::with_defaults(PhoneNumber::from_stored("+819012345678".into()));
        reg.mode = Mode::Inbound;
        AuthRequest::new(Uuid::now_v7(), Uuid::now_v7(), &reg, Sealed::default(), now)
    }

    #[test]
    fn an_inbound_code_binds_the_call_and_enters_the_code_in_one_step() {
        let now = Utc::now();
        let code = |correct| Event::InboundCodeEntered { call_sid: "CA1".into(), correct };
        let t = inbound(now).apply(&code(true), now).unwrap();
        assert_eq!((t.next.status, t.next.call_sid.as_deref()), (Status::Verified, Some("CA1")));
        assert_eq!(t.next.call_status, Some(CallStatus::Completed), "the answer hangs up");
        assert_eq!(t.next.delivery.attempts[0].status, "answered");
        let wrong = step(&inbound(now), code(false), now);
        assert_eq!((wrong.status, wrong.attempts, wrong.call_sid.as_deref()), (Status::InProgress, 1, Some("CA1")));
        assert_eq!(step(&wrong, code(true), now).status, Status::Verified, "the same call tries again");
        let other = Event::InboundCodeEntered { call_sid: "CA2".into(), correct: true };
        assert_eq!(wrong.apply(&other, now), Err(Refusal::OtherCall));
        assert_eq!(sample(now).apply(&code(true), now), Err(Refusal::NotNow), "an outbound request");
    }

    #[test]
    fn which_code_a_request_expects_and_whether_the_site_sees_it() {
        let now = Utc::now();
        let ring = KeyRing::new(b"secret", &[]);
        let keys = ring.current().1;
        let mut r = with_channel(now, Channel::VoiceDtmf, vec![Channel::Sms]);
        r.code_salt = Some(b"salt".to_vec());
        let generated = keys.generated_code(b"salt", r.code_length);
        r.code_hash = keys.hash(r.id.as_bytes(), generated.expose()).to_vec();
        assert!(r.site_sees_code());
        assert_eq!(r.expected_code(keys), Some(generated.clone()));
        assert!(r.is_expected_code(&ring, generated.expose()));
        let busy = Event::CallStatusReported { status: CallStatus::Busy, sip_code: None, seconds: None };
        let fell_back = step(&r, busy, now);
        let second = keys.fallback_code(r.id.as_bytes(), r.code_length);
        assert_eq!(fell_back.expected_code(keys), Some(second.clone()), "the page showed the first");
        assert!(fell_back.is_expected_code(&ring, second.expose()));
        assert!(!fell_back.is_expected_code(&ring, generated.expose()));
        assert_eq!(fell_back.generated_code(keys), Some(generated), "a replay shows the first again");
        for channel in [Channel::VoiceOtp, Channel::Sms] {
            assert!(!with_channel(now, channel, Vec::new()).site_sees_code(), "{channel:?}");
        }
        r.code_salt = None;
        assert_eq!(r.expected_code(keys), None, "the site chose the code");
        r.key_id = Some("00000000".into());
        assert!(!r.is_expected_code(&KeyRing::new(b"secret", &[]), "123456"), "a key this server lacks");
    }

    #[test]
    fn calls_are_matched_by_sid_and_placed_only_while_pending() {
        let now = Utc::now();
        let r = sample(now);
        assert!(r.may_be_call("CA1") && !r.is_call("CA1"));
        assert!(r.awaits_call(now));
        assert!(!r.awaits_call(r.expires_at), "expired");
        let r = step(&r, Event::CallPlaced { call_sid: "CA1".into(), account: "twilio".into() }, now);
        assert!(r.is_call("CA1") && r.may_be_call("CA1"));
        assert!(!r.is_call("CA2") && !r.may_be_call("CA2"));
        assert!(!r.awaits_call(now), "placed");
        let mut answered_first = sample(now);
        answered_first.status = Status::Pending;
        answered_first.call_sid = Some("CA1".into());
        assert!(!answered_first.awaits_call(now), "bound by the answer webhook first");
    }
}
