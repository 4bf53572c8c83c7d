//! What a provider's webhook reported about a call or a text, in no provider's names.

use crate::domain::phone::Attestation;
use crate::domain::status::CallStatus;

/// The facts of one verified webhook, as the call flow reads them. A
/// provider's module fills it from its own parameters and words (for Twilio:
/// `telephony::twilio::webhooks`); a fact the webhook did not carry is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The provider's id of the call (empty for a text's report).
    pub call_sid: String,
    /// The caller's number, as the provider spelled it.
    pub from: String,
    /// The called number, as the provider spelled it.
    pub to: String,
    /// The keys a gather collected.
    pub digits: String,
    /// The key that ended a gather, if one did.
    pub finished_on_key: String,
    /// A fax or an answering machine picked up, not a person.
    pub answered_by_machine: bool,
    /// The STIR/SHAKEN level the provider verified the caller id at, if any.
    pub attestation: Option<Attestation>,
    /// The call's status in a status report.
    pub call_status: Option<CallStatus>,
    /// The SIP code a failed call ended with, if given.
    pub sip_response_code: String,
    /// How long the call was up, in seconds, in a final status report.
    pub call_seconds: Option<u32>,
    /// The provider's id of a text.
    pub message_sid: String,
    /// The text's status in a status report, in the provider's words.
    pub message_status: String,
}
