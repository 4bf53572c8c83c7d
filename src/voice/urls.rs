//! The webhook URLs handed to the provider, all under `IVR_AUTH_PUBLIC_URL`.

use uuid::Uuid;

/// Builds provider-facing URLs from the public base URL (no trailing slash).
#[derive(Debug, Clone)]
pub struct Urls {
    base: String,
}

/// Route paths, shared by the URL builder and the route table.
pub mod paths {
    pub const ANSWER: &str = "/webhooks/twilio/voice/answer/{id}";
    pub const GATHER: &str = "/webhooks/twilio/voice/gather/{id}";
    pub const NO_INPUT: &str = "/webhooks/twilio/voice/no-input/{id}";
    pub const STATUS: &str = "/webhooks/twilio/voice/status/{id}";
    pub const STATUS_BY_SID: &str = "/webhooks/twilio/voice/status";
    pub const INBOUND: &str = "/webhooks/twilio/voice/inbound";
    pub const INBOUND_GATHER: &str = "/webhooks/twilio/voice/inbound/gather";
    /// The Gather action after a `voice_otp` call read the code: 1 hears it again.
    pub const OTP: &str = "/webhooks/twilio/voice/otp/{id}";
    /// Delivery reports of the text message of a request.
    pub const SMS_STATUS: &str = "/webhooks/twilio/sms/status/{id}";
}

impl Urls {
    pub fn new(base: &str) -> Self {
        Self { base: base.trim_end_matches('/').to_owned() }
    }

    /// The public base URL itself.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn with_id(&self, path: &str, id: Uuid) -> String {
        format!("{}{}", self.base, path.replace("{id}", &id.to_string()))
    }

    pub fn answer(&self, id: Uuid) -> String {
        self.with_id(paths::ANSWER, id)
    }

    pub fn gather(&self, id: Uuid) -> String {
        self.with_id(paths::GATHER, id)
    }

    pub fn no_input(&self, id: Uuid) -> String {
        self.with_id(paths::NO_INPUT, id)
    }

    pub fn status(&self, id: Uuid) -> String {
        self.with_id(paths::STATUS, id)
    }

    pub fn otp(&self, id: Uuid) -> String {
        self.with_id(paths::OTP, id)
    }

    pub fn sms_status(&self, id: Uuid) -> String {
        self.with_id(paths::SMS_STATUS, id)
    }

    pub fn inbound(&self) -> String {
        format!("{}{}", self.base, paths::INBOUND)
    }

    /// The Gather action on a number several tenants share: `attempt` counts the caller's tries.
    pub fn inbound_gather(&self, attempt: u32) -> String {
        format!("{}{}?try={attempt}", self.base, paths::INBOUND_GATHER)
    }

    pub fn status_by_sid(&self) -> String {
        format!("{}{}", self.base, paths::STATUS_BY_SID)
    }

    /// The URL the provider signed for a request the server received at `path_and_query`.
    pub fn signed_url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base, path_and_query)
    }
}
