//! The one-shot commands `tenant create|list|rotate-key`, `audit verify|export`, `usage`,
//! `migrate` and `prompts render` (the command line itself is parsed in `main.rs`).

mod audit;
mod usage;

pub use audit::{AuditAction, audit};
pub use usage::{UsageArgs, usage};

use chrono::Utc;
use clap::{Args, Subcommand};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::call::prompts::Prompts;
use crate::config::{ServeArgs, parse_database_url};
use crate::domain::audit::{Kind, Record};
use crate::domain::phone::{PhoneNumber, Region};
use crate::domain::tenant::{Tenant, TenantPolicy, new_api_key, new_callback_secret};
use crate::domain::text::is_hidden;
use crate::store::{self, OpenOptions, Role, StoreError};
use crate::telephony::sip::audio::{RenderOptions, render};

#[derive(Debug, Args)]
pub struct DbArgs {
    /// sqlite://PATH or postgres://...
    #[arg(long, env = "IVR_AUTH_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
}

// One value per run of the command: the size of `Set` costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum TenantAction {
    /// Create a tenant; prints its API key and callback secret once
    Create { name: String },
    /// List tenants (no secrets)
    List,
    /// Issue a new API key and callback secret; the old key stops working at once,
    /// the old callback secret keeps signing (as a second v1=) for 24 hours
    RotateKey { name: String },
    /// Change a tenant's own settings; only the ones given change
    Set(SetArgs),
}

/// The settings `tenant set` changes.
#[derive(Debug, Default, Args)]
pub struct SetArgs {
    pub name: String,
    /// The tenant's own number for inbound mode (E.164), or `none` for the server's
    #[arg(long)]
    pub inbound_number: Option<String>,
    /// Countries its calls may go to, e.g. `JP,US`, or `default` (the server's default region)
    #[arg(long)]
    pub allowed_countries: Option<String>,
    /// Outbound calls a minute at most, or 0 for the server's default
    #[arg(long)]
    pub calls_per_minute: Option<u32>,
    /// Outbound calls a day at most, or 0 for the server's default
    #[arg(long)]
    pub calls_per_day: Option<u32>,
    /// The least STIR/SHAKEN attestation of inbound calls: A, B, C, or `none`
    #[arg(long)]
    pub min_attestation: Option<String>,
    /// An Ed25519 public key (base64 or hex of its 32 bytes): the tenant's API
    /// requests must then be signed with it; `none` drops the requirement
    #[arg(long)]
    pub signing_key: Option<String>,
    /// The name callers hear and texts show (e.g. `さくら銀行`), or `none`;
    /// `LOCALE=NAME` (e.g. `en-US=Sakura Bank`) sets it for one locale
    /// (`LOCALE=` drops that). Repeatable
    #[arg(long)]
    pub display_name: Vec<String>,
    /// A prompt text of the tenant's own, `LOCALE.PROMPT=TEXT` (e.g.
    /// `ja-JP.success=…`); an empty TEXT goes back to the server's. Repeatable
    #[arg(long = "prompt", value_name = "LOCALE.PROMPT=TEXT")]
    pub prompts: Vec<String>,
    /// A recording of a prompt, `LOCALE.PROMPT=https://…`; an empty URL drops it. Repeatable
    #[arg(long = "audio", value_name = "LOCALE.PROMPT=URL")]
    pub audio: Vec<String>,
    /// All voice settings at once, from a JSON file shaped like `PUT /v1/tenant/voice`
    #[arg(long, value_name = "FILE")]
    pub voice_file: Option<std::path::PathBuf>,
}

/// Sets (or, for an empty value, removes) `LOCALE.PROMPT=VALUE` in `map`.
fn set_entry(
    map: &mut std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    flag: &str,
    raw: &str,
) -> Result<(), CliError> {
    let usage = || CliError::Usage(format!("--{flag}: LOCALE.PROMPT=VALUE, e.g. ja-JP.success=…"));
    let (target, value) = raw.split_once('=').ok_or_else(usage)?;
    let (locale, key) = target.split_once('.').ok_or_else(usage)?;
    let texts = map.entry(locale.to_owned()).or_default();
    if value.is_empty() {
        texts.remove(key);
    } else {
        texts.insert(key.to_owned(), value.to_owned());
    }
    map.retain(|_, texts| !texts.is_empty());
    Ok(())
}

impl SetArgs {
    /// `policy` with the given settings applied, each checked (a text
    /// message against the server's `prompts`).
    fn apply(&self, mut policy: TenantPolicy, prompts: &Prompts) -> Result<TenantPolicy, CliError> {
        if let Some(raw) = &self.inbound_number {
            policy.inbound_number = match raw.as_str() {
                "none" => None,
                n if n.starts_with('+') => Some(
                    PhoneNumber::parse(n, Region::default())
                        .map_err(|e| CliError::Usage(format!("--inbound-number: {e}")))?
                        .as_str()
                        .to_owned(),
                ),
                _ => {
                    return Err(CliError::Usage("--inbound-number: an E.164 number like +81312345678, or none".into()));
                }
            };
        }
        if let Some(raw) = &self.allowed_countries {
            policy.allowed_countries = match raw.as_str() {
                "default" => Vec::new(),
                list => list
                    .split(',')
                    .map(|c| {
                        let c = c.trim().to_ascii_uppercase();
                        Region::parse(&c).map(|_| c.clone()).ok_or_else(|| {
                            CliError::Usage(format!("--allowed-countries: {c:?} is not a region code like JP"))
                        })
                    })
                    .collect::<Result<_, _>>()?,
            };
        }
        if let Some(n) = self.calls_per_minute {
            policy.calls_per_minute = (n > 0).then_some(n);
        }
        if let Some(n) = self.calls_per_day {
            policy.calls_per_day = (n > 0).then_some(n);
        }
        if let Some(raw) = &self.min_attestation {
            policy.min_attestation = match raw.to_ascii_uppercase().as_str() {
                "NONE" => None,
                level @ ("A" | "B" | "C") => Some(level.to_owned()),
                _ => return Err(CliError::Usage("--min-attestation: A, B, C or none".into())),
            };
        }
        if let Some(raw) = &self.signing_key {
            policy.signing_key = match raw.trim() {
                "none" => None,
                key => {
                    let key = crate::api::request_signature::parse_public_key(key).ok_or_else(|| {
                        CliError::Usage(
                            "--signing-key: an Ed25519 public key, base64 or hex of 32 bytes, or none".into(),
                        )
                    })?;
                    Some(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key.as_bytes()))
                }
            };
        }
        if let Some(file) = &self.voice_file {
            let text = std::fs::read_to_string(file)
                .map_err(|e| CliError::Usage(format!("--voice-file {}: {e}", file.display())))?;
            policy.voice = serde_json::from_str(&text)
                .map_err(|e| CliError::Usage(format!("--voice-file {}: {e}", file.display())))?;
        }
        for name in &self.display_name {
            match name.split_once('=').filter(|(l, _)| crate::domain::status::Locale::parse(l).is_some()) {
                Some((locale, "")) => drop(policy.voice.display_names.remove(locale)),
                Some((locale, name)) => drop(policy.voice.display_names.insert(locale.to_owned(), name.to_owned())),
                None => policy.voice.display_name = (name != "none").then(|| name.clone()),
            }
        }
        for raw in &self.prompts {
            set_entry(&mut policy.voice.prompts, "prompt", raw)?;
        }
        for raw in &self.audio {
            set_entry(&mut policy.voice.audio, "audio", raw)?;
        }
        crate::call::tenant_voice::validate(&policy.voice, prompts).map_err(|r| CliError::Usage(r.message))?;
        Ok(policy)
    }
}

#[derive(Debug, Subcommand)]
pub enum PromptsAction {
    /// Render the audio of every prompt for our own SIP trunk (8 kHz WAV), before serving
    Render(RenderArgs),
}

/// Flags of `prompts render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Where the 8 kHz prompt audio goes (and where the SIP trunk reads it)
    #[arg(long, env = "IVR_AUTH_PROMPT_AUDIO_DIR", default_value = "voice_prompts/audio")]
    pub audio_dir: std::path::PathBuf,
    /// Keep the files that exist; without it every text is rendered and every recording downloaded again
    #[arg(long)]
    pub only_missing: bool,
    /// Open JTalk's HTS voice for Japanese (scripts/install-tts.sh installs the default)
    #[arg(long, env = "IVR_AUTH_OPENJTALK_VOICE", default_value = "/usr/local/share/ivr-auth/mei_normal.htsvoice")]
    pub voice_ja: std::path::PathBuf,
    /// A short tone for every text instead of speech (to try a trunk before the voices are installed)
    #[arg(long)]
    pub tone: bool,
}

/// Renders the prompt audio of the server's prompts and of every tenant's
/// names and words in the database; returns the summary to print.
pub async fn prompts(db: &DbArgs, config: Option<&std::path::Path>, action: PromptsAction) -> Result<String, CliError> {
    let PromptsAction::Render(args) = action;
    let prompts = server_prompts(config)?;
    let store = store::open(&db.url(config)?, OpenOptions::new(Role::Cli)).await?;
    let tenants: Vec<_> = store.list_tenants().await?.into_iter().map(|t| t.policy.voice).collect();
    crate::install_tls_provider();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .user_agent(concat!("ivr-auth/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| CliError::Usage(format!("an HTTP client: {e}")))?;
    let options = RenderOptions {
        dir: args.audio_dir,
        only_missing: args.only_missing,
        voice_ja: args.voice_ja,
        tone: args.tone,
    };
    let summary = render(&options, &prompts, &tenants, &http).await.map_err(CliError::Usage)?;
    Ok(summary.to_string())
}

/// A tenant without its secrets.
fn public_json(t: &Tenant) -> serde_json::Value {
    json!({
        "tenant_id": t.id.to_string(),
        "name": t.name,
        "key_id": t.key_id,
        "created_at": t.created_at.to_rfc3339(),
        "policy": t.policy,
    })
}

/// A CLI failure, printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Usage(String),
}

impl DbArgs {
    fn url(&self, config: Option<&std::path::Path>) -> Result<crate::config::DatabaseUrl, CliError> {
        let from_file = ServeArgs::default().with_file(config)?.database_url;
        let raw = self.database_url.clone().or(from_file).unwrap_or_else(|| "sqlite://ivr-auth.db".into());
        Ok(parse_database_url(&raw)?)
    }
}

/// The prompts `serve` loads with the same config file and environment,
/// which a tenant's text message is measured with.
fn server_prompts(config: Option<&std::path::Path>) -> Result<Prompts, CliError> {
    let from_env = std::env::var_os("IVR_AUTH_VOICE_PROMPTS_DIR").map(std::path::PathBuf::from);
    let dir = from_env.or(ServeArgs::default().with_file(config)?.voice_prompts_dir);
    Prompts::load(&dir.unwrap_or_else(|| "voice_prompts".into())).map_err(CliError::Usage)
}

fn check_name(name: &str) -> Result<(), CliError> {
    let ok = !name.is_empty() && name.chars().count() <= 64 && !name.chars().any(is_hidden);
    ok.then_some(()).ok_or_else(|| CliError::Usage("tenant name must be 1 to 64 printable characters".into()))
}

fn credentials_json(t: &Tenant, api_key: &str) -> serde_json::Value {
    json!({
        "tenant_id": t.id.to_string(),
        "name": t.name,
        "api_key": api_key,
        "callback_secret": t.callback_secret.expose_secret(),
    })
}

/// An event about tenant `t`, written in the commit of the change it tells of.
fn tenant_event(kind: Kind, t: &Tenant, data: serde_json::Value) -> Vec<Record> {
    vec![Record { kind, tenant_id: Some(t.id), request_id: None, at: Utc::now(), data }]
}

/// The top-level settings whose stored value differs (names only: a value may be a key).
fn changed_settings(before: &str, after: &str) -> Vec<String> {
    let parse = |s: &str| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(s).unwrap_or_default();
    let (before, after) = (parse(before), parse(after));
    let mut names: Vec<String> =
        before.keys().chain(after.keys()).filter(|k| before.get(*k) != after.get(*k)).cloned().collect();
    names.sort();
    names.dedup();
    names
}

/// Runs a tenant command and returns what to print.
pub async fn tenant(db: &DbArgs, config: Option<&std::path::Path>, action: TenantAction) -> Result<String, CliError> {
    let store = store::open(&db.url(config)?, OpenOptions::new(Role::Cli)).await?;
    match action {
        TenantAction::Create { name } => {
            check_name(&name)?;
            let (tenant, key) = Tenant::create(name, Utc::now());
            let event = tenant_event(Kind::TenantCreated, &tenant, json!({ "name": tenant.name, "by": "cli" }));
            store.create_tenant_recorded(tenant.clone(), event).await.map_err(|e| match e {
                StoreError::Conflict(_) => CliError::Usage(format!("a tenant named {:?} exists", tenant.name)),
                other => other.into(),
            })?;
            Ok(credentials_json(&tenant, key.full.expose_secret()).to_string())
        }
        TenantAction::List => {
            let list: Vec<_> = store.list_tenants().await?.iter().map(public_json).collect();
            Ok(serde_json::Value::Array(list).to_string())
        }
        TenantAction::Set(args) => {
            let Some(mut tenant) = store.list_tenants().await?.into_iter().find(|t| t.name == args.name) else {
                return Err(CliError::Usage(format!("no tenant named {:?}", args.name)));
            };
            let before = tenant.policy.to_json();
            tenant.policy = args.apply(tenant.policy, &server_prompts(config)?)?;
            let changed = changed_settings(&before, &tenant.policy.to_json());
            let event = tenant_event(Kind::SettingsChanged, &tenant, json!({ "changed": changed, "by": "cli" }));
            if !store.set_tenant_policy_recorded(&tenant.name, &tenant.policy, event).await? {
                return Err(CliError::Usage(format!("tenant {:?} changed while setting; try again", args.name)));
            }
            Ok(public_json(&tenant).to_string())
        }
        TenantAction::RotateKey { name } => {
            let Some(mut tenant) = store.list_tenants().await?.into_iter().find(|t| t.name == name) else {
                return Err(CliError::Usage(format!("no tenant named {name:?}")));
            };
            let key = new_api_key();
            tenant.previous_callback_secret = Some(tenant.callback_secret.clone());
            tenant.previous_until = Some(Utc::now() + chrono::Duration::hours(24));
            tenant.callback_secret = new_callback_secret();
            tenant.key_id = key.key_id;
            tenant.key_hash = key.hash;
            // The key id is public (it only finds the row); the key itself is never recorded.
            let event = tenant_event(Kind::KeyRotated, &tenant, json!({ "key_id": tenant.key_id, "by": "cli" }));
            if !store.update_tenant_credentials_recorded(tenant.clone(), event).await? {
                return Err(CliError::Usage(format!("tenant {name:?} changed while rotating; try again")));
            }
            Ok(credentials_json(&tenant, key.full.expose_secret()).to_string())
        }
    }
}

/// Applies migrations and exits.
pub async fn migrate(db: &DbArgs, config: Option<&std::path::Path>) -> Result<String, CliError> {
    store::open(&db.url(config)?, OpenOptions::new(Role::Cli)).await?;
    Ok("database schema is up to date".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(f: impl FnOnce(&mut SetArgs)) -> Result<TenantPolicy, CliError> {
        let mut args = SetArgs { name: "acme".into(), ..SetArgs::default() };
        f(&mut args);
        args.apply(TenantPolicy::default(), &built_in())
    }

    fn built_in() -> Prompts {
        Prompts::load(std::path::Path::new("/nonexistent")).unwrap()
    }

    /// Issue 13, item 1: the number stored (and printed) is the one called.
    #[test]
    fn an_inbound_number_is_digits_only_and_stored_as_e164() {
        let policy = set(|a| a.inbound_number = Some("+81 3-1234-5678".into())).unwrap();
        assert_eq!(policy.inbound_number.as_deref(), Some("+81312345678"));
        let refused = set(|a| a.inbound_number = Some("+81 3-1234-567a".into())).unwrap_err().to_string();
        assert!(refused.starts_with("--inbound-number: may hold only digits"), "{refused}");
    }
}
