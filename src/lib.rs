//! ivr-auth: an IVR phone-authentication server.
//!
//! Data flows one way: edge (`api`, `voice`, `simulator::api`) → `service` →
//! `domain` rules → `store` and `telephony`. Every status change is decided
//! in `domain::request`.

#![forbid(unsafe_code)]

pub mod api;
pub mod bench;
pub mod body;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod jobs;
pub mod limits;
pub mod metrics;
pub mod service;
pub mod simulator;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod telephony;
pub mod voice;
pub mod web;

/// Installs the process-wide TLS crypto provider (ring, which needs no C
/// toolchain) that every outgoing HTTPS client uses. Idempotent.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
