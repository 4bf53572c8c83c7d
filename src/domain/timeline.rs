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
use serde_json::{Map, Value, json};
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
    /// Its facts, as a JSON object (counts and words, never digits).
    pub detail: Value,
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
fn facts(event: &Event) -> Map<String, Value> {
    let mut d = Map::new();
    match event {
        Event::CallPlaced { account, .. } | Event::CallQueued { account, .. } => {
            d.insert("account".into(), json!(account));
        }
        Event::CallStatusReported { status, sip_code, seconds } => {
            d.insert("call_status".into(), json!(status.as_str()));
            if let Some(code) = sip_code {
                d.insert("sip_code".into(), json!(code));
            }
            if let Some(s) = seconds {
                d.insert("seconds".into(), json!(s));
            }
        }
        Event::KeysPressed { keys, correct } => {
            d.insert("keys".into(), json!(keys.digits().len()));
            d.insert("correct".into(), json!(correct));
        }
        Event::CodeEntered { correct } | Event::CodeChecked { correct } | Event::InboundCodeEntered { correct, .. } => {
            d.insert("correct".into(), json!(correct));
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
    d.insert("status".into(), json!(after.status.as_str()));
    if let Some(reason) = after.failure_reason.filter(|_| before.status != after.status) {
        d.insert("failure_reason".into(), json!(reason.as_str()));
    }
    if after.attempts != before.attempts {
        d.insert("attempts".into(), json!(after.attempts));
    }
    if !reached.is_empty() {
        d.insert("reached".into(), reached.iter().map(|r| json!(r.step.as_str())).collect());
    }
    if let Some(p) = prompt(before, event, after) {
        d.insert("prompt".into(), json!(p));
    }
    Entry {
        request_id: after.id,
        tenant_id: after.tenant_id,
        at,
        kind: Cow::Borrowed(event_name(event)),
        detail: Value::Object(d),
    }
}

/// The entry of an event that changed nothing but is still told (a late
/// status report carrying the call's seconds).
pub fn unchanged(r: &AuthRequest, event: &Event, at: DateTime<Utc>) -> Entry {
    let mut d = facts(event);
    d.insert("status".into(), json!(r.status.as_str()));
    Entry {
        request_id: r.id,
        tenant_id: r.tenant_id,
        at,
        kind: Cow::Borrowed(event_name(event)),
        detail: Value::Object(d),
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
    let mut d = Map::new();
    d.insert("attempt".into(), json!(attempt));
    match outcome {
        Delivery::Delivered { http_status } => {
            d.insert("outcome".into(), json!("delivered"));
            d.insert("http_status".into(), json!(http_status));
        }
        Delivery::Retry { http_status, error } => {
            d.insert("outcome".into(), json!("retry"));
            if let Some(s) = http_status {
                d.insert("http_status".into(), json!(s));
            }
            d.insert("error".into(), json!(error));
        }
        Delivery::GaveUp { error } => {
            d.insert("outcome".into(), json!("gave_up"));
            d.insert("error".into(), json!(error));
        }
    }
    Entry { request_id: r.id, tenant_id: r.tenant_id, at, kind: Cow::Borrowed("callback"), detail: Value::Object(d) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::call::Keys;
    use crate::domain::funnel;
    use crate::domain::request::tests::sample;

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
        assert_eq!(e.detail["account"], "main");
        assert_eq!(e.detail["reached"], json!(["call_placed"]));
        let (r, e) = applied(&r, &Event::CallConnected { call_sid: "CA1".into() });
        assert_eq!(e.detail["prompt"], "greeting");
        assert_eq!(e.detail["reached"], json!(["answered"]));
        let keys = Keys::parse("9999", "");
        let (r, e) = applied(&r, &Event::KeysPressed { keys, correct: false });
        assert_eq!(e.detail["keys"], 4);
        assert_eq!(e.detail["correct"], false);
        assert_eq!(e.detail["prompt"], "wrong_code");
        assert_eq!(e.detail["attempts"], 1);
        assert!(!e.detail.to_string().contains("9999"), "{}", e.detail);
        let (_, e) = applied(&r, &Event::KeysPressed { keys: Keys::parse("1234", ""), correct: true });
        assert_eq!(e.detail["status"], "verified");
        assert_eq!(e.detail["prompt"], "result");
        assert!(!e.detail.to_string().contains("1234"), "{}", e.detail);
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
        assert_eq!(e.detail["failure_reason"], "busy");
        assert_eq!(e.detail["sip_code"], 486);
        assert_eq!(e.detail.get("prompt"), None);
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
        assert_eq!(e.detail, json!({"attempt": 2, "outcome": "retry", "http_status": 503, "error": "HTTP 503"}));
    }
}
