//! Twilio's webhooks as facts: `X-Twilio-Signature` checked before anything
//! else, then the form parameters (`CallSid`, `Digits`, `From`, …) translated
//! into a `call::report::Report`, and the answer written as TwiML.
//!
//! `FormParams::report` is also how the TwiML-compatible providers (SignalWire's
//! cXML, Telnyx's TeXML) name their parameters.

use std::borrow::Cow;

use actix_web::HttpResponse;
use secrecy::{ExposeSecret, SecretString};

use crate::call::report::Report;
use crate::call::script::Step;
use crate::domain::phone::Attestation;
use crate::domain::status::CallStatus;
use crate::telephony::webhook::{Dialect, Incoming};

use super::{signature, twiml};

/// A form-encoded webhook's parameters, in order: each borrowed from the
/// body unless it had to be decoded (`%2B`, `+`).
pub struct FormParams<'a>(pub Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'a> FormParams<'a> {
    pub fn parse(body: &'a [u8]) -> Self {
        Self(url::form_urlencoded::parse(body).collect())
    }

    pub fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v)
    }

    /// Twilio's names for the facts the call flow reads.
    pub fn report(&self) -> Report {
        let by = self.get("AnsweredBy");
        Report {
            call_sid: self.get("CallSid").to_owned(),
            from: self.get("From").to_owned(),
            to: self.get("To").to_owned(),
            digits: self.get("Digits").to_owned(),
            finished_on_key: self.get("FinishedOnKey").to_owned(),
            answered_by_machine: by == "fax" || by.starts_with("machine"),
            attestation: Attestation::from_verstat(self.get("StirVerstat")),
            call_status: CallStatus::from_provider(self.get("CallStatus")),
            sip_response_code: self.get("SipResponseCode").to_owned(),
            call_seconds: self.get("CallDuration").parse().ok(),
            message_sid: self.get("MessageSid").to_owned(),
            message_status: self.get("MessageStatus").to_owned(),
        }
    }
}

/// Webhooks signed with Twilio's HMAC-SHA1 scheme and answered with TwiML:
/// Twilio's own (key: the auth token), SignalWire's (key: the signing key).
pub struct FormDialect {
    name: &'static str,
    /// The headers that may carry the signature, the provider's own first.
    headers: &'static [&'static str],
    /// One key per account of this provider: a webhook signed by any verifies.
    keys: Vec<SecretString>,
}

impl FormDialect {
    /// Twilio's webhooks, signed with the auth token of one of `tokens`' accounts.
    pub fn twilio(tokens: Vec<SecretString>) -> Self {
        Self { name: "twilio", headers: &["X-Twilio-Signature"], keys: tokens }
    }

    /// A TwiML-compatible provider that signs as Twilio does, under its own name and headers.
    pub fn compatible(name: &'static str, headers: &'static [&'static str], keys: Vec<SecretString>) -> Self {
        Self { name, headers, keys }
    }
}

impl Dialect for FormDialect {
    fn name(&self) -> &'static str {
        self.name
    }

    fn verify(&self, incoming: &Incoming<'_>) -> Result<Report, String> {
        let given = self.headers.iter().find_map(|h| incoming.header(h)).unwrap_or("");
        if given.is_empty() {
            return Err(format!("no {} header", self.headers[0]));
        }
        let params = FormParams::parse(incoming.body);
        let valid = self
            .keys
            .iter()
            .any(|key| signature::is_valid(key.expose_secret().as_bytes(), incoming.url, &params.0, given));
        if !valid {
            return Err(format!("{} does not verify", self.headers[0]));
        }
        Ok(params.report())
    }

    fn render(&self, script: &[Step]) -> HttpResponse {
        twiml::response(script)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_final_status_carries_the_call_s_seconds() {
        fn params<'a>(pairs: &[(&'a str, &'a str)]) -> FormParams<'a> {
            FormParams(pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect())
        }
        let done = params(&[("CallStatus", "completed"), ("CallDuration", "42")]).report();
        assert_eq!((done.call_status, done.call_seconds), (Some(CallStatus::Completed), Some(42)));
        assert_eq!(params(&[("CallStatus", "ringing")]).report().call_seconds, None);
    }
}
