//! Result callbacks: the terminal request object POSTed to the site, signed, at least once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use sha2::Sha256;

use crate::domain::ip::is_private_ip;

/// Signature header: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`,
/// one `v1=` per secret that signs now (two during a rotation).
pub fn signature_header(secrets: &[&str], t: i64, body: &str) -> String {
    let mut header = format!("t={t}");
    for secret in secrets {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
        mac.update(format!("{t}.").as_bytes());
        mac.update(body.as_bytes());
        header.push_str(",v1=");
        header.push_str(&hex::encode(mac.finalize().into_bytes()));
    }
    header
}

/// Whether `url`'s host is an address literal in a private or special-purpose range.
pub fn names_private_address(url: &str) -> bool {
    match url::Url::parse(url).ok().and_then(|u| u.host().map(|h| h.to_owned())) {
        Some(url::Host::Ipv4(ip)) => is_private_ip(ip.into()),
        Some(url::Host::Ipv6(ip)) => is_private_ip(ip.into()),
        Some(url::Host::Domain(_)) => false,
        None => true,
    }
}

/// Resolves names with the system resolver but drops private addresses, so
/// that a public-looking callback host cannot be pointed at the inside (SSRF
/// by DNS). Off when private callbacks are allowed.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.filter(|a| !is_private_ip(a.ip())).collect();
            if addrs.is_empty() {
                return Err("callback host resolves to no public address".into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The HTTP client for callbacks: short timeouts, no redirects, no private targets.
pub fn client(allow_private: bool) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ivr-auth/", env!("CARGO_PKG_VERSION")));
    if !allow_private {
        // Straight to the site: through an HTTP(S)_PROXY from the environment
        // the proxy would resolve the name, and reach what `PublicOnly` refuses.
        builder = builder.dns_resolver(Arc::new(PublicOnly)).no_proxy();
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_literals_are_checked_again_at_delivery() {
        assert!(names_private_address("http://[64:ff9b::7f00:1]/cb"));
        assert!(names_private_address("https://198.18.0.1/cb"));
        assert!(!names_private_address("https://203.0.114.1/cb"));
        assert!(!names_private_address("https://hooks.example.com/cb"), "names meet the resolver's filter");
    }

    #[test]
    fn header_has_one_v1_per_secret() {
        let h = signature_header(&["whsec_a", "whsec_b"], 1_700_000_000, r#"{"id":"x"}"#);
        let parts: Vec<&str> = h.split(',').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "t=1700000000");
        assert!(parts[1].starts_with("v1=") && parts[1].len() == 67);
        assert_ne!(parts[1], parts[2]);
        // Independent check of the first signature.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec_a").unwrap();
        mac.update(br#"1700000000.{"id":"x"}"#);
        assert_eq!(parts[1], format!("v1={}", hex::encode(mac.finalize().into_bytes())));
    }
}
