//! Signed requests from the site (optional per tenant): public-key client
//! validation, as financial customers' check sheets ask. A tenant that has
//! registered an Ed25519 public key (`ivr-auth tenant set --signing-key`)
//! signs every API request besides sending its bearer key:
//!
//! ```text
//! IVR-Auth-Timestamp: <unix seconds>
//! IVR-Auth-Request-Signature: <base64 of the 64-byte Ed25519 signature of>
//!     "ivr-auth-request-v1\n" METHOD "\n" PATH?QUERY "\n" TIMESTAMP "\n" hex(SHA-256(body))
//! ```
//!
//! A timestamp more than five minutes from the server's clock is refused, and
//! so is a signature this server has already accepted within that window. A
//! tenant with a key gets 401 for a request without a valid signature.
//! Verification is `ed25519-dalek`'s strict verification.

use actix_web::HttpRequest;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::domain::tenant::Tenant;
use crate::error::AppError;
use crate::service::Service;
use chrono::{DateTime, Utc};

pub const TIMESTAMP_HEADER: &str = "IVR-Auth-Timestamp";
pub const SIGNATURE_HEADER: &str = "IVR-Auth-Request-Signature";
/// How far a request's timestamp may be from the server's clock, in seconds.
pub const WINDOW_SECONDS: i64 = 300;

/// A tenant's public key as `tenant set --signing-key` takes it: base64 (or
/// hex) of the 32 bytes, checked to be a valid Ed25519 point.
pub fn parse_public_key(text: &str) -> Option<VerifyingKey> {
    let text = text.trim();
    // 64 hex digits are valid base64 too (of 48 bytes): hex is tried first.
    let bytes = hex::decode(text).ok().filter(|b| b.len() == 32).or_else(|| STANDARD.decode(text).ok())?;
    VerifyingKey::from_bytes(&bytes.try_into().ok()?).ok()
}

/// The bytes a request's signature covers.
pub fn signed_message(method: &str, path_and_query: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    let body_hash = hex::encode(Sha256::digest(body));
    format!("ivr-auth-request-v1\n{method}\n{path_and_query}\n{timestamp}\n{body_hash}").into_bytes()
}

/// Whether `signature` (base64) is `key`'s signature of `message`.
pub fn verifies(key: &VerifyingKey, message: &[u8], signature: &str) -> bool {
    let Ok(raw) = STANDARD.decode(signature.trim()) else { return false };
    let Ok(signature) = Signature::from_slice(&raw) else { return false };
    key.verify_strict(message, &signature).is_ok()
}

/// Checks the signature of `req` with `body` when `tenant` signs its
/// requests, and spends it: a signed request is answered once, by whichever
/// server it reaches first, for as long as its timestamp is accepted.
pub async fn check(tenant: &Tenant, req: &HttpRequest, body: &[u8], service: &Service) -> Result<(), AppError> {
    let Some(key_text) = &tenant.policy.signing_key else { return Ok(()) };
    let refuse = |why: &str| AppError::Unsigned(format!("this tenant signs its requests: {why}"));
    let key = parse_public_key(key_text).ok_or_else(|| refuse("its registered public key is not valid"))?;
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let timestamp = header(TIMESTAMP_HEADER).ok_or_else(|| refuse("the IVR-Auth-Timestamp header is missing"))?;
    let signature =
        header(SIGNATURE_HEADER).ok_or_else(|| refuse("the IVR-Auth-Request-Signature header is missing"))?;
    let at: i64 = timestamp.trim().parse().map_err(|_| refuse("IVR-Auth-Timestamp must be unix seconds"))?;
    let now = service.now().timestamp();
    if !in_window(at, now) {
        return Err(refuse("IVR-Auth-Timestamp is more than 5 minutes from the server's clock"));
    }
    let path = req.uri().path_and_query().map_or_else(|| req.path().to_owned(), |p| p.as_str().to_owned());
    let message = signed_message(req.method().as_str(), &path, timestamp.trim(), body);
    if !verifies(&key, &message, &signature) {
        return Err(refuse("IVR-Auth-Request-Signature does not verify"));
    }
    if !service.first_use("request-signature", signature.trim(), remembered_until(at)).await? {
        return Err(refuse("this signed request was already answered; sign each request anew"));
    }
    Ok(())
}

/// Whether a request signed at `at` (unix seconds) is accepted at `now`.
fn in_window(at: i64, now: i64) -> bool {
    at.checked_sub(now).and_then(i64::checked_abs).is_some_and(|d| d <= WINDOW_SECONDS)
}

/// How long a signature made at `at` must be remembered: as long as
/// `in_window` accepts it, its last second included (the store forgets a use
/// once its `until` is strictly past).
fn remembered_until(at: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(at.saturating_add(WINDOW_SECONDS + 1), 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn unhex<const N: usize>(s: &str) -> [u8; N] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// RFC 8032, section 7.1, TESTs 1–3 (Ed25519): secret key, public key, message, signature.
    const RFC8032: [(&str, &str, &str, &str); 3] = [
        (
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        (
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ),
        (
            "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
            "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
            "af82",
            "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
        ),
    ];

    #[test]
    fn the_rfc_8032_test_vectors_verify_and_a_changed_bit_does_not() {
        for (secret, public, message, signature) in RFC8032 {
            let signing = SigningKey::from_bytes(&unhex::<32>(secret));
            assert_eq!(hex::encode(signing.verifying_key().as_bytes()), public);
            let message = hex::decode(message).unwrap();
            assert_eq!(hex::encode(signing.sign(&message).to_bytes()), signature, "deterministic signatures");
            // Our parsing and verification, from the forms a site sends.
            let key = parse_public_key(&STANDARD.encode(hex::decode(public).unwrap())).unwrap();
            assert_eq!(parse_public_key(public), Some(key), "hex is accepted too");
            let sig = STANDARD.encode(hex::decode(signature).unwrap());
            assert!(verifies(&key, &message, &sig));
            let mut tampered = message.clone();
            tampered.push(0);
            assert!(!verifies(&key, &tampered, &sig));
            let mut bad = hex::decode(signature).unwrap();
            bad[10] ^= 1;
            assert!(!verifies(&key, &message, &STANDARD.encode(bad)));
        }
        assert!(parse_public_key("not a key").is_none());
        assert!(parse_public_key(&STANDARD.encode([0u8; 31])).is_none());
    }

    #[test]
    fn a_signature_is_remembered_for_every_second_its_timestamp_is_accepted() {
        let at = 1_800_000_000;
        for now in [at - WINDOW_SECONDS, at, at + WINDOW_SECONDS] {
            assert!(in_window(at, now), "{now}");
            // The store forgets a use only once `until` < now: the last accepted second is covered.
            assert!(remembered_until(at).timestamp() > now, "{now}");
        }
        assert!(!in_window(at, at + WINDOW_SECONDS + 1));
        assert!(!in_window(at, at - WINDOW_SECONDS - 1));
        assert!(!in_window(i64::MIN, 0), "no overflow");
    }
}
