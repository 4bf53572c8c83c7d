//! Vonage Voice API: its application JWT and the check of its signed webhooks (not yet wired into a route).

pub mod app_jwt;
pub mod signature;
