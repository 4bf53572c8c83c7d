//! Telephony providers behind one trait: the Twilio REST API, or the in-process simulator.

pub mod twilio;

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::phone::PhoneNumber;

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

/// Why a call request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The provider refused for good (a 4xx other than 429): the request fails.
    #[error("provider refused the call: {0}")]
    Refused(String),
    /// A 5xx, a 429 or a network error: try again later.
    #[error("provider unavailable: {message}")]
    Unavailable { message: String, retry_after: Option<Duration> },
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
}
