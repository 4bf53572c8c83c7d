//! Telnyx TeXML: `POST /v2/texml/Accounts/{account_sid}/Calls` (JSON, bearer
//! API key, `ApplicationSid`); webhooks form-encoded in Twilio's names, signed
//! with Ed25519 over `"{telnyx-timestamp}|{raw body}"` in
//! `telnyx-signature-ed25519`; answers are TeXML (TwiML).

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};

use super::form::{form_hook, params, tampered};
use super::{Calls, Placed, header, in_folder, one_wrong_byte};
use crate::conformance::markup::{self, Script};
use crate::conformance::{Call, Hook, Provider, What};
use crate::helpers::Configure;

const API_KEY: &str = "KEY0123456789ABCDEF_conformance";
const ACCOUNT: &str = "2b1d4c3e-7f00-4a5e-9c1b-1e2f3a4b5c6d";
const APPLICATION: &str = "1293384261075731499";
/// The seed of the account's Ed25519 key (any 32 bytes make a valid key).
const SEED: [u8; 32] = *b"conformance-telnyx-ed25519-seed!";

#[derive(Clone)]
pub struct Telnyx {
    base: String,
    key: SigningKey,
    calls: Calls,
}

/// `POST /v2/texml/Accounts/{account_sid}/Calls`, checked as Telnyx would.
async fn create_call(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    calls: web::Data<Calls>,
) -> HttpResponse {
    if header(&req, "authorization") != format!("Bearer {API_KEY}") || *path != ACCOUNT {
        return calls.refuse(401, "telnyx: wrong account or API key".into());
    }
    if !header(&req, "content-type").starts_with("application/json") {
        return calls.refuse(400, format!("telnyx: not JSON: {}", header(&req, "content-type")));
    }
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        return calls.refuse(400, "telnyx: malformed JSON".into());
    };
    let text = |name: &str| b[name].as_str().unwrap_or_default().to_owned();
    let (answer_url, status_url) = (text("Url"), text("StatusCallback"));
    if text("ApplicationSid") != APPLICATION
        || !in_folder(&answer_url, "telnyx", "answer")
        || !in_folder(&status_url, "telnyx", "status")
        || text("UrlMethod") != "POST"
        || text("StatusCallbackEvent") != "initiated ringing answered completed"
        || !text("To").starts_with('+')
        || !b["Timeout"].as_u64().is_some_and(|t| (5..=120).contains(&t))
    {
        return calls.refuse(400, format!("telnyx: body {b}"));
    }
    let sid = format!("v3:{}", super::random_hex());
    calls.place(Placed { sid: sid.clone(), to: text("To"), from: text("From"), answer_url, status_url });
    // The documented answer shows `from`, `to` and `status`; telnyx-ruby's
    // model of a TeXML call's creation also has `call_sid` (unverified on the wire).
    HttpResponse::Ok().json(json!({ "call_sid": sid, "from": text("From"), "to": text("To"), "status": "queued" }))
}

/// `POST …/Calls/{call_sid}` with `Status=completed`: the server hangs up.
async fn end_call(path: web::Path<(String, String)>, calls: web::Data<Calls>) -> HttpResponse {
    calls.end(&path.1);
    HttpResponse::Ok().json(json!({}))
}

impl Telnyx {
    pub async fn start() -> Self {
        let calls = Calls::default();
        let data = web::Data::new(calls.clone());
        let base = super::serve(move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(data.clone())
                .route("/v2/texml/Accounts/{account}/Calls", web::post().to(create_call))
                .route("/v2/texml/Accounts/{account}/Calls/{sid}", web::post().to(end_call));
        })
        .await;
        Self { base, key: SigningKey::from_bytes(&SEED), calls }
    }

    /// `hook` signed at `timestamp` (unix seconds).
    fn signed_at(&self, timestamp: i64, hook: Hook) -> Hook {
        let mut message = format!("{timestamp}|").into_bytes();
        message.extend_from_slice(&hook.body);
        let signature = STANDARD.encode(self.key.sign(&message).to_bytes());
        let headers = vec![
            ("telnyx-timestamp".to_owned(), timestamp.to_string()),
            ("telnyx-signature-ed25519".to_owned(), signature),
        ];
        Hook { headers, ..hook }
    }
}

/// The time now, in unix seconds.
pub fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Provider for Telnyx {
    fn name(&self) -> &'static str {
        "telnyx"
    }

    fn settings(&self) -> Configure {
        let (base, public_key) = (self.base.clone(), STANDARD.encode(self.key.verifying_key().to_bytes()));
        std::sync::Arc::new(move |a| {
            a.provider = Some("telnyx".into());
            a.telnyx_api_key = Some(API_KEY.into());
            a.telnyx_account_sid = Some(ACCOUNT.into());
            a.telnyx_application_sid = Some(APPLICATION.into());
            a.telnyx_public_key = Some(public_key.clone());
            a.telnyx_api_base = Some(base.clone());
        })
    }

    fn calls(&self) -> &Calls {
        &self.calls
    }

    fn new_sid(&self) -> String {
        format!("v3:{}", super::random_hex())
    }

    fn webhook(&self, url: &str, call: &Call, what: What<'_>) -> Hook {
        form_hook(url, &params(ACCOUNT, call, what))
    }

    fn sign(&self, hook: Hook) -> Hook {
        self.signed_at(now_unix(), hook)
    }

    fn forgeries(&self, hook: &Hook) -> Vec<(&'static str, Hook)> {
        let mut wrong_byte = hook.clone();
        wrong_byte.headers[1].1 = one_wrong_byte(&hook.headers[1].1, 0);
        vec![
            ("one wrong byte", wrong_byte),
            ("signed 301 s ago", self.signed_at(now_unix() - 301, hook.clone())),
            ("body changed after signing", tampered(hook)),
        ]
    }

    fn script(&self, body: &str) -> Script {
        markup::twiml(body)
    }
}
