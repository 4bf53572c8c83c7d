//! `X-SignalWire-Signature`: Twilio's HMAC-SHA1 scheme keyed with the project's signing key.
//!
//! What SignalWire documents (found with the search tool, December 2026):
//! - "Webhook Security" (developer.signalwire.com/guides/webhook-security):
//!   every webhook is signed with an HMAC signature; the key is the
//!   project's **Signing Key** from the API Credentials page of the Space
//!   (one per project, resettable; not the API token).
//! - "Webhook signature validation" (signalwire.com/docs/server-sdks/
//!   reference/python/core/security): the signature is in
//!   `X-SignalWire-Signature`; `X-Twilio-Signature` is accepted as an alias
//!   for callers migrating from the compatibility SDK, so a compatibility
//!   webhook may carry either header.
//! - signalwire-ruby `lib/signalwire/webhook/validate_request.rb`: form
//!   (compatibility) webhooks are checked by handing the signing key to
//!   Twilio's own `RequestValidator`; its spec checks Twilio's published
//!   vector under the key `12345` through that path.
//!
//! Not covered here: RELAY/SWML webhooks with a JSON body, which that same
//! validator checks as hex HMAC-SHA1 of URL + raw body; ivr-auth speaks cXML.

use crate::telephony::twilio::signature;

/// The header that carries the signature of a compatibility-API webhook.
pub const SIGNATURE_HEADER: &str = "X-SignalWire-Signature";

/// Whether `header` is the signature of a form POST to `url` with `params`,
/// signed with the project's `signing_key`. The algorithm is Twilio's,
/// port variants and constant-time comparison included.
pub fn verify(signing_key: &[u8], url: &str, params: &[(String, String)], header: &str) -> bool {
    signature::is_valid(signing_key, url, params, header)
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    /// The parameters of Twilio's published vector, as the form body a webhook carries.
    const BODY: &str =
        "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212";

    fn params() -> Vec<(String, String)> {
        url::form_urlencoded::parse(BODY.as_bytes()).into_owned().collect()
    }

    /// signalwire-ruby's spec (`spec/signalwire/webhook/validate_request_spec.rb`,
    /// "fallback and validates the request"): Twilio's vector, key `12345`.
    #[test]
    fn the_vector_of_signalwire_s_own_validator_spec_verifies() {
        assert!(verify(b"12345", URL, &params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        assert!(!verify(b"12345", URL, &params(), "wrong_one!"));
    }

    // Computed outside this crate (Python's hmac + base64) over the same URL
    // and params, under the signing-key example of that spec: not published.
    const KEY: &[u8] = b"PSK_7TruNcSNTxp4zNrykMj4EPzF";
    const SIGNED: &str = "tD6mX4oUNkvEGnHsaWWgeVYueTo=";

    #[test]
    fn a_signing_key_shaped_key_verifies_the_same_request() {
        assert!(verify(KEY, URL, &params(), SIGNED));
    }

    #[test]
    fn another_signing_key_is_refused() {
        assert!(!verify(b"PSK_7TruNcSNTxp4zNrykMj4EPzG", URL, &params(), SIGNED));
        assert!(!verify(b"12345", URL, &params(), SIGNED));
    }

    #[test]
    fn another_url_is_refused() {
        assert!(!verify(KEY, "https://mycompany.com/myapp.php?foo=1&bar=3", &params(), SIGNED));
        assert!(!verify(KEY, "https://mycompany.com/myapp.php", &params(), SIGNED));
    }

    #[test]
    fn a_changed_or_added_param_is_refused() {
        let mut changed = params();
        changed[2].1 = "1235".into();
        assert!(!verify(KEY, URL, &changed, SIGNED));
        let mut added = params();
        added.push(("CallStatus".into(), "completed".into()));
        assert!(!verify(KEY, URL, &added, SIGNED));
    }

    #[test]
    fn one_wrong_byte_in_the_header_is_refused() {
        for i in [0, 13, 26] {
            let mut byte = SIGNED.as_bytes().to_vec();
            byte[i] ^= 0x01;
            assert!(!verify(KEY, URL, &params(), std::str::from_utf8(&byte).unwrap()), "byte {i}");
        }
        assert!(!verify(KEY, URL, &params(), ""));
    }
}
