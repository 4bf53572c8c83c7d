//! Vonage Voice API: its REST client and application JWT, its NCCO renderer and the check of its signed webhooks (not yet wired into a route).

pub mod app_jwt;
pub mod client;
pub mod ncco;
pub mod signature;
