//! Prompt audio for calls on our own SIP trunk: the call script's steps as
//! 8 kHz clips, from files rendered or recorded before serving and held in
//! memory, so that nothing is synthesised or fetched during a call.
//!
//! Files are keyed by content (`<dir>/<locale>/tts/<hash of the text>.wav`),
//! so the script needs no change: whatever text a step says has one file.

mod engine;
pub mod layout;
pub mod library;
pub mod needs;
pub mod render;
pub mod source;
mod wav;

pub use library::{AudioLibrary, Missing};
pub use render::{RenderOptions, Summary, render};
