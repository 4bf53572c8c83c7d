//! Our own SIP trunk (`IVR_AUTH_PROVIDER=sip`): ivr-auth is the telephone
//! endpoint. Signalling with `rsipstack`, media (RTP, G.711, DTMF) in
//! `media`, prompt audio in `audio`.

pub mod audio;
pub mod media;
