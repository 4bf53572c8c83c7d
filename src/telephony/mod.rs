//! Telephony providers behind one trait (`Telephony`: place a call, send a text,
//! end a call) and their webhooks behind another (`webhook::Dialect`).

#[cfg(test)]
mod canned;
pub mod signalwire;
pub mod sip;
pub mod telnyx;
pub mod twilio;
pub mod vonage;
pub mod webhook;

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::phone::{PhoneNumber, mask_numbers};

/// An outbound call to request from the provider.
#[derive(Debug, Clone)]
pub struct OutboundCall {
    pub to: PhoneNumber,
    pub from: Option<PhoneNumber>,
    /// Fetched when the callee answers.
    pub answer_url: String,
    pub status_callback: String,
    /// Seconds to ring.
    pub timeout: u32,
    /// Ask the provider to tell a person from an answering machine before
    /// the answer webhook (`MachineDetection`): a code read aloud must never
    /// be left on a voicemail.
    pub detect_machine: bool,
}

/// A text message to send through the provider's Messages API.
#[derive(Debug, Clone)]
pub struct OutboundSms {
    pub to: PhoneNumber,
    pub from: Option<PhoneNumber>,
    /// Holds the code: never logged.
    pub body: String,
    /// Receives the message's delivery status.
    pub status_callback: String,
}

/// What a provider said about a failure, with its phone numbers masked
/// (Twilio's 21211 quotes the number it refused). Made only by `new`, so
/// every adapter's text is masked before the jobs log or store it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderText(String);

impl ProviderText {
    pub fn new(text: impl AsRef<str>) -> Self {
        Self(mask_numbers(text.as_ref()))
    }
}

impl std::fmt::Display for ProviderText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<ProviderText> for String {
    fn from(text: ProviderText) -> Self {
        text.0
    }
}

/// Why a call request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The provider refused this call for good (a 4xx about the call, not
    /// the account): the request fails.
    #[error("provider refused the call: {0}")]
    Refused(ProviderText),
    /// The provider refused the account (401, 402, 403: bad credentials,
    /// suspended, no funds): another account may carry the call.
    #[error("provider refused the account: {0}")]
    Account(ProviderText),
    /// A 5xx, a 429 or a connection that could not be made: try again later,
    /// or through another account.
    #[error("provider unavailable: {message}")]
    Unavailable { message: ProviderText, retry_after: Option<Duration> },
    /// The request was sent but no answer came in time: the call may exist.
    #[error("provider did not answer in time: {0}")]
    Uncertain(ProviderText),
}

impl CallError {
    /// Sorts a provider's error answer: 429 and 5xx "try again later" (with
    /// `Retry-After`), 401/402/403 "not this account", other 4xx "not this call".
    pub fn from_status(status: reqwest::StatusCode, retry_after: Option<Duration>, message: ProviderText) -> Self {
        match status.as_u16() {
            // Throttled: the account is fine, only too fast; it is backed off
            // for seconds (its `Retry-After`, else one), not skipped for long.
            429 => Self::Unavailable { message, retry_after: retry_after.or(Some(Duration::from_secs(1))) },
            500..=599 => Self::Unavailable { message, retry_after },
            401..=403 => Self::Account(message),
            _ => Self::Refused(message),
        }
    }

    /// A request that failed on the way: not connected (nothing was sent),
    /// or sent and not answered in time (the call may exist). The text names
    /// the kind only: reqwest's error carries the URL, with the account's id.
    pub fn from_network(e: &reqwest::Error) -> Self {
        if e.is_connect() {
            Self::Unavailable { message: ProviderText::new("network: connect failed"), retry_after: None }
        } else if e.is_timeout() {
            Self::Uncertain(ProviderText::new("network: timeout"))
        } else {
            Self::Unavailable { message: ProviderText::new("network: request failed"), retry_after: None }
        }
    }
}

/// The `Retry-After` of an answer, in seconds.
pub fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// The id a provider gave what it created (a call, a message), checked
/// before it is stored: missing means the answer was not understood (try
/// again); empty or over 128 characters is refused.
pub fn created_id(id: Option<String>) -> Result<String, CallError> {
    match id {
        Some(id) if !id.is_empty() && id.len() <= 128 => Ok(id),
        Some(_) => Err(CallError::Refused(ProviderText::new("provider returned an unusable id"))),
        None => Err(CallError::Unavailable {
            message: ProviderText::new("provider answered success without an id"),
            retry_after: None,
        }),
    }
}

/// Whether a provider has a call this server asked for and got no answer about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(String),
    NotFound,
    /// The provider cannot be asked (or did not say).
    CannotTell,
}

/// A telephony provider as ivr-auth needs it.
#[async_trait]
pub trait Telephony: Send + Sync + 'static {
    /// Places a call; returns the provider's call sid.
    async fn place_call(&self, call: &OutboundCall) -> Result<String, CallError>;
    /// Hangs up a call (or cancels it while it rings).
    async fn end_call(&self, call_sid: &str) -> Result<(), CallError>;
    /// Sends a text message; returns the provider's message sid. Errors are
    /// sorted as for calls: refused for good, or try again later.
    async fn send_sms(&self, sms: &OutboundSms) -> Result<String, CallError>;
    /// After a call request went unanswered (`CallError::Uncertain`): whether
    /// the provider created a call to `call.to` since `since`.
    async fn find_call(&self, call: &OutboundCall, since: chrono::DateTime<chrono::Utc>) -> Lookup {
        let _ = (call, since);
        Lookup::CannotTell
    }
    /// The folder of the webhooks this provider calls (`/webhooks/<name>/`):
    /// no default, so a new client cannot send its calls to another's folder.
    fn webhooks(&self) -> &'static str;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_answers_are_sorted_by_what_they_say_about_the_call_and_the_account() {
        let sort = |code: u16, after: Option<u64>| {
            let status = reqwest::StatusCode::from_u16(code).unwrap();
            CallError::from_status(status, after.map(Duration::from_secs), ProviderText::new("x"))
        };
        assert!(matches!(sort(429, None), CallError::Unavailable { retry_after: Some(d), .. } if d.as_secs() == 1));
        assert!(matches!(sort(429, Some(4)), CallError::Unavailable { retry_after: Some(d), .. } if d.as_secs() == 4));
        assert!(matches!(sort(503, None), CallError::Unavailable { retry_after: None, .. }));
        for code in [401, 402, 403] {
            assert!(matches!(sort(code, None), CallError::Account(_)), "{code}");
        }
        for code in [400, 404, 422] {
            assert!(matches!(sort(code, None), CallError::Refused(_)), "{code}");
        }
    }

    #[test]
    fn a_provider_s_words_are_kept_with_their_numbers_masked() {
        let refused = CallError::Refused(ProviderText::new(
            "HTTP 400 The 'To' number +819012345678 is not a valid phone number. (code 21211)",
        ));
        assert_eq!(
            refused.to_string(),
            "provider refused the call: HTTP 400 The 'To' number ********5678 is not a valid phone number. \
             (code 21211)"
        );
        let text = ProviderText::new("unreachable: 090-1234-5678");
        assert_eq!(String::from(text.clone()), "unreachable: *******5678");
        assert!(!format!("{text:?}").contains("1234"));
    }
}
