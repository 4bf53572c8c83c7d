//! `X-Twilio-Signature`: HMAC-SHA1 over the URL and the sorted POST parameters.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha1 = Hmac<Sha1>;

/// The signature the provider sends for a form POST to `url` with `params`:
/// names in byte order, a repeated name once per distinct value, values sorted.
pub fn sign<K: AsRef<str>, V: AsRef<str>>(auth_token: &[u8], url: &str, params: &[(K, V)]) -> String {
    STANDARD.encode(mac(&keyed(auth_token), [url, "", ""], &sorted(params)).finalize().into_bytes())
}

/// The parameters in the order they are signed: byte order of names; a
/// repeated name contributes each value, values sorted. Identical name/value
/// pairs count once, as in the provider's own validators.
fn sorted<K: AsRef<str>, V: AsRef<str>>(params: &[(K, V)]) -> Vec<(&str, &str)> {
    let mut sorted: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
    sorted.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then_with(|| a.1.as_bytes().cmp(b.1.as_bytes())));
    sorted.dedup();
    sorted
}

fn keyed(auth_token: &[u8]) -> HmacSha1 {
    HmacSha1::new_from_slice(auth_token).unwrap_or_else(|_| unreachable!("HMAC takes any key"))
}

/// The MAC of the URL (given in pieces, signed one after the other) and the
/// sorted parameters, from a copy of the keyed `start`.
fn mac(start: &HmacSha1, url: [&str; 3], sorted: &[(&str, &str)]) -> HmacSha1 {
    let mut mac = start.clone();
    for piece in url {
        mac.update(piece.as_bytes());
    }
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// Whether `signature` is valid for a form POST to `url`, accepting the
/// provider's port variants (signed with the port removed, or with the
/// scheme's default port added). The signature is decoded once and each
/// variant's MAC compared with it in constant time (`verify_slice`); the
/// variants are tried in turn (which one matched is no secret), the
/// parameters sorted and the key set up once, and nothing of the URL copied.
pub fn is_valid<K: AsRef<str>, V: AsRef<str>>(
    auth_token: &[u8],
    url: &str,
    params: &[(K, V)],
    signature: &str,
) -> bool {
    let mut given = [0u8; 20];
    if !matches!(STANDARD.decode_slice(signature, &mut given), Ok(20)) {
        return false;
    }
    let (start, sorted) = (keyed(auth_token), sorted(params));
    url_variants(url).any(|variant| mac(&start, variant, &sorted).verify_slice(&given).is_ok())
}

/// Whether a JSON-body webhook is valid: the URL (carrying `bodySHA256`) is
/// signed alone, and the body must hash to that value.
pub fn is_valid_json(auth_token: &[u8], url: &str, body: &[u8], signature: &str) -> bool {
    let Some(claimed) = query_value(url, "bodySHA256") else { return false };
    let actual = hex::encode(Sha256::digest(body));
    let body_ok: bool = actual.as_bytes().ct_eq(claimed.as_bytes()).into();
    is_valid::<&str, &str>(auth_token, url, &[], signature) & body_ok
}

fn query_value<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

/// The URL as given, then without its port, or with the scheme's default
/// port: each as pieces of `url` (and the port) to sign one after the other.
fn url_variants(url: &str) -> impl Iterator<Item = [&str; 3]> {
    std::iter::once([url, "", ""]).chain(other_port(url))
}

fn other_port(url: &str) -> Option<[&str; 3]> {
    let (scheme, rest) = url.split_once("://")?;
    let start = scheme.len() + 3;
    let authority_end = start + rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host_start = start + url[start..authority_end].rfind('@').map_or(0, |at| at + 1);
    let hostport = &url[host_start..authority_end];
    let tail = &url[authority_end..];
    // A port follows the last ':' unless that colon is inside an IPv6 literal.
    match hostport.rfind(':') {
        Some(i) if !hostport[i..].contains(']') => Some([&url[..host_start + i], tail, ""]),
        _ if scheme.eq_ignore_ascii_case("https") => Some([&url[..authority_end], ":443", tail]),
        _ if scheme.eq_ignore_ascii_case("http") => Some([&url[..authority_end], ":80", tail]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test vectors of the provider's own request validators.
    const TOKEN: &[u8] = b"12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn signs_the_published_vector() {
        assert_eq!(sign(TOKEN, URL, &params()), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert!(is_valid(TOKEN, URL, &params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
    }

    #[test]
    fn port_variants_of_the_published_vectors() {
        let https443 = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        let http80 = "http://mycompany.com:80/myapp.php?foo=1&bar=2";
        let http1234 = "http://mycompany.com:1234/myapp.php?foo=1&bar=2";
        let https1234 = "https://mycompany.com:1234/myapp.php?foo=1&bar=2";
        assert_eq!(sign(TOKEN, https443, &params()), "kvajT1Ptam85bY51eRf/AJRuM3w=");
        assert_eq!(sign(TOKEN, http80, &params()), "0ZXoZLH/DfblKGATFgpif+LLRf4=");
        assert_eq!(sign(TOKEN, http1234, &params()), "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=");
        // Signed with the default port, checked against the URL without it, and back.
        assert!(is_valid(TOKEN, URL, &params(), "kvajT1Ptam85bY51eRf/AJRuM3w="));
        assert!(is_valid(TOKEN, https443, &params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        assert!(is_valid(TOKEN, https1234, &params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        assert!(is_valid(TOKEN, http1234, &params(), "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="));
    }

    #[test]
    fn the_other_port_variant_keeps_user_info_ipv6_literals_and_the_scheme_as_given() {
        assert_eq!(other_port("https://u:p@[::1]/x"), Some(["https://u:p@[::1]", ":443", "/x"]));
        assert_eq!(other_port("https://u:p@[::1]:8443/x?y=1"), Some(["https://u:p@[::1]", "/x?y=1", ""]));
        assert_eq!(other_port("https://u:p@h/x"), Some(["https://u:p@h", ":443", "/x"]));
        assert_eq!(other_port("HTTP://h?a=b:c"), Some(["HTTP://h", ":80", "?a=b:c"]));
        assert_eq!(other_port("http://h:80"), Some(["http://h", "", ""]));
        assert_eq!(other_port("ftp://h/x"), None);
        assert_eq!(other_port("no scheme"), None);
    }

    #[test]
    fn a_signature_spelled_otherwise_in_base64_is_refused() {
        let good = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
        assert!(is_valid(TOKEN, URL, &params(), good));
        // The same 20 bytes with an unused bit set, without padding, with more of it.
        for other in ["RSOYDt4T1cUTdK1PDd93/VVr8B9=", "RSOYDt4T1cUTdK1PDd93/VVr8B8", "RSOYDt4T1cUTdK1PDd93/VVr8B8=="] {
            assert!(!is_valid(TOKEN, URL, &params(), other), "{other}");
        }
    }

    #[test]
    fn repeated_keys_sort_and_dedupe_their_values() {
        let p: Vec<(String, String)> =
            [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        assert_eq!(sign(TOKEN, URL, &p), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
    }

    #[test]
    fn json_body_vector() {
        let body = br#"{"property": "value", "boolean": true}"#;
        let url = format!("{URL}&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620");
        assert!(is_valid_json(TOKEN, &url, body, "a9nBmqA0ju/hNViExpshrM61xv4="));
        assert!(!is_valid_json(TOKEN, &url, b"{}", "a9nBmqA0ju/hNViExpshrM61xv4="));
    }

    #[test]
    fn wrong_token_url_or_params_fail() {
        let good = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
        assert!(!is_valid(b"54321", URL, &params(), good));
        assert!(!is_valid(TOKEN, "https://mycompany.com/myapp.php?foo=1&bar=3", &params(), good));
        let mut p = params();
        p[2].1 = "9999".into();
        assert!(!is_valid(TOKEN, URL, &p, good));
        assert!(!is_valid(TOKEN, URL, &params(), ""));
    }
}
