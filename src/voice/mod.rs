//! The provider side: webhooks, signature checks, TwiML and prompts.

pub mod hold;
pub mod prompts;
pub mod signature;
pub mod tenant_voice;
pub mod twiml;
pub mod urls;
pub mod webhooks;
