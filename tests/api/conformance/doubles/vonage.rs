//! Vonage Voice API: `POST /v1/calls` (JSON, an RS256 application JWT) answered
//! 201 `{"uuid"}`; webhooks JSON (the answer URL also fetched with GET and a
//! query), numbers without `+`, each with `Authorization: Bearer` an HS256 JWT
//! signed with the signature secret whose `payload_hash` is the body's SHA-256;
//! answers are NCCO JSON.

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RsaKeyPair, UnparsedPublicKey};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::telnyx::now_unix;
use super::{Calls, Placed, header, in_folder, one_wrong_byte};
use crate::conformance::markup::{self, Script};
use crate::conformance::{Call, CallStatus, Hook, Provider, What};
use crate::helpers::Configure;

const APPLICATION: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
const SIGNATURE_SECRET: &str = "conformance-vonage-signature-secret";

#[derive(Clone)]
pub struct Vonage {
    base: String,
    /// Holds the private key file the server reads.
    key_dir: std::sync::Arc<tempfile::TempDir>,
    calls: Calls,
}

/// Whether `authorization` is a current application JWT of `APPLICATION`, signed with its key.
fn application_jwt(authorization: &str) -> Result<(), String> {
    let token = authorization.strip_prefix("Bearer ").ok_or("no bearer token")?;
    let (signed, signature) = token.rsplit_once('.').ok_or("not a JWT")?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| "signature not base64url")?;
    let der = PrivateKeyDer::from_pem_slice(PRIVATE_KEY.as_bytes()).unwrap();
    let PrivateKeyDer::Pkcs8(der) = der else { unreachable!("a PKCS#8 key") };
    let pair = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
    let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pair.public().as_ref());
    public.verify(signed.as_bytes(), &signature).map_err(|_| "RS256 signature does not verify")?;
    let part = |i: usize| -> Value {
        let raw = URL_SAFE_NO_PAD.decode(signed.split('.').nth(i).unwrap_or_default()).unwrap_or_default();
        serde_json::from_slice(&raw).unwrap_or_default()
    };
    let (head, claims) = (part(0), part(1));
    let now = now_unix();
    let current = claims["iat"].as_i64().is_some_and(|iat| iat <= now + 5)
        && claims["exp"].as_i64().is_some_and(|exp| exp > now && exp <= now + 86_400);
    if head["alg"] != "RS256" || claims["application_id"] != APPLICATION || !claims["jti"].is_string() || !current {
        return Err(format!("claims {claims}, header {head}"));
    }
    Ok(())
}

/// `POST /v1/calls`, checked as Vonage would.
async fn create_call(req: HttpRequest, body: web::Bytes, calls: web::Data<Calls>) -> HttpResponse {
    if let Err(why) = application_jwt(header(&req, "authorization")) {
        return calls.refuse(401, format!("vonage: {why}"));
    }
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        return calls.refuse(400, "vonage: malformed JSON".into());
    };
    let number =
        |v: &Value| v["number"].as_str().filter(|n| n.bytes().all(|c| c.is_ascii_digit())).map(|n| format!("+{n}"));
    let (to, from) = (number(&b["to"][0]), number(&b["from"]));
    let answer_url = b["answer_url"][0].as_str().unwrap_or_default().to_owned();
    let status_url = b["event_url"][0].as_str().unwrap_or_default().to_owned();
    let (Some(to), Some(from), true, true) = (to, from, b["to"][0]["type"] == "phone", b["answer_method"] == "POST")
    else {
        return calls.refuse(400, format!("vonage: body {b}"));
    };
    if !in_folder(&answer_url, "vonage", "answer")
        || !in_folder(&status_url, "vonage", "status")
        || b["event_method"] != "POST"
    {
        return calls.refuse(400, format!("vonage: URLs in {b}"));
    }
    let uuid = uuid::Uuid::now_v7().to_string();
    calls.place(Placed { sid: uuid.clone(), to, from, answer_url, status_url });
    let conversation = format!("CON-{}", super::random_hex());
    HttpResponse::Created()
        .json(json!({ "uuid": uuid, "status": "started", "direction": "outbound", "conversation_uuid": conversation }))
}

/// `PUT /v1/calls/{uuid}` with `{"action":"hangup"}`.
async fn modify_call(path: web::Path<String>, calls: web::Data<Calls>) -> HttpResponse {
    calls.end(&path);
    HttpResponse::NoContent().finish()
}

impl Vonage {
    pub async fn start() -> Self {
        let calls = Calls::default();
        let data = web::Data::new(calls.clone());
        let base = super::serve(move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(data.clone())
                .route("/v1/calls", web::post().to(create_call))
                .route("/v1/calls/{uuid}", web::put().to(modify_call));
        })
        .await;
        let key_dir = tempfile::tempdir().unwrap();
        std::fs::write(key_dir.path().join("private.key"), PRIVATE_KEY).unwrap();
        Self { base, key_dir: std::sync::Arc::new(key_dir), calls }
    }

    /// `hook` with a webhook token issued at `iat`, over `hook`'s body.
    fn signed_at(&self, iat: i64, hook: Hook) -> Hook {
        let claims = json!({
            "iat": iat,
            "jti": uuid::Uuid::now_v7().to_string(),
            "iss": "Vonage",
            "payload_hash": hex::encode(Sha256::digest(&hook.body)),
            "api_key": "abcd1234",
            "application_id": APPLICATION,
        });
        let head = URL_SAFE_NO_PAD.encode(json!({ "alg": "HS256", "typ": "JWT" }).to_string());
        let signed = format!("{head}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(SIGNATURE_SECRET.as_bytes()).unwrap();
        mac.update(signed.as_bytes());
        let token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
        Hook { headers: vec![("Authorization".into(), format!("Bearer {token}"))], ..hook }
    }
}

/// A number as Vonage writes it: digits, no `+`.
fn digits(number: &str) -> &str {
    number.trim_start_matches('+')
}

fn event_word(progress: CallStatus) -> &'static str {
    match progress {
        CallStatus::Ringing => "ringing",
        CallStatus::InProgress => "answered",
        CallStatus::Completed => "completed",
        CallStatus::Busy => "busy",
        CallStatus::Declined => "rejected",
    }
}

fn json_hook(url: &str, body: &Value) -> Hook {
    let body = body.to_string().into_bytes();
    Hook {
        method: reqwest::Method::POST,
        url: url.into(),
        content_type: Some("application/json"),
        body,
        headers: Vec::new(),
    }
}

impl Provider for Vonage {
    fn name(&self) -> &'static str {
        "vonage"
    }

    fn settings(&self) -> Configure {
        let (base, key) = (self.base.clone(), self.key_dir.path().join("private.key"));
        std::sync::Arc::new(move |a| {
            a.provider = Some("vonage".into());
            a.vonage_application_id = Some(APPLICATION.into());
            a.vonage_private_key_file = Some(key.clone());
            a.vonage_signature_secret = Some(SIGNATURE_SECRET.into());
            a.vonage_api_base = Some(base.clone());
        })
    }

    fn calls(&self) -> &Calls {
        &self.calls
    }

    fn new_sid(&self) -> String {
        uuid::Uuid::now_v7().to_string()
    }

    fn webhook(&self, url: &str, call: &Call, what: What<'_>) -> Hook {
        let conversation = format!("CON-{}", call.sid);
        let mut body = json!({ "uuid": call.sid, "conversation_uuid": conversation, "from": digits(&call.from), "to": digits(&call.to) });
        match what {
            What::Inbound { get: true } => {
                let fields = ["uuid", "conversation_uuid", "from", "to"]
                    .map(|k| (k, body[k].as_str().unwrap_or_default().to_owned()));
                let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
                let url = format!("{url}?{query}");
                return Hook {
                    method: reqwest::Method::GET,
                    url,
                    content_type: None,
                    body: Vec::new(),
                    headers: Vec::new(),
                };
            }
            What::Answer | What::Inbound { get: false } => {}
            // A notify action posts its payload, nothing else.
            What::Redirect { payload } => return json_hook(url, &serde_json::from_str(payload).unwrap()),
            What::Digits(typed) => body["dtmf"] = json!({ "digits": typed, "timed_out": false }),
            What::Silence => body["dtmf"] = json!({ "digits": "", "timed_out": true }),
            What::Status(progress) => {
                body["status"] = json!(event_word(progress));
                body["direction"] = json!("outbound");
            }
        }
        body["timestamp"] = json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        json_hook(url, &body)
    }

    fn sign(&self, hook: Hook) -> Hook {
        self.signed_at(now_unix(), hook)
    }

    fn forgeries(&self, hook: &Hook) -> Vec<(&'static str, Hook)> {
        let mut wrong_byte = hook.clone();
        let token = &hook.headers[0].1;
        let at = token.rfind('.').unwrap() + 1;
        wrong_byte.headers[0].1 = one_wrong_byte(token, at);
        let mut changed: Value = serde_json::from_slice(&hook.body).unwrap();
        changed["dtmf"]["digits"] = json!(format!("{}9", changed["dtmf"]["digits"].as_str().unwrap_or_default()));
        let tampered = Hook { headers: hook.headers.clone(), ..json_hook(&hook.url, &changed) };
        vec![
            ("one wrong byte", wrong_byte),
            ("issued 301 s ago", self.signed_at(now_unix() - 301, hook.clone())),
            ("body changed after signing", tampered),
        ]
    }

    fn script(&self, body: &str) -> Script {
        markup::ncco(body)
    }
}

/// The application's 2048-bit RSA key (the one of `src/telephony/vonage/app_jwt.rs`'s tests).
const PRIVATE_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCsd+HGAUOioXLJ
8x3wys1YezlfJidwxOUJCi0Vz2cUfnGyrc3LmnlhkX0GFWrh8EL3J7em92hIpARy
beR6UHkL6L8tcrluqp/VZKoQhAk7PgIKkDBheXfqcojxmOJ78jRjvR3lOy0yQBAs
KhAo5ALkV+qV1d6IM/D2K+tFt9jOz2/AerbXIV3VVWoVnSBQ9DSR6rhCM842N2BP
7B8cbsa+KSpAX8vMb17Er6e7bNMrojIdubTTsOc7MPQbIFDPR4rsKjow1fAvnR9V
mdloooguHDiQgAW4SGSULTxu0zErBeRUvpOlj9x/4Hod6sPVRHMjt5R78pEAxdcN
pF6mUP3pAgMBAAECggEAFZWjUe6SkmX2QcQFeT9IV8yEL55MzVY2+9ykK9ibI/t3
K0+JM/QPQOC+buZ7S++P0fLMjz7jdEPispeCQrSTkaP9WSjEgE8mVcSVbB+6MAng
o4XMKEbVdSgEb4gcwDpdyCXA+hFf5KwT2hMhlpyCqCVAnKP5h75IZ+azOTR7E9a5
EB3EDmeR8CERWzLlV72EuEmnHDMRDpnFsMKj8XC8dtyQfNyMAF9gokso8hmSNfRF
bScy63ZjQSkaIal9N4kEUtqcfPeE+nmylyZZQTJ1TYtciCvOuO9HMJj/Bq5B5tvK
7KqiMEy237iKqxPhh+nol5vOUoosn7PjTLuLRUmUSQKBgQDzlZegQK8S2L3JFMQd
oPSJAgStHFYQ8S/9s+wKrHtIHnNAbkjZ0hsNL/HRPPaXnMXXfbfN76gTHtXGUOGf
OsWl6y0xeb9nh2gJAXGr7rv5GbE7mEX6NVilq+o1smduQTX3xWoTgUK6yj6a29Hm
PK1e3iYlPVxWCLNwjnIAmNafXwKBgQC1QlUhkabH1/sGDyKHYXFUXLMP5ZBrYUfs
HMUxNlASdLsdZpBFKPq1iCNs1Wbt2vC5Nw2ynxPq6NhsUJe+uDTeNCWRT8bCBlJE
ruRPcusJrhWnBtLEoyWtDtV7+l4igwJ+fg1vggidu2S/PyVkz/pBO2Fuy/YTtVMq
PRBIrYGPtwKBgHaI0WR2lbvCJXj41gblEJqrlML5CxjrhcMcDz2Sedu6lbNA98qn
5+oe7ro3xHg7HjujPhLFETFczALZ0TG/U/dN3ow5Bt/GkOXxAfP9FRQ/YHPzwfnk
g+L7Kdo/mv2YVj7gnqInQOXNDXImjppP5L5JtJ5iodBsI4Yei3Om7KpZAoGAMhI4
4iUSJXKMbYgQycUpQVy6OlH4KzGcZKUt9AJE7FRCvERw5ioD19Hbt1zcKiipBwEm
T4mSPvpDjuhUguLv99H/7rxS85Y7c628dBYSx4HHiXRhFODcr4nBf5YSGwaF0duQ
apVJPAlgM1SGR+sL/qkgqTK+r4MPjkOAFBOaDtECgYA0FOPRhZOADSecZ3NuH58p
S6dSx6+F/Y8zkC/zkpTUXI3zCrEyT/lRCeiF6FObwVSdDUPq4BnstptBqWBRjqe5
rEiY6dr5UksNE6hKyOSrMBHnwYuIJ+ewS6GZfQitv9Bi1WoB/jRYQ9jsriSsNOYc
pcdD08EVNEC7LnH/MDnV4Q==
-----END PRIVATE KEY-----
";
