//! Telnyx (TeXML): its webhook signatures and their translation; TeXML is TwiML's markup.

pub mod signature;
pub mod webhooks;
