//! Telnyx (TeXML): its REST client, its webhook signatures and their
//! translation; TeXML is TwiML's markup, so Twilio's renderer writes it.

pub mod client;
pub mod signature;
pub mod webhooks;
