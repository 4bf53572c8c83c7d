//! The calling tenant's own voice settings: its name, its words, its recordings, and a preview.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{Authenticated, SignedBody, count};
use super::input::parse_json;
use crate::call::{preview, tenant_voice};
use crate::domain::status::Locale;
use crate::domain::tenant::TenantVoice;
use crate::error::{AppError, ErrorBody};
use crate::state::AppState;
use crate::telephony::twilio::twiml;

/// A tenant's voice settings, with the server's texts they override.
#[derive(Debug, Serialize, ToSchema)]
pub struct VoiceSettings {
    /// The name callers hear and texts show (`{site_name}`); null: the locale's default wording.
    pub display_name: Option<String>,
    /// The name per locale, where it differs from `display_name`.
    pub display_names: BTreeMap<String, String>,
    /// The tenant's prompt texts, by locale, then by prompt key.
    pub prompts: BTreeMap<String, BTreeMap<String, String>>,
    /// The tenant's recordings (https URLs), by locale, then by prompt key.
    pub audio: BTreeMap<String, BTreeMap<String, String>>,
    /// The server's texts, by locale, then by prompt key: what is spoken
    /// where the tenant sets nothing, and the list of prompt keys.
    pub defaults: BTreeMap<String, BTreeMap<String, String>>,
}

fn settings(state: &AppState, voice: &TenantVoice) -> VoiceSettings {
    let defaults = [Locale::JaJp, Locale::EnUs]
        .into_iter()
        .map(|l| {
            let texts = state.prompts.defaults(l).into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            (l.as_str().to_owned(), texts)
        })
        .collect();
    VoiceSettings {
        display_name: voice.display_name.clone(),
        display_names: voice.display_names.clone(),
        prompts: voice.prompts.clone(),
        audio: voice.audio.clone(),
        defaults,
    }
}

/// Read the tenant's voice settings.
#[utoipa::path(
    get,
    path = "/v1/tenant/voice",
    tag = "tenant",
    responses(
        (status = 200, description = "The settings, and the server's texts", body = VoiceSettings),
        (status = 401, description = "Missing or invalid API key (or, for a tenant that signs its requests, signature)", body = ErrorBody),
        (status = 429, description = "Rate limited: the API key's request rate; see Retry-After", body = ErrorBody),
        (status = 503, description = "The database is unreachable for a moment; see Retry-After", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn get_voice(state: web::Data<AppState>, Authenticated(tenant): Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(settings(&state, &tenant.policy.voice))
}

/// Replace the tenant's voice settings.
///
/// The name its callers hear, and its own prompt texts and recordings per
/// locale (any prompt left out keeps the server's). Placeholders:
/// `{site_name}`, `{code_length}`, `{attempts_left}`, and in `sms` only
/// `{code}` and `{minutes}`; any other is refused. The text message may take
/// at most 2 parts (306 characters of the GSM alphabet, or 134 of others)
/// with a 10-digit code and the name filled in. Calls in progress hear the
/// new words within seconds, on every node.
#[utoipa::path(
    put,
    path = "/v1/tenant/voice",
    tag = "tenant",
    request_body = TenantVoice,
    responses(
        (status = 200, description = "Stored", body = VoiceSettings),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key (or, for a tenant that signs its requests, signature)", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "A setting breaks its rule (an unknown locale, prompt or placeholder, a \\
            recording that is not https, a control or invisible formatting character, a text message over 2 \\
            parts…); the message names it, e.g. `prompts.ja-JP.wrong_code`", body = ErrorBody),
        (status = 429, description = "Rate limited: the API key's request rate; see Retry-After", body = ErrorBody),
        (status = 503, description = "The database is unreachable for a moment; see Retry-After", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn put_voice(
    state: web::Data<AppState>,
    SignedBody { tenant, body }: SignedBody,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    count(&state, &tenant)?;
    let voice: TenantVoice = parse_json(&req, &body)?;
    tenant_voice::validate(&voice, &state.prompts).map_err(|r| AppError::invalid(r.field, r.message))?;
    state.service.set_voice(&tenant, voice.clone()).await?;
    Ok(HttpResponse::Ok().json(settings(&state, &voice)))
}

/// The preview's query: `locale` and `scene`; any other parameter is a 422 that names it.
fn preview_query(req: &HttpRequest) -> Result<(Option<String>, Option<String>), AppError> {
    let (mut locale, mut scene) = (None, None);
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        match k.as_ref() {
            "locale" => locale = Some(v.into_owned()),
            "scene" => scene = Some(v.into_owned()),
            other => {
                let name: String = other.chars().filter(|c| !c.is_control()).take(64).collect();
                return Err(AppError::invalid(name.clone(), format!("{name}: is not a parameter (locale, scene)")));
            }
        }
    }
    Ok((locale, scene))
}

/// Preview what a caller hears.
///
/// The TwiML the provider would get at one scene of a sample call, with the
/// tenant's stored settings (`text/xml`), or the text message (`text/plain`).
#[utoipa::path(
    get,
    path = "/v1/tenant/voice/preview",
    tag = "tenant",
    params(
        ("locale" = Option<Locale>, Query, description = "`ja-JP` (default) or `en-US`"),
        ("scene" = Option<String>, Query, description = "`answer_outbound` (default), `answer_inbound`, \\
            `wrong_code`, `no_input`, `verified`, `failed`, `expired`, `voice_otp`, or `sms`"),
    ),
    responses(
        (status = 200, description = "TwiML (text/xml), or the text message (text/plain) for `sms`",
            content((String = "text/xml"), (String = "text/plain"))),
        (status = 401, description = "Missing or invalid API key (or, for a tenant that signs its requests, signature)", body = ErrorBody),
        (status = 422, description = "An unknown locale, scene or parameter; the message names it", body = ErrorBody),
        (status = 429, description = "Rate limited: the API key's request rate; see Retry-After", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn preview(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    let (locale, scene) = preview_query(&req)?;
    let locale = match locale.as_deref() {
        None => Locale::JaJp,
        Some(l) => {
            Locale::parse(l).ok_or_else(|| AppError::invalid("locale", "locale: must be \"ja-JP\" or \"en-US\""))?
        }
    };
    let scene = scene.as_deref().unwrap_or("answer_outbound");
    if scene == "sms" {
        let text = state.prompts.sms(locale, "123456", 5, Some(&tenant.policy.voice));
        return Ok(HttpResponse::Ok().insert_header((CONTENT_TYPE, "text/plain; charset=utf-8")).body(text));
    }
    let script = preview::preview(state.voice(), state.service.now(), Arc::new(tenant), locale, scene);
    script.map(|s| twiml::response(&s)).ok_or_else(|| {
        AppError::invalid(
            "scene",
            "scene: one of answer_outbound, answer_inbound, wrong_code, no_input, verified, failed, expired, \
             voice_otp, sms",
        )
    })
}
