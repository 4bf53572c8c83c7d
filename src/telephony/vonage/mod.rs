//! Vonage Voice API: for now only the check of its signed webhooks (not yet wired into a route).

pub mod signature;
