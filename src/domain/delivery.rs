//! How a request's code reaches the user: its channel, its fallback, and each attempt made.
//!
//! Stored as one JSON column (`auth_requests.delivery`; NULL on requests
//! from before channels, which are `voice_dtmf` without fallback), so a
//! detail added later needs no migration.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::status::Channel;

/// How many more times a `voice_otp` caller may hear the code (pressing 1).
pub const OTP_REPEATS: u8 = 3;

/// The channel of a request, its fallback, and what became of each attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub channel: Channel,
    /// Channels to try, in order, when a call is not answered (`no_answer`,
    /// `busy`, `rejected`). Only `sms`, and only for a voice channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback: Vec<Channel>,
    /// One entry per attempt to reach the user, the current one last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// How often the code has been read aloud on this call (`voice_otp`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub readings: u8,
    /// The provider account the call goes (or went) out through, once one was chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// While the call waits for its account's start slot: when it leaves (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_until: Option<String>,
}

impl Delivery {
    /// The call waits for a start slot of `account`, at `at`.
    pub fn queue(&mut self, account: &str, at: DateTime<Utc>) {
        self.account = Some(account.to_owned());
        self.queued_until = Some(at.to_rfc3339_opts(SecondsFormat::Micros, true));
    }

    /// When the queued call leaves, if it waits.
    pub fn queued_until(&self) -> Option<DateTime<Utc>> {
        let at = DateTime::parse_from_rfc3339(self.queued_until.as_deref()?).ok()?;
        Some(at.with_timezone(&Utc))
    }

    /// The call left the queue (it was placed).
    pub fn left_queue(&mut self) {
        self.queued_until = None;
    }
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

/// One attempt to reach the user through one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Attempt {
    pub channel: Channel,
    /// `started` (call requested or message being sent), then for a call
    /// `answered`, `no_answer`, `busy`, `rejected` or `call_failed`, and for a
    /// message `sent`, `delivered` or `undelivered`.
    pub status: String,
    /// The provider's id of the call or message, once it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// When this attempt last changed (RFC 3339).
    pub at: String,
}

impl Default for Delivery {
    fn default() -> Self {
        Self::new(Channel::VoiceDtmf, Vec::new())
    }
}

impl Delivery {
    pub fn new(channel: Channel, fallback: Vec<Channel>) -> Self {
        Self { channel, fallback, attempts: Vec::new(), readings: 0, account: None, queued_until: None }
    }

    /// The stored JSON form; `None` for the form every request had before
    /// channels (so those rows stay as they were).
    pub fn to_stored(&self) -> Option<String> {
        (*self != Self::default()).then(|| serde_json::to_string(self).unwrap_or_default())
    }

    /// Reads the stored form (`None`: a `voice_dtmf` request without fallback).
    pub fn from_stored(stored: Option<&str>) -> Option<Self> {
        match stored {
            None => Some(Self::default()),
            Some(json) => serde_json::from_str(json).ok(),
        }
    }

    /// The channel being tried now: the last attempt's, or the registered one.
    pub fn current(&self) -> Channel {
        self.attempts.last().map_or(self.channel, |a| a.channel)
    }

    /// Whether the user types the code on the site's page (checked with
    /// `/check`) rather than on the phone: `voice_otp`, `sms`, and a voice
    /// request that fell back to SMS.
    pub fn checked_on_page(&self) -> bool {
        self.channel != Channel::VoiceDtmf || self.current() == Channel::Sms
    }

    /// Whether the SMS being sent carries the fallback code (a `voice_dtmf`
    /// request's second code) rather than the request's own.
    pub fn uses_fallback_code(&self) -> bool {
        self.channel == Channel::VoiceDtmf && self.current() == Channel::Sms
    }

    /// The fallback to use now that the current channel failed, if one is left.
    pub fn next_fallback(&self) -> Option<Channel> {
        let tried = |c: &Channel| self.attempts.iter().any(|a| a.channel == *c);
        self.fallback.iter().copied().find(|c| !tried(c))
    }

    /// Starts an attempt through `channel` at `now`.
    pub fn start(&mut self, channel: Channel, now: DateTime<Utc>) {
        self.attempts.push(Attempt { channel, status: "started".into(), sid: None, at: stamp(now) });
    }

    /// Records what became of the current attempt (starting one of the
    /// registered channel first, for requests stored before attempts were).
    pub fn mark(&mut self, status: &str, sid: Option<&str>, now: DateTime<Utc>) {
        if self.attempts.is_empty() {
            self.start(self.channel, now);
        }
        if let Some(last) = self.attempts.last_mut() {
            last.status = status.to_owned();
            if let Some(sid) = sid {
                last.sid = Some(sid.to_owned());
            }
            last.at = stamp(now);
        }
    }

    /// The current attempt's status, if one was started.
    pub fn current_status(&self) -> Option<&str> {
        self.attempts.last().map(|a| a.status.as_str())
    }

    /// Whether the current attempt is a text message still to be sent.
    pub fn awaits_sending(&self) -> bool {
        self.current() == Channel::Sms && self.current_status() == Some("started")
    }

    /// Whether a report about message `sid` is about the current attempt's
    /// message (or may be: the attempt has no sid yet).
    pub fn is_current_message(&self, sid: &str) -> bool {
        self.attempts.last().and_then(|a| a.sid.as_deref()).is_none_or(|current| current == sid)
    }

    /// Whether a `voice_otp` call may read the code once more.
    pub fn may_read_again(&self) -> bool {
        self.readings < OTP_REPEATS
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_form_is_stored_as_null_and_reads_back() {
        assert_eq!(Delivery::default().to_stored(), None);
        assert_eq!(Delivery::from_stored(None), Some(Delivery::default()));
        let mut d = Delivery::new(Channel::VoiceDtmf, vec![Channel::Sms]);
        d.start(Channel::VoiceDtmf, Utc::now());
        let stored = d.to_stored().unwrap();
        assert_eq!(Delivery::from_stored(Some(&stored)), Some(d));
        assert_eq!(Delivery::from_stored(Some("{")), None);
    }

    #[test]
    fn a_voice_request_falls_back_once_and_is_then_checked_on_the_page() {
        let now = Utc::now();
        let mut d = Delivery::new(Channel::VoiceDtmf, vec![Channel::Sms]);
        assert!(!d.checked_on_page());
        d.start(Channel::VoiceDtmf, now);
        d.mark("no_answer", None, now);
        assert_eq!(d.next_fallback(), Some(Channel::Sms));
        d.start(Channel::Sms, now);
        assert_eq!(d.next_fallback(), None);
        assert!(d.checked_on_page() && d.uses_fallback_code());
        assert!(Delivery::new(Channel::VoiceOtp, Vec::new()).checked_on_page());
    }

    #[test]
    fn the_code_is_read_again_three_times_at_most() {
        let mut d = Delivery::new(Channel::VoiceOtp, Vec::new());
        for _ in 0..3 {
            assert!(d.may_read_again());
            d.readings += 1;
        }
        assert!(!d.may_read_again());
    }

    #[test]
    fn a_message_report_is_matched_to_the_current_attempt() {
        let now = Utc::now();
        let mut d = Delivery::new(Channel::Sms, Vec::new());
        d.start(Channel::Sms, now);
        assert!(d.awaits_sending());
        assert!(d.is_current_message("SM1"), "no sid yet: the report may name it");
        d.mark("sent", Some("SM1"), now);
        assert!(!d.awaits_sending());
        assert!(d.is_current_message("SM1"));
        assert!(!d.is_current_message("SM2"));
        let mut call = Delivery::new(Channel::VoiceDtmf, Vec::new());
        call.start(Channel::VoiceDtmf, now);
        assert!(!call.awaits_sending(), "a call's attempt is never a message to send");
    }
}
