//! Which addresses a server-side request (a result callback) may reach.

use std::net::IpAddr;

/// IPv4 blocks of the IANA IPv4 Special-Purpose Address Registry (and
/// multicast, reserved and broadcast): none is a public host a site's
/// callback could live on. Address and prefix length.
const SPECIAL_V4: [([u8; 4], u8); 19] = [
    ([0, 0, 0, 0], 8),       // "this network"
    ([10, 0, 0, 0], 8),      // private
    ([100, 64, 0, 0], 10),   // shared address space (CGN)
    ([127, 0, 0, 0], 8),     // loopback
    ([169, 254, 0, 0], 16),  // link-local (cloud metadata lives here)
    ([172, 16, 0, 0], 12),   // private
    ([192, 0, 0, 0], 24),    // IETF protocol assignments
    ([192, 0, 2, 0], 24),    // documentation (TEST-NET-1)
    ([192, 31, 196, 0], 24), // AS112
    ([192, 52, 193, 0], 24), // AMT
    ([192, 88, 99, 0], 24),  // deprecated 6to4 relay anycast
    ([192, 168, 0, 0], 16),  // private
    ([192, 175, 48, 0], 24), // direct delegation AS112
    ([198, 18, 0, 0], 15),   // benchmarking
    ([198, 51, 100, 0], 24), // documentation (TEST-NET-2)
    ([203, 0, 113, 0], 24),  // documentation (TEST-NET-3)
    ([224, 0, 0, 0], 4),     // multicast
    ([240, 0, 0, 0], 4),     // reserved, and the limited broadcast address
    ([255, 255, 255, 255], 32),
];

/// IPv6 blocks inside global unicast (2000::/3) that the IANA IPv6
/// Special-Purpose Address Registry marks as not global; everything outside
/// 2000::/3 is refused as a whole (loopback, unspecified, IPv4-compatible,
/// discard, unique-local, link-local, site-local, multicast…), except the
/// translations below, which are judged by the IPv4 address inside them.
const SPECIAL_V6: [([u16; 8], u8); 5] = [
    ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), // IETF protocol assignments (Teredo, benchmarking, ORCHID…)
    ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), // documentation
    ([0x2002, 0, 0, 0, 0, 0, 0, 0], 16), // 6to4: judged by its IPv4 address below
    ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), // documentation
    ([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16), // segment routing SIDs
];

fn in_v4(ip: [u8; 4], (net, len): ([u8; 4], u8)) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from_be_bytes(ip) & mask == u32::from_be_bytes(net) & mask
}

fn in_v6(ip: u128, (net, len): ([u16; 8], u8)) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    ip & mask == u128::from(std::net::Ipv6Addr::from(net)) & mask
}

/// Whether a callback may never be sent to `ip` (SSRF): every IANA
/// special-purpose range, IPv4 and IPv6, and the IPv6 forms that carry an
/// IPv4 address (mapped, NAT64, 6to4) when the address inside is one.
pub fn is_private_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => SPECIAL_V4.iter().any(|block| in_v4(v4.octets(), *block)),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let v4_at = |shift: u32| IpAddr::V4(std::net::Ipv4Addr::from((bits >> shift) as u32));
            // IPv4-mapped ::ffff:a.b.c.d and the NAT64 well-known prefix 64:ff9b::/96.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_ip(IpAddr::V4(v4));
            }
            if in_v6(bits, ([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96)) {
                return is_private_ip(v4_at(0));
            }
            // 6to4 2002:a.b.c.d::/48.
            if in_v6(bits, ([0x2002, 0, 0, 0, 0, 0, 0, 0], 16)) {
                return is_private_ip(v4_at(80));
            }
            let global_unicast = in_v6(bits, ([0x2000, 0, 0, 0, 0, 0, 0, 0], 3));
            !global_unicast || SPECIAL_V6.iter().any(|block| in_v6(bits, *block))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges() {
        for ip in
            ["10.0.0.1", "172.16.0.1", "192.168.1.1", "100.64.0.1", "0.0.0.0", "::ffff:127.0.0.1", "fd00::1", "fe80::1"]
        {
            assert!(is_private_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "2001:4860:4860::8888"] {
            assert!(!is_private_ip(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn every_special_purpose_range_and_embedding_the_review_found() {
        for ip in [
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "fec0::1",
            "198.18.0.1",
            "192.0.0.192",
            "192.0.2.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "3fff::1",
            "64:ff9b:1::1",
            "ff02::1",
            "2002:a00:1::",
            "203.0.113.7",
            "169.254.169.254",
            "::ffff:169.254.169.254",
        ] {
            assert!(is_private_ip(ip.parse().unwrap()), "{ip} must be refused");
        }
        // Public hosts, also when reached through NAT64 or 6to4.
        for ip in ["1.1.1.1", "64:ff9b::808:808", "2002:808:808::1", "2606:4700:4700::1111", "192.0.3.1", "198.20.0.1"]
        {
            assert!(!is_private_ip(ip.parse().unwrap()), "{ip} is public");
        }
    }
}
