//! Console sessions and sign-in links: stateless tokens signed with a key every server derives alike.
//!
//! A token reads `v1.<kind>.<who>.<expiry>.<nonce>.<mac>`: `kind` is `s` (a
//! session cookie) or `l` (a one-time sign-in link), so that one can never
//! stand for the other; `who` is `o` (the operator) or `t:<tenant id>:<key
//! id>` (a tenant, bound to its API key of the moment, so rotating the key
//! signs its sessions out); `expiry` is Unix seconds; `nonce` is 128 random
//! bits; `mac` is HMAC-SHA256 of everything before it, base64url.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use sha2::Sha256;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The console's session cookie.
    Session,
    /// A sign-in link the CLI printed; exchanged once for a session.
    Link,
}

/// Whom a token signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// The operator: sees every tenant.
    Operator,
    /// One tenant, while its API key is `key_id`.
    Tenant { id: Uuid, key_id: String },
}

/// A console token, signed or verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleToken {
    pub kind: Kind,
    pub who: Who,
    /// Unix seconds after which it is refused.
    pub expires: i64,
    /// Random; makes every token distinct and keys its CSRF token.
    pub nonce: String,
}

/// Why a token was refused (all answer the same to the outside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Malformed,
    BadSignature,
    Expired,
    WrongKind,
}

fn mac(key: &[u8; 32], parts: &[&[u8]]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("any key length"));
    for p in parts {
        mac.update(&(p.len() as u64).to_be_bytes());
        mac.update(p);
    }
    mac
}

/// 128 random bits, base64url.
pub fn new_nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl ConsoleToken {
    /// A fresh token of `kind` for `who`, valid until `expires`.
    pub fn new(kind: Kind, who: Who, expires: i64) -> Self {
        Self { kind, who, expires, nonce: new_nonce() }
    }

    fn unsigned(&self) -> String {
        let kind = match self.kind {
            Kind::Session => "s",
            Kind::Link => "l",
        };
        let who = match &self.who {
            Who::Operator => "o".to_owned(),
            Who::Tenant { id, key_id } => format!("t:{id}:{key_id}"),
        };
        format!("v1.{kind}.{who}.{}.{}", self.expires, self.nonce)
    }

    /// The token as sent: its fields and their MAC under `key`.
    pub fn sign(&self, key: &[u8; 32]) -> String {
        let unsigned = self.unsigned();
        let tag = mac(key, &[unsigned.as_bytes()]).finalize().into_bytes();
        format!("{unsigned}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// The token `raw` if one of `keys` signed it, it is of `kind`, and it
    /// has not expired at `now` (Unix seconds). The MAC is compared in
    /// constant time (`Mac::verify_slice`).
    pub fn verify<'k>(
        raw: &str,
        kind: Kind,
        keys: impl IntoIterator<Item = &'k [u8; 32]>,
        now: i64,
    ) -> Result<Self, Refused> {
        let (unsigned, tag) = raw.rsplit_once('.').ok_or(Refused::Malformed)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| Refused::Malformed)?;
        if !keys.into_iter().any(|k| mac(k, &[unsigned.as_bytes()]).verify_slice(&tag).is_ok()) {
            return Err(Refused::BadSignature);
        }
        let token = Self::parse_unsigned(unsigned).ok_or(Refused::Malformed)?;
        if token.kind != kind {
            return Err(Refused::WrongKind);
        }
        if now >= token.expires {
            return Err(Refused::Expired);
        }
        Ok(token)
    }

    fn parse_unsigned(s: &str) -> Option<Self> {
        let mut fields = s.split('.');
        let (v, kind, who, expires, nonce) =
            (fields.next()?, fields.next()?, fields.next()?, fields.next()?, fields.next()?);
        if v != "v1" || fields.next().is_some() || nonce.is_empty() {
            return None;
        }
        let kind = match kind {
            "s" => Kind::Session,
            "l" => Kind::Link,
            _ => return None,
        };
        let who = match who.split(':').collect::<Vec<_>>().as_slice() {
            ["o"] => Who::Operator,
            ["t", id, key_id] => Who::Tenant { id: Uuid::parse_str(id).ok()?, key_id: (*key_id).to_owned() },
            _ => return None,
        };
        Some(Self { kind, who, expires: expires.parse().ok()?, nonce: nonce.to_owned() })
    }

    /// The CSRF token of this session: the page sends it back in
    /// `X-CSRF-Token` with every state-changing request. It is a MAC of the
    /// nonce, so a page script learns nothing that would forge the cookie.
    pub fn csrf(&self, key: &[u8; 32]) -> String {
        URL_SAFE_NO_PAD.encode(mac(key, &[b"csrf", self.nonce.as_bytes()]).finalize().into_bytes())
    }

    /// Whether `presented` is this session's CSRF token under one of `keys`, in constant time.
    pub fn csrf_matches<'k>(&self, presented: &str, keys: impl IntoIterator<Item = &'k [u8; 32]>) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(presented) else { return false };
        keys.into_iter().any(|k| mac(k, &[b"csrf", self.nonce.as_bytes()]).verify_slice(&tag).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];
    const OTHER: [u8; 32] = [8; 32];

    fn tenant() -> Who {
        Who::Tenant { id: Uuid::nil(), key_id: "0011223344556677".into() }
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let t = ConsoleToken::new(Kind::Session, tenant(), 1_000);
        let raw = t.sign(&KEY);
        assert_eq!(ConsoleToken::verify(&raw, Kind::Session, [&KEY], 999), Ok(t));
        assert_eq!(ConsoleToken::verify(&raw, Kind::Session, [&KEY], 1_000), Err(Refused::Expired));
    }

    #[test]
    fn another_key_a_changed_field_or_the_other_kind_is_refused() {
        let raw = ConsoleToken::new(Kind::Session, tenant(), 1_000).sign(&KEY);
        assert_eq!(ConsoleToken::verify(&raw, Kind::Session, [&OTHER], 0), Err(Refused::BadSignature));
        // An earlier key of the ring still verifies.
        assert!(ConsoleToken::verify(&raw, Kind::Session, [&OTHER, &KEY], 0).is_ok());
        let later = raw.replacen(".1000.", ".9000.", 1);
        assert_eq!(ConsoleToken::verify(&later, Kind::Session, [&KEY], 0), Err(Refused::BadSignature));
        let operator = raw.replacen("t:00000000-0000-0000-0000-000000000000:0011223344556677", "o", 1);
        assert_eq!(ConsoleToken::verify(&operator, Kind::Session, [&KEY], 0), Err(Refused::BadSignature));
        assert_eq!(ConsoleToken::verify(&raw, Kind::Link, [&KEY], 0), Err(Refused::WrongKind));
        assert_eq!(ConsoleToken::verify("v1.s.o", Kind::Session, [&KEY], 0), Err(Refused::Malformed));
    }

    #[test]
    fn every_token_is_distinct_and_keys_its_own_csrf_token() {
        let a = ConsoleToken::new(Kind::Session, Who::Operator, 1_000);
        let b = ConsoleToken::new(Kind::Session, Who::Operator, 1_000);
        assert_ne!(a.sign(&KEY), b.sign(&KEY));
        assert!(a.csrf_matches(&a.csrf(&KEY), [&KEY]));
        assert!(!a.csrf_matches(&b.csrf(&KEY), [&KEY]));
        assert!(!a.csrf_matches("", [&KEY]));
    }
}
