//! `telnyx-signature-ed25519`: Ed25519 over `"{telnyx-timestamp}|{raw body}"`, with a 5-minute window.
//!
//! What Telnyx documents (found with the search tool, December 2026):
//! - "Webhooks" (developers.telnyx.com/docs/development/api-fundamentals/
//!   webhooks): keep the raw body and the `telnyx-timestamp` and
//!   `telnyx-signature-ed25519` headers, verify before trusting the event,
//!   refuse signatures outside the replay window.
//! - The callback references (developers.telnyx.com/api-reference/callbacks/…):
//!   `telnyx-timestamp` is unix seconds; `telnyx-signature-ed25519` is the
//!   base64 Ed25519 signature of `timestamp|payload`.
//! - telnyx-ruby `Telnyx::Lib::WebhookVerification` (gemdocs.org, 5.75.0):
//!   the same header names, `TIMESTAMP_TOLERANCE_SECONDS = 300`, and the
//!   account's public key as base64 from Mission Control; telnyx-python
//!   PR #242 ("Add ED25519 webhook verification"): signed payload
//!   `"{timestamp}|{payload}"`, signature base64 of 64 bytes.
//!
//! The key is the account's (Mission Control → Keys & Credentials → Public
//! Key), not a per-application secret: it is public, but which key is
//! trusted is configuration. Verification is `ed25519-dalek`'s strict one.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, VerifyingKey};

pub const TIMESTAMP_HEADER: &str = "telnyx-timestamp";
pub const SIGNATURE_HEADER: &str = "telnyx-signature-ed25519";
/// How far a webhook's timestamp may be from the server's clock, either way, in seconds.
pub const WINDOW_SECONDS: i64 = 300;

/// Why a webhook's signature was refused: each one a 403, and the text says
/// which (it names headers, never their values or the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the telnyx-timestamp header is missing")]
    MissingTimestamp,
    #[error("telnyx-timestamp is not unix seconds")]
    MalformedTimestamp,
    #[error("the telnyx-signature-ed25519 header is missing")]
    MissingSignature,
    #[error("telnyx-signature-ed25519 is not base64 of a 64-byte signature")]
    MalformedSignature,
    #[error("telnyx-timestamp is more than 5 minutes from the server's clock")]
    Stale,
    #[error("telnyx-signature-ed25519 does not verify")]
    BadSignature,
}

/// The account's public key as Telnyx shows it: base64 of 32 bytes that
/// are a valid Ed25519 point of full order (a small-order key would let
/// anyone forge a signature). `None` for anything else.
pub fn parse_public_key(text: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = STANDARD.decode(text.trim()).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok().filter(|key| !key.is_weak())
}

/// Checks a webhook: both headers present and well formed, the timestamp
/// within `WINDOW_SECONDS` of `now_unix` (past or future), and the signature
/// `public_key`'s over the timestamp as sent, `|`, and the raw `body`.
pub fn verify(
    public_key: &VerifyingKey,
    timestamp_header: Option<&str>,
    signature_header: Option<&str>,
    body: &[u8],
    now_unix: i64,
) -> Result<(), Refusal> {
    let timestamp = timestamp_header.ok_or(Refusal::MissingTimestamp)?;
    let at = unix_seconds(timestamp).ok_or(Refusal::MalformedTimestamp)?;
    let signature = signature_header.ok_or(Refusal::MissingSignature)?;
    let raw = STANDARD.decode(signature.trim()).map_err(|_| Refusal::MalformedSignature)?;
    let signature = Signature::from_slice(&raw).map_err(|_| Refusal::MalformedSignature)?;
    if !in_window(at, now_unix) {
        return Err(Refusal::Stale);
    }
    public_key.verify_strict(&signed_message(timestamp, body), &signature).map_err(|_| Refusal::BadSignature)
}

/// The bytes Telnyx signs: the timestamp header exactly as sent, `|`, the raw body.
pub fn signed_message(timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(timestamp.len() + 1 + body.len());
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b'|');
    message.extend_from_slice(body);
    message
}

/// Unix seconds written as plain digits (no sign, no spaces), as Telnyx sends them.
fn unix_seconds(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Whether a webhook signed at `at` is accepted at `now` (both unix seconds).
fn in_window(at: i64, now: i64) -> bool {
    at.checked_sub(now).and_then(i64::checked_abs).is_some_and(|d| d <= WINDOW_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    /// RFC 8032, section 7.1, TEST 1: the secret key and its public key (base64).
    const SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const PUBLIC: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

    // Not published by Telnyx: a form-encoded TeXML Gather webhook made up
    // here, signed with TEST 1's key by Python's `cryptography` (Ed25519 is
    // deterministic), so the layout `timestamp|body` is checked against an
    // implementation other than the one under test.
    const AT: &str = "1764911400";
    const BODY: &[u8] = b"AccountSid=2b1d4c3e-7f00-4a5e-9c1b-1e2f3a4b5c6d&CallSid=v3%3AabcDEF123\
&CallStatus=in-progress&Digits=1234&From=%2B81312345678&To=%2B815012345678";
    const SIGNED: &str = "a72B9Gzjl3N5+Gs4gEp1G9MlKiO/0msK4TxCDBq5JLRYgMXZ/bfjUgqNBvDmUgsOjVOnyX5a4Hj1V7KendaxCw==";
    const NOW: i64 = 1_764_911_400;

    fn key() -> VerifyingKey {
        parse_public_key(PUBLIC).unwrap()
    }

    fn check(at: &str, signature: &str, body: &[u8], now: i64) -> Result<(), Refusal> {
        verify(&key(), Some(at), Some(signature), body, now)
    }

    #[test]
    fn the_public_key_is_rfc_8032_test_1_s_and_signs_the_vector() {
        let signing = SigningKey::from_bytes(&hex::decode(SECRET).unwrap().try_into().unwrap());
        assert_eq!(signing.verifying_key(), key());
        let ours = STANDARD.encode(signing.sign(&signed_message(AT, BODY)).to_bytes());
        assert_eq!(ours, SIGNED);
        assert_eq!(check(AT, SIGNED, BODY, NOW), Ok(()));
    }

    #[test]
    fn one_wrong_byte_in_the_signature_is_refused() {
        let mut raw = STANDARD.decode(SIGNED).unwrap();
        for i in [0, 31, 32, 63] {
            raw[i] ^= 0x01;
            assert_eq!(check(AT, &STANDARD.encode(&raw), BODY, NOW), Err(Refusal::BadSignature), "byte {i}");
            raw[i] ^= 0x01;
        }
    }

    #[test]
    fn a_body_or_timestamp_changed_after_signing_is_refused() {
        let changed = String::from_utf8(BODY.to_vec()).unwrap().replace("Digits=1234", "Digits=1235");
        assert_eq!(check(AT, SIGNED, changed.as_bytes(), NOW), Err(Refusal::BadSignature));
        assert_eq!(check(AT, SIGNED, &BODY[..BODY.len() - 1], NOW), Err(Refusal::BadSignature));
        assert_eq!(check("1764911401", SIGNED, BODY, NOW), Err(Refusal::BadSignature));
    }

    #[test]
    fn another_account_s_key_is_refused() {
        // RFC 8032, section 7.1, TEST 2's public key.
        let other = parse_public_key("PUAXw+hDiVqStwqnTRt+vJyYLM8uxJaMwM1V8Sr0Zgw=").unwrap();
        assert_eq!(verify(&other, Some(AT), Some(SIGNED), BODY, NOW), Err(Refusal::BadSignature));
    }

    #[test]
    fn a_timestamp_more_than_five_minutes_away_is_stale_either_way() {
        assert_eq!(check(AT, SIGNED, BODY, NOW + WINDOW_SECONDS), Ok(()));
        assert_eq!(check(AT, SIGNED, BODY, NOW - WINDOW_SECONDS), Ok(()));
        assert_eq!(check(AT, SIGNED, BODY, NOW + WINDOW_SECONDS + 1), Err(Refusal::Stale));
        assert_eq!(check(AT, SIGNED, BODY, NOW - WINDOW_SECONDS - 1), Err(Refusal::Stale));
        assert_eq!(check(AT, SIGNED, BODY, i64::MIN), Err(Refusal::Stale));
    }

    #[test]
    fn missing_or_malformed_headers_say_which() {
        assert_eq!(verify(&key(), None, Some(SIGNED), BODY, NOW), Err(Refusal::MissingTimestamp));
        assert_eq!(verify(&key(), Some(AT), None, BODY, NOW), Err(Refusal::MissingSignature));
        for at in ["", "abc", "+1764911400", " 1764911400", "1764911400.5", "99999999999999999999"] {
            assert_eq!(check(at, SIGNED, BODY, NOW), Err(Refusal::MalformedTimestamp), "{at:?}");
        }
        let short = STANDARD.encode(&STANDARD.decode(SIGNED).unwrap()[..63]);
        for signature in ["", "not base64!", short.as_str()] {
            assert_eq!(check(AT, signature, BODY, NOW), Err(Refusal::MalformedSignature), "{signature:?}");
        }
        assert_eq!(Refusal::Stale.to_string(), "telnyx-timestamp is more than 5 minutes from the server's clock");
    }

    #[test]
    fn a_public_key_must_be_base64_of_a_full_order_point() {
        assert!(parse_public_key(&format!(" {PUBLIC}\n")).is_some());
        assert!(parse_public_key("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a").is_none());
        assert!(parse_public_key(&STANDARD.encode([7u8; 31])).is_none());
        assert!(parse_public_key(&STANDARD.encode([7u8; 33])).is_none());
        assert!(parse_public_key("not base64!").is_none());
        // The identity point (small order): any signature of it is forgeable.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(parse_public_key(&STANDARD.encode(identity)).is_none());
        assert!(parse_public_key(&STANDARD.encode(NOT_A_POINT)).is_none());
    }

    /// y = 2 (little-endian, sign bit clear): (y² − 1)/(d·y² + 1) is not a
    /// square mod 2²⁵⁵ − 19, so no x exists and the bytes decompress to nothing.
    const NOT_A_POINT: [u8; 32] = {
        let mut y = [0u8; 32];
        y[0] = 2;
        y
    };
}
