//! A validated registration: what a site asked for, before it becomes a stored request.

use serde::Serialize;

use super::code::Code;
use super::phone::{Line, PhoneNumber};
use super::status::{Channel, Locale, Mode};

/// A registration that passed every field rule of the contract.
#[derive(Debug, Clone)]
pub struct Registration {
    pub phone_number: PhoneNumber,
    /// What the number reaches (found when it was parsed).
    pub line: Option<Line>,
    pub mode: Mode,
    pub code: Option<Code>,
    pub code_length: u8,
    pub external_id: Option<String>,
    pub user_id: Option<String>,
    pub locale: Locale,
    pub ttl_seconds: u32,
    pub max_attempts: u8,
    pub callback_url: Option<String>,
    pub channel: Channel,
    /// Channels tried when the call reaches nobody (only `sms`, for a voice channel).
    pub fallback: Vec<Channel>,
}

#[derive(Serialize)]
struct Canonical<'a> {
    v: u8,
    phone_number: &'a str,
    mode: &'a str,
    code: Option<&'a str>,
    code_length: u8,
    external_id: Option<&'a str>,
    user_id: Option<&'a str>,
    locale: &'a str,
    ttl_seconds: u32,
    max_attempts: u8,
    callback_url: Option<&'a str>,
    // Left out at their defaults, so requests stored before channels existed
    // keep their fingerprints (and their idempotent replays).
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fallback: Vec<&'a str>,
}

impl Registration {
    /// A registration for `phone_number` with every optional field at the contract's default.
    pub fn with_defaults(phone_number: PhoneNumber) -> Self {
        Self {
            line: phone_number.line(),
            phone_number,
            mode: Mode::Outbound,
            code: None,
            code_length: 6,
            external_id: None,
            user_id: None,
            locale: Locale::DEFAULT,
            ttl_seconds: 300,
            max_attempts: 3,
            callback_url: None,
            channel: Channel::VoiceDtmf,
            fallback: Vec::new(),
        }
    }

    /// A stable byte form of the normalised registration: two bodies that
    /// mean the same (`090-…` and `+8190…`, defaults spelled out or not) give
    /// the same bytes. Contains the code, so it is only ever fed to a keyed hash.
    pub fn canonical(&self) -> Vec<u8> {
        let c = Canonical {
            v: 1,
            phone_number: self.phone_number.as_str(),
            mode: self.mode.as_str(),
            code: self.code.as_ref().map(Code::expose),
            code_length: self.code_length,
            external_id: self.external_id.as_deref(),
            user_id: self.user_id.as_deref(),
            locale: self.locale.as_str(),
            ttl_seconds: self.ttl_seconds,
            max_attempts: self.max_attempts,
            callback_url: self.callback_url.as_deref(),
            channel: (self.channel != Channel::VoiceDtmf).then_some(self.channel.as_str()),
            fallback: self.fallback.iter().map(|c| c.as_str()).collect(),
        };
        serde_json::to_vec(&c).unwrap_or_default()
    }
}
