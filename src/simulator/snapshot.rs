//! What the simulator shows of its calls and text messages (its JSON API and the dev phone).

use serde::Serialize;

/// One thing that happened on a simulated call.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    /// RFC 3339.
    pub at: String,
    /// ringing, answered, declined, say, play, pause, gather, key, digits, redirect, hangup, status, error
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The state of a simulated call, as the JSON API and the dev phone show it.
#[derive(Debug, Clone, Serialize)]
pub struct CallSnapshot {
    pub sid: String,
    /// `outbound-api` (the server calls the user) or `inbound` (the user calls the server).
    pub direction: &'static str,
    pub from: String,
    pub to: String,
    /// The STIR/SHAKEN verification the provider reports on an inbound call
    /// (`StirVerstat`, e.g. `TN-Validation-Passed-A`), when the caller chose one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stir_verstat: Option<String>,
    /// ringing, in-progress, completed, busy, no-answer, failed, canceled
    pub state: &'static str,
    /// Whether a Gather is waiting for keys now.
    pub awaiting_digits: bool,
    /// The auth request this call belongs to, once the webhooks named it.
    pub request_id: Option<String>,
    pub created_at: String,
    pub timeline: Vec<TimelineEntry>,
}

/// A text message the server sent through the simulator, as the dev phone shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MessageSnapshot {
    pub sid: String,
    pub from: String,
    pub to: String,
    /// The text, code included: the simulator is a development tool, and
    /// this is what the user's phone would show.
    pub body: String,
    /// queued, sent, delivered
    pub status: &'static str,
    pub created_at: String,
}
