//! The Vonage application JWT: RS256 over `{application_id, iat, exp, jti}`, signed with the application's private key.
//!
//! What Vonage documents, and what this follows (found with the search tool, December 2026):
//! - "Authentication" (developer.vonage.com/en/getting-started/concepts/authentication): the Voice
//!   API takes only a JWT, and the Messages API takes a JWT or Basic auth; the JWT is signed with
//!   the private key of a Vonage application. The Vonage CLI's sample token
//!   (developer.vonage.com/en/vonage-cli/guides/authentication-security/jwt) has the header
//!   `{"alg":"RS256","typ":"JWT"}` and the claims `exp`, `jti` (a UUID), `iat` and `application_id`.
//! - Vonage API Support, "How long is my JSON Web Token valid for?": `exp` may be up to 24 hours after
//!   `iat`; without `exp` a token is accepted for 15 minutes; without both it is refused. Tokens here
//!   live [`LIFETIME_SECONDS`] (those same 15 minutes, said explicitly) and a new one is made per request.
//! - The key Vonage hands out is a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`); a PKCS#1 PEM
//!   (`BEGIN RSA PRIVATE KEY`, what older `openssl genrsa` writes) is taken too.
//!
//! Signed with `ring`, already in the tree under rustls and chosen there because it needs no C
//! toolchain: its RSA signing is constant-time. `jsonwebtoken` 12 dropped its `ring` backend and
//! offers `aws_lc_rs` (a C/CMake build) or `rust_crypto`, which pulls RustCrypto `rsa`, whose
//! RUSTSEC-2023-0071 (Marvin, a timing side channel on private-key operations) has no fixed 0.9
//! release; with one fixed algorithm and four claims the JWT itself is a few lines of base64 and
//! JSON. The PEM is read by `rustls-pki-types` (also in the tree), whose key buffer is zeroized on
//! drop. Neither the key nor a token is ever logged or put in an error text.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use uuid::Uuid;

/// How long a token is valid, in seconds: Vonage's default when `exp` is absent.
pub const LIFETIME_SECONDS: i64 = 900;

/// The error text for a key that cannot be used; it names the setting, never the key.
const BAD_KEY: &str = "VONAGE_PRIVATE_KEY_FILE does not hold a usable RSA private key (PEM, PKCS#8 or PKCS#1)";

/// A Vonage application's id and private key, ready to sign tokens.
pub struct AppKey {
    application_id: String,
    key: RsaKeyPair,
    rng: SystemRandom,
}

impl fmt::Debug for AppKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppKey").field("application_id", &self.application_id).field("key", &"<redacted>").finish()
    }
}

impl AppKey {
    /// Reads the PEM text of the application's private key. The error names
    /// `VONAGE_PRIVATE_KEY_FILE` and nothing of the text (a parser's error may quote a line).
    pub fn from_pem(application_id: String, pem: &SecretString) -> Result<Self, String> {
        let der = PrivateKeyDer::from_pem_slice(pem.expose_secret().as_bytes()).map_err(|_| BAD_KEY.to_owned())?;
        let key = match &der {
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => return Err(BAD_KEY.to_owned()),
        }
        .map_err(|_| BAD_KEY.to_owned())?;
        Ok(Self { application_id, key, rng: SystemRandom::new() })
    }

    /// A token issued at `now` (Unix seconds) with the unique id `jti`. Pure but for the key:
    /// the caller reads the clock and draws the id ([`AppKey::fresh_token`] does both).
    pub fn token(&self, now: i64, jti: Uuid) -> Result<SecretString, String> {
        let header = json!({ "alg": "RS256", "typ": "JWT" });
        let claims = json!({
            "application_id": self.application_id,
            "iat": now,
            "exp": now + LIFETIME_SECONDS,
            "jti": jti.to_string(),
        });
        let mut token =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &self.rng, token.as_bytes(), &mut signature)
            .map_err(|_| "signing the Vonage application JWT failed".to_owned())?;
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(SecretString::from(token))
    }

    /// A token for a request made now, with a random (version 4) `jti`.
    pub fn fresh_token(&self) -> Result<SecretString, String> {
        let mut bytes = [0u8; 16];
        self.rng.fill(&mut bytes).map_err(|_| "no randomness for the JWT id".to_owned())?;
        self.token(chrono::Utc::now().timestamp(), uuid::Builder::from_random_bytes(bytes).into_uuid())
    }
}

#[cfg(test)]
/// Test only: a 2048-bit key made once with `openssl genpkey -algorithm RSA`.
pub(crate) const TEST_KEY: &str = concat!(
    "-----BEGIN PRIVATE KEY-----\n",
    "MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCsd+HGAUOioXLJ\n",
    "8x3wys1YezlfJidwxOUJCi0Vz2cUfnGyrc3LmnlhkX0GFWrh8EL3J7em92hIpARy\n",
    "beR6UHkL6L8tcrluqp/VZKoQhAk7PgIKkDBheXfqcojxmOJ78jRjvR3lOy0yQBAs\n",
    "KhAo5ALkV+qV1d6IM/D2K+tFt9jOz2/AerbXIV3VVWoVnSBQ9DSR6rhCM842N2BP\n",
    "7B8cbsa+KSpAX8vMb17Er6e7bNMrojIdubTTsOc7MPQbIFDPR4rsKjow1fAvnR9V\n",
    "mdloooguHDiQgAW4SGSULTxu0zErBeRUvpOlj9x/4Hod6sPVRHMjt5R78pEAxdcN\n",
    "pF6mUP3pAgMBAAECggEAFZWjUe6SkmX2QcQFeT9IV8yEL55MzVY2+9ykK9ibI/t3\n",
    "K0+JM/QPQOC+buZ7S++P0fLMjz7jdEPispeCQrSTkaP9WSjEgE8mVcSVbB+6MAng\n",
    "o4XMKEbVdSgEb4gcwDpdyCXA+hFf5KwT2hMhlpyCqCVAnKP5h75IZ+azOTR7E9a5\n",
    "EB3EDmeR8CERWzLlV72EuEmnHDMRDpnFsMKj8XC8dtyQfNyMAF9gokso8hmSNfRF\n",
    "bScy63ZjQSkaIal9N4kEUtqcfPeE+nmylyZZQTJ1TYtciCvOuO9HMJj/Bq5B5tvK\n",
    "7KqiMEy237iKqxPhh+nol5vOUoosn7PjTLuLRUmUSQKBgQDzlZegQK8S2L3JFMQd\n",
    "oPSJAgStHFYQ8S/9s+wKrHtIHnNAbkjZ0hsNL/HRPPaXnMXXfbfN76gTHtXGUOGf\n",
    "OsWl6y0xeb9nh2gJAXGr7rv5GbE7mEX6NVilq+o1smduQTX3xWoTgUK6yj6a29Hm\n",
    "PK1e3iYlPVxWCLNwjnIAmNafXwKBgQC1QlUhkabH1/sGDyKHYXFUXLMP5ZBrYUfs\n",
    "HMUxNlASdLsdZpBFKPq1iCNs1Wbt2vC5Nw2ynxPq6NhsUJe+uDTeNCWRT8bCBlJE\n",
    "ruRPcusJrhWnBtLEoyWtDtV7+l4igwJ+fg1vggidu2S/PyVkz/pBO2Fuy/YTtVMq\n",
    "PRBIrYGPtwKBgHaI0WR2lbvCJXj41gblEJqrlML5CxjrhcMcDz2Sedu6lbNA98qn\n",
    "5+oe7ro3xHg7HjujPhLFETFczALZ0TG/U/dN3ow5Bt/GkOXxAfP9FRQ/YHPzwfnk\n",
    "g+L7Kdo/mv2YVj7gnqInQOXNDXImjppP5L5JtJ5iodBsI4Yei3Om7KpZAoGAMhI4\n",
    "4iUSJXKMbYgQycUpQVy6OlH4KzGcZKUt9AJE7FRCvERw5ioD19Hbt1zcKiipBwEm\n",
    "T4mSPvpDjuhUguLv99H/7rxS85Y7c628dBYSx4HHiXRhFODcr4nBf5YSGwaF0duQ\n",
    "apVJPAlgM1SGR+sL/qkgqTK+r4MPjkOAFBOaDtECgYA0FOPRhZOADSecZ3NuH58p\n",
    "S6dSx6+F/Y8zkC/zkpTUXI3zCrEyT/lRCeiF6FObwVSdDUPq4BnstptBqWBRjqe5\n",
    "rEiY6dr5UksNE6hKyOSrMBHnwYuIJ+ewS6GZfQitv9Bi1WoB/jRYQ9jsriSsNOYc\n",
    "pcdD08EVNEC7LnH/MDnV4Q==\n",
    "-----END PRIVATE KEY-----\n",
);

/// Whether `token` is signed by this key (for the tests of the clients that send it).
#[cfg(test)]
pub(crate) fn signed_by(key: &AppKey, token: &str) -> bool {
    use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
    let Some((signed, signature)) = token.rsplit_once('.') else { return false };
    let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else { return false };
    let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.key.public().as_ref());
    public.verify(signed.as_bytes(), &signature).is_ok()
}

#[cfg(test)]
mod tests {
    use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
    use serde_json::Value;

    use super::*;

    fn key() -> AppKey {
        AppKey::from_pem("aaaaaaaa-bbbb-cccc-dddd-0123456789ab".into(), &SecretString::from(TEST_KEY)).unwrap()
    }

    fn decoded(part: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn a_token_is_rs256_over_the_claims_and_verifies_with_the_public_key() {
        let key = key();
        let jti = Uuid::parse_str("0ff70d3f-037a-4f80-886c-b72c72d21cf2").unwrap();
        let token = key.token(1_736_281_046, jti).unwrap();
        let parts: Vec<&str> = token.expose_secret().split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(decoded(parts[0]), json!({"alg": "RS256", "typ": "JWT"}));
        assert_eq!(
            decoded(parts[1]),
            json!({
                "application_id": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
                "iat": 1_736_281_046,
                "exp": 1_736_281_946,
                "jti": "0ff70d3f-037a-4f80-886c-b72c72d21cf2",
            })
        );
        let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.key.public().as_ref());
        let signed = format!("{}.{}", parts[0], parts[1]);
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        public.verify(signed.as_bytes(), &signature).unwrap();
        assert!(public.verify(b"other.claims", &signature).is_err());
        assert!(signed_by(&key, token.expose_secret()));
    }

    #[test]
    fn each_fresh_token_has_its_own_random_id() {
        let key = key();
        let jti = |t: SecretString| decoded(t.expose_secret().split('.').nth(1).unwrap())["jti"].clone();
        let (a, b) = (jti(key.fresh_token().unwrap()), jti(key.fresh_token().unwrap()));
        assert_ne!(a, b);
        assert_eq!(Uuid::parse_str(a.as_str().unwrap()).unwrap().get_version_num(), 4);
    }

    #[test]
    fn an_unusable_key_is_an_error_that_does_not_quote_it() {
        for pem in [
            "not a key at all: s3cr3t-material",
            "-----BEGIN PRIVATE KEY-----\ns3cr3t-material\n-----END PRIVATE KEY-----\n",
            "-----BEGIN PRIVATE KEY-----\nczNjcjN0LW1hdGVyaWFs\n-----END PRIVATE KEY-----\n",
        ] {
            let err = AppKey::from_pem("app".into(), &SecretString::from(pem)).unwrap_err();
            assert!(err.contains("VONAGE_PRIVATE_KEY_FILE"), "{err}");
            assert!(!err.contains("s3cr3t") && !err.contains("czNj"), "{err}");
        }
        assert!(!format!("{:?}", key()).contains("MII"));
    }
}
