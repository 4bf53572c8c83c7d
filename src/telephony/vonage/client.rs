//! Vonage's REST client: calls through the Voice API, texts through the Messages API, both with an application JWT.
//!
//! What Vonage documents, and what this follows (found with the search tool, December 2026; the
//! Voice API OpenAPI is `definitions/voice.yml` in `Nexmo/api-specification`):
//! - Create a call: `POST https://api.nexmo.com/v1/calls` with `Authorization: Bearer <JWT>`
//!   (`bearerFormat: JWT`; see `app_jwt.rs`), a JSON body `to: [{type: "phone", number}]`,
//!   `from: {type: "phone", number}` (`AddressE164`: 7 to 15 digits, no `+`), `answer_url: [url]`,
//!   `answer_method` (default GET, so POST is asked for: the signed-webhook check binds only POST
//!   bodies), `event_url: [url]`, `event_method`, `machine_detection` (`continue`: the event URL
//!   hears `machine`; `hangup` would end the call unseen) and `ringing_timer` (seconds, 1 to 120).
//!   The answer is 201 with `uuid`, `status`, `direction`, `conversation_uuid`; `uuid` is the leg
//!   every later request names.
//! - Modify a call: `PUT /v1/calls/{uuid}` with `{"action":"hangup"}`, answered 204.
//! - Send a text: Messages API `POST https://api.nexmo.com/v1/messages` (JWT or Basic auth; the
//!   JWT is used, as "basic authentication does not support webhooks"), JSON `message_type: "text"`,
//!   `channel: "sms"`, `to`, `from` (numbers without `+`) and `text`; the answer (202) is
//!   `{"message_uuid": …}`. The delivery status is posted to the *application's* Messages status
//!   URL, set in the Vonage dashboard, not per message: `OutboundSms::status_callback` is unused.
//! - Errors are RFC 7807 problem details, `{"type","title","detail","instance"}`. As for Twilio: 429
//!   and 5xx are `Unavailable` (with `Retry-After` in seconds when given), other 4xx `Refused`;
//!   network errors are `Unavailable` and never quote the URL. The key and tokens are never logged.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use super::app_jwt::AppKey;
use crate::domain::phone::PhoneNumber;
use crate::telephony::{CallError, OutboundCall, OutboundSms, ProviderText, Telephony, created_id, retry_after};

/// How long Vonage may ring, in seconds (`ringing_timer`'s documented range).
const RING_SECONDS: std::ops::RangeInclusive<u32> = 1..=120;

/// A client for Vonage's Voice and Messages APIs.
pub struct VonageClient {
    http: reqwest::Client,
    calls_url: String,
    messages_url: String,
    key: AppKey,
}

/// A number as Vonage writes it: E.164 digits without the `+`.
fn digits(number: &PhoneNumber) -> &str {
    number.as_str().trim_start_matches('+')
}

impl VonageClient {
    /// `api_base` is `https://api.nexmo.com` in production. A key that cannot be read is an
    /// error naming `VONAGE_PRIVATE_KEY_FILE`, never quoting the key.
    pub fn new(
        http: reqwest::Client,
        api_base: &Url,
        application_id: String,
        private_key_pem: SecretString,
    ) -> Result<Self, String> {
        let base = api_base.as_str().trim_end_matches('/');
        Ok(Self {
            http,
            calls_url: format!("{base}/v1/calls"),
            messages_url: format!("{base}/v1/messages"),
            key: AppKey::from_pem(application_id, &private_key_pem)?,
        })
    }

    /// The JSON body that asks the Voice API to place `call`.
    pub fn call_body(call: &OutboundCall) -> Value {
        let mut body = json!({
            "to": [{ "type": "phone", "number": digits(&call.to) }],
            "answer_url": [call.answer_url],
            "answer_method": "POST",
            "event_url": [call.status_callback],
            "event_method": "POST",
            "ringing_timer": call.timeout.clamp(*RING_SECONDS.start(), *RING_SECONDS.end()),
        });
        if let Some(from) = &call.from {
            body["from"] = json!({ "type": "phone", "number": digits(from) });
        }
        if call.detect_machine {
            body["machine_detection"] = json!("continue");
        }
        body
    }

    /// The JSON body of a text through the Messages API.
    pub fn sms_body(sms: &OutboundSms) -> Value {
        let mut body = json!({ "message_type": "text", "channel": "sms", "to": digits(&sms.to), "text": sms.body });
        if let Some(from) = &sms.from {
            body["from"] = json!(digits(from));
        }
        body
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, CallError> {
        let token = self
            .key
            .fresh_token()
            .map_err(|e| CallError::Unavailable { message: ProviderText::new(e), retry_after: None })?;
        let resp = request.bearer_auth(token.expose_secret()).send().await.map_err(|e| CallError::from_network(&e))?;
        if resp.status().is_success() { Ok(resp) } else { Err(classify(resp).await) }
    }
}

/// The useful part of a problem+json answer.
#[derive(Deserialize)]
struct Problem {
    title: Option<String>,
    detail: Option<String>,
}

/// Sorts an error answer (see `CallError::from_status`).
async fn classify(resp: reqwest::Response) -> CallError {
    let status = resp.status();
    let retry_after = retry_after(&resp);
    let detail = match resp.json::<Problem>().await {
        Ok(Problem { title, detail }) => [title, detail].into_iter().flatten().collect::<Vec<_>>().join(": "),
        Err(_) => String::new(),
    };
    let message = ProviderText::new(format!("HTTP {status} {detail}").trim_end());
    CallError::from_status(status, retry_after, message)
}

#[derive(Deserialize)]
struct CreatedCall {
    uuid: Option<String>,
}

#[derive(Deserialize)]
struct CreatedMessage {
    message_uuid: Option<String>,
}

#[async_trait]
impl Telephony for VonageClient {
    async fn place_call(&self, call: &OutboundCall) -> Result<String, CallError> {
        let resp = self.send(self.http.post(&self.calls_url).json(&Self::call_body(call))).await?;
        created_id(resp.json::<CreatedCall>().await.ok().and_then(|c| c.uuid))
    }

    async fn end_call(&self, call_sid: &str) -> Result<(), CallError> {
        let uuid: String = call_sid.chars().filter(|c| c.is_ascii_hexdigit() || *c == '-').collect();
        let url = format!("{}/{uuid}", self.calls_url);
        self.send(self.http.put(&url).json(&json!({ "action": "hangup" }))).await.map(|_| ())
    }

    async fn send_sms(&self, sms: &OutboundSms) -> Result<String, CallError> {
        let resp = self.send(self.http.post(&self.messages_url).json(&Self::sms_body(sms))).await?;
        created_id(resp.json::<CreatedMessage>().await.ok().and_then(|m| m.message_uuid))
    }

    fn webhooks(&self) -> &'static str {
        "vonage"
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;
    use crate::telephony::canned::{reply, serve};
    use crate::telephony::vonage::app_jwt::{TEST_KEY, signed_by};

    const APP: &str = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab";

    fn call() -> OutboundCall {
        OutboundCall {
            to: PhoneNumber::from_stored("+819012345678".into()),
            from: Some(PhoneNumber::from_stored("+81312345678".into())),
            answer_url: "https://ivr.test/voice/answer?r=1".into(),
            status_callback: "https://ivr.test/voice/status".into(),
            timeout: 300,
            detect_machine: true,
        }
    }

    fn client(base: &str) -> VonageClient {
        let base = Url::parse(base).unwrap();
        crate::install_tls_provider();
        VonageClient::new(reqwest::Client::new(), &base, APP.into(), SecretString::from(TEST_KEY)).unwrap()
    }

    #[test]
    fn a_call_and_a_text_are_voice_and_messages_json_bodies() {
        assert_eq!(
            VonageClient::call_body(&call()),
            json!({
                "to": [{"type": "phone", "number": "819012345678"}],
                "from": {"type": "phone", "number": "81312345678"},
                "answer_url": ["https://ivr.test/voice/answer?r=1"],
                "answer_method": "POST",
                "event_url": ["https://ivr.test/voice/status"],
                "event_method": "POST",
                "ringing_timer": 120,
                "machine_detection": "continue",
            })
        );
        let quiet = VonageClient::call_body(&OutboundCall { detect_machine: false, timeout: 0, ..call() });
        assert_eq!((quiet.get("machine_detection"), &quiet["ringing_timer"]), (None, &json!(1)));
        let sms = OutboundSms {
            to: PhoneNumber::from_stored("+819012345678".into()),
            from: Some(PhoneNumber::from_stored("+81312345678".into())),
            body: "Your code is 123456".into(),
            status_callback: "https://ivr.test/sms/status".into(),
        };
        assert_eq!(
            VonageClient::sms_body(&sms),
            json!({"message_type": "text", "channel": "sms", "to": "819012345678", "from": "81312345678",
                   "text": "Your code is 123456"})
        );
    }

    #[test]
    fn an_unreadable_key_is_refused_at_start_without_quoting_it() {
        crate::install_tls_provider();
        let base = Url::parse("https://api.nexmo.com").unwrap();
        let err = VonageClient::new(reqwest::Client::new(), &base, APP.into(), SecretString::from("hunter2-key"))
            .err()
            .unwrap();
        assert!(err.contains("VONAGE_PRIVATE_KEY_FILE") && !err.contains("hunter2"), "{err}");
    }

    #[tokio::test]
    async fn answers_are_sorted_into_placed_retry_and_refused() {
        let problem = r#"{"type":"https://developer.nexmo.com/api-errors#bad-request","title":"Bad Request","detail":"Invalid to number +819012345678"}"#;
        let (base, seen) = serve(vec![
            reply("201 Created", "", r#"{"uuid":"63f61863-4a51-4f6b-86e1-46edebcf9356","status":"started"}"#),
            reply("429 Too Many Requests", "Retry-After: 3\r\n", r#"{"title":"Rate limit hit"}"#),
            reply("400 Bad Request", "", problem),
        ])
        .await;
        let vonage = client(&base);
        assert_eq!(vonage.place_call(&call()).await.unwrap(), "63f61863-4a51-4f6b-86e1-46edebcf9356");
        match vonage.place_call(&call()).await {
            Err(CallError::Unavailable { message, retry_after }) => {
                assert_eq!(retry_after, Some(std::time::Duration::from_secs(3)));
                assert_eq!(message.to_string(), "HTTP 429 Too Many Requests Rate limit hit");
            }
            other => panic!("expected a retry: {other:?}"),
        }
        match vonage.place_call(&call()).await {
            Err(CallError::Refused(text)) => {
                assert_eq!(text.to_string(), "HTTP 400 Bad Request Bad Request: Invalid to number ********5678");
            }
            other => panic!("expected a refusal: {other:?}"),
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        for (line, auth, body) in seen.iter() {
            assert_eq!(line, "POST /v1/calls HTTP/1.1");
            let token = auth.strip_prefix("Bearer ").unwrap();
            assert!(signed_by(&client(&base).key, token), "{line}: not signed by the application key");
            let claims: Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
            assert_eq!(claims["application_id"], APP);
            assert_eq!(serde_json::from_str::<Value>(body).unwrap(), VonageClient::call_body(&call()));
        }
    }

    #[tokio::test]
    async fn ending_a_call_puts_hangup_and_a_text_reads_message_uuid() {
        let (base, seen) = serve(vec![
            reply("204 No Content", "", ""),
            reply("202 Accepted", "", r#"{"message_uuid":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab"}"#),
        ])
        .await;
        let vonage = client(&base);
        vonage.end_call("63f61863-4a51/../x").await.unwrap();
        let sms = OutboundSms {
            to: PhoneNumber::from_stored("+819012345678".into()),
            from: None,
            body: "code".into(),
            status_callback: "https://ivr.test/sms".into(),
        };
        assert_eq!(vonage.send_sms(&sms).await.unwrap(), "aaaaaaaa-bbbb-cccc-dddd-0123456789ab");
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].0, "PUT /v1/calls/63f61863-4a51 HTTP/1.1");
        assert_eq!(seen[0].2, r#"{"action":"hangup"}"#);
        assert_eq!(seen[1].0, "POST /v1/messages HTTP/1.1");
        assert!(seen[1].1.starts_with("Bearer ey"));
    }
}
