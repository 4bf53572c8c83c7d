//! The site API's registration body: `api::input::parse_json` into
//! `RegisterBody`, then `validate`, as `POST /v1/auth-requests` does.
//!
//! Input: the request body, any bytes.
//!
//! Properties: nothing panics; a body is refused only with 400 (not JSON)
//! or 422 naming a field of the contract (or an unknown field); `parse_json`
//! agrees with plain serde_json; only a JSON object is accepted; an accepted
//! registration keeps every range of the contract, is also accepted when
//! private callback hosts are allowed, and its normalised form (E.164
//! number, every default spelled out) validates again to the same canonical
//! bytes.

#![no_main]

use actix_web::ResponseError;
use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use actix_web::web::Bytes;
use ivr_auth::api::input::{RegisterBody, callback_url, parse_json};
use ivr_auth::domain::phone::Region;
use ivr_auth::domain::registration::Registration;
use ivr_auth::error::AppError;
use libfuzzer_sys::fuzz_target;

const FIELDS: [&str; 11] = [
    "body",
    "phone_number",
    "mode",
    "code",
    "code_length",
    "external_id",
    "user_id",
    "locale",
    "ttl_seconds",
    "max_attempts",
    "callback_url",
];

/// `IVR_FUZZ_KNOWN=tolerate`: let the known, reported findings (docs/fuzzing.md)
/// pass, so that a run can look past them for new ones. Unset (the default
/// of `fuzz/run.sh`), every property is enforced.
fn tolerate_known() -> bool {
    static TOLERATE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TOLERATE.get_or_init(|| std::env::var("IVR_FUZZ_KNOWN").is_ok_and(|v| v == "tolerate"))
}

/// Whether the body is a JSON object (the contract's only shape).
fn is_object(data: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(data).is_ok_and(|v| v.is_object())
}

fn check_refusal(e: &AppError, data: &[u8]) {
    let status = e.status_code();
    assert!(
        status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
        "{status} for {:?}: {e}",
        String::from_utf8_lossy(data)
    );
    if let AppError::Invalid { field, message } = e {
        // A field of the contract (or a path into one), or the name of an unknown field.
        let known = FIELDS.iter().any(|f| field == f || field.starts_with(&format!("{f}.")));
        // Known finding: for a body that is not an object, `parse_json` names
        // an array index (`[0]`) or the value itself (`1`, `true`) as the field.
        let tolerated = tolerate_known() && !is_object(data);
        assert!(known || message.contains("unknown field") || tolerated, "422 naming {field:?}: {message}");
    }
    let _ = e.error_response();
}

fn normalised(r: &Registration) -> serde_json::Value {
    serde_json::json!({
        "phone_number": r.phone_number.as_str(),
        "mode": r.mode.as_str(),
        "code": r.code.as_ref().map(|c| c.expose().to_owned()),
        "code_length": r.code_length,
        "external_id": r.external_id,
        "user_id": r.user_id,
        "locale": r.locale.as_str(),
        "ttl_seconds": r.ttl_seconds,
        "max_attempts": r.max_attempts,
        "callback_url": r.callback_url,
    })
}

fn validate(body: RegisterBody, allow_private: bool, data: &[u8]) -> Option<Registration> {
    match body.validate(Region::default(), allow_private) {
        Ok(r) => Some(r),
        Err(e) => {
            assert!(matches!(&e, AppError::Invalid { field, .. } if FIELDS.contains(&field.as_str())), "{e:?}");
            check_refusal(&e, data);
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let req = TestRequest::post().insert_header(("content-type", "application/json")).to_http_request();
    let bytes = Bytes::copy_from_slice(data);
    let parsed: Result<RegisterBody, AppError> = parse_json(&req, &bytes);
    let plain = serde_json::from_slice::<RegisterBody>(data);
    assert_eq!(parsed.is_ok(), plain.is_ok(), "parse_json and serde_json disagree: {parsed:?} / {plain:?}");
    let body = match parsed {
        Ok(body) => body,
        Err(e) => {
            check_refusal(&e, data);
            return;
        }
    };
    let Ok(again) = plain else { return };

    let strict = validate(body, false, data);
    let lenient = validate(again, true, data);
    let Some(r) = strict else { return };
    // The contract's body is an object; serde's derive would also take a
    // positional array (`["090-1234-5678", "inbound"]`).
    // Known finding: such an array of ten values is accepted.
    assert!(
        is_object(data) || tolerate_known(),
        "accepted a body that is not a JSON object: {}",
        String::from_utf8_lossy(data)
    );
    assert!(lenient.is_some(), "accepted only when private callbacks are refused");

    assert!((4..=10).contains(&r.code_length));
    assert!((60..=600).contains(&r.ttl_seconds));
    assert!((1..=10).contains(&r.max_attempts));
    if let Some(code) = &r.code {
        assert_eq!(code.expose().len(), usize::from(r.code_length));
    }
    if let Some(url) = &r.callback_url {
        assert_eq!(callback_url(url, false).ok().as_deref(), Some(url.as_str()), "callback URL not stable");
    }

    let json = serde_json::to_vec(&normalised(&r)).unwrap_or_default();
    let body: RegisterBody = serde_json::from_slice(&json).unwrap_or_else(|e| panic!("normalised body refused: {e}"));
    let r2 = body
        .validate(Region::default(), false)
        .unwrap_or_else(|e| panic!("normalised {} refused: {e}", String::from_utf8_lossy(&json)));
    assert_eq!(r2.canonical(), r.canonical(), "same meaning, other canonical bytes");
});
