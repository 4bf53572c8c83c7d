//! The site-facing JSON API and the operations endpoints.

pub mod audit;
pub mod auth;
pub mod input;
pub mod lookup;
pub mod ops;
pub mod request_signature;
pub mod requests;
pub mod session;
pub mod stats;
pub mod tenant;
pub mod usage;
