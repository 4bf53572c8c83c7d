//! Vonage Voice API: its REST client and application JWT, its NCCO renderer,
//! the check of its signed webhooks and their translation.

pub mod app_jwt;
pub mod client;
pub mod ncco;
pub mod signature;
pub mod webhooks;
