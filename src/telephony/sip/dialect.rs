//! The webhooks of our own SIP engine: the engine asks the call flow what to
//! do exactly as a cloud provider would (`/webhooks/sip/…`), so the rules and
//! prompts stay in one place. It sends the call's facts as JSON, signed with
//! a key made at start that never leaves the process (a call stays on the
//! node that answered it, and the engine calls its own node); the answer is
//! the call script as JSON, which the engine plays.

use actix_web::HttpResponse;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::call::report::Report;
use crate::call::script::Step;
use crate::domain::phone::Attestation;
use crate::domain::status::CallStatus;
use crate::telephony::webhook::{Dialect, Incoming};

/// The header carrying the signature: hex HMAC-SHA256 of `time`, the URL and the body.
pub const SIGNATURE_HEADER: &str = "x-ivr-auth-sip-signature";
/// The header carrying the time of signing, in Unix seconds.
pub const TIME_HEADER: &str = "x-ivr-auth-sip-time";
/// Webhooks signed longer ago than this are refused.
const MAX_AGE_SECONDS: i64 = 60;

/// What the engine reports about a call, as the webhook's JSON body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CallFacts {
    pub call_id: String,
    pub from: String,
    pub to: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digits: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub finished_on_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_code: Option<u16>,
    /// Seconds the call was up, in its final status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u32>,
}

impl CallFacts {
    fn into_report(self) -> Result<Report, String> {
        let call_status = match self.call_status.as_deref() {
            Some(s) => Some(CallStatus::parse(s).ok_or_else(|| format!("unknown call status {s:?}"))?),
            None => None,
        };
        Ok(Report {
            call_sid: self.call_id,
            from: self.from,
            to: self.to,
            digits: self.digits,
            finished_on_key: self.finished_on_key,
            attestation: self.attestation.as_deref().and_then(Attestation::parse),
            call_status,
            sip_response_code: self.sip_code.map(|c| c.to_string()).unwrap_or_default(),
            call_seconds: self.seconds,
            ..Report::default()
        })
    }
}

/// The answer the engine plays.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer {
    pub steps: Vec<Step>,
}

/// Signs and checks the engine's webhooks with the node's own key.
#[derive(Clone)]
pub struct Signer {
    key: [u8; 32],
}

impl Signer {
    /// A fresh key for this process.
    pub fn random() -> Self {
        Self { key: rand::random() }
    }

    pub fn sign(&self, time: i64, url: &str, body: &[u8]) -> String {
        hex::encode(self.mac(time, url, body).finalize().into_bytes())
    }

    fn mac(&self, time: i64, url: &str, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(time.to_string().as_bytes());
        mac.update(b"\n");
        mac.update(url.as_bytes());
        mac.update(b"\n");
        mac.update(body);
        mac
    }

    fn check(&self, time: i64, url: &str, body: &[u8], signature: &str) -> bool {
        let Ok(given) = hex::decode(signature) else { return false };
        self.mac(time, url, body).verify_slice(&given).is_ok()
    }
}

/// The `sip` folder's dialect.
pub struct SipDialect {
    signer: Signer,
}

impl SipDialect {
    pub fn new(signer: Signer) -> Self {
        Self { signer }
    }
}

impl Dialect for SipDialect {
    fn name(&self) -> &'static str {
        "sip"
    }

    fn verify(&self, incoming: &Incoming<'_>) -> Result<Report, String> {
        let signature = incoming.header(SIGNATURE_HEADER).ok_or("no X-Ivr-Auth-Sip-Signature")?;
        let time: i64 = incoming.header(TIME_HEADER).and_then(|t| t.parse().ok()).ok_or("no signing time")?;
        if !self.signer.check(time, incoming.url, incoming.body, signature) {
            return Err("signature does not match".into());
        }
        if (incoming.now_unix - time).abs() > MAX_AGE_SECONDS {
            return Err("signed too long ago".into());
        }
        let facts: CallFacts = serde_json::from_slice(incoming.body).map_err(|e| format!("body: {e}"))?;
        facts.into_report()
    }

    fn render(&self, script: &[Step]) -> HttpResponse {
        HttpResponse::Ok().json(Answer { steps: script.to_vec() })
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::Method;
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

    use super::*;

    fn incoming_with<'a>(headers: &'a HeaderMap, body: &'a [u8], now: i64) -> Incoming<'a> {
        Incoming {
            method: &Method::POST,
            url: "http://x/webhooks/sip/voice/inbound",
            query: "",
            headers,
            body,
            now_unix: now,
        }
    }

    fn headers(signature: &str, time: i64) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HeaderName::from_static(SIGNATURE_HEADER), HeaderValue::from_str(signature).unwrap());
        h.insert(HeaderName::from_static(TIME_HEADER), HeaderValue::from_str(&time.to_string()).unwrap());
        h
    }

    #[test]
    fn only_this_process_s_engine_can_sign_a_webhook() {
        let signer = Signer::random();
        let dialect = SipDialect::new(signer.clone());
        let facts = CallFacts {
            call_id: "c1".into(),
            from: "+819012345678".into(),
            digits: "1234".into(),
            ..Default::default()
        };
        let body = serde_json::to_vec(&facts).unwrap();
        let sig = signer.sign(1000, "http://x/webhooks/sip/voice/inbound", &body);
        let report = dialect.verify(&incoming_with(&headers(&sig, 1000), &body, 1010)).unwrap();
        assert_eq!((report.call_sid.as_str(), report.digits.as_str()), ("c1", "1234"));

        let other = Signer::random().sign(1000, "http://x/webhooks/sip/voice/inbound", &body);
        assert!(dialect.verify(&incoming_with(&headers(&other, 1000), &body, 1010)).is_err(), "another key");
        let changed = serde_json::to_vec(&CallFacts { digits: "9999".into(), ..facts }).unwrap();
        assert!(dialect.verify(&incoming_with(&headers(&sig, 1000), &changed, 1010)).is_err(), "a changed body");
        assert!(dialect.verify(&incoming_with(&headers(&sig, 1000), &body, 1061)).is_err(), "too old");
    }

    #[test]
    fn the_script_goes_out_as_json_the_engine_reads_back() {
        let steps = vec![
            Step::Say { text: "hi".into(), language: "en-US".into(), voice: None, rate: None, pause: None },
            Step::Hangup,
        ];
        let json = serde_json::to_string(&Answer { steps: steps.clone() }).unwrap();
        assert!(json.contains(r#""verb":"say""#), "{json}");
        let back: Answer = serde_json::from_str(&json).unwrap();
        assert_eq!(back.steps, steps);
    }
}
