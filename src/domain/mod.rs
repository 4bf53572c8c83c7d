//! Pure types and rules of phone authentication: no I/O here.

pub mod audit;
pub mod budget;
pub mod call;
pub mod code;
pub mod console;
pub mod delivery;
pub mod funnel;
pub mod ip;
pub mod pacing;
pub mod phone;
pub mod registration;
pub mod request;
pub mod routing;
pub mod sms;
pub mod status;
pub mod tenant;
pub mod text;
pub mod timeline;
pub mod usage;
pub mod view;
