//! Who calls whom, from an inbound INVITE's headers: the caller from
//! P-Asserted-Identity (the network's word) or else From, the called number
//! from the Request-URI, and the STIR/SHAKEN level where the trunk gives one.
//!
//! Numbers are handed on as the trunk spelled them (E.164 or a national
//! `0…` form); the call flow parses them with the server's default region,
//! as it does for every provider.

use base64::Engine as _;

use crate::domain::phone::Attestation;

/// What the call flow is told for a caller who withheld the number.
pub const ANONYMOUS: &str = "anonymous";

/// The user part of a SIP or tel URI inside a header value
/// (`"Name" <sip:+8190…@host;user=phone>;tag=x` → `+8190…`).
pub fn uri_user(value: &str) -> Option<&str> {
    let inner = match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.split(';').next().unwrap_or(value),
    };
    let inner = inner.trim();
    let rest =
        inner.strip_prefix("sip:").or_else(|| inner.strip_prefix("sips:")).or_else(|| inner.strip_prefix("tel:"))?;
    let user = match rest.split_once('@') {
        Some((user, _)) => user,
        // A tel: URI is all user; a sip: URI without `@` names only a host.
        None if inner.starts_with("tel:") => rest,
        None => return None,
    };
    let user = user.split(';').next().unwrap_or(user).trim();
    (!user.is_empty()).then_some(user)
}

/// The caller's number: P-Asserted-Identity first, else From; `anonymous`
/// when the caller withheld it (`Privacy: id`, or an anonymous From).
pub fn caller(pai: Option<&str>, from: &str, privacy: Option<&str>) -> String {
    if privacy.is_some_and(|p| {
        p.split(';').any(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "id" | "user" | "header"))
    }) {
        return ANONYMOUS.into();
    }
    pai.and_then(uri_user).or_else(|| uri_user(from)).map_or_else(|| ANONYMOUS.into(), str::to_owned)
}

/// The STIR/SHAKEN level: a `verstat` parameter (set by the trunk's
/// verification service) on P-Asserted-Identity or From, else the `attest`
/// claim of an `Identity` header's PASSporT. The PASSporT's signature is not
/// checked here: the trunk is trusted because it is an allowed peer.
pub fn attestation(pai: Option<&str>, from: &str, identity: Option<&str>) -> Option<Attestation> {
    let verstat = [pai, Some(from)].into_iter().flatten().find_map(|v| {
        v.split([';', '>', '<', '@', ',']).find_map(|p| {
            let (k, val) = p.split_once('=')?;
            k.trim().eq_ignore_ascii_case("verstat").then(|| val.trim().to_owned())
        })
    });
    if let Some(v) = verstat {
        return Attestation::from_verstat(&v);
    }
    let token = identity?.split(';').next()?.trim();
    let payload = token.split('.').nth(1)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
    Attestation::parse(claims.get("attest")?.as_str()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_network_s_asserted_number_comes_before_from() {
        let from = "\"Taro\" <sip:0312345678@sbc.example>;tag=1";
        assert_eq!(caller(Some("<sip:+819012345678@sbc.example;user=phone>"), from, None), "+819012345678");
        assert_eq!(caller(None, from, None), "0312345678");
        assert_eq!(caller(Some("<tel:+819012345678;cpc=ordinary>"), from, None), "+819012345678");
    }

    #[test]
    fn a_withheld_number_is_anonymous() {
        assert_eq!(caller(None, "\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=1", None), "anonymous");
        assert_eq!(caller(Some("<sip:+819012345678@sbc>"), "<sip:x@y>", Some("id")), "anonymous");
        assert_eq!(caller(None, "<sip:sbc.example>", None), "anonymous", "no user part");
    }

    #[test]
    fn attestation_comes_from_verstat_or_the_passport() {
        let pai = "<sip:+819012345678;verstat=TN-Validation-Passed@sbc.example>";
        assert_eq!(attestation(Some(pai), "<sip:x@y>", None), Some(Attestation::A));
        let from = "<sip:+819012345678@sbc;verstat=TN-Validation-Passed-B>;tag=9";
        assert_eq!(attestation(None, from, None), Some(Attestation::B));
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"attest":"C","orig":{"tn":"1"}}"#);
        let identity =
            format!("eyJhbGciOiJFUzI1NiJ9.{payload}.c2ln;info=<https://cert.example/x.pem>;alg=ES256;ppt=shaken");
        assert_eq!(attestation(None, "<sip:x@y>", Some(&identity)), Some(Attestation::C));
        assert_eq!(attestation(None, "<sip:x@y>", Some("garbage")), None);
        assert_eq!(attestation(None, "<sip:x@y;verstat=TN-Validation-Failed>", None), None);
    }
}
