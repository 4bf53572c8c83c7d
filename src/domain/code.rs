//! Verification codes: drawn from a CSPRNG, stored only as a keyed hash, compared in constant time.

use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// A code the caller types on the keypad. Never logged: `Debug` is masked.
#[derive(Clone, PartialEq, Eq)]
pub struct Code(String);

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Code(***)")
    }
}

impl Code {
    /// Accepts 4–10 ASCII digits.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = (4..=10).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| Self(s.to_owned()))
    }

    /// The digits, for the one response that may carry them.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The keys derived from the server secret, one per purpose, so that a hash
/// made for one purpose can never be replayed as another.
#[derive(Clone)]
pub struct CodeKeys {
    // Keyed once: each use clones the keyed state instead of hashing the key
    // again (two of a short HMAC's four SHA-256 blocks).
    hash_key: HmacSha256,
    derive_key: HmacSha256,
    fingerprint_key: HmacSha256,
    hold_key: [u8; 32],
    console_key: [u8; 32],
}

impl std::fmt::Debug for CodeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeKeys(***)")
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    keyed_hmac(&keyed(key), parts)
}

fn keyed(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

/// HMAC-SHA256 of `parts`, each prefixed with its length, under an already keyed state.
fn keyed_hmac(keyed: &HmacSha256, parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = keyed.clone();
    for p in parts {
        mac.update(&(p.len() as u64).to_be_bytes());
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

impl CodeKeys {
    /// Derives the purpose keys from the server secret (HMAC as a KDF with labels).
    pub fn from_secret(secret: &[u8]) -> Self {
        Self {
            hash_key: keyed(&hmac(secret, &[b"ivr-auth/code-hash/v1"])),
            derive_key: keyed(&hmac(secret, &[b"ivr-auth/code-derive/v1"])),
            fingerprint_key: keyed(&hmac(secret, &[b"ivr-auth/fingerprint/v1"])),
            hold_key: hmac(secret, &[b"ivr-auth/held-digits/v1"]),
            console_key: hmac(secret, &[b"ivr-auth/console-session/v1"]),
        }
    }

    /// The stored form of `code` for request `id`: HMAC-SHA256, bound to the id
    /// so equal codes of different requests have unrelated hashes.
    pub fn hash(&self, id: &[u8], code: &str) -> [u8; 32] {
        keyed_hmac(&self.hash_key, &[id, code.as_bytes()])
    }

    /// Whether `entered` is the code whose hash is `stored`, in constant time.
    pub fn verify(&self, id: &[u8], entered: &str, stored: &[u8]) -> bool {
        let candidate = self.hash(id, entered);
        candidate.ct_eq(stored).into()
    }

    /// Draws a fresh random salt for a generated code.
    pub fn new_salt() -> [u8; 16] {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        salt
    }

    /// The generated code of `length` digits for `salt`: a PRF of a CSPRNG
    /// salt, so it is as random as drawing digits directly, and an idempotent
    /// replay of the registration can give the same code back without the
    /// code ever being stored.
    pub fn generated_code(&self, salt: &[u8], length: u8) -> Code {
        let mut digits = String::with_capacity(usize::from(length));
        let mut counter: u32 = 0;
        while digits.len() < usize::from(length) {
            let block = keyed_hmac(&self.derive_key, &[salt, &counter.to_be_bytes()]);
            // Rejection sampling: bytes ≥ 250 would bias the digits.
            for b in block.iter().filter(|b| **b < 250) {
                if digits.len() == usize::from(length) {
                    break;
                }
                digits.push(char::from(b'0' + b % 10));
            }
            counter += 1;
        }
        Code(digits)
    }

    /// The code a voice request's SMS fallback sends (`length` digits): a
    /// second code, derived from the request id, because the first one (of a
    /// `voice_dtmf` request) was shown on the site's page, and a code the
    /// page shows proves nothing when typed back into it.
    pub fn fallback_code(&self, id: &[u8], length: u8) -> Code {
        self.generated_code(&[b"ivr-auth/sms-fallback/v1:".as_slice(), id].concat(), length)
    }

    /// The key that seals digits a caller typed while the database was away
    /// (every server derives the same one from the shared secret).
    pub fn hold_key(&self) -> &[u8; 32] {
        &self.hold_key
    }

    /// The key that signs console sessions and sign-in links
    /// (`domain::console`), the same on every server.
    pub fn console_key(&self) -> &[u8; 32] {
        &self.console_key
    }

    /// Keyed fingerprint of a canonical registration body, for idempotency checks.
    pub fn fingerprint(&self, canonical: &[u8]) -> [u8; 32] {
        keyed_hmac(&self.fingerprint_key, &[canonical])
    }
}

/// The server's secret keys: the current one, which makes every new
/// request's hash, and earlier ones still accepted for the requests they
/// made (rotation). Each request records the id of its key.
#[derive(Clone, Debug)]
pub struct KeyRing {
    current: (String, CodeKeys),
    previous: Vec<(String, CodeKeys)>,
}

impl KeyRing {
    /// The ring of `current` and the `previous` keys still accepted.
    pub fn new(current: &[u8], previous: &[&[u8]]) -> Self {
        let keyed = |secret: &[u8]| (key_id(secret), CodeKeys::from_secret(secret));
        Self { current: keyed(current), previous: previous.iter().map(|p| keyed(p)).collect() }
    }

    /// The keys new requests are made with, and their id.
    pub fn current(&self) -> (&str, &CodeKeys) {
        (&self.current.0, &self.current.1)
    }

    /// The keys a request made with `key_id` is checked with: `None` (a
    /// request from before key ids) is the current key; an id of no key this
    /// server has answers `None`, and such a request cannot be verified.
    pub fn for_request(&self, key_id: Option<&str>) -> Option<&CodeKeys> {
        let Some(id) = key_id else { return Some(&self.current.1) };
        std::iter::once(&self.current).chain(&self.previous).find(|(k, _)| k == id).map(|(_, keys)| keys)
    }

    /// Whether `entered` is the code of the request (`id`, `key_id`, `stored`), in constant time.
    pub fn verify(&self, key_id: Option<&str>, id: &[u8], entered: &str, stored: &[u8]) -> bool {
        self.for_request(key_id).is_some_and(|keys| keys.verify(id, entered, stored))
    }

    /// Every key, the current first (what sealed a hold may have been sealed with).
    pub fn all(&self) -> impl Iterator<Item = &CodeKeys> {
        std::iter::once(&self.current.1).chain(self.previous.iter().map(|(_, keys)| keys))
    }
}

/// A key's public id: 8 hex digits of a keyed hash of it, which says which
/// key made a request's hash and nothing about the key.
pub fn key_id(secret: &[u8]) -> String {
    hex::encode(&hmac(secret, &[b"ivr-auth/key-id/v1"])[..4])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_hashes_and_fingerprints_are_the_documented_hmacs() {
        // Known answers computed outside Rust (Python's hmac): HMAC-SHA256 of
        // length-prefixed parts under a key derived from the secret by label.
        // A stored hash must still verify after any change to how it is computed.
        let keys = CodeKeys::from_secret(&[7; 32]);
        assert_eq!(
            hex::encode(keys.hash(b"request-id", "246810")),
            "c8766542d8e8ed4ec1d253b98f6444e05669fab397a102a09c4ef11d9c0eb24b"
        );
        assert_eq!(
            hex::encode(keys.fingerprint(br#"{"a":1}"#)),
            "ae9b9ca4680c484750792c003ee275c327de3d42afe90a4c4a6ab7d1423b0ab8"
        );
    }

    #[test]
    fn a_ring_checks_each_request_with_the_key_that_made_it() {
        let old = KeyRing::new(b"old secret", &[]);
        let (old_id, old_keys) = old.current();
        let h = old_keys.hash(b"id-1", "482913");
        // Rotated: the new key is current, the old one still accepted.
        let ring = KeyRing::new(b"new secret", &[b"old secret"]);
        assert_ne!(ring.current().0, old_id);
        assert!(ring.verify(Some(old_id), b"id-1", "482913", &h));
        assert!(!ring.verify(Some(ring.current().0), b"id-1", "482913", &h), "not with the new key");
        assert!(!ring.verify(None, b"id-1", "482913", &h), "an id-less request is the current key's");
        assert!(!ring.verify(Some("00000000"), b"id-1", "482913", &h), "an unknown key verifies nothing");
        assert!(!ring.verify(Some(old_id), b"id-1", "482914", &h));
        // Without the old key, its requests cannot be verified.
        assert!(!KeyRing::new(b"new secret", &[]).verify(Some(old_id), b"id-1", "482913", &h));
        assert!(old.verify(None, b"id-1", "482913", &h));
        assert_eq!(ring.all().count(), 2);
        assert_eq!(old_id.len(), 8);
    }

    #[test]
    fn parse_accepts_only_4_to_10_digits() {
        assert!(Code::parse("1234").is_some());
        assert!(Code::parse("1234567890").is_some());
        assert!(Code::parse("123").is_none());
        assert!(Code::parse("12345678901").is_none());
        assert!(Code::parse("12a4").is_none());
        assert!(Code::parse("１２３４").is_none());
    }

    #[test]
    fn hash_verifies_only_the_right_code_and_id() {
        let keys = CodeKeys::from_secret(b"secret");
        let h = keys.hash(b"id-1", "482913");
        assert!(keys.verify(b"id-1", "482913", &h));
        assert!(!keys.verify(b"id-1", "482914", &h));
        assert!(!keys.verify(b"id-2", "482913", &h));
        assert!(!keys.verify(b"id-1", "482913", &h[..31]));
    }

    #[test]
    fn generated_codes_have_the_length_and_repeat_for_the_same_salt() {
        let keys = CodeKeys::from_secret(b"secret");
        let salt = CodeKeys::new_salt();
        for len in 4..=10 {
            let c = keys.generated_code(&salt, len);
            assert_eq!(c.expose().len(), usize::from(len));
            assert_eq!(c, keys.generated_code(&salt, len));
        }
        let other = keys.generated_code(&CodeKeys::new_salt(), 10);
        assert_ne!(other, keys.generated_code(&salt, 10));
    }

    #[test]
    fn digits_are_roughly_uniform() {
        let keys = CodeKeys::from_secret(b"secret");
        let mut counts = [0u32; 10];
        for _ in 0..2000 {
            for b in keys.generated_code(&CodeKeys::new_salt(), 10).expose().bytes() {
                counts[usize::from(b - b'0')] += 1;
            }
        }
        // 20,000 digits: each expected 2,000; a biased generator would be far off.
        assert!(counts.iter().all(|c| (1700..2300).contains(c)), "{counts:?}");
    }

    #[test]
    fn debug_never_shows_the_code() {
        let c = Code::parse("482913").unwrap();
        assert!(!format!("{c:?}").contains("482913"));
    }
}
