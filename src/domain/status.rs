//! The small closed vocabularies of an auth request: mode, locale, status, failure reason, call status.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

// `$text:tt`, not `:literal`: a literal fragment reaches derive macros wrapped in
// an invisible group, and utoipa then misses the serde rename (the schema listed
// the variant names instead of the wire spellings).
macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:tt),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }

        impl $name {
            /// The wire and storage spelling.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            /// Parses the wire and storage spelling.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some(Self::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// Who places the call: the server (outbound) or the user (inbound).
    Mode { Outbound = "outbound", Inbound = "inbound" }
);

string_enum!(
    /// How the code reaches the user: typed on the phone (`voice_dtmf`, the
    /// code shown on the site's page), read aloud by a call (`voice_otp`), or
    /// sent as a text message (`sms`); for the last two the user types it on
    /// the site's page, which checks it with `/check`.
    Channel { VoiceDtmf = "voice_dtmf", VoiceOtp = "voice_otp", Sms = "sms" }
);

string_enum!(
    /// The language of the voice prompts.
    Locale { JaJp = "ja-JP", EnUs = "en-US" }
);

impl Locale {
    /// The contract's default, and what a call speaks when no one request's
    /// locale applies (a number several tenants share, an unknown caller).
    pub const DEFAULT: Self = Self::JaJp;
}

string_enum!(
    /// Where an auth request stands; see the contract's status table.
    Status {
        Pending = "pending",
        Calling = "calling",
        InProgress = "in_progress",
        Verified = "verified",
        Failed = "failed",
        Expired = "expired",
        Canceled = "canceled",
    }
);

string_enum!(
    /// Why a request failed.
    FailureReason {
        WrongCode = "wrong_code",
        NoInput = "no_input",
        NoAnswer = "no_answer",
        Busy = "busy",
        CallFailed = "call_failed",
        Rejected = "rejected",
        Attestation = "attestation",
        DeliveryFailed = "delivery_failed",
        NotPlaced = "not_placed",
    }
);

string_enum!(
    /// A provider's `CallStatus`, as reported by webhooks and status callbacks.
    CallStatus {
        Queued = "queued",
        Initiated = "initiated",
        Ringing = "ringing",
        InProgress = "in-progress",
        Completed = "completed",
        Busy = "busy",
        Failed = "failed",
        NoAnswer = "no-answer",
        Canceled = "canceled",
    }
);

impl Status {
    /// Terminal statuses never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Verified | Self::Failed | Self::Expired | Self::Canceled)
    }

    /// Progress order: a request only ever moves to a higher rank.
    pub fn rank(self) -> u8 {
        match self {
            Self::Pending => 0,
            Self::Calling => 1,
            Self::InProgress => 2,
            Self::Verified | Self::Failed | Self::Expired | Self::Canceled => 3,
        }
    }
}

impl CallStatus {
    /// Parses a provider's spelling, including `answered` from status-callback events.
    pub fn from_provider(s: &str) -> Option<Self> {
        match s {
            "answered" => Some(Self::InProgress),
            other => Self::parse(other),
        }
    }

    /// Progress order of a call, used to ignore late and duplicate callbacks.
    pub fn rank(self) -> u8 {
        match self {
            Self::Queued | Self::Initiated => 0,
            Self::Ringing => 1,
            Self::InProgress => 2,
            Self::Completed | Self::Busy | Self::Failed | Self::NoAnswer | Self::Canceled => 3,
        }
    }
}
