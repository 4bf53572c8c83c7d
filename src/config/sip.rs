//! Our own SIP trunk's settings (`IVR_AUTH_PROVIDER=sip`): where we listen,
//! where outbound INVITEs go, whom we take INVITEs from, which UDP ports the
//! media uses and where the prompt audio is.
//!
//! Checked once at start: a trunk that does not resolve, a CIDR that does
//! not parse or a port range upside down stops the start with one line that
//! names the variable.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use ipnet::IpNet;
use secrecy::SecretString;

use super::ConfigError;
pub use crate::telephony::sip::settings::{PORTS_ENV, PortRange, PortRangeError, SipConfig, Transport, Trunk};

/// The raw settings, from the environment or an `[[accounts]]` table.
#[derive(Debug, Clone, Default)]
pub struct SipArgs<'a> {
    pub listen: Option<&'a str>,
    pub trunk: Option<&'a str>,
    pub username: Option<&'a str>,
    pub password: Option<SecretString>,
    pub allowed_peers: Option<&'a str>,
    pub public_address: Option<&'a str>,
    pub rtp_ports: Option<&'a str>,
    pub audio_dir: Option<&'a str>,
    pub answer_delay_ms: Option<u32>,
}

/// Names the settings an error is about (`IVR_AUTH_SIP_TRUNK`, or `[[accounts]] "x".trunk`).
pub type Namer<'a> = &'a dyn Fn(&str) -> Cow<'static, str>;

impl SipArgs<'_> {
    pub fn validate(&self, name: Namer<'_>) -> Result<SipConfig, ConfigError> {
        let listen_raw = self.listen.unwrap_or("127.0.0.1:5060");
        let listen: SocketAddr = listen_raw
            .parse()
            .map_err(|_| ConfigError::named(name("listen"), format!("{listen_raw:?} is not an IP address and port")))?;
        let trunk = self.trunk.map(|t| parse_trunk(t).map_err(|e| ConfigError::named(name("trunk"), e))).transpose()?;
        let allowed_peers = match self.allowed_peers {
            Some(raw) => parse_peers(raw).map_err(|e| ConfigError::named(name("allowed_peers"), e))?,
            None => trunk.iter().map(|t| IpNet::from(t.addr.ip())).collect(),
        };
        let public_address = match self.public_address {
            Some(raw) => raw
                .parse()
                .map_err(|_| ConfigError::named(name("public_address"), format!("{raw:?} is not an IP address")))?,
            None if listen.ip().is_unspecified() => {
                return Err(ConfigError::named(
                    name("public_address"),
                    format!("must be set when listening on {} (the address peers send media to)", listen.ip()),
                ));
            }
            None => listen.ip(),
        };
        let rtp_ports = match self.rtp_ports {
            Some(raw) => raw.parse::<PortRange>().map_err(|e| {
                // From the environment it is IVR_AUTH_RTP_PORTS, not IVR_AUTH_SIP_….
                let setting = name("rtp_ports");
                let setting =
                    if setting.starts_with("IVR_AUTH_SIP_") { Cow::Borrowed("IVR_AUTH_RTP_PORTS") } else { setting };
                ConfigError::named(setting, e.to_string())
            })?,
            None => PortRange::default(),
        };
        let username = self.username.map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned);
        if username.is_some() != self.password.is_some() {
            return Err(ConfigError::named(name("password"), "set both the digest username and password, or neither"));
        }
        Ok(SipConfig {
            listen,
            trunk,
            username,
            password: self.password.clone(),
            allowed_peers,
            public_address,
            rtp_ports,
            audio_dir: PathBuf::from(self.audio_dir.unwrap_or("voice_prompts/audio")),
            answer_delay: std::time::Duration::from_millis(self.answer_delay_ms.unwrap_or(0).min(10_000).into()),
        })
    }
}

/// `sip:host[:port][;transport=udp|tcp]`, the host resolved now.
fn parse_trunk(raw: &str) -> Result<Trunk, String> {
    let rest = raw.trim().strip_prefix("sip:").ok_or_else(|| format!("{raw:?} is not a sip: URI"))?;
    let mut parts = rest.split(';');
    let hostport = parts.next().unwrap_or_default();
    let hostport = hostport.rsplit_once('@').map_or(hostport, |(_, h)| h);
    let mut transport = Transport::Udp;
    for param in parts {
        match param.to_ascii_lowercase().as_str() {
            "transport=udp" => transport = Transport::Udp,
            "transport=tcp" => transport = Transport::Tcp,
            p if p.starts_with("transport=") => return Err(format!("transport {:?} is not udp or tcp", &param[10..])),
            _ => {}
        }
    }
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => {
            (h, p.parse::<u16>().map_err(|_| format!("{p:?} is not a port"))?)
        }
        _ => (hostport, 5060),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{raw:?} names no host"));
    }
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{host:?} does not resolve: {e}"))?
        .next()
        .ok_or_else(|| format!("{host:?} does not resolve"))?;
    Ok(Trunk { uri: raw.trim().to_owned(), host: host.to_owned(), addr, transport })
}

/// Comma-separated addresses or CIDR blocks.
fn parse_peers(raw: &str) -> Result<Vec<IpNet>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<IpNet>()
                .or_else(|_| p.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{p:?} is not an IP address or CIDR block"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(field: &str) -> Cow<'static, str> {
        Cow::Owned(format!("IVR_AUTH_SIP_{}", field.to_ascii_uppercase()))
    }

    #[test]
    fn the_trunk_s_address_is_the_allowed_peer_unless_peers_are_named() {
        let args = SipArgs { trunk: Some("sip:127.0.0.1:5070;transport=tcp"), ..Default::default() };
        let c = args.validate(&env).unwrap();
        let trunk = c.trunk.unwrap();
        assert_eq!((trunk.addr.to_string().as_str(), trunk.transport), ("127.0.0.1:5070", Transport::Tcp));
        assert_eq!(c.allowed_peers, vec!["127.0.0.1/32".parse::<IpNet>().unwrap()]);
        assert_eq!(c.rtp_ports, PortRange::default());
        let args = SipArgs { allowed_peers: Some("10.0.0.0/8, 192.0.2.7"), ..Default::default() };
        assert_eq!(args.validate(&env).unwrap().allowed_peers.len(), 2);
    }

    #[test]
    fn bad_settings_name_their_variable() {
        let err = |args: SipArgs<'_>| {
            let e = args.validate(&env).unwrap_err();
            format!("{}: {}", e.setting, e.problem)
        };
        assert_eq!(
            err(SipArgs { trunk: Some("http://x"), ..Default::default() }),
            "IVR_AUTH_SIP_TRUNK: \"http://x\" is not a sip: URI"
        );
        assert!(
            err(SipArgs { allowed_peers: Some("10.0.0.0/33"), ..Default::default() })
                .starts_with("IVR_AUTH_SIP_ALLOWED_PEERS")
        );
        assert!(err(SipArgs { rtp_ports: Some("30000-20000"), ..Default::default() }).contains("IVR_AUTH_RTP_PORTS"));
        assert!(
            err(SipArgs { listen: Some("0.0.0.0:5060"), ..Default::default() })
                .starts_with("IVR_AUTH_SIP_PUBLIC_ADDRESS")
        );
        assert!(err(SipArgs { username: Some("bank"), ..Default::default() }).starts_with("IVR_AUTH_SIP_PASSWORD"));
    }
}
