//! SignalWire (compatibility API, cXML): its webhook signatures. Its REST
//! API is Twilio's under the Space URL (`/api/laml/2010-04-01/…`) and cXML
//! is TwiML, so its client and renderer are Twilio's.

pub mod signature;

use secrecy::SecretString;

use crate::telephony::twilio::webhooks::FormDialect;

/// SignalWire's webhooks: Twilio's scheme keyed with each project's signing
/// key, in `X-SignalWire-Signature` (or `X-Twilio-Signature`, its alias).
pub fn dialect(signing_keys: Vec<SecretString>) -> FormDialect {
    FormDialect::compatible("signalwire", &[signature::SIGNATURE_HEADER, "X-Twilio-Signature"], signing_keys)
}
