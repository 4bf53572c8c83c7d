//! Twilio and SignalWire: `POST …/2010-04-01/Accounts/{sid}/Calls.json`
//! (form, basic auth) answered 201 `{"sid"}`; webhooks form-encoded and signed
//! with HMAC-SHA1 over the URL and the sorted parameters (Twilio: the auth
//! token in `X-Twilio-Signature`; SignalWire: the project's signing key in
//! `X-SignalWire-Signature`). Telnyx's TeXML names its parameters the same.

use actix_web::{HttpRequest, HttpResponse, web};
use ivr_auth::telephony::twilio::signature::sign;
use serde_json::json;

use super::{Calls, Placed, basic, header, in_folder, one_wrong_byte, random_hex, serve};
use crate::conformance::markup::{self, Script};
use crate::conformance::{Call, CallStatus, Hook, PUBLIC, Provider, What};
use crate::helpers::{AUTH_TOKEN, Configure, param};

const TWILIO_ACCOUNT: &str = "AC00000000000000000000000000000000";
const SIGNALWIRE_PROJECT: &str = "6f5e0c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6";
const SIGNALWIRE_TOKEN: &str = "PT-conformance-api-token";
const SIGNALWIRE_SIGNING_KEY: &str = "PSK_conformance_signing_key_0123";

/// A provider that speaks Twilio's REST API and signs as Twilio does.
#[derive(Clone)]
pub struct Form {
    name: &'static str,
    /// The REST API's base (SignalWire: its Space, whose API is under `/api/laml`).
    base: String,
    account: &'static str,
    api_token: &'static str,
    /// The key that signs its webhooks, and the header that carries it.
    signing_key: &'static str,
    signature_header: &'static str,
    calls: Calls,
}

/// What the `Calls.json` handler checks, and how it names a new call.
#[derive(Clone)]
struct Api {
    folder: &'static str,
    account: &'static str,
    authorization: String,
    calls: Calls,
}

/// `POST …/Accounts/{account}/Calls.json`, checked as the provider would.
async fn create_call(req: HttpRequest, path: web::Path<String>, body: web::Bytes, api: web::Data<Api>) -> HttpResponse {
    if header(&req, "authorization") != api.authorization || *path != api.account {
        return api.calls.refuse(401, format!("{}: wrong account or credentials", api.folder));
    }
    if header(&req, "content-type") != "application/x-www-form-urlencoded" {
        return api.calls.refuse(400, format!("{}: not a form: {}", api.folder, header(&req, "content-type")));
    }
    let p: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let one = |name: &str| param(&p, name).first().map(|v| (*v).to_owned()).unwrap_or_default();
    let events = param(&p, "StatusCallbackEvent");
    let (answer_url, status_url) = (one("Url"), one("StatusCallback"));
    if !in_folder(&answer_url, api.folder, "answer")
        || !in_folder(&status_url, api.folder, "status")
        || one("Method") != "POST"
        || one("To").is_empty()
        || events != ["initiated", "ringing", "answered", "completed"]
    {
        return api.calls.refuse(400, format!("{}: parameters {p:?}", api.folder));
    }
    let sid = match api.folder {
        "twilio" => format!("CA{}", random_hex()),
        _ => uuid::Uuid::now_v7().to_string(),
    };
    api.calls.place(Placed { sid: sid.clone(), to: one("To"), from: one("From"), answer_url, status_url });
    HttpResponse::Created().json(json!({ "sid": sid, "status": "queued" }))
}

/// `POST …/Calls/{sid}.json` with `Status=completed`: the server hangs up.
async fn end_call(path: web::Path<(String, String)>, api: web::Data<Api>) -> HttpResponse {
    api.calls.end(path.1.trim_end_matches(".json"));
    HttpResponse::Ok().json(json!({}))
}

impl Form {
    pub async fn twilio() -> Self {
        Self::start("twilio", "", TWILIO_ACCOUNT, AUTH_TOKEN, AUTH_TOKEN, "X-Twilio-Signature").await
    }

    pub async fn signalwire() -> Self {
        let (account, token, key) = (SIGNALWIRE_PROJECT, SIGNALWIRE_TOKEN, SIGNALWIRE_SIGNING_KEY);
        Self::start("signalwire", "/api/laml", account, token, key, "X-SignalWire-Signature").await
    }

    async fn start(
        name: &'static str,
        prefix: &'static str,
        account: &'static str,
        api_token: &'static str,
        signing_key: &'static str,
        signature_header: &'static str,
    ) -> Self {
        let calls = Calls::default();
        let api = web::Data::new(Api {
            folder: name,
            account,
            authorization: basic(account, api_token),
            calls: calls.clone(),
        });
        let base = serve(move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(api.clone())
                .route(&format!("{prefix}/2010-04-01/Accounts/{{account}}/Calls.json"), web::post().to(create_call))
                .route(&format!("{prefix}/2010-04-01/Accounts/{{account}}/Calls/{{sid}}"), web::post().to(end_call));
        })
        .await;
        Self { name, base, account, api_token, signing_key, signature_header, calls }
    }
}

/// A webhook's parameters in Twilio's names (Telnyx's TeXML uses the same).
pub fn params(account: &str, call: &Call, what: What<'_>) -> Vec<(String, String)> {
    let inbound = matches!(what, What::Inbound { .. });
    let mut p = vec![
        ("AccountSid", account),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", call.sid.as_str()),
        ("Direction", if inbound { "inbound" } else { "outbound-api" }),
        ("From", call.from.as_str()),
        ("To", call.to.as_str()),
    ];
    match what {
        What::Answer | What::Redirect { .. } => p.push(("CallStatus", "in-progress")),
        What::Inbound { .. } => p.push(("CallStatus", "ringing")),
        What::Digits(digits) => p.extend([("CallStatus", "in-progress"), ("Digits", digits), ("FinishedOnKey", "")]),
        What::Silence => p.extend([("CallStatus", "in-progress"), ("Digits", ""), ("FinishedOnKey", "")]),
        What::Status(progress) => {
            p.push(("CallbackSource", "call-progress-events"));
            p.push(("CallStatus", status_word(progress)));
            if progress == CallStatus::Declined {
                p.push(("SipResponseCode", "603"));
            }
        }
    }
    p.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

fn status_word(progress: CallStatus) -> &'static str {
    match progress {
        CallStatus::Ringing => "ringing",
        CallStatus::InProgress => "in-progress",
        CallStatus::Completed => "completed",
        CallStatus::Busy | CallStatus::Declined => "busy",
    }
}

/// A form POST to `url` with `params`, unsigned.
pub fn form_hook(url: &str, params: &[(String, String)]) -> Hook {
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    Hook {
        method: reqwest::Method::POST,
        url: url.to_owned(),
        content_type: Some("application/x-www-form-urlencoded"),
        body: body.into_bytes(),
        headers: Vec::new(),
    }
}

/// The same hook with `Digits` (or, without digits, `CallStatus`) changed in its body.
pub fn tampered(hook: &Hook) -> Hook {
    let mut p: Vec<(String, String)> = url::form_urlencoded::parse(&hook.body).into_owned().collect();
    match p.iter_mut().find(|(k, _)| k == "Digits") {
        Some((_, v)) => v.push('9'),
        None => p.push(("Digits".into(), "1".into())),
    }
    Hook { headers: hook.headers.clone(), ..form_hook(&hook.url, &p) }
}

impl Form {
    fn signed_for(&self, url: &str, hook: Hook) -> Hook {
        let p: Vec<(String, String)> = url::form_urlencoded::parse(&hook.body).into_owned().collect();
        let signature = sign(self.signing_key.as_bytes(), url, &p);
        Hook { headers: vec![(self.signature_header.to_owned(), signature)], ..hook }
    }
}

impl Provider for Form {
    fn name(&self) -> &'static str {
        self.name
    }

    fn settings(&self) -> Configure {
        let me = self.clone();
        std::sync::Arc::new(move |a| {
            a.provider = Some(me.name.into());
            match me.name {
                "twilio" => a.twilio_api_base = Some(me.base.clone()),
                _ => {
                    a.signalwire_space_url = Some("https://conformance.signalwire.com".into());
                    a.signalwire_api_base = Some(me.base.clone());
                    a.signalwire_project_id = Some(me.account.into());
                    a.signalwire_api_token = Some(me.api_token.into());
                    a.signalwire_signing_key = Some(me.signing_key.into());
                }
            }
        })
    }

    fn calls(&self) -> &Calls {
        &self.calls
    }

    fn new_sid(&self) -> String {
        match self.name {
            "twilio" => format!("CA{}", random_hex()),
            _ => uuid::Uuid::now_v7().to_string(),
        }
    }

    fn webhook(&self, url: &str, call: &Call, what: What<'_>) -> Hook {
        form_hook(url, &params(self.account, call, what))
    }

    fn sign(&self, hook: Hook) -> Hook {
        let url = hook.url.clone();
        self.signed_for(&url, hook)
    }

    fn forgeries(&self, hook: &Hook) -> Vec<(&'static str, Hook)> {
        let mut wrong_byte = hook.clone();
        wrong_byte.headers[0].1 = one_wrong_byte(&hook.headers[0].1, 0);
        let other_url = hook.url.replace(PUBLIC, "https://other.example.test");
        vec![
            ("one wrong byte", wrong_byte),
            ("signed for another URL", self.signed_for(&other_url, hook.clone())),
            ("body changed after signing", tampered(hook)),
        ]
    }

    fn script(&self, body: &str) -> Script {
        markup::twiml(body)
    }
}
