//! A call's media: RTP over UDP, G.711, and the keys the caller presses.
