//! The media half of our SIP trunk: RTP over UDP carrying G.711, and the
//! caller's keypad in all three ways carriers deliver it (RFC 4733 events,
//! SIP INFO, in-band tones). The signalling layer owns the dialog and the
//! SDP; it opens a [`session::MediaSession`] per call from the node's
//! [`pool::MediaPool`], starts it when the answer is known and reads digits
//! from it.

pub mod clock;
pub mod counters;
pub mod digit;
pub mod g711;
pub mod inband;
pub mod info;
pub mod pool;
pub mod ports;
pub mod rfc4733;
pub mod rtp;
pub mod session;
