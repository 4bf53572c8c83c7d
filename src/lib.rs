//! ivr-auth: an IVR phone-authentication server.
//!
//! Data flows one way: edge (`api`, `voice`, `simulator::api`) → `service` →
//! `domain` rules → `store` and `telephony`. Every status change is decided
//! in `domain::request`.

#![forbid(unsafe_code)]

pub mod api;
pub mod body;
pub mod budgets;
pub mod call;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod console_link;
pub mod domain;
pub mod error;
pub mod files;
pub mod jobs;
pub mod limits;
pub mod metrics;
pub mod secrets;
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

/// A TCP listener with a deep accept queue. `std::net::TcpListener::bind`
/// listens with a backlog of 128: a burst of new connections overflows it and
/// the dropped SYNs come back after a one-second retransmit.
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}
