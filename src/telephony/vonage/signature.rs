//! Vonage signed webhooks: an HS256 JWT in `Authorization: Bearer`, whose `payload_hash` binds the body.
//!
//! What Vonage documents, and what this follows:
//! - "Decoding signed webhooks" (developer.vonage.com/en/getting-started/concepts/webhooks,
//!   read from its source in `mheap/nexmo-developer`, `_documentation/en/getting-started/concepts/webhooks.md`,
//!   and `Nexmo/station`, `_documentation/en/messages/concepts/signed-webhooks.md`): signing is on by
//!   default for Voice; the webhook carries a JWT in `Authorization`, signed with the account's
//!   *signature secret*; header `{"alg":"HS256","typ":"JWT"}`; claims `iat` (Unix seconds), `jti`,
//!   `iss` ("Vonage"), `payload_hash` ("a SHA-256 hash of the request payload"; the sample is 64
//!   lowercase hex digits), `api_key` and, optionally, `application_id`. No `exp` in the sample.
//! - Vonage's own SDKs check only the signature: vonage-python-sdk `vonage_jwt.verify_signature`
//!   is PyJWT `decode(token, secret, algorithms='HS256')` (signature, and `exp`/`iat` if present);
//!   vonage-ruby-sdk `verify_webhook_token` is `JWT.verify_hs256_signature`. Neither checks
//!   `payload_hash` or the token's age; this module does both.
//! - Vonage API Support, "How do I verify that the Voice API Webhook request and its payload has not
//!   been tampered during transit?": for a GET, the hash covers the query parameters rendered as
//!   compact JSON in their order; for a POST, the body as compact JSON (which is what Vonage sends).
//!
//! Decisions:
//! - The HMAC key is the secret's bytes, as PyJWT uses the secret string's UTF-8 bytes.
//! - Only `HS256` is accepted: `none`, `RS256` and any other `alg` are refused before the HMAC.
//! - A non-empty body must match `payload_hash` (hex, compared as bytes in constant time); a body
//!   with no `payload_hash` is refused. An empty body (a GET answer webhook) is not hash-checked:
//!   Vonage's hash then covers a JSON rendering of the query that cannot be rebuilt byte for byte,
//!   so the token still proves origin and freshness but not the query. The adapter should therefore
//!   configure the answer and event URLs as POST so that everything acted upon is bound.
//! - `iat` is required and may be at most [`MAX_AGE_SECONDS`] (5 minutes, the window of the other
//!   providers' checks and of signed site requests) old and [`SKEW_SECONDS`] in the future; an
//!   `exp`, if present, must not be past.
//!
//! Hand-written on `hmac`/`sha2`/`base64`/`subtle`/`serde_json`, already in the tree: HS256 with
//! one fixed algorithm is short. `jsonwebtoken` (not in the tree) needs a crypto backend feature
//! (`rust_crypto` or `aws_lc_rs`), requires `exp` by default (Vonage sends none), has no maximum age
//! for `iat`, and reads the system clock where this takes the time as a parameter. The secret and
//! the token are never logged.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// How old an `iat` may be, in seconds: 5 minutes, as for the other providers.
pub const MAX_AGE_SECONDS: i64 = 300;
/// How far in the future an `iat` may be, in seconds, to allow for clock skew.
pub const SKEW_SECONDS: i64 = 60;

/// The claims of a verified webhook token (none of them secret).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Claims {
    /// Issued at, Unix seconds.
    pub iat: i64,
    pub exp: Option<i64>,
    /// The token's unique id: a later step may refuse a second use.
    pub jti: Option<String>,
    pub iss: Option<String>,
    pub api_key: Option<String>,
    pub application_id: Option<String>,
    /// Hex SHA-256 of the body, as Vonage computed it.
    pub payload_hash: Option<String>,
}

/// Why a webhook was refused; each is a 403, and the text says which check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no Authorization: Bearer header")]
    MissingHeader,
    #[error("the bearer token is not a well-formed JWT")]
    Malformed,
    #[error("the token's algorithm is not HS256")]
    BadAlgorithm,
    #[error("the token's signature does not match the signature secret")]
    BadSignature,
    #[error("the body does not match the token's payload_hash")]
    BodyChanged,
    #[error("the token is too old, from the future, or expired")]
    Stale,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    // Extensions that must be understood (RFC 7515 4.1.11): none are, so any is refused.
    crit: Option<serde_json::Value>,
}

/// Verifies a Vonage webhook: the `Authorization` header's value, the raw body and the time now.
pub fn verify(secret: &[u8], authorization_header: &str, body: &[u8], now_unix: i64) -> Result<Claims, Refusal> {
    let token = bearer_token(authorization_header).ok_or(Refusal::MissingHeader)?;
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed);
    };
    let header: Header = decode_json(header_b64)?;
    if header.alg != "HS256" {
        return Err(Refusal::BadAlgorithm);
    }
    if header.crit.is_some() {
        return Err(Refusal::Malformed);
    }
    let signature = URL_SAFE_NO_PAD.decode(signature_b64).map_err(|_| Refusal::Malformed)?;
    let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(&token.as_bytes()[..header_b64.len() + 1 + claims_b64.len()]);
    mac.verify_slice(&signature).map_err(|_| Refusal::BadSignature)?;
    let claims: Claims = decode_json(claims_b64)?;
    check_time(&claims, now_unix)?;
    check_body(&claims, body)?;
    Ok(claims)
}

/// The token after `Bearer` (the scheme is case-insensitive, RFC 7235 2.1).
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, Refusal> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| Refusal::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| Refusal::Malformed)
}

fn check_time(claims: &Claims, now: i64) -> Result<(), Refusal> {
    let too_old = now.saturating_sub(claims.iat) > MAX_AGE_SECONDS;
    let from_future = claims.iat.saturating_sub(now) > SKEW_SECONDS;
    let expired = claims.exp.is_some_and(|exp| exp < now);
    if too_old || from_future || expired { Err(Refusal::Stale) } else { Ok(()) }
}

fn check_body(claims: &Claims, body: &[u8]) -> Result<(), Refusal> {
    if body.is_empty() {
        return Ok(());
    }
    let claimed = claims.payload_hash.as_deref().ok_or(Refusal::BodyChanged)?;
    let claimed = hex::decode(claimed).map_err(|_| Refusal::BodyChanged)?;
    let actual = Sha256::digest(body);
    if bool::from(actual.as_slice().ct_eq(&claimed)) { Ok(()) } else { Err(Refusal::BodyChanged) }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Published: the token and signature secret of vonage-python-sdk `jwt/tests/test_verify_jwt.py`
    // (claims `{"iss":"Online JWT Builder","iat":1697634680,"exp":33254540828,"aud":"","sub":""}`,
    // no payload_hash).
    const SDK_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJPbmxpbmUgSldUIEJ1aWxkZXIiLCJpYXQiOjE2OTc2MzQ2ODAsImV4cCI6MzMyNTQ1NDA4MjgsImF1ZCI6IiIsInN1YiI6IiJ9.88vJc3I2HhuqEDixHXVhc9R30tA6U_HQHZTC29y6CGM";
    const SDK_SECRET: &[u8] = b"qwertyuiopasdfghjklzxcvbnm123456";
    const SDK_IAT: i64 = 1_697_634_680;

    // Made outside this crate with Python's standard library (base64, hmac, hashlib): the claims of
    // Vonage's documented sample signed JWT, with `payload_hash` = hashlib.sha256(BODY).hexdigest()
    // and HS256 under SECRET. Vonage publishes no token for its sample claims.
    const SECRET: &[u8] = b"vonage-test-signature-secret-0123456789";
    const IAT: i64 = 1_587_494_962;
    const BODY: &[u8] = br#"{"from":"447700900000","to":"447700900001","uuid":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab","conversation_uuid":"CON-aaaaaaaa-bbbb-cccc-dddd-0123456789ab","status":"answered","direction":"outbound","timestamp":"2020-04-21T18:49:22.000Z"}"#;
    const BODY_HASH: &str = "9e4816d833458d7346c096b5cc2d36dd5280fc10d36602df700ea6aad9d1d690";
    const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE1ODc0OTQ5NjIsImp0aSI6ImM1YmE4ZjI0LTFhMTQtNGMxMC1iZmRmLTNmYmU4Y2U1MTFiNSIsImlzcyI6IlZvbmFnZSIsInBheWxvYWRfaGFzaCI6IjllNDgxNmQ4MzM0NThkNzM0NmMwOTZiNWNjMmQzNmRkNTI4MGZjMTBkMzY2MDJkZjcwMGVhNmFhZDlkMWQ2OTAiLCJhcGlfa2V5IjoiYTFiMmMzZCIsImFwcGxpY2F0aW9uX2lkIjoiYWFhYWFhYWEtYmJiYi1jY2NjLWRkZGQtMDEyMzQ1Njc4OWFiIn0.e71FJYkAiv77Hyp5Qa-_2s1AjES3k4rcgGFAxO8bpmA";

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    /// A token built by hand in the test (base64url + HMAC-SHA256), not by the code under test.
    fn sign(header: &str, claims: &str, secret: &[u8]) -> String {
        let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
        let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
        mac.update(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    fn claims_at(iat: i64) -> String {
        format!(r#"{{"iat":{iat},"jti":"j1","iss":"Vonage","payload_hash":"{BODY_HASH}","api_key":"a1b2c3d"}}"#)
    }

    #[test]
    fn accepts_the_vonage_sdk_s_published_token() {
        let claims = verify(SDK_SECRET, &bearer(SDK_TOKEN), b"", SDK_IAT).unwrap_or_else(|r| panic!("{r}"));
        assert_eq!(claims.iss.as_deref(), Some("Online JWT Builder"));
        assert_eq!(verify(b"asdf", &bearer(SDK_TOKEN), b"", SDK_IAT), Err(Refusal::BadSignature));
    }

    #[test]
    fn accepts_a_valid_webhook_and_returns_its_claims() {
        let claims = verify(SECRET, &bearer(TOKEN), BODY, IAT + 10).unwrap_or_else(|r| panic!("{r}"));
        assert_eq!(claims.payload_hash.as_deref(), Some(BODY_HASH));
        assert_eq!(claims.api_key.as_deref(), Some("a1b2c3d"));
        assert_eq!(claims.application_id.as_deref(), Some("aaaaaaaa-bbbb-cccc-dddd-0123456789ab"));
        assert_eq!(claims.jti.as_deref(), Some("c5ba8f24-1a14-4c10-bfdf-3fbe8ce511b5"));
        // The scheme is case-insensitive; the hand-built token agrees with Python's.
        assert!(verify(SECRET, &format!("bearer {TOKEN}"), BODY, IAT).is_ok());
        let by_hand = sign(r#"{"alg":"HS256","typ":"JWT"}"#, &claims_at(IAT), SECRET);
        assert!(verify(SECRET, &bearer(&by_hand), BODY, IAT).is_ok());
    }

    #[test]
    fn one_wrong_byte_in_the_signature_is_refused() {
        let mut bytes = TOKEN.as_bytes().to_vec();
        let last = bytes.len() - 5; // inside the signature, whatever its padding bits
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(bytes).unwrap_or_else(|_| unreachable!());
        assert_eq!(verify(SECRET, &bearer(&forged), BODY, IAT), Err(Refusal::BadSignature));
        assert_eq!(verify(b"another secret", &bearer(TOKEN), BODY, IAT), Err(Refusal::BadSignature));
    }

    #[test]
    fn a_body_changed_after_signing_is_refused() {
        let changed = String::from_utf8_lossy(BODY).replace("answered", "completed");
        assert_eq!(verify(SECRET, &bearer(TOKEN), changed.as_bytes(), IAT), Err(Refusal::BodyChanged));
        // A body with no payload_hash to bind it is refused too.
        let unbound = sign(r#"{"alg":"HS256"}"#, &format!(r#"{{"iat":{IAT}}}"#), SECRET);
        assert_eq!(verify(SECRET, &bearer(&unbound), BODY, IAT), Err(Refusal::BodyChanged));
        // An empty body (a GET webhook) is not hash-checked; see the module documentation.
        assert!(verify(SECRET, &bearer(TOKEN), b"", IAT).is_ok());
    }

    #[test]
    fn a_stale_future_or_expired_token_is_refused() {
        assert!(verify(SECRET, &bearer(TOKEN), BODY, IAT + MAX_AGE_SECONDS).is_ok());
        assert_eq!(verify(SECRET, &bearer(TOKEN), BODY, IAT + MAX_AGE_SECONDS + 1), Err(Refusal::Stale));
        assert!(verify(SECRET, &bearer(TOKEN), BODY, IAT - SKEW_SECONDS).is_ok());
        assert_eq!(verify(SECRET, &bearer(TOKEN), BODY, IAT - SKEW_SECONDS - 1), Err(Refusal::Stale));
        let expiring = sign(r#"{"alg":"HS256"}"#, &format!(r#"{{"iat":{IAT},"exp":{}}}"#, IAT + 30), SECRET);
        assert!(verify(SECRET, &bearer(&expiring), b"", IAT + 30).is_ok());
        assert_eq!(verify(SECRET, &bearer(&expiring), b"", IAT + 31), Err(Refusal::Stale));
    }

    #[test]
    fn alg_none_and_rs256_are_refused() {
        let claims = claims_at(IAT);
        let none =
            format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#), URL_SAFE_NO_PAD.encode(&claims));
        assert_eq!(verify(SECRET, &bearer(&none), BODY, IAT), Err(Refusal::BadAlgorithm));
        // Even HMAC-signed with the secret, a header naming another algorithm is refused.
        for alg in ["none", "RS256", "HS512", "hs256"] {
            let token = sign(&format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#), &claims, SECRET);
            assert_eq!(verify(SECRET, &bearer(&token), BODY, IAT), Err(Refusal::BadAlgorithm), "{alg}");
        }
    }

    #[test]
    fn a_missing_or_malformed_header_is_refused() {
        for header in ["", "Bearer", "Bearer   ", TOKEN, &format!("Basic {TOKEN}")] {
            assert_eq!(verify(SECRET, header, BODY, IAT), Err(Refusal::MissingHeader), "{header:?}");
        }
        for token in ["abc", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert_eq!(verify(SECRET, &bearer(token), BODY, IAT), Err(Refusal::Malformed), "{token}");
        }
    }

    #[test]
    fn a_refusal_names_the_check_but_never_the_token() {
        let text = Refusal::BadSignature.to_string();
        assert!(text.contains("signature") && !text.contains(TOKEN));
    }
}
