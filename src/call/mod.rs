//! The provider-neutral side of a call: the script it plays, the prompts in
//! each locale and each tenant's words, the hold during an outage and the
//! webhook URLs. A provider's module (`telephony::twilio`) renders the script
//! into its markup; nothing here knows a provider or the HTTP server.

pub mod hold;
pub mod preview;
pub mod prompt;
pub mod prompts;
pub mod report;
pub mod script;
pub mod speaker;
pub mod tenant_voice;
pub mod urls;
