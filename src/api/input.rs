//! Parsing site-API bodies at the edge: JSON shape first, then every field's rule.

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::web::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use crate::domain::code::Code;
use crate::domain::ip::is_private_ip;
use crate::domain::phone::{PhoneNumber, Region};
use crate::domain::registration::Registration;
use crate::domain::status::{Channel, Locale, Mode};
use crate::domain::text::is_hidden;
use crate::error::AppError;

/// The registration body. Unknown fields are refused (422), so that a typo
/// like `phone` for `phone_number` is caught instead of silently ignored.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    /// E.164 (`+819012345678`) or national format of the default region
    /// (`090-1234-5678`): digits and separators only (spaces, hyphens, dots,
    /// parentheses, a leading `+`; full-width ones too). A letter or an
    /// extension is refused (422), never read as a digit or dropped.
    #[schema(min_length = 1, max_length = 40, example = "090-1234-5678")]
    pub phone_number: String,
    /// `outbound` (default) or `inbound`.
    #[schema(value_type = Option<Mode>)]
    pub mode: Option<String>,
    /// 4–10 digits; absent: generated.
    #[schema(pattern = "^[0-9]{4,10}$")]
    pub code: Option<String>,
    /// 4–10, default 6.
    #[schema(minimum = 4, maximum = 10)]
    pub code_length: Option<i64>,
    /// ≤ 128 characters, unique per tenant: repeating it with the same body returns the same request.
    #[schema(min_length = 1, max_length = 128)]
    pub external_id: Option<String>,
    /// ≤ 128 characters, echoed back.
    #[schema(min_length = 1, max_length = 128)]
    pub user_id: Option<String>,
    /// `ja-JP` (default) or `en-US`.
    #[schema(value_type = Option<Locale>)]
    pub locale: Option<String>,
    /// 60–600, default 300.
    #[schema(minimum = 60, maximum = 600)]
    pub ttl_seconds: Option<i64>,
    /// 1–10, default 3.
    #[schema(minimum = 1, maximum = 10)]
    pub max_attempts: Option<i64>,
    /// http(s) URL ≤ 2048 that receives the signed result.
    #[schema(min_length = 1, max_length = 2048)]
    pub callback_url: Option<String>,
    /// `voice_dtmf` (default: the page shows the code, the user types it on
    /// the phone), `voice_otp` (a call reads the code aloud) or `sms`; for the
    /// last two the 201 carries no `code`, and the site checks what its user
    /// typed with `POST /v1/auth-requests/{id}/check`. Those two are outbound
    /// only, and their code is always drawn by the server.
    #[schema(value_type = Option<Channel>)]
    pub channel: Option<String>,
    /// `["sms"]`: when the call of an outbound voice request is not answered,
    /// busy or declined, the code goes out by text message instead (a second
    /// code, for `voice_dtmf`, since the first is on the page), and the site
    /// checks it with `/check`. Empty or absent: no fallback.
    #[schema(value_type = Option<Vec<Channel>>, max_items = 1)]
    pub fallback: Option<Vec<String>>,
}

/// The body of `/check`: the code the user typed on the site's page.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    /// 4–10 digits, as the user typed them.
    #[schema(pattern = "^[0-9]{4,10}$", example = "482913")]
    pub code: String,
}

impl CheckBody {
    /// The code, if it is 4 to 10 digits (422 naming `code` otherwise).
    pub fn validate(self) -> Result<Code, AppError> {
        Code::parse(&self.code).ok_or_else(|| AppError::invalid("code", "code: must be a string of 4 to 10 digits"))
    }
}

/// Checks the media type and parses the JSON, naming the field of any type error.
pub fn parse_json<T: DeserializeOwned>(req: &HttpRequest, body: &Bytes) -> Result<T, AppError> {
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime != "application/json" && !mime.ends_with("+json") {
        return Err(AppError::UnsupportedMediaType);
    }
    // Only an object is a body: serde would also take an array of the fields
    // in order (found by fuzzing, fuzz/artifacts/register_json).
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
        return Err(AppError::invalid("body", "body: must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // A type error can surface before a syntax error later in the body
        // (`{} {}`); a body that is not JSON at all is 400, not 422.
        let syntax = serde_json::from_slice::<serde::de::IgnoredAny>(body).err();
        if !inner.is_data() || syntax.is_some() {
            return AppError::MalformedJson(syntax.map_or_else(|| inner.to_string(), |s| s.to_string()));
        }
        let message = inner.to_string();
        // Missing and unknown fields are reported at the root, with the name in backticks.
        let named = message.starts_with("missing field") || message.starts_with("unknown field");
        let field = match (path.as_str(), named) {
            (".", true) => message.split('`').nth(1).map_or("body".to_owned(), str::to_owned),
            (".", false) => "body".to_owned(),
            _ => path,
        };
        AppError::invalid(field.clone(), format!("{field}: {message}"))
    })?;
    de.end().map_err(|e| AppError::MalformedJson(e.to_string()))?;
    Ok(value)
}

fn range(field: &str, value: Option<i64>, lo: i64, hi: i64, default: i64) -> Result<i64, AppError> {
    let v = value.unwrap_or(default);
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(AppError::invalid(field, format!("{field}: must be an integer from {lo} to {hi}")))
    }
}

/// Opaque identifiers: 1–128 characters, no control or format (bidi, zero-width) characters.
fn identifier(field: &str, value: Option<String>) -> Result<Option<String>, AppError> {
    let Some(v) = value else { return Ok(None) };
    let count = v.chars().count();
    if count == 0 || count > 128 {
        return Err(AppError::invalid(field, format!("{field}: must be 1 to 128 characters")));
    }
    if v.chars().any(is_hidden) {
        return Err(AppError::invalid(
            field,
            format!("{field}: must not contain control or invisible formatting characters"),
        ));
    }
    Ok(Some(v))
}

/// Validates a callback URL: http(s), a host, ≤ 2048 characters, no
/// credentials, and (unless allowed) no loopback, private or link-local host.
pub fn callback_url(raw: &str, allow_private: bool) -> Result<String, AppError> {
    let invalid = |msg: &str| AppError::invalid("callback_url", format!("callback_url: {msg}"));
    if raw.len() > 2048 {
        return Err(invalid("must be at most 2048 characters"));
    }
    let url = url::Url::parse(raw).map_err(|_| invalid("must be an absolute http(s) URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("must be an http or https URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not contain credentials"));
    }
    let host = url.host().ok_or_else(|| invalid("must have a host"))?;
    if !allow_private {
        let private = match host {
            url::Host::Ipv4(ip) => is_private_ip(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => is_private_ip(IpAddr::V6(ip)),
            url::Host::Domain(d) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                d == "localhost" || [".localhost", ".local", ".internal", ".home.arpa"].iter().any(|s| d.ends_with(s))
            }
        };
        if private {
            return Err(invalid("loopback, private and link-local hosts are not allowed"));
        }
    }
    Ok(url.to_string())
}

/// The fallback channels of a registration: only `sms`, once, for an outbound voice request.
fn fallback(raw: Option<Vec<String>>, channel: Channel, mode: Mode) -> Result<Vec<Channel>, AppError> {
    let raw = raw.unwrap_or_default();
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    let invalid = |msg: &str| AppError::invalid("fallback", format!("fallback: {msg}"));
    if raw.len() > 1 || raw[0] != "sms" {
        return Err(invalid("must be [\"sms\"] or left out"));
    }
    if channel == Channel::Sms {
        return Err(invalid("an sms request has no fallback"));
    }
    if mode != Mode::Outbound {
        return Err(invalid("only an outbound call can fall back (in inbound mode the user places the call)"));
    }
    Ok(vec![Channel::Sms])
}

impl RegisterBody {
    /// Applies every field rule of the contract, naming the first field that breaks one.
    pub fn validate(self, region: Region, allow_private: bool) -> Result<Registration, AppError> {
        let (phone_number, line) = PhoneNumber::parse_line(&self.phone_number, region)
            .map_err(|e| AppError::invalid("phone_number", format!("phone_number: {e}")))?;
        let mode = match self.mode.as_deref() {
            None => Mode::Outbound,
            Some(m) => {
                Mode::parse(m).ok_or_else(|| AppError::invalid("mode", "mode: must be \"outbound\" or \"inbound\""))?
            }
        };
        let locale = match self.locale.as_deref() {
            None => Locale::JaJp,
            Some(l) => {
                Locale::parse(l).ok_or_else(|| AppError::invalid("locale", "locale: must be \"ja-JP\" or \"en-US\""))?
            }
        };
        let code = self
            .code
            .as_deref()
            .map(|c| {
                Code::parse(c).ok_or_else(|| AppError::invalid("code", "code: must be a string of 4 to 10 digits"))
            })
            .transpose()?;
        let code_length = match (&code, self.code_length) {
            (Some(c), Some(n)) if n != c.expose().len() as i64 => {
                return Err(AppError::invalid("code_length", "code_length: does not match the length of code"));
            }
            (Some(c), _) => c.expose().len() as i64,
            (None, n) => range("code_length", n, 4, 10, 6)?,
        };
        let channel = match self.channel.as_deref() {
            None => Channel::VoiceDtmf,
            Some(c) => Channel::parse(c).ok_or_else(|| {
                AppError::invalid("channel", "channel: must be \"voice_dtmf\", \"voice_otp\" or \"sms\"")
            })?,
        };
        let fallback = fallback(self.fallback, channel, mode)?;
        if channel != Channel::VoiceDtmf {
            if mode != Mode::Outbound {
                return Err(AppError::invalid(
                    "mode",
                    format!("mode: the {channel} channel sends the code to the user, so it is outbound only"),
                ));
            }
            if code.is_some() {
                return Err(AppError::invalid(
                    "code",
                    format!(
                        "code: a {channel} code is drawn by the server so that only the user receives it; \
                         leave code out"
                    ),
                ));
            }
        }
        let texts = channel == Channel::Sms || fallback.contains(&Channel::Sms);
        if texts && !line.receives_sms() {
            return Err(AppError::invalid(
                "phone_number",
                "phone_number: is a fixed line, which cannot receive text messages (channel or fallback sms)",
            ));
        }
        Ok(Registration {
            channel,
            fallback,
            phone_number,
            line: Some(line),
            mode,
            code,
            code_length: code_length as u8,
            external_id: identifier("external_id", self.external_id)?,
            user_id: identifier("user_id", self.user_id)?,
            locale,
            ttl_seconds: range("ttl_seconds", self.ttl_seconds, 60, 600, 300)? as u32,
            max_attempts: range("max_attempts", self.max_attempts, 1, 10, 3)? as u8,
            callback_url: self.callback_url.as_deref().map(|u| callback_url(u, allow_private)).transpose()?,
        })
    }
}

/// A query parameter `field` holding an RFC 3339 time; a 422 naming it otherwise.
pub fn time(field: &str, raw: &str) -> Result<chrono::DateTime<chrono::Utc>, AppError> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| AppError::invalid(field, "an RFC 3339 time, like 2026-01-31T09:00:00Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> Result<Registration, AppError> {
        let b: RegisterBody = serde_json::from_str(json).map_err(|e| AppError::MalformedJson(e.to_string()))?;
        b.validate(Region::default(), false)
    }

    fn field_of(e: AppError) -> String {
        match e {
            AppError::Invalid { field, .. } => field,
            other => format!("not 422: {other:?}"),
        }
    }

    /// Found by fuzzing (fuzz/artifacts/register_json).
    #[test]
    fn only_an_object_is_a_body_and_a_422_names_a_field_or_the_body() {
        let req =
            actix_web::test::TestRequest::default().insert_header((CONTENT_TYPE, "application/json")).to_http_request();
        let parse = |json: &str| parse_json::<RegisterBody>(&req, &Bytes::from(json.to_owned()));
        let positional = r#"["090-1234-5678","inbound",null,null,null,null,null,null,null,null]"#;
        for json in [positional, "1", "true", "[[]]", r#""x""#, "null"] {
            assert_eq!(field_of(parse(json).unwrap_err()), "body", "{json}");
        }
        assert_eq!(field_of(parse(r#"{"mode":"inbound"}"#).unwrap_err()), "phone_number");
        assert_eq!(field_of(parse(r#"{"phone_number":"1","phone":"2"}"#).unwrap_err()), "phone");
        assert_eq!(field_of(parse(r#"{"phone_number":1}"#).unwrap_err()), "phone_number");
        assert!(matches!(parse("[1,").unwrap_err(), AppError::MalformedJson(_)));
        assert!(parse(r#" {"phone_number":"090-1234-5678"}"#).is_ok());
    }

    #[test]
    fn defaults_fill_in() {
        let r = body(r#"{"phone_number":"090-1234-5678"}"#).unwrap();
        assert_eq!(r.phone_number.as_str(), "+819012345678");
        assert_eq!(
            (r.mode, r.locale, r.code_length, r.ttl_seconds, r.max_attempts),
            (Mode::Outbound, Locale::JaJp, 6, 300, 3)
        );
    }

    #[test]
    fn each_rule_names_its_field() {
        let cases = [
            (r#"{"phone_number":"12"}"#, "phone_number"),
            (r#"{"phone_number":"09012345678","mode":"sms"}"#, "mode"),
            (r#"{"phone_number":"09012345678","code":"12"}"#, "code"),
            (r#"{"phone_number":"09012345678","code_length":11}"#, "code_length"),
            (r#"{"phone_number":"09012345678","code":"1234","code_length":6}"#, "code_length"),
            (r#"{"phone_number":"09012345678","ttl_seconds":59}"#, "ttl_seconds"),
            (r#"{"phone_number":"09012345678","ttl_seconds":601}"#, "ttl_seconds"),
            (r#"{"phone_number":"09012345678","max_attempts":0}"#, "max_attempts"),
            (r#"{"phone_number":"09012345678","locale":"fr-FR"}"#, "locale"),
            (r#"{"phone_number":"09012345678","channel":"fax"}"#, "channel"),
            (r#"{"phone_number":"09012345678","channel":"sms","mode":"inbound"}"#, "mode"),
            (r#"{"phone_number":"09012345678","channel":"voice_otp","code":"123456"}"#, "code"),
            (r#"{"phone_number":"09012345678","channel":"sms","fallback":["sms"]}"#, "fallback"),
            (r#"{"phone_number":"09012345678","fallback":["voice_otp"]}"#, "fallback"),
            (r#"{"phone_number":"09012345678","fallback":["sms","sms"]}"#, "fallback"),
            (r#"{"phone_number":"09012345678","mode":"inbound","fallback":["sms"]}"#, "fallback"),
            (r#"{"phone_number":"0312345678","channel":"sms"}"#, "phone_number"),
            (r#"{"phone_number":"0312345678","fallback":["sms"]}"#, "phone_number"),
            (r#"{"phone_number":"09012345678","user_id":""}"#, "user_id"),
            (r#"{"phone_number":"09012345678","external_id":"a\u0000b"}"#, "external_id"),
            (r#"{"phone_number":"09012345678","callback_url":"ftp://x.example"}"#, "callback_url"),
            (r#"{"phone_number":"09012345678","callback_url":"http://127.0.0.1/cb"}"#, "callback_url"),
            (r#"{"phone_number":"09012345678","callback_url":"http://localhost/cb"}"#, "callback_url"),
            (r#"{"phone_number":"09012345678","callback_url":"http://[::1]/cb"}"#, "callback_url"),
            (r#"{"phone_number":"09012345678","callback_url":"http://169.254.169.254/"}"#, "callback_url"),
            (r#"{"phone_number":"09012345678","callback_url":"http://u:p@x.example/"}"#, "callback_url"),
        ];
        for (json, field) in cases {
            assert_eq!(field_of(body(json).unwrap_err()), field, "{json}");
        }
        let long = format!(r#"{{"phone_number":"09012345678","user_id":"{}"}}"#, "あ".repeat(129));
        assert_eq!(field_of(body(&long).unwrap_err()), "user_id");
        let ok = format!(r#"{{"phone_number":"09012345678","user_id":"{}"}}"#, "あ".repeat(128));
        assert!(body(&ok).is_ok());
    }
}
