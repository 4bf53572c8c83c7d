//! Our own SIP trunk (`IVR_AUTH_PROVIDER=sip`): ivr-auth is the telephone
//! endpoint. Signalling with `rsipstack` (`engine`), media (RTP, G.711,
//! DTMF) in `media`, prompt audio in `audio`. The call flow is asked what to
//! do through the `sip` webhooks (`dialect`, `hooks`), as a cloud provider
//! would ask it: the rules and the prompts stay in one place, and the
//! engine only translates between SIP and RTP and the call script.

pub mod audio;
mod call;
pub mod client;
pub mod dialect;
pub mod engine;
pub mod hooks;
pub mod identity;
pub mod media;
mod outbound;
pub mod sdp;
pub mod settings;
