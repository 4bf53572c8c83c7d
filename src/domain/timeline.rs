//! One request's timeline: every change a webhook, the site or the clock
//! made to it, with what the call said next, and every delivery attempt of
//! its result callback — for an operator looking into one customer's call.
//!
//! An entry is written by the commit of the change it tells of (`entry`),
//! one row per change; a callback attempt by the job that made it
//! (`callback_attempt`). Keys are counted, never shown: no entry carries a
//! digit the caller typed or a code.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::funnel::Reached;
use super::request::{AuthRequest, Event};
use super::status::{Channel, Status};

/// Something that happened to one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub request_id: Uuid,
    pub tenant_id: Uuid,
    pub at: DateTime<Utc>,
    /// What happened: the event's name (`keys_pressed`), or `callback`.
    pub kind: Cow<'static, str>,
    /// Its facts (counts and words, never digits).
    pub detail: Detail,
}

/// An entry's facts as the text of a JSON object, as stored: written once,
/// when the entry is made, and parsed only to be shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail(String);

impl Detail {
    /// The text a store read back, as it was written.
    pub fn stored(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn of(facts: &Facts<'_>) -> Self {
        // Nothing in `Facts` can fail to serialize.
        Self(serde_json::to_string(facts).unwrap_or_else(|_| "{}".to_owned()))
    }
}

/// Every fact an entry may tell, each written only when it has a value. The
/// fields are in the order of their names, so an entry reads as the sorted
/// JSON object the timeline wrote before it had this struct.
#[derive(Default, Serialize)]
struct Facts<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempt: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    call_status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correct: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keys: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "step_names")]
    reached: Option<&'a [Reached]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sip_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
}

fn step_names<S: serde::Serializer>(reached: &Option<&[Reached]>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(reached.unwrap_or_default().iter().map(|r| r.step.as_str()))
}

/// The name an event goes by in a timeline.
pub fn event_name(event: &Event) -> &'static str {
    match event {
        Event::CallPlaced { .. } => "call_placed",
        Event::CallRefused => "call_refused",
        Event::CallQueued { .. } => "call_queued",
        Event::CallNotPlaced => "call_not_placed",
        Event::CallConnected { .. } => "call_connected",
        Event::CallStatusReported { .. } => "call_status",
        Event::MachineAnswered => "machine_answered",
        Event::CallerIdUnverified => "caller_id_unverified",
        Event::CodeEntered { .. } => "code_entered",
        Event::KeysPressed { .. } => "keys_pressed",
        Event::InboundCodeEntered { .. } => "inbound_code_entered",
        Event::CodeChecked { .. } => "code_checked",
        Event::CodeRead => "code_read",
        Event::SmsSent { .. } => "sms_sent",
        Event::SmsDelivered { .. } => "sms_delivered",
        Event::SmsFailed => "sms_failed",
        Event::NoInput => "no_input",
        Event::CallEnded => "call_ended",
        Event::Cancel => "canceled",
        Event::Expire => "expired",
    }
}

/// The facts of an event worth showing: counts, statuses, accounts.
fn facts(event: &Event) -> Facts<'_> {
    let mut d = Facts::default();
    match event {
        Event::CallPlaced { account, .. } | Event::CallQueued { account, .. } => d.account = Some(account),
        Event::CallStatusReported { status, sip_code, seconds } => {
            (d.call_status, d.sip_code, d.seconds) = (Some(status.as_str()), *sip_code, *seconds);
        }
        Event::KeysPressed { keys, correct } => (d.keys, d.correct) = (Some(keys.digits().len()), Some(*correct)),
        Event::CodeEntered { correct } | Event::CodeChecked { correct } | Event::InboundCodeEntered { correct, .. } => {
            d.correct = Some(*correct);
        }
        _ => {}
    }
    d
}

/// What the call said after this change, as the call flow (`voice/`)
/// answers it: the greeting when a call is connected, the wrong-code or
/// no-input prompt while tries are left, the result once the request ended.
fn prompt(before: &AuthRequest, event: &Event, after: &AuthRequest) -> Option<&'static str> {
    let on_the_call = matches!(
        event,
        Event::CallConnected { .. } | Event::KeysPressed { .. } | Event::InboundCodeEntered { .. } | Event::NoInput
    );
    if !on_the_call {
        return None;
    }
    if after.status.is_terminal() {
        return Some("result");
    }
    if after.status != Status::InProgress {
        return None;
    }
    Some(match event {
        Event::CallConnected { .. } if after.delivery.channel == Channel::VoiceOtp => "code_read",
        Event::CallConnected { .. } => "greeting",
        Event::NoInput => "no_input",
        _ if after.attempts > before.attempts => "wrong_code",
        _ => "code_prompt",
    })
}

/// The entry of a change: the event, its facts, the status it left, the
/// funnel steps it reached, and what the call said next.
pub fn entry(
    before: &AuthRequest,
    event: &Event,
    after: &AuthRequest,
    reached: &[Reached],
    at: DateTime<Utc>,
) -> Entry {
    let mut d = facts(event);
    d.status = Some(after.status.as_str());
    d.failure_reason = after.failure_reason.filter(|_| before.status != after.status).map(|r| r.as_str());
    d.attempts = (after.attempts != before.attempts).then_some(after.attempts);
    d.reached = (!reached.is_empty()).then_some(reached);
    d.prompt = prompt(before, event, after);
    Entry {
        request_id: after.id,
        tenant_id: after.tenant_id,
        at,
        kind: Cow::Borrowed(event_name(event)),
        detail: Detail::of(&d),
    }
}

/// The entry of an event that changed nothing but is still told (a late
/// status report carrying the call's seconds).
pub fn unchanged(r: &AuthRequest, event: &Event, at: DateTime<Utc>) -> Entry {
    let mut d = facts(event);
    d.status = Some(r.status.as_str());
    Entry {
        request_id: r.id,
        tenant_id: r.tenant_id,
        at,
        kind: Cow::Borrowed(event_name(event)),
        detail: Detail::of(&d),
    }
}

/// How one delivery attempt of a result callback went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Delivered {
        http_status: u16,
    },
    /// It will be tried again; `error` says what went wrong (no body text of the site's).
    Retry {
        http_status: Option<u16>,
        error: String,
    },
    GaveUp {
        error: String,
    },
}

/// The entry of the `attempt`-th (from 1) delivery of request `r`'s result callback.
pub fn callback_attempt(r: &AuthRequest, attempt: u32, outcome: &Delivery, at: DateTime<Utc>) -> Entry {
    let mut d = Facts { attempt: Some(attempt), ..Facts::default() };
    match outcome {
        Delivery::Delivered { http_status } => (d.outcome, d.http_status) = (Some("delivered"), Some(*http_status)),
        Delivery::Retry { http_status, error } => {
            (d.outcome, d.http_status, d.error) = (Some("retry"), *http_status, Some(error.as_str()));
        }
        Delivery::GaveUp { error } => (d.outcome, d.error) = (Some("gave_up"), Some(error.as_str())),
    }
    Entry { request_id: r.id, tenant_id: r.tenant_id, at, kind: Cow::Borrowed("callback"), detail: Detail::of(&d) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::call::Keys;
    use crate::domain::funnel;
    use crate::domain::request::tests::sample;
    use serde_json::{Value, json};

    fn facts_of(e: &Entry) -> Value {
        serde_json::from_str(e.detail.as_str()).expect("an entry's facts are JSON")
    }

    fn outbound_request() -> AuthRequest {
        sample(Utc::now())
    }

    fn applied(r: &AuthRequest, event: &Event) -> (AuthRequest, Entry) {
        let now = r.created_at + chrono::Duration::seconds(5);
        let next = r.apply(event, now).expect("applies").next;
        let steps = funnel::steps(r, event, &next, now);
        let e = entry(r, event, &next, &steps, now);
        (next, e)
    }

    #[test]
    fn keys_are_counted_never_shown() {
        let r = outbound_request();
        let (r, e) = applied(&r, &Event::CallPlaced { call_sid: "CA1".into(), account: "main".into() });
        assert_eq!(e.kind, "call_placed");
        assert_eq!(facts_of(&e)["account"], "main");
        assert_eq!(facts_of(&e)["reached"], json!(["call_placed"]));
        let (r, e) = applied(&r, &Event::CallConnected { call_sid: "CA1".into() });
        assert_eq!(facts_of(&e)["prompt"], "greeting");
        assert_eq!(facts_of(&e)["reached"], json!(["answered"]));
        let keys = Keys::parse("9999", "");
        let (r, e) = applied(&r, &Event::KeysPressed { keys, correct: false });
        assert_eq!(facts_of(&e)["keys"], 4);
        assert_eq!(facts_of(&e)["correct"], false);
        assert_eq!(facts_of(&e)["prompt"], "wrong_code");
        assert_eq!(facts_of(&e)["attempts"], 1);
        assert!(!e.detail.as_str().contains("9999"), "{}", e.detail.as_str());
        let (_, e) = applied(&r, &Event::KeysPressed { keys: Keys::parse("1234", ""), correct: true });
        assert_eq!(facts_of(&e)["status"], "verified");
        assert_eq!(facts_of(&e)["prompt"], "result");
        assert!(!e.detail.as_str().contains("1234"), "{}", e.detail.as_str());
    }

    #[test]
    fn a_failure_names_its_reason_once() {
        let r = outbound_request();
        let (r, _) = applied(&r, &Event::CallPlaced { call_sid: "CA1".into(), account: "main".into() });
        let busy = Event::CallStatusReported {
            status: crate::domain::status::CallStatus::Busy,
            sip_code: Some(486),
            seconds: None,
        };
        let (_, e) = applied(&r, &busy);
        assert_eq!(e.kind, "call_status");
        assert_eq!(facts_of(&e)["failure_reason"], "busy");
        assert_eq!(facts_of(&e)["sip_code"], 486);
        assert_eq!(facts_of(&e).get("prompt"), None);
    }

    #[test]
    fn callback_attempts_say_how_they_went() {
        let r = outbound_request();
        let e = callback_attempt(
            &r,
            2,
            &Delivery::Retry { http_status: Some(503), error: "HTTP 503".into() },
            r.created_at,
        );
        assert_eq!(e.kind, "callback");
        assert_eq!(facts_of(&e), json!({"attempt": 2, "outcome": "retry", "http_status": 503, "error": "HTTP 503"}));
    }

    /// Entries written before `Facts` (a sorted JSON map) and after read the same.
    #[test]
    fn facts_are_written_with_their_names_in_order() {
        let r = outbound_request();
        let failed = Delivery::GaveUp { error: "HTTP 500".into() };
        let e = callback_attempt(&r, 5, &failed, r.created_at);
        assert_eq!(e.detail.as_str(), r#"{"attempt":5,"error":"HTTP 500","outcome":"gave_up"}"#);
        let (r, e) = applied(&r, &Event::CallPlaced { call_sid: "CA1".into(), account: "main".into() });
        assert_eq!(e.detail.as_str(), r#"{"account":"main","reached":["call_placed"],"status":"calling"}"#);
        let (r, _) = applied(&r, &Event::CallConnected { call_sid: "CA1".into() });
        let (_, e) = applied(&r, &Event::KeysPressed { keys: Keys::parse("9999", ""), correct: false });
        assert_eq!(
            e.detail.as_str(),
            r#"{"attempts":1,"correct":false,"keys":4,"prompt":"wrong_code","reached":["code_entered"],"status":"in_progress"}"#
        );
    }
}
