//! Twilio's (and compatible providers') REST API: `POST …/Accounts/{sid}/Calls.json`.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::telephony::{CallError, OutboundCall, OutboundSms, ProviderText, Telephony};

/// A client for the provider's Calls resource.
pub struct TwilioClient {
    http: reqwest::Client,
    calls_url: String,
    messages_url: String,
    account_sid: String,
    auth_token: SecretString,
    /// The folder of the webhooks its calls ask (`twilio`; `signalwire` for SignalWire's).
    folder: &'static str,
}

/// The part of a created call's or message's answer we need.
#[derive(Deserialize)]
struct Created {
    sid: String,
}

/// The provider's sid of what it created, from a success answer.
async fn created_sid(resp: reqwest::Response) -> Result<String, CallError> {
    let created: Created = resp.json().await.map_err(|_| CallError::Unavailable {
        message: ProviderText::new("provider answered success without a sid"),
        retry_after: None,
    })?;
    if created.sid.is_empty() || created.sid.len() > 128 {
        return Err(CallError::Refused(ProviderText::new("provider returned an unusable sid")));
    }
    Ok(created.sid)
}

#[derive(Deserialize)]
struct ApiError {
    code: Option<i64>,
    message: Option<String>,
}

impl TwilioClient {
    pub fn new(http: reqwest::Client, api_base: &Url, account_sid: String, auth_token: SecretString) -> Self {
        let base = api_base.as_str().trim_end_matches('/');
        Self {
            http,
            calls_url: format!("{base}/2010-04-01/Accounts/{account_sid}/Calls"),
            messages_url: format!("{base}/2010-04-01/Accounts/{account_sid}/Messages.json"),
            account_sid,
            auth_token,
            folder: "twilio",
        }
    }

    /// A TwiML-compatible provider's REST API (Twilio's paths under its
    /// `api_base`), whose calls ask the webhooks of its own `folder`.
    pub fn compatible(
        http: reqwest::Client,
        api_base: &Url,
        account_sid: String,
        auth_token: SecretString,
        folder: &'static str,
    ) -> Self {
        Self { folder, ..Self::new(http, api_base, account_sid, auth_token) }
    }

    async fn post(&self, url: &str, form: &[(&str, &str)]) -> Result<reqwest::Response, CallError> {
        self.http
            .post(url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .form(form)
            .send()
            .await
            .map_err(|e| CallError::Unavailable {
                message: ProviderText::new(format!("network: {}", without_url(&e))),
                retry_after: None,
            })
    }
}

/// reqwest errors carry the URL, which holds the account sid; keep only the kind.
fn without_url(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect failed".into()
    } else {
        "request failed".into()
    }
}

/// Sorts an error answer into "retry" (429, 5xx) and "give up" (other 4xx).
async fn classify(resp: reqwest::Response) -> CallError {
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs);
    let detail = match resp.json::<ApiError>().await {
        Ok(ApiError { code, message }) => {
            format!("{} (code {})", message.unwrap_or_default(), code.map_or("-".into(), |c| c.to_string()))
        }
        Err(_) => String::new(),
    };
    let message = ProviderText::new(format!("HTTP {status} {detail}"));
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        CallError::Unavailable { message, retry_after }
    } else {
        CallError::Refused(message)
    }
}

#[async_trait]
impl Telephony for TwilioClient {
    async fn place_call(&self, call: &OutboundCall) -> Result<String, CallError> {
        let timeout = call.timeout.to_string();
        let from = call.from.as_ref().map(|f| f.as_str()).unwrap_or_default();
        let form = [
            ("To", call.to.as_str()),
            ("From", from),
            ("Url", call.answer_url.as_str()),
            ("Method", "POST"),
            ("StatusCallback", call.status_callback.as_str()),
            ("StatusCallbackMethod", "POST"),
            ("StatusCallbackEvent", "initiated"),
            ("StatusCallbackEvent", "ringing"),
            ("StatusCallbackEvent", "answered"),
            ("StatusCallbackEvent", "completed"),
            ("Timeout", timeout.as_str()),
        ];
        let mut form = form.to_vec();
        if call.detect_machine {
            form.push(("MachineDetection", "Enable"));
        }
        let url = format!("{}.json", self.calls_url);
        let resp = self.post(&url, &form).await?;
        if resp.status().is_success() {
            return created_sid(resp).await;
        }
        Err(classify(resp).await)
    }

    async fn send_sms(&self, sms: &OutboundSms) -> Result<String, CallError> {
        let from = sms.from.as_ref().map(|f| f.as_str()).unwrap_or_default();
        let form = [
            ("To", sms.to.as_str()),
            ("From", from),
            ("Body", sms.body.as_str()),
            ("StatusCallback", sms.status_callback.as_str()),
        ];
        let resp = self.post(&self.messages_url, &form).await?;
        if resp.status().is_success() {
            return created_sid(resp).await;
        }
        Err(classify(resp).await)
    }

    async fn end_call(&self, call_sid: &str) -> Result<(), CallError> {
        let sid: String = call_sid.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == ':').collect();
        let url = format!("{}/{sid}.json", self.calls_url);
        let resp = self.post(&url, &[("Status", "completed")]).await?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(classify(resp).await)
    }

    fn webhooks(&self) -> &'static str {
        self.folder
    }
}
