//! Vonage Voice API webhooks as facts: the HS256 JWT in `Authorization`
//! checked first (with each configured account's signature secret, its
//! `payload_hash` binding the body), then the JSON body (or, for an answer
//! URL fetched with `GET`, the query) translated into a `Report`. The answer
//! is an NCCO (`ncco.rs`), not XML.
//!
//! Vonage's names (developer.vonage.com, Voice API webhook reference): the
//! call is `uuid`; numbers are `from` and `to`, E.164 without `+`; the event
//! URL gets `status` (`started`, `ringing`, `answered`, `completed`, `busy`,
//! `cancelled`, `failed`, `rejected`, `timeout`, `unanswered`, `machine`,
//! `human`) with a `detail` for failures; an `input` action's event URL gets
//! `dtmf: {digits, timed_out}`.

use actix_web::HttpResponse;
use actix_web::http::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::call::report::Report;
use crate::call::script::Step;
use crate::domain::status::CallStatus;
use crate::telephony::webhook::{Dialect, Incoming};

use super::{ncco, signature};

/// Vonage's webhooks, signed with the signature secret of one of its accounts.
pub struct VonageDialect {
    secrets: Vec<SecretString>,
}

impl VonageDialect {
    pub fn new(secrets: Vec<SecretString>) -> Self {
        Self { secrets }
    }
}

/// The fields of a Vonage webhook the call flow reads; every one optional.
#[derive(Debug, Default, Deserialize)]
struct Params {
    #[serde(default)]
    uuid: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    detail: String,
    dtmf: Option<Dtmf>,
    /// Seconds the call was up, in the `completed` event: a string ("20") in
    /// Vonage's examples, a number in some SDKs; either is read.
    #[serde(default)]
    duration: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct Dtmf {
    #[serde(default)]
    digits: String,
}

/// A number as Vonage writes it (`819012345678`) in E.164 (`+819012345678`);
/// anything else (`Unknown`, empty, already `+…`) as it came.
fn e164(number: &str) -> String {
    if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) {
        format!("+{number}")
    } else {
        number.to_owned()
    }
}

/// Vonage's call status, in the domain's words, with the SIP code a refusal implies.
fn call_status(status: &str, detail: &str) -> (Option<CallStatus>, &'static str) {
    match status {
        "started" => (Some(CallStatus::Initiated), ""),
        "ringing" => (Some(CallStatus::Ringing), ""),
        "answered" => (Some(CallStatus::InProgress), ""),
        "completed" => (Some(CallStatus::Completed), ""),
        "busy" => (Some(CallStatus::Busy), "486"),
        // The callee declined the call.
        "rejected" => (Some(CallStatus::Busy), "603"),
        "failed" if detail == "declined" => (Some(CallStatus::Busy), "603"),
        "failed" => (Some(CallStatus::Failed), ""),
        "timeout" | "unanswered" => (Some(CallStatus::NoAnswer), ""),
        "cancelled" => (Some(CallStatus::Canceled), ""),
        _ => (None, ""),
    }
}

impl Params {
    fn report(self) -> Report {
        let (status, sip) = call_status(&self.status, &self.detail);
        Report {
            call_sid: self.uuid,
            from: e164(&self.from),
            to: e164(&self.to),
            digits: self.dtmf.map(|d| d.digits).unwrap_or_default(),
            answered_by_machine: self.status == "machine",
            call_status: status,
            sip_response_code: sip.to_owned(),
            call_seconds: self.duration.as_ref().and_then(|d| match d {
                serde_json::Value::String(s) => s.parse().ok(),
                other => other.as_u64().and_then(|n| u32::try_from(n).ok()),
            }),
            ..Report::default()
        }
    }
}

/// The webhook's parameters: a JSON body, or for a `GET` the query. A
/// `notify` (a redirect the server wrote) posts only its payload: the call
/// it is about is in the URL's query (`webhook::CallOnRecord`), which the
/// server wrote; a sealed hold inside it is bound to that call.
fn params(incoming: &Incoming<'_>) -> Result<Params, String> {
    let query: Vec<(String, String)> = url::form_urlencoded::parse(incoming.query.as_bytes()).into_owned().collect();
    let get = |name: &str| query.iter().find(|(k, _)| k == name).map_or(String::new(), |(_, v)| v.clone());
    if incoming.method == Method::GET || incoming.body.is_empty() {
        return Ok(Params { uuid: get("uuid"), from: get("from"), to: get("to"), ..Params::default() });
    }
    let mut params: Params =
        serde_json::from_slice(incoming.body).map_err(|_| "the body is not a Vonage webhook's JSON".to_owned())?;
    if params.uuid.is_empty() {
        (params.uuid, params.from, params.to) = (get("uuid"), get("from"), get("to"));
    }
    Ok(params)
}

impl Dialect for VonageDialect {
    fn name(&self) -> &'static str {
        "vonage"
    }

    fn verify(&self, incoming: &Incoming<'_>) -> Result<Report, String> {
        let header = incoming.header("Authorization").unwrap_or("");
        let mut why = signature::Refusal::MissingHeader;
        for secret in &self.secrets {
            match signature::verify(secret.expose_secret().as_bytes(), header, incoming.body, incoming.now_unix) {
                Ok(_) => return params(incoming).map(Params::report),
                Err(e) => why = e,
            }
        }
        Err(why.to_string())
    }

    fn render(&self, script: &[Step]) -> HttpResponse {
        ncco::response(script)
    }

    fn redirect_names_no_call(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(json: &str) -> Report {
        serde_json::from_str::<Params>(json).unwrap().report()
    }

    #[test]
    fn an_input_event_gives_the_digits_and_the_numbers_in_e164() {
        let r = report(
            r#"{"dtmf":{"digits":"1234","timed_out":false},"uuid":"aaaa-bbbb","conversation_uuid":"CON-1",
                "from":"819012345678","to":"815012345678","timestamp":"2026-12-05T00:00:00.000Z"}"#,
        );
        assert_eq!((r.call_sid.as_str(), r.digits.as_str()), ("aaaa-bbbb", "1234"));
        assert_eq!((r.from.as_str(), r.to.as_str()), ("+819012345678", "+815012345678"));
        assert_eq!(r.call_status, None);
    }

    #[test]
    fn vonage_s_statuses_become_the_domain_s() {
        let status = |s: &str, d: &str| {
            let r = report(&format!(r#"{{"uuid":"u","status":"{s}","detail":"{d}"}}"#));
            (r.call_status, r.sip_response_code)
        };
        assert_eq!(status("answered", ""), (Some(CallStatus::InProgress), String::new()));
        assert_eq!(status("rejected", ""), (Some(CallStatus::Busy), "603".into()));
        assert_eq!(status("busy", ""), (Some(CallStatus::Busy), "486".into()));
        assert_eq!(status("unanswered", ""), (Some(CallStatus::NoAnswer), String::new()));
        assert_eq!(status("timeout", ""), (Some(CallStatus::NoAnswer), String::new()));
        assert_eq!(status("failed", "declined"), (Some(CallStatus::Busy), "603".into()));
        assert_eq!(status("human", ""), (None, String::new()));
        assert!(report(r#"{"uuid":"u","status":"machine"}"#).answered_by_machine);
    }

    #[test]
    fn a_completed_call_s_duration_is_read_as_a_string_or_a_number() {
        let seconds = |d: &str| report(&format!(r#"{{"uuid":"u","status":"completed","duration":{d}}}"#)).call_seconds;
        assert_eq!(seconds(r#""20""#), Some(20));
        assert_eq!(seconds("31"), Some(31));
        assert_eq!(seconds(r#""x""#), None);
        assert_eq!(report(r#"{"uuid":"u","status":"answered"}"#).call_seconds, None);
    }

    #[test]
    fn a_withheld_or_odd_number_is_kept_as_it_came() {
        assert_eq!(e164("Unknown"), "Unknown");
        assert_eq!(e164(""), "");
        assert_eq!(e164("+819012345678"), "+819012345678");
    }
}
