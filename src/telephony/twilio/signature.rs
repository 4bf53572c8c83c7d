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
pub fn sign(auth_token: &[u8], url: &str, params: &[(String, String)]) -> String {
    sign_sorted(auth_token, url, &sorted(params))
}

/// The parameters in the order they are signed: byte order of names; a
/// repeated name contributes each value, values sorted. Identical name/value
/// pairs count once, as in the provider's own validators.
fn sorted(params: &[(String, String)]) -> Vec<&(String, String)> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then_with(|| a.1.as_bytes().cmp(b.1.as_bytes())));
    sorted.dedup();
    sorted
}

fn sign_sorted(auth_token: &[u8], url: &str, sorted: &[&(String, String)]) -> String {
    let mut mac = HmacSha1::new_from_slice(auth_token).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `signature` is valid for a form POST to `url`, accepting the
/// provider's port variants (signed with the port removed, or with the
/// scheme's default port added). Each comparison is in constant time; the
/// variants are tried in turn (which one matched is no secret), the
/// parameters sorted once.
pub fn is_valid(auth_token: &[u8], url: &str, params: &[(String, String)], signature: &str) -> bool {
    let sorted = sorted(params);
    url_variants(url).iter().any(|candidate| {
        let expected = sign_sorted(auth_token, candidate, &sorted);
        bool::from(expected.as_bytes().ct_eq(signature.as_bytes()))
    })
}

/// Whether a JSON-body webhook is valid: the URL (carrying `bodySHA256`) is
/// signed alone, and the body must hash to that value.
pub fn is_valid_json(auth_token: &[u8], url: &str, body: &[u8], signature: &str) -> bool {
    let Some(claimed) = query_value(url, "bodySHA256") else { return false };
    let actual = hex::encode(Sha256::digest(body));
    let body_ok: bool = actual.as_bytes().ct_eq(claimed.as_bytes()).into();
    is_valid(auth_token, url, &[], signature) & body_ok
}

fn query_value<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

/// The URL as given, without its port, and with the scheme's default port.
fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_owned()];
    let Some((scheme, rest)) = url.split_once("://") else { return out };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), authority),
    };
    // A port follows the last ':' unless that colon is inside an IPv6 literal.
    let (host, port) = match hostport.rfind(':') {
        Some(i) if !hostport[i..].contains(']') => (&hostport[..i], Some(&hostport[i + 1..])),
        _ => (hostport, None),
    };
    match port {
        Some(_) => out.push(format!("{scheme}://{userinfo}{host}{tail}")),
        None => {
            let default = match scheme.to_ascii_lowercase().as_str() {
                "https" => "443",
                "http" => "80",
                _ => return out,
            };
            out.push(format!("{scheme}://{userinfo}{host}:{default}{tail}"));
        }
    }
    out
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
