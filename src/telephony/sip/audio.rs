//! Prompt audio for calls on our own SIP trunk.
