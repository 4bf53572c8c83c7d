//! Twilio's (and compatible providers') REST API: `POST …/Accounts/{sid}/Calls.json`.

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::telephony::{
    CallError, Lookup, OutboundCall, OutboundSms, ProviderText, Telephony, created_id, retry_after,
};

/// A client for the provider's Calls resource.
pub struct TwilioClient {
    http: reqwest::Client,
    /// The account's folder of the API (`…/2010-04-01/Accounts/{sid}`), and
    /// under it `Calls.json` and `Messages.json`, parsed once: a URL given as
    /// text is parsed again by reqwest on every request.
    account: Url,
    calls_json: Url,
    messages_url: Url,
    /// The `Authorization` header of every request (HTTP basic: the account
    /// sid and the auth token), encoded once and marked sensitive.
    authorization: HeaderValue,
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
        let mut account = api_base.clone();
        account.set_path(&format!("{}/2010-04-01/Accounts/{account_sid}", api_base.path().trim_end_matches('/')));
        let credentials = STANDARD.encode(format!("{account_sid}:{}", auth_token.expose_secret()));
        let mut authorization =
            HeaderValue::try_from(format!("Basic {credentials}")).unwrap_or_else(|_| unreachable!("base64 is ASCII"));
        authorization.set_sensitive(true);
        Self {
            http,
            calls_json: under(&account, "Calls.json"),
            messages_url: under(&account, "Messages.json"),
            account,
            authorization,
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

    /// POSTs `form` to `url` (parsed once where it is always the same).
    async fn post(&self, url: Url, form: &[(&str, &str)]) -> Result<reqwest::Response, CallError> {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        self.http
            .post(url)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| CallError::from_network(&e))
    }
}

/// The URL of `file` in the folder `dir` (a URL without a trailing `/`).
fn under(dir: &Url, file: &str) -> Url {
    let mut url = dir.clone();
    url.set_path(&format!("{}/{file}", dir.path()));
    url
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
        let resp = self.post(self.calls_json.clone(), &form).await?;
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
        let resp = self.post(self.messages_url.clone(), &form).await?;
        if resp.status().is_success() {
            return created_sid(resp).await;
        }
        Err(classify(resp).await)
    }

    async fn end_call(&self, call_sid: &str) -> Result<(), CallError> {
        let sid: String = call_sid.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == ':').collect();
        let resp = self.post(under(&self.account, &format!("Calls/{sid}.json")), &[("Status", "completed")]).await?;
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
        let mut url = self.calls_json.clone();
        url.query_pairs_mut().append_pair("To", call.to.as_str()).append_pair("PageSize", "20");
        let sent = self.http.get(url).header(AUTHORIZATION, self.authorization.clone()).send().await;
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
