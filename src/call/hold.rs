//! Keeping a caller on the line while the database is briefly away.
//!
//! A webhook that cannot reach the database answers a short pause and a
//! redirect to itself (`?hold=N`), never an HTTP error: the provider would
//! read that as an application error, play its own message and hang up. The
//! digits of a Gather ride along in the redirect URL, sealed (ChaCha20-Poly1305
//! under a key every server derives from the shared secret, bound to the
//! request and the call), so a code typed during an outage still counts once
//! the database is back — on whichever server the redirect lands.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use chrono::{DateTime, Utc};
use rand::Rng;
use uuid::Uuid;

use super::script::Step;

/// Redirects at most, then the caller is told "sorry": with the store's 4 s retry budget per
/// attempt and 2 s pauses, about 40 s on the line.
pub const MAX_HOLDS: u32 = 6;
/// Seconds of silence before each retry.
pub const PAUSE_SECONDS: u32 = 2;
/// A sealed code is accepted for this long after it was typed.
const SEALED_FOR_SECONDS: i64 = 120;

/// Where a webhook stands in a hold: how many retries so far, and the sealed digits, if any.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Hold {
    pub count: u32,
    pub sealed: Option<String>,
}

impl Hold {
    /// Reads `hold` and `held` from a webhook URL's query.
    pub fn from_query(query: &str) -> Self {
        let mut hold = Self::default();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "hold" => hold.count = v.parse().unwrap_or(MAX_HOLDS),
                "held" => hold.sealed = Some(v.into_owned()),
                _ => {}
            }
        }
        hold
    }

    /// The TwiML that keeps the caller waiting and then retries `url` (the
    /// webhook's public URL, without the hold's own parameters), carrying
    /// `sealed` digits; `None`
    /// once the caller has waited long enough.
    pub fn again(&self, url: &str, sealed: Option<&str>) -> Option<Vec<Step>> {
        if self.count >= MAX_HOLDS {
            return None;
        }
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("hold", &(self.count + 1).to_string());
        if let Some(s) = sealed {
            query.append_pair("held", s);
        }
        // `url` may keep a query of its own (the locale the call speaks).
        let sep = if url.contains('?') { '&' } else { '?' };
        Some(vec![
            Step::Pause { seconds: PAUSE_SECONDS },
            Step::Redirect { url: format!("{url}{sep}{}", query.finish()) },
        ])
    }
}

fn cipher(key: &[u8; 32]) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(Key::from_slice(key))
}

fn bound_to(id: Uuid, call_sid: &str) -> Vec<u8> {
    let mut aad = id.as_bytes().to_vec();
    aad.extend_from_slice(call_sid.as_bytes());
    aad
}

/// Until when a token opened at `now` must be remembered as used: as long
/// as `unseal` could still open it.
pub fn remembered_until(now: DateTime<Utc>) -> DateTime<Utc> {
    now + chrono::Duration::seconds(SEALED_FOR_SECONDS + 1)
}

/// Seals `digits` typed at `now` on call `call_sid` of request `id`.
pub fn seal(key: &[u8; 32], id: Uuid, call_sid: &str, digits: &str, now: DateTime<Utc>) -> String {
    let mut nonce = [0u8; 12];
    rand::rng().fill_bytes(&mut nonce);
    let plain = format!("{}:{digits}", now.timestamp());
    let aad = bound_to(id, call_sid);
    let sealed = cipher(key)
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain.as_bytes(), aad: &aad })
        .unwrap_or_default();
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    URL_SAFE_NO_PAD.encode(out)
}

/// The digits sealed for this request and call, if the seal is genuine and recent.
pub fn unseal(key: &[u8; 32], token: &str, id: Uuid, call_sid: &str, now: DateTime<Utc>) -> Option<String> {
    let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
    if raw.len() < 12 + 16 {
        return None;
    }
    let (nonce, sealed) = raw.split_at(12);
    let aad = bound_to(id, call_sid);
    let plain = cipher(key).decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: &aad }).ok()?;
    let plain = String::from_utf8(plain).ok()?;
    let (at, digits) = plain.split_once(':')?;
    let age = now.timestamp() - at.parse::<i64>().ok()?;
    ((0..=SEALED_FOR_SECONDS).contains(&age) && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_digits_open_only_for_their_request_and_call_and_while_fresh() {
        let key = [7u8; 32];
        let (id, now) = (Uuid::now_v7(), Utc::now());
        let token = seal(&key, id, "CA1", "482913", now);
        assert!(!token.contains("482913"));
        assert_eq!(unseal(&key, &token, id, "CA1", now).as_deref(), Some("482913"));
        assert_eq!(unseal(&key, &token, id, "CA2", now), None, "another call");
        assert_eq!(unseal(&key, &token, Uuid::now_v7(), "CA1", now), None, "another request");
        assert_eq!(unseal(&[8u8; 32], &token, id, "CA1", now), None, "another key");
        assert_eq!(unseal(&key, &token, id, "CA1", now + chrono::Duration::minutes(5)), None, "stale");
        let mut tampered = token.clone().into_bytes();
        tampered[20] = if tampered[20] == b'A' { b'B' } else { b'A' };
        assert_eq!(unseal(&key, std::str::from_utf8(&tampered).unwrap(), id, "CA1", now), None);
    }

    #[test]
    fn holds_count_up_and_end() {
        let first = Hold::from_query("");
        let verbs = first.again("https://x.example/webhooks/twilio/voice/gather/1", Some("abc")).unwrap();
        let Step::Redirect { url } = &verbs[1] else { panic!("{verbs:?}") };
        assert_eq!(url, "https://x.example/webhooks/twilio/voice/gather/1?hold=1&held=abc");
        let next = Hold::from_query("hold=1&held=abc");
        assert_eq!(next, Hold { count: 1, sealed: Some("abc".into()) });
        assert!(Hold::from_query(&format!("hold={MAX_HOLDS}")).again("u", None).is_none());
        assert!(Hold::from_query("hold=nonsense").again("u", None).is_none());
    }
}
