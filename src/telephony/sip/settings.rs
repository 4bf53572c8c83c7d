//! What the SIP engine runs with, once `config::sip` has read and checked
//! it: the types live here so that the engine needs nothing from `config`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use ipnet::IpNet;
use secrecy::SecretString;

/// The environment variable holding the range, `A-B`.
pub const PORTS_ENV: &str = "IVR_AUTH_RTP_PORTS";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{PORTS_ENV} must be FIRST-LAST with 1024 <= FIRST < LAST <= 65535, got {0:?}")]
pub struct PortRangeError(String);

/// An inclusive range of UDP ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl Default for PortRange {
    fn default() -> Self {
        PortRange { first: 20000, last: 20999 }
    }
}

impl FromStr for PortRange {
    type Err = PortRangeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || PortRangeError(text.to_owned());
        let (first, last) = text.trim().split_once('-').ok_or_else(error)?;
        let first: u16 = first.trim().parse().map_err(|_| error())?;
        let last: u16 = last.trim().parse().map_err(|_| error())?;
        if first < 1024 || first >= last {
            return Err(error());
        }
        Ok(PortRange { first, last })
    }
}

impl PortRange {
    /// The even ports of the range: RTP's (RFC 3550), each odd neighbour left for RTCP.
    pub fn even_ports(self) -> impl Iterator<Item = u16> {
        (self.first..=self.last).filter(|p| p % 2 == 0)
    }
}

/// How SIP messages travel to the trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// The SIP URI outbound INVITEs go to, resolved once at start.
#[derive(Debug, Clone)]
pub struct Trunk {
    /// As configured, e.g. `sip:sbc.bank.example:5060;transport=udp`.
    pub uri: String,
    /// The host part of the URI: the Request-URI's host of an outbound INVITE.
    pub host: String,
    pub addr: SocketAddr,
    pub transport: Transport,
}

/// The validated settings of the SIP engine.
#[derive(Debug, Clone)]
pub struct SipConfig {
    pub listen: SocketAddr,
    pub trunk: Option<Trunk>,
    /// Digest credentials, answered when the trunk challenges an INVITE.
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// Addresses whose INVITEs are taken; others get 403.
    pub allowed_peers: Vec<IpNet>,
    /// Written in Contact and in the SDP's `c=` line.
    pub public_address: IpAddr,
    pub rtp_ports: PortRange,
    pub audio_dir: PathBuf,
    /// How long an inbound call rings (180) before we answer it.
    pub answer_delay: std::time::Duration,
}
