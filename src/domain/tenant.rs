//! Tenants (the sites) and their credentials: API keys shown once and kept only as hashes.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// A site that registers auth requests.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    /// Public half of the API key, used to find the tenant; not a secret.
    pub key_id: String,
    /// SHA-256 of the secret half. The key has 256 random bits, so a fast hash
    /// is enough: there is nothing to brute-force.
    pub key_hash: Vec<u8>,
    /// Signs result callbacks; the site holds the same string.
    pub callback_secret: SecretString,
    /// The secret before the last rotation, still signing until `previous_until`.
    pub previous_callback_secret: Option<SecretString>,
    pub previous_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// What the operator set for this tenant (`ivr-auth tenant set`).
    pub policy: TenantPolicy,
}

/// A tenant's own settings. Stored as JSON, so a setting added later needs
/// no migration; an absent setting is the server's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantPolicy {
    /// The tenant's own number for inbound mode (E.164); unset: the server's
    /// `IVR_AUTH_INBOUND_NUMBER`, shared with the other tenants without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inbound_number: Option<String>,
    /// Countries (ISO 3166 regions, e.g. `JP`) this tenant may have called;
    /// empty: the server's default region only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_countries: Vec<String>,
    /// Outbound calls per minute at most; unset: the server's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls_per_minute: Option<u32>,
    /// Outbound calls per day (24 hours) at most; unset: the server's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls_per_day: Option<u32>,
    /// The least STIR/SHAKEN attestation an inbound call must carry (`A`, `B`
    /// or `C`); unset: none is required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_attestation: Option<String>,
    /// The tenant's Ed25519 public key (base64 of 32 bytes): when set, every
    /// site-API request must be signed with it (`api::request_signature`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
    /// What the tenant's callers hear: its name and its own words.
    #[serde(skip_serializing_if = "TenantVoice::is_empty")]
    pub voice: TenantVoice,
}

/// A tenant's own voice settings: the name its callers hear, and prompt
/// texts and recordings (per locale, by prompt key) over the server's.
/// Validated where they are set (`voice::prompts::check_text`).
// The check now lives in `call::prompt::check_text`. The `///` above is
// published in openapi.json, which stays byte-for-byte as it was.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TenantVoice {
    /// The site's name as callers hear it and texts show it (`{site_name}`),
    /// e.g. `さくら銀行`; unset: the locale's default wording.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 60, example = "さくら銀行")]
    pub display_name: Option<String>,
    /// The name in a locale where it differs from `display_name`
    /// (`{"en-US": "Sakura Bank"}`): a Japanese name is not what an English
    /// voice can say.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub display_names: BTreeMap<String, String>,
    /// Prompt texts by locale, then by prompt key (`{"ja-JP": {"success": "…"}}`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub prompts: BTreeMap<String, BTreeMap<String, String>>,
    /// Recorded prompts by locale, then by prompt key: https URLs the
    /// provider plays (`<Play>`) instead of speaking the text.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub audio: BTreeMap<String, BTreeMap<String, String>>,
}

impl TenantVoice {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The name callers in `locale` hear, if the tenant set one.
    pub fn name_for(&self, locale: &str) -> Option<&str> {
        self.display_names.get(locale).or(self.display_name.as_ref()).map(String::as_str)
    }

    /// The tenant's text for prompt `key` in `locale`, if it set one.
    pub fn text_for(&self, locale: &str, key: &str) -> Option<&str> {
        self.prompts.get(locale)?.get(key).map(String::as_str)
    }

    /// The tenant's recording of prompt `key` in `locale`, if it set one.
    pub fn audio_for(&self, locale: &str, key: &str) -> Option<&str> {
        self.audio.get(locale)?.get(key).map(String::as_str)
    }
}

impl TenantPolicy {
    /// The stored JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// Reads the stored JSON form; `None` when it is not a policy.
    pub fn from_json(s: &str) -> Option<Self> {
        serde_json::from_str(s).ok()
    }
}

/// A freshly minted API key: `ivr_<key id>_<secret>`. Shown once.
pub struct NewApiKey {
    pub key_id: String,
    pub full: SecretString,
    pub hash: Vec<u8>,
}

const PREFIX: &str = "ivr_";

/// Mints a new API key from the CSPRNG.
pub fn new_api_key() -> NewApiKey {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    let mut rng = rand::rng();
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let key_id = hex::encode(id);
    let secret = URL_SAFE_NO_PAD.encode(secret);
    NewApiKey { hash: hash_secret(&secret), full: SecretString::from(format!("{PREFIX}{key_id}_{secret}")), key_id }
}

/// Mints a new callback-signing secret.
pub fn new_callback_secret() -> SecretString {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    SecretString::from(format!("whsec_{}", URL_SAFE_NO_PAD.encode(secret)))
}

fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// A bearer token split into its lookup id and its secret half.
pub struct PresentedKey<'a> {
    pub key_id: &'a str,
    secret: &'a str,
}

impl<'a> PresentedKey<'a> {
    /// Splits `ivr_<16 hex>_<secret>`; anything else is not a key of ours.
    pub fn parse(token: &'a str) -> Option<Self> {
        let rest = token.strip_prefix(PREFIX)?;
        let (key_id, secret) = rest.split_once('_')?;
        let well_formed = key_id.len() == 16
            && key_id.bytes().all(|b| b.is_ascii_hexdigit())
            && !secret.is_empty()
            && secret.len() <= 64;
        well_formed.then_some(Self { key_id, secret })
    }

    /// Whether this key matches the stored hash, compared in constant time.
    pub fn matches(&self, tenant: &Tenant) -> bool {
        let hash = hash_secret(self.secret);
        let same_id = self.key_id.as_bytes().ct_eq(tenant.key_id.as_bytes());
        (hash.ct_eq(&tenant.key_hash) & same_id).into()
    }
}

impl Tenant {
    /// A new tenant named `name` with fresh credentials; the key is returned
    /// separately because it is shown once and kept only as its hash.
    pub fn create(name: String, now: DateTime<Utc>) -> (Tenant, NewApiKey) {
        let key = new_api_key();
        let tenant = Tenant {
            id: Uuid::now_v7(),
            name,
            key_id: key.key_id.clone(),
            key_hash: key.hash.clone(),
            callback_secret: new_callback_secret(),
            previous_callback_secret: None,
            previous_until: None,
            created_at: now,
            policy: TenantPolicy::default(),
        };
        (tenant, key)
    }

    /// The callback secrets that sign now: the current one, and the previous
    /// one while a rotation's grace period lasts.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&str> {
        let mut out = vec![self.callback_secret.expose_secret()];
        if let (Some(prev), Some(until)) = (&self.previous_callback_secret, self.previous_until)
            && now < until
        {
            out.push(prev.expose_secret());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant_with(key: &NewApiKey) -> Tenant {
        Tenant {
            id: Uuid::now_v7(),
            name: "t".into(),
            key_id: key.key_id.clone(),
            key_hash: key.hash.clone(),
            callback_secret: new_callback_secret(),
            previous_callback_secret: None,
            previous_until: None,
            created_at: Utc::now(),
            policy: TenantPolicy::default(),
        }
    }

    #[test]
    fn a_minted_key_matches_only_its_tenant() {
        let key = new_api_key();
        let other = new_api_key();
        let t = tenant_with(&key);
        let presented = PresentedKey::parse(key.full.expose_secret()).unwrap();
        assert_eq!(presented.key_id, key.key_id);
        assert!(presented.matches(&t));
        assert!(!PresentedKey::parse(other.full.expose_secret()).unwrap().matches(&t));
        let forged = format!("ivr_{}_{}", key.key_id, "x".repeat(43));
        assert!(!PresentedKey::parse(&forged).unwrap().matches(&t));
    }

    #[test]
    fn malformed_tokens_are_not_keys() {
        for t in ["", "ivr_", "ivr_zz_abc", "Bearer x", "ivr_0123456789abcdef_"] {
            assert!(PresentedKey::parse(t).is_none(), "{t}");
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let key = new_api_key();
        let t = tenant_with(&key);
        let shown = format!("{t:?}");
        assert!(!shown.contains(t.callback_secret.expose_secret()));
    }
}
