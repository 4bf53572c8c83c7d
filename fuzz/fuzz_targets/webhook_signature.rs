//! The provider's webhooks as `telephony::twilio::webhooks::verified` reads them: the
//! form body, the URL the provider signed and `X-Twilio-Signature`, then the
//! parameters every handler looks at.
//!
//! Input (one line each, the rest is the body, bytes as they come):
//!
//! ```text
//! <auth token>\n<URL the provider signed>\n<X-Twilio-Signature>\n<form body>
//! ```
//!
//! Properties: nothing panics on any bytes; the signature the provider would
//! send for this very request (`signature::sign`) is accepted, whatever the
//! order of the parameters and with the scheme's default port added; a
//! signature altered in one character is refused; a JSON-body webhook signed
//! the provider's way (`bodySHA256` in the URL) is accepted.
//!
//! `verified` and `Params` are private to `telephony::twilio::webhooks`, and the `Signed`
//! extractor needs a whole `AppState` (store, keys, …): this target repeats
//! its five lines (the form parse, the header read, the URL built from the
//! public base and the request's path and query, the check) with the same
//! public pieces it calls.

#![no_main]

use actix_web::http::header::HeaderValue;
use actix_web::http::uri::PathAndQuery;
use ivr_auth::domain::phone::{Attestation, PhoneNumber, Region, is_withheld_caller_id};
use ivr_auth::domain::status::CallStatus;
use ivr_auth::call::hold::Hold;
use ivr_auth::telephony::twilio::signature;
use ivr_auth::telephony::twilio::twiml::render;
use ivr_auth::call::urls::Urls;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fn line<'a>(rest: &mut &'a [u8]) -> &'a [u8] {
    match rest.iter().position(|&b| b == b'\n') {
        Some(i) => {
            let (head, tail) = rest.split_at(i);
            *rest = &tail[1..];
            head
        }
        None => std::mem::take(rest),
    }
}

/// `Params::get`: the first value of `name`, or "".
fn get<'a>(params: &'a [(String, String)], name: &str) -> &'a str {
    params.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

/// `webhooks::e164` (private there), the same code.
fn e164(raw: &str, region: Region) -> Option<String> {
    let digits = raw.strip_prefix('+').unwrap_or("");
    if (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0') {
        return Some(raw.to_owned());
    }
    PhoneNumber::parse(raw, region).ok().map(|n| n.as_str().to_owned())
}

/// A different signature of the same length: one character changed.
fn altered(sig: &str) -> String {
    let mut bytes = sig.as_bytes().to_vec();
    bytes[0] = if bytes[0] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    let token = line(&mut rest);
    let url_line = String::from_utf8_lossy(line(&mut rest)).into_owned();
    let header = line(&mut rest);
    let body = rest;

    // The server knows its public base (IVR_AUTH_PUBLIC_URL) and reads the
    // path and query off the request line, which the HTTP layer has parsed.
    let (base, path) = match url_line.split_once("://") {
        Some((scheme, after)) => {
            let cut = after.find('/').unwrap_or(after.len());
            (format!("{scheme}://{}", &after[..cut]), &after[cut..])
        }
        None => (String::new(), url_line.as_str()),
    };
    let path = if path.is_empty() { "/" } else { path };
    let Ok(path_and_query) = PathAndQuery::try_from(path) else { return };
    let urls = Urls::new(&base);
    let url = urls.signed_url(path_and_query.as_str());

    // `verified`, line for line.
    let params: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let given = HeaderValue::from_bytes(header).ok();
    let given = given.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("");
    let accepted = !given.is_empty() && signature::is_valid(token, &url, &params, given);

    // The provider's own signature of this request is accepted ...
    let good = signature::sign(token, &url, &params);
    assert!(signature::is_valid(token, &url, &params, &good), "own signature refused: {url:?} {params:?}");
    // ... in whatever order the parameters come ...
    let mut reversed = params.clone();
    reversed.reverse();
    assert_eq!(signature::sign(token, &url, &reversed), good, "parameter order changed the signature");
    // ... and one character off is not.
    assert!(!signature::is_valid(token, &url, &params, &altered(&good)), "altered signature accepted");
    assert!(!signature::is_valid(token, &url, &params, ""), "empty signature accepted");
    if accepted {
        // What was accepted is a signature of this URL or one of its port spellings.
        assert_eq!(given.len(), good.len());
    }

    // Signed with the default port, checked without it (a provider variant).
    if let Some(after) = url.strip_prefix("https://") {
        let cut = after.find(['/', '?', '#']).unwrap_or(after.len());
        let authority = &after[..cut];
        if !authority.is_empty() && !authority.contains([':', '@', '[']) {
            let with_port = format!("https://{authority}:443{}", &after[cut..]);
            let sig = signature::sign(token, &with_port, &params);
            assert!(signature::is_valid(token, &url, &params, &sig), "default-port variant refused: {url:?}");
        }
    }

    // JSON-body webhooks: the URL carries the body's hash and is signed alone.
    let _ = signature::is_valid_json(token, &url, body, given);
    if !url.contains("bodySHA256=") {
        let sep = if url.contains('?') { '&' } else { '?' };
        let json_url = format!("{url}{sep}bodySHA256={}", hex::encode(Sha256::digest(body)));
        let sig = signature::sign::<&str, &str>(token, &json_url, &[]);
        assert!(signature::is_valid_json(token, &json_url, body, &sig), "JSON webhook refused: {json_url:?}");
        let mut other = body.to_vec();
        other.push(b'x');
        assert!(!signature::is_valid_json(token, &json_url, &other, &sig), "JSON webhook with another body accepted");
    }

    // What the handlers read off the parameters and the query.
    let _ = CallStatus::from_provider(get(&params, "CallStatus"));
    let _ = get(&params, "SipResponseCode").parse::<u16>().ok();
    let _ = Attestation::from_verstat(get(&params, "StirVerstat"));
    let _ = is_withheld_caller_id(get(&params, "From"));
    let _ = e164(get(&params, "From"), Region::default());
    let _ = e164(get(&params, "To"), Region::default());
    let _: String = get(&params, "Digits").chars().take(32).collect();
    let _ = path_and_query.path().rsplit('/').next().and_then(|id| uuid::Uuid::parse_str(id).ok());
    let hold = Hold::from_query(path_and_query.query().unwrap_or(""));
    if let Some(verbs) = hold.again(&format!("{}{}", urls.base(), path_and_query.path()), hold.sealed.as_deref()) {
        let doc = render(&verbs);
        assert!(doc.ends_with("</Response>"));
    }
});
