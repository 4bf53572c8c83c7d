//! Property test of the state machine itself: any sequence of events, at any
//! times, never changes a terminal status and never exceeds `max_attempts`;
//! keys that are no code and readings past the limit change nothing; a
//! shared-number call runs out of tries.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use chrono::{DateTime, Duration, Utc};
use ivr_auth::domain::call::{InboundCall, Keys, SHARED_TRIES};
use ivr_auth::domain::delivery::OTP_REPEATS;
use ivr_auth::domain::phone::PhoneNumber;
use ivr_auth::domain::registration::Registration;
use ivr_auth::domain::request::{AuthRequest, Event, NO_INPUT_LIMIT, Sealed};
use ivr_auth::domain::status::{CallStatus, Channel, FailureReason, Mode, Status};
use proptest::prelude::*;
use uuid::Uuid;

fn request(max_attempts: u8, mode: Mode, channel: Channel, fallback: bool) -> AuthRequest {
    let mut reg = Registration::with_defaults(PhoneNumber::from_stored("+819012345678".into()));
    reg.mode = mode;
    reg.channel = channel;
    if fallback && channel != Channel::Sms {
        reg.fallback = vec![Channel::Sms];
    }
    reg.max_attempts = max_attempts;
    reg.callback_url = Some("https://example.com/cb".into());
    AuthRequest::new(Uuid::now_v7(), Uuid::now_v7(), &reg, Sealed::default(), Utc::now())
}

fn call_status() -> impl Strategy<Value = CallStatus> {
    prop_oneof![
        Just(CallStatus::Queued),
        Just(CallStatus::Initiated),
        Just(CallStatus::Ringing),
        Just(CallStatus::InProgress),
        Just(CallStatus::Completed),
        Just(CallStatus::Busy),
        Just(CallStatus::Failed),
        Just(CallStatus::NoAnswer),
        Just(CallStatus::Canceled),
    ]
}

/// Keys as a provider reports them: digits, `*` and `#`, and the key that ended the prompt.
fn keys() -> impl Strategy<Value = Keys> {
    ("[0-9*#]{0,8}", prop_oneof![Just(""), Just("*"), Just("#")])
        .prop_map(|(typed, finished)| Keys::parse(&typed, finished))
}

fn event() -> impl Strategy<Value = Event> {
    let sid = prop_oneof![Just("CA1".to_owned()), Just("CA2".to_owned())];
    prop_oneof![
        1 => (keys(), any::<bool>()).prop_map(|(keys, correct)| Event::KeysPressed { keys, correct }),
        1 => (sid.clone(), any::<bool>()).prop_map(|(call_sid, correct)| Event::InboundCodeEntered { call_sid, correct }),
        1 => sid.clone().prop_map(|call_sid| Event::CallPlaced { call_sid, account: "twilio".into() }),
        1 => Just(Event::CallRefused),
        1 => (0i64..120).prop_map(|s| Event::CallQueued {
            account: "tokyo".into(),
            at: DateTime::from_timestamp(1_764_900_000 + s, 0).unwrap_or_default(),
        }),
        1 => Just(Event::CallNotPlaced),
        1 => sid.prop_map(|call_sid| Event::CallConnected { call_sid }),
        1 => (call_status(), prop::option::of(prop_oneof![Just(486u16), Just(603u16)]))
            .prop_map(|(status, sip_code)| Event::CallStatusReported { status, sip_code, seconds: None }),
        1 => Just(Event::MachineAnswered),
        1 => any::<bool>().prop_map(|correct| Event::CodeEntered { correct }),
        1 => Just(Event::NoInput),
        1 => Just(Event::CallEnded),
        1 => Just(Event::Cancel),
        1 => Just(Event::Expire),
        1 => any::<bool>().prop_map(|correct| Event::CodeChecked { correct }),
        // Often enough that a call reads the code past its limit.
        4 => Just(Event::CodeRead),
        1 => Just(Event::SmsSent { sid: "SM1".to_owned() }),
        1 => Just(Event::SmsDelivered { sid: "SM1".to_owned() }),
        1 => Just(Event::SmsFailed),
    ]
}

fn channel() -> impl Strategy<Value = Channel> {
    prop_oneof![Just(Channel::VoiceDtmf), Just(Channel::VoiceOtp), Just(Channel::Sms)]
}

/// What an event must do to a request that has not ended (a refusal where a
/// change is due fails the test, so a state machine that refuses everything
/// cannot pass).
fn must(before: &AuthRequest, event: &Event, now: chrono::DateTime<Utc>, after: &AuthRequest) -> Result<(), String> {
    let expect = |ok: bool, what: &str| {
        if ok { Ok(()) } else { Err(format!("{event:?} on {:?}: {what}, got {:?}", before.status, after.status)) }
    };
    match event {
        Event::KeysPressed { keys, .. } if !keys.are_a_code(before.code_length) => {
            return expect(after == before, "keys that are no code change nothing");
        }
        Event::CodeRead if before.delivery.readings >= OTP_REPEATS => {
            return expect(after == before, "no reading past the limit");
        }
        _ if before.status.is_terminal() => return Ok(()),
        _ => {}
    }
    if now >= before.expires_at {
        return expect(after.status == Status::Expired, "expired");
    }
    let on_page = before.delivery.checked_on_page();
    match event {
        Event::Cancel => expect(after.status == Status::Canceled, "canceled"),
        Event::CallRefused => expect(after.failure_reason == Some(FailureReason::CallFailed), "failed: call_failed"),
        Event::CallNotPlaced if before.status == Status::Pending && before.call_sid.is_none() => {
            expect(after.failure_reason == Some(FailureReason::NotPlaced), "failed: not_placed")
        }
        Event::CallNotPlaced => expect(after == before, "a call already placed is not 'not placed'"),
        Event::CallQueued { at, .. }
            if before.status == Status::Pending
                && before.mode == Mode::Outbound
                && before.call_sid.is_none()
                && before.call_status.is_none_or(|c| c == CallStatus::Queued) =>
        {
            let queued = after.call_status == Some(CallStatus::Queued) && after.delivery.queued_until() == Some(*at);
            expect(queued && after.status == Status::Pending, "queued, still pending, with its slot")
        }
        Event::CallQueued { .. } => expect(after == before, "only a call not yet placed queues"),
        Event::CodeEntered { correct: true } if before.status == Status::InProgress && !on_page => {
            expect(after.status == Status::Verified, "verified")
        }
        Event::CodeEntered { correct: false } if before.status == Status::InProgress && !on_page => {
            expect(after.attempts == before.attempts + 1, "one more attempt")
        }
        Event::CodeEntered { .. } if on_page => {
            expect(after == before, "a page-checked code is not typed on the phone")
        }
        Event::KeysPressed { correct, .. } if before.status == Status::InProgress && !on_page => {
            let (verified, failed) = (after.status == Status::Verified, after.attempts == before.attempts + 1);
            expect(if *correct { verified } else { failed }, "a code entered")
        }
        Event::InboundCodeEntered { call_sid, correct }
            if before.mode == Mode::Inbound
                && !on_page
                && (before.status == Status::Pending
                    || (before.status == Status::InProgress && before.call_sid.as_ref() == Some(call_sid))) =>
        {
            let bound = after.call_sid.as_ref() == Some(call_sid);
            let entered =
                if *correct { after.status == Status::Verified } else { after.attempts == before.attempts + 1 };
            expect(bound && entered, "the call bound and its code entered, at once")
        }
        Event::InboundCodeEntered { .. } => expect(after == before, "another call's code, or not inbound"),
        Event::CodeChecked { correct: true } if on_page => expect(after.status == Status::Verified, "verified"),
        Event::CodeChecked { correct: false } if on_page => {
            expect(after.attempts == before.attempts + 1, "one more attempt")
        }
        Event::CodeChecked { .. } => expect(after == before, "a phone-typed code is not checked on the page"),
        Event::SmsFailed if before.delivery.current() == Channel::Sms => {
            expect(after.failure_reason == Some(FailureReason::DeliveryFailed), "failed: delivery_failed")
        }
        Event::CallConnected { call_sid }
            if before.status != Status::InProgress
                && before.call_sid.as_ref().is_none_or(|b| b == call_sid)
                && before.delivery.current() != Channel::Sms =>
        {
            expect(after.status == Status::InProgress, "in progress")
        }
        Event::CallStatusReported { status: CallStatus::NoAnswer, .. }
            if before.call_status.is_none_or(|c| c.rank() < CallStatus::NoAnswer.rank())
                && before.delivery.current() != Channel::Sms =>
        {
            if before.delivery.next_fallback().is_some() {
                expect(!after.status.is_terminal() && after.delivery.current() == Channel::Sms, "fell back to sms")
            } else {
                expect(after.failure_reason == Some(FailureReason::NoAnswer), "failed: no_answer")
            }
        }
        _ => Ok(()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn terminal_is_final_and_attempts_are_bounded(
        max_attempts in 1u8..=10,
        inbound in any::<bool>(),
        channel in channel(),
        fallback in any::<bool>(),
        // Mostly moments apart, as on a call; now and then long enough to expire.
        steps in prop::collection::vec((event(), prop_oneof![3 => 0i64..5, 1 => 0i64..90]), 1..40),
    ) {
        // Only voice_dtmf goes inbound (the registration refuses the others).
        let mode = if inbound && channel == Channel::VoiceDtmf { Mode::Inbound } else { Mode::Outbound };
        let mut r = request(max_attempts, mode, channel, fallback);
        let mut now = r.created_at;
        let mut terminal: Option<AuthRequest> = None;
        for (event, advance) in steps {
            now += Duration::seconds(advance);
            let before = r.clone();
            if let Ok(t) = r.apply(&event, now) {
                r = t.next;
            }
            let due = must(&before, &event, now, &r);
            prop_assert!(due.is_ok(), "{}", due.unwrap_err());
            prop_assert!(r.attempts <= r.max_attempts, "attempts {} > max {}", r.attempts, r.max_attempts);
            prop_assert!(r.attempts >= before.attempts, "attempts went down");
            prop_assert!(r.no_input_count <= NO_INPUT_LIMIT);
            prop_assert!(r.delivery.readings <= OTP_REPEATS, "read aloud {} times", r.delivery.readings);
            prop_assert!(r.delivery.attempts.len() >= before.delivery.attempts.len(), "an attempt was forgotten");
            prop_assert!(r.delivery.attempts.iter().filter(|a| a.channel == Channel::Sms).count() <= 1, "two texts");
            prop_assert!(r.status.rank() >= before.status.rank(), "{:?} -> {:?} on {:?}", before.status, r.status, event);
            if let Some(call) = before.call_status {
                prop_assert!(r.call_status.is_some_and(|c| c.rank() >= call.rank()), "call status went back");
            }
            if let Some(t) = &terminal {
                prop_assert_eq!(r.status, t.status);
                prop_assert_eq!(r.failure_reason, t.failure_reason);
                prop_assert_eq!(r.attempts, t.attempts);
                prop_assert_eq!(r.verified_at, t.verified_at);
            } else if r.status.is_terminal() {
                terminal = Some(r.clone());
            }
            prop_assert_eq!(r.status == Status::Failed, r.failure_reason.is_some());
            prop_assert_eq!(r.status == Status::Verified, r.verified_at.is_some());
            // Nothing is ever verified after its expiry.
            if r.status == Status::Verified {
                prop_assert!(r.verified_at.is_some_and(|v| v < r.expires_at));
            }
        }
    }

    #[test]
    fn a_shared_number_call_runs_out_of_tries(start in prop::option::of(0u32..10)) {
        let mut call = InboundCall::at_try(start);
        let mut misses = 0;
        while let Some(next) = call.missed() {
            prop_assert!(next.tries_left() < call.tries_left(), "a miss costs a try");
            prop_assert!(next.try_number() <= SHARED_TRIES);
            call = next;
            misses += 1;
        }
        prop_assert_eq!(call.tries_left(), 0);
        prop_assert!(misses <= SHARED_TRIES, "{} misses", misses);
    }
}
