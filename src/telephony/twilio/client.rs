//! Twilio's (and compatible providers') REST API: `POST …/Accounts/{sid}/Calls.json`.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::telephony::{
    CallError, Lookup, OutboundCall, OutboundSms, ProviderText, Telephony, created_id, retry_after,
};

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
    created_id(resp.json::<Created>().await.ok().map(|c| c.sid))
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
            .map_err(|e| CallError::from_network(&e))
    }
}

/// Sorts an error answer (see `CallError::from_status`).
async fn classify(resp: reqwest::Response) -> CallError {
    let status = resp.status();
    let retry_after = retry_after(&resp);
    let detail = match resp.json::<ApiError>().await {
        Ok(ApiError { code, message }) => {
            format!("{} (code {})", message.unwrap_or_default(), code.map_or("-".into(), |c| c.to_string()))
        }
        Err(_) => String::new(),
    };
    let message = ProviderText::new(format!("HTTP {status} {detail}").trim_end());
    CallError::from_status(status, retry_after, message)
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

    /// Twilio's call list filtered by `To` (its `StartTime` filter takes
    /// whole days only): a call created since `since` is taken as the one
    /// this server asked for (registrations per number are rate limited, so
    /// two calls to one number within seconds are this request's).
    async fn find_call(&self, call: &OutboundCall, since: chrono::DateTime<chrono::Utc>) -> Lookup {
        let query: String =
            url::form_urlencoded::Serializer::new(String::new()).append_pair("To", call.to.as_str()).finish();
        let url = format!("{}.json?{query}&PageSize=20", self.calls_url);
        let sent =
            self.http.get(&url).basic_auth(&self.account_sid, Some(self.auth_token.expose_secret())).send().await;
        let Ok(resp) = sent else { return Lookup::CannotTell };
        if !resp.status().is_success() {
            return Lookup::CannotTell;
        }
        let Ok(list) = resp.json::<CallList>().await else { return Lookup::CannotTell };
        let created_since = |c: &Listed| {
            chrono::DateTime::parse_from_rfc2822(&c.date_created)
                .is_ok_and(|at| at.with_timezone(&chrono::Utc) >= since)
        };
        match list.calls.iter().find(|c| created_since(c)) {
            Some(found) => Lookup::Found(found.sid.clone()),
            None => Lookup::NotFound,
        }
    }

    fn webhooks(&self) -> &'static str {
        self.folder
    }
}

/// A page of the call list.
#[derive(Deserialize)]
struct CallList {
    #[serde(default)]
    calls: Vec<Listed>,
}

#[derive(Deserialize)]
struct Listed {
    sid: String,
    #[serde(default)]
    date_created: String,
}
