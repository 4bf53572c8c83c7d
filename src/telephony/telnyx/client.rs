//! Telnyx's REST client: calls through TeXML (its TwiML-compatible API), texts through its Messaging API.
//!
//! What Telnyx documents, and what this follows (found with the search tool, December 2026):
//! - "Initiate an outbound call" (developers.telnyx.com/api-reference/texml-rest-commands/
//!   initiate-an-outbound-call; OpenAPI `texml/calls.yml`): `POST /v2/texml/Accounts/{account_sid}/Calls`,
//!   `Authorization: Bearer <API key>`, a JSON body with CamelCase keys: `ApplicationSid`, `To`, `From`
//!   (both required, `+` and country code), `Url`, `UrlMethod` (`GET`/`POST`), `StatusCallback`,
//!   `StatusCallbackMethod`, `StatusCallbackEvent` ("multiple events … separated by a space", of
//!   `initiated ringing answered completed`), `MachineDetection` (`Enable`, `Disable`,
//!   `DetectMessageEnd`) and `Timeout` (seconds of ringing, 5 to 120, default 30). The older
//!   `POST /v2/texml/calls/{application_id}` is marked deprecated there, so the account path is used.
//! - The documented answer of that call shows only `from`, `to` and `status` (telnyx-python's
//!   generated `CallCallsResponse` has the same three fields), while the call resource ("Fetch a
//!   call", "Update call") names its id `sid` and the webhooks send it as `CallSid`. The sid is
//!   therefore read from `sid`, else `call_sid`, else `CallSid`; an answer with none of them is an
//!   outage (retried), never a call placed without a handle.
//! - "Update call" (`POST /v2/texml/Accounts/{account_sid}/Calls/{call_sid}`): an
//!   `application/x-www-form-urlencoded` body whose keys "MUST BE formatted in CamelCase";
//!   `Status=completed` ends the call.
//! - "Send a message" (`POST /v2/messages`): JSON `from`, `to` (E.164 with `+`), `text`, and a
//!   per-message `webhook_url`, which the messaging guide ("Receiving webhooks", "Webhook URL
//!   hierarchy") puts before the messaging profile's URL; the answer is `{"data":{"id":…}}`.
//! - Errors (api-fundamentals): `{"errors":[{"code","title","detail"}]}`; the SDKs treat 429 as
//!   "rate limited, honour Retry-After". As for Twilio: 429 and 5xx are `Unavailable` (with
//!   `Retry-After` in seconds when given), other 4xx `Refused`; network errors are `Unavailable`
//!   and never quote the URL (it holds the account sid).

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::telephony::{CallError, OutboundCall, OutboundSms, ProviderText, Telephony, created_id, retry_after};

/// How long Telnyx may ring, in seconds (its documented `Timeout` range).
const RING_SECONDS: std::ops::RangeInclusive<u32> = 5..=120;

/// A client for Telnyx's TeXML Calls and Messaging APIs.
pub struct TelnyxClient {
    http: reqwest::Client,
    calls_url: String,
    messages_url: String,
    api_key: SecretString,
    application_sid: String,
}

impl TelnyxClient {
    /// `api_base` is `https://api.telnyx.com` in production (a test server in tests).
    pub fn new(
        http: reqwest::Client,
        api_base: &Url,
        api_key: SecretString,
        account_sid: String,
        application_sid: String,
    ) -> Self {
        let base = api_base.as_str().trim_end_matches('/');
        Self {
            http,
            calls_url: format!("{base}/v2/texml/Accounts/{account_sid}/Calls"),
            messages_url: format!("{base}/v2/messages"),
            api_key,
            application_sid,
        }
    }

    /// The JSON body that asks TeXML to place `call`.
    pub fn call_body(&self, call: &OutboundCall) -> Value {
        let mut body = json!({
            "ApplicationSid": self.application_sid,
            "To": call.to.as_str(),
            "Url": call.answer_url,
            "UrlMethod": "POST",
            "StatusCallback": call.status_callback,
            "StatusCallbackMethod": "POST",
            "StatusCallbackEvent": "initiated ringing answered completed",
            "Timeout": call.timeout.clamp(*RING_SECONDS.start(), *RING_SECONDS.end()),
        });
        if let Some(from) = &call.from {
            body["From"] = json!(from.as_str());
        }
        if call.detect_machine {
            body["MachineDetection"] = json!("Enable");
        }
        body
    }

    /// The JSON body of a text through the Messaging API.
    pub fn sms_body(sms: &OutboundSms) -> Value {
        let mut body = json!({ "to": sms.to.as_str(), "text": sms.body, "webhook_url": sms.status_callback });
        if let Some(from) = &sms.from {
            body["from"] = json!(from.as_str());
        }
        body
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, CallError> {
        let resp =
            request.bearer_auth(self.api_key.expose_secret()).send().await.map_err(|e| CallError::from_network(&e))?;
        if resp.status().is_success() { Ok(resp) } else { Err(classify(resp).await) }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ApiError>,
}

#[derive(Deserialize)]
struct ApiError {
    code: Option<Value>,
    title: Option<String>,
    detail: Option<String>,
}

/// One line per error Telnyx listed: `title: detail (code N)`.
fn describe(errors: &[ApiError]) -> String {
    let one = |e: &ApiError| {
        let code = e.code.as_ref().map_or("-".to_owned(), |c| c.as_str().map_or_else(|| c.to_string(), str::to_owned));
        let words: Vec<&str> = [e.title.as_deref(), e.detail.as_deref()].into_iter().flatten().collect();
        format!("{} (code {code})", words.join(": "))
    };
    errors.iter().map(one).collect::<Vec<_>>().join("; ")
}

/// Sorts an error answer (see `CallError::from_status`).
async fn classify(resp: reqwest::Response) -> CallError {
    let status = resp.status();
    let retry_after = retry_after(&resp);
    let detail = resp.json::<ErrorBody>().await.map(|b| describe(&b.errors)).unwrap_or_default();
    let message = ProviderText::new(format!("HTTP {status} {detail}").trim_end());
    CallError::from_status(status, retry_after, message)
}

/// The call's id in a TeXML answer (see the module comment for the three names).
#[derive(Deserialize)]
struct CreatedCall {
    sid: Option<String>,
    call_sid: Option<String>,
    #[serde(rename = "CallSid")]
    call_sid_webhook: Option<String>,
}

#[derive(Deserialize)]
struct CreatedMessage {
    data: Option<MessageData>,
}

#[derive(Deserialize)]
struct MessageData {
    id: Option<String>,
}

#[async_trait]
impl Telephony for TelnyxClient {
    async fn place_call(&self, call: &OutboundCall) -> Result<String, CallError> {
        let resp = self.send(self.http.post(&self.calls_url).json(&self.call_body(call))).await?;
        let created = resp.json::<CreatedCall>().await.ok();
        created_id(created.and_then(|c| c.sid.or(c.call_sid).or(c.call_sid_webhook)))
    }

    async fn end_call(&self, call_sid: &str) -> Result<(), CallError> {
        // Telnyx sids look like `v3:KBnL…_fUY`: keep only those characters in the path.
        let sid: String =
            call_sid.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':')).collect();
        let url = format!("{}/{sid}", self.calls_url);
        self.send(self.http.post(&url).form(&[("Status", "completed")])).await.map(|_| ())
    }

    async fn send_sms(&self, sms: &OutboundSms) -> Result<String, CallError> {
        let resp = self.send(self.http.post(&self.messages_url).json(&Self::sms_body(sms))).await?;
        let created = resp.json::<CreatedMessage>().await.ok();
        created_id(created.and_then(|c| c.data).and_then(|d| d.id))
    }

    fn webhooks(&self) -> &'static str {
        "telnyx"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::phone::PhoneNumber;
    use crate::telephony::canned::{reply, serve};

    fn call(detect_machine: bool) -> OutboundCall {
        OutboundCall {
            to: PhoneNumber::from_stored("+819012345678".into()),
            from: Some(PhoneNumber::from_stored("+81312345678".into())),
            answer_url: "https://ivr.test/voice/answer?r=1".into(),
            status_callback: "https://ivr.test/voice/status".into(),
            timeout: 200,
            detect_machine,
        }
    }

    fn client(base: &str) -> TelnyxClient {
        let base = Url::parse(base).unwrap();
        crate::install_tls_provider();
        TelnyxClient::new(reqwest::Client::new(), &base, SecretString::from("KEY-secret"), "AC1".into(), "APP9".into())
    }

    #[test]
    fn a_call_is_a_texml_json_body() {
        assert_eq!(
            client("https://api.telnyx.com").call_body(&call(true)),
            json!({
                "ApplicationSid": "APP9",
                "To": "+819012345678",
                "From": "+81312345678",
                "Url": "https://ivr.test/voice/answer?r=1",
                "UrlMethod": "POST",
                "StatusCallback": "https://ivr.test/voice/status",
                "StatusCallbackMethod": "POST",
                "StatusCallbackEvent": "initiated ringing answered completed",
                "Timeout": 120,
                "MachineDetection": "Enable",
            })
        );
        let quiet = client("https://api.telnyx.com").call_body(&OutboundCall { from: None, timeout: 1, ..call(false) });
        assert_eq!(quiet.get("MachineDetection"), None);
        assert_eq!(quiet.get("From"), None);
        assert_eq!(quiet["Timeout"], 5);
        let sms = OutboundSms {
            to: PhoneNumber::from_stored("+819012345678".into()),
            from: None,
            body: "Your code is 123456".into(),
            status_callback: "https://ivr.test/sms/status".into(),
        };
        assert_eq!(
            TelnyxClient::sms_body(&sms),
            json!({"to": "+819012345678", "text": "Your code is 123456", "webhook_url": "https://ivr.test/sms/status"})
        );
    }

    fn created() -> String {
        reply("201 Created", "", r#"{"from":"+81312345678","status":"queued","sid":"v3:Ab_9"}"#)
    }

    fn busy() -> String {
        reply(
            "429 Too Many Requests",
            "retry-after: 7\r\n",
            r#"{"errors":[{"code":"10011","title":"Too many requests"}]}"#,
        )
    }

    fn refused() -> String {
        let body = r#"{"errors":[{"code":"10016","title":"Invalid To","detail":"+819012345678 is not dialable"}]}"#;
        reply("400 Bad Request", "", body)
    }

    #[tokio::test]
    async fn answers_are_sorted_into_placed_retry_and_refused() {
        let (base, seen) = serve(vec![created(), busy(), refused()]).await;
        let telnyx = client(&base);
        assert_eq!(telnyx.place_call(&call(false)).await.unwrap(), "v3:Ab_9");
        match telnyx.place_call(&call(false)).await {
            Err(CallError::Unavailable { retry_after, message }) => {
                assert_eq!(retry_after, Some(std::time::Duration::from_secs(7)));
                assert_eq!(message.to_string(), "HTTP 429 Too Many Requests Too many requests (code 10011)");
            }
            other => panic!("expected a retry: {other:?}"),
        }
        match telnyx.place_call(&call(false)).await {
            Err(CallError::Refused(text)) => {
                let text = text.to_string();
                assert!(text.contains("Invalid To: ********5678 is not dialable (code 10016)"), "{text}");
                assert!(!text.contains("90123"), "{text}");
            }
            other => panic!("expected a refusal: {other:?}"),
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        for (line, auth, body) in seen.iter() {
            assert_eq!(line, "POST /v2/texml/Accounts/AC1/Calls HTTP/1.1");
            assert_eq!(auth, "Bearer KEY-secret");
            assert_eq!(serde_json::from_str::<Value>(body).unwrap()["ApplicationSid"], "APP9");
        }
    }

    #[tokio::test]
    async fn ending_a_call_posts_status_completed_and_a_text_reads_data_id() {
        let (base, seen) =
            serve(vec![reply("200 OK", "", r#"{"sid":"v3:x"}"#), reply("200 OK", "", r#"{"data":{"id":"msg-42"}}"#)])
                .await;
        let telnyx = client(&base);
        telnyx.end_call("v3:Ab_9/../x").await.unwrap();
        let sms = OutboundSms {
            to: PhoneNumber::from_stored("+819012345678".into()),
            from: None,
            body: "code".into(),
            status_callback: "https://ivr.test/sms".into(),
        };
        assert_eq!(telnyx.send_sms(&sms).await.unwrap(), "msg-42");
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].0, "POST /v2/texml/Accounts/AC1/Calls/v3:Ab_9x HTTP/1.1");
        assert_eq!(seen[0].2, "Status=completed");
        assert_eq!(seen[1].0, "POST /v2/messages HTTP/1.1");
        assert_eq!(seen[1].1, "Bearer KEY-secret");
    }

    #[tokio::test]
    async fn a_network_error_does_not_quote_the_url() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        match client(&base).place_call(&call(false)).await {
            Err(CallError::Unavailable { message, retry_after: None }) => {
                assert_eq!(message.to_string(), "network: connect failed");
            }
            other => panic!("expected a network error: {other:?}"),
        }
    }
}
