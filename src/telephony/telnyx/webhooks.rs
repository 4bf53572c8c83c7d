//! Telnyx TeXML webhooks as facts: `telnyx-signature-ed25519` over
//! `timestamp|body` checked first (with each configured account's public
//! key), then the form parameters, which TeXML names as TwiML does
//! (`CallSid`, `Digits`, `From`, `CallStatus`, …), plus
//! `ShakenStirAttestation` (`A`, `B` or `C`) for the attestation rule.
//! The answer is TeXML, which is TwiML's markup.

use actix_web::HttpResponse;
use ed25519_dalek::VerifyingKey;

use crate::call::report::Report;
use crate::call::script::Step;
use crate::domain::phone::Attestation;
use crate::telephony::twilio::twiml;
use crate::telephony::twilio::webhooks::FormParams;
use crate::telephony::webhook::{Dialect, Incoming};

use super::signature::{self, Refusal, SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// Telnyx's webhooks, signed by one of `keys`' accounts.
pub struct TelnyxDialect {
    keys: Vec<VerifyingKey>,
}

impl TelnyxDialect {
    pub fn new(keys: Vec<VerifyingKey>) -> Self {
        Self { keys }
    }
}

/// TeXML's parameters, as Twilio's plus Telnyx's own attestation.
pub fn report(params: &FormParams) -> Report {
    let mut report = params.report();
    let level = params.get("ShakenStirAttestation");
    if !level.is_empty() {
        report.attestation = Attestation::parse(level);
    }
    report
}

impl Dialect for TelnyxDialect {
    fn name(&self) -> &'static str {
        "telnyx"
    }

    fn verify(&self, incoming: &Incoming<'_>) -> Result<Report, String> {
        let timestamp = incoming.header(TIMESTAMP_HEADER);
        let signed = incoming.header(SIGNATURE_HEADER);
        let mut why = Refusal::BadSignature;
        for key in &self.keys {
            match signature::verify(key, timestamp, signed, incoming.body, incoming.now_unix) {
                Ok(()) => return Ok(report(&FormParams::parse(incoming.body))),
                // Missing, malformed or stale: no other key changes that.
                Err(e @ Refusal::BadSignature) => why = e,
                Err(e) => return Err(e.to_string()),
            }
        }
        Err(why.to_string())
    }

    fn render(&self, script: &[Step]) -> HttpResponse {
        twiml::response(script)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telnyx_s_own_attestation_parameter_is_read() {
        let params = FormParams::parse(b"CallSid=v3%3Aabc&From=%2B819012345678&ShakenStirAttestation=B");
        let r = report(&params);
        assert_eq!((r.call_sid.as_str(), r.attestation), ("v3:abc", Some(Attestation::B)));
        assert_eq!(report(&FormParams::parse(b"CallSid=x")).attestation, None);
    }
}
