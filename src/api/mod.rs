//! The site-facing JSON API and the operations endpoints.

pub mod auth;
pub mod input;
pub mod ops;
pub mod requests;
pub mod signing;
pub mod tenant;
