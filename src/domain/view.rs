//! The request object as sites see it (result API, registration answer, result callback).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::delivery::Attempt;
use super::phone::PhoneNumber;
use super::request::AuthRequest;
use super::status::{CallStatus, Channel, FailureReason, Locale, Mode, Status};

/// An auth request as the site API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RequestView {
    /// Unguessable id (UUIDv7).
    pub id: String,
    pub status: Status,
    pub mode: Mode,
    /// E.164.
    pub phone_number: String,
    /// How the code reaches the user (`voice_dtmf`, `voice_otp`, `sms`).
    pub channel: Channel,
    /// The channels tried when the call reaches nobody (`["sms"]` or empty).
    pub fallback: Vec<Channel>,
    /// Each attempt to reach the user, the current one last: its channel,
    /// its status and when it last changed. After a fallback to `sms`, the
    /// site asks its user for the code from the text message and checks it
    /// with `/check`.
    pub deliveries: Vec<Attempt>,
    /// Only in the registration answer of a `voice_dtmf` request: the digits
    /// to show the user (`voice_otp` and `sms` codes reach only the user).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The number to call, in inbound mode: the tenant's own (`ivr-auth tenant set
    /// --inbound-number`), or the server's, which tenants without one share.
    pub inbound_number: Option<String>,
    pub external_id: Option<String>,
    pub user_id: Option<String>,
    pub locale: Locale,
    pub attempts: u8,
    pub max_attempts: u8,
    pub failure_reason: Option<FailureReason>,
    /// The last call status the provider reported; `queued` while the call
    /// waits for its provider account's call rate (see `call_expected_at`).
    pub call_status: Option<CallStatus>,
    /// While the call is queued: when it is expected to leave (RFC 3339).
    pub call_expected_at: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    pub updated_at: String,
    pub expires_at: String,
    pub verified_at: Option<String>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl RequestView {
    /// The view of `r` as read at `now` (expiry applied), without the code.
    pub fn at(r: &AuthRequest, inbound_number: Option<&PhoneNumber>, now: DateTime<Utc>) -> Self {
        let (status, updated_at) = r.seen_at(now);
        Self {
            id: r.id.to_string(),
            status,
            mode: r.mode,
            phone_number: r.phone_number.as_str().to_owned(),
            code: None,
            channel: r.delivery.channel,
            fallback: r.delivery.fallback.clone(),
            deliveries: r.delivery.attempts.clone(),
            inbound_number: match r.mode {
                Mode::Inbound => r.inbound_number.as_ref().or(inbound_number).map(|n| n.as_str().to_owned()),
                Mode::Outbound => None,
            },
            external_id: r.external_id.clone(),
            user_id: r.user_id.clone(),
            locale: r.locale,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            failure_reason: r.failure_reason,
            call_status: r.call_status,
            call_expected_at: r.delivery.queued_until().map(rfc3339),
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(updated_at),
            expires_at: rfc3339(r.expires_at),
            verified_at: r.verified_at.map(rfc3339),
        }
    }
}
