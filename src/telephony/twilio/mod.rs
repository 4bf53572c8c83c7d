//! Twilio: its REST client, its webhook signatures, the translation of its
//! webhook parameters and the renderer of the call script into TwiML.

pub mod client;
pub mod signature;
pub mod twiml;
pub mod webhooks;

pub use client::TwilioClient;
