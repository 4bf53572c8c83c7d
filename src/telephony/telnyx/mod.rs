//! Telnyx (TeXML): its REST client and its webhook signatures; the renderer comes later.

pub mod client;
pub mod signature;
