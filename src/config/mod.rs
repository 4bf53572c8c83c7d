//! Typed settings: defaults → TOML file → environment → flags, validated before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::domain::phone::{PhoneNumber, Region};

mod accounts;
mod args;
pub mod sip;

pub use accounts::{Account, AccountArgs, Credentials, Pacing};
pub use args::{ServeArgs, value_error_line};

/// Which telephony provider carries the calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// The built-in stand-in: calls ring on the dev phone page.
    Simulator,
    /// Twilio or a TwiML-compatible provider, over its REST API.
    Twilio,
    SignalWire,
    Telnyx,
    Vonage,
    /// Our own SIP trunk: ivr-auth is the telephone endpoint.
    Sip,
}

impl ProviderKind {
    /// A provider whose calls reach real telephones (anything but the simulator).
    pub fn is_real(self) -> bool {
        self != Self::Simulator
    }

    fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "simulator" => Self::Simulator,
            "twilio" => Self::Twilio,
            "signalwire" => Self::SignalWire,
            "telnyx" => Self::Telnyx,
            "vonage" => Self::Vonage,
            "sip" => Self::Sip,
            _ => return None,
        })
    }
}

pub use crate::store::DatabaseUrl;

/// The inbound number of the simulator when none is set (050-1000-0000):
/// nobody's, since the simulator places no real calls.
pub const SIMULATED_INBOUND_NUMBER: &str = "+815010000000";

/// The validated settings the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database: DatabaseUrl,
    /// `None`: `http://<bound address>`, known only once the socket is bound.
    pub public_url: Option<Url>,
    pub provider: ProviderKind,
    pub twilio_account_sid: Option<String>,
    pub twilio_auth_token: Option<SecretString>,
    pub twilio_api_base: Url,
    /// The provider accounts calls go out through and webhooks come from:
    /// the environment's one, or the `[[accounts]]` of the file. Empty with the simulator.
    pub accounts: Vec<Account>,
    /// `IVR_AUTH_CALLS_PER_SECOND` and `IVR_AUTH_MAX_CONCURRENT_CALLS`: the
    /// pace of the one account of the environment (or of the simulator).
    pub pace: Pacing,
    pub caller_id: Option<PhoneNumber>,
    pub inbound_number: Option<PhoneNumber>,
    pub default_region: Region,
    pub allow_private_callbacks: bool,
    /// Server secret keys for code hashes, the current one first, then
    /// earlier ones still accepted (from `IVR_AUTH_SECRET_KEY` and
    /// `IVR_AUTH_SECRET_KEY_PREVIOUS`, or the lines of `IVR_AUTH_SECRET_KEY_FILE`);
    /// empty: a SQLite server keeps its key in a file beside the database
    /// (see `secrets`). Never stored in the database.
    pub secret_keys: Vec<SecretString>,
    /// Seconds a claimed job stays its runner's before another server may take it.
    pub job_lease: Duration,
    /// Database connections this server opens at most (PostgreSQL).
    pub database_max_connections: u32,
    /// Seconds the Gather waits between digits.
    pub gather_timeout: u32,
    /// Seconds an outbound call rings before it counts as unanswered.
    pub ring_timeout: u32,
    /// Site-API requests per second per tenant (0 = unlimited).
    pub rate_limit: u32,
    /// Registrations per phone number per 10 minutes (0 = unlimited; default 10 with
    /// `twilio`, unlimited with the simulator, whose phones are not real).
    pub phone_rate_limit: u32,
    /// Registrations per phone number per 10 minutes by all tenants together
    /// (0 = unlimited; default 30 with `twilio`, unlimited with the simulator).
    pub phone_rate_limit_server: u32,
    /// Outbound calls a tenant may have placed per minute and per 24 hours
    /// (0 = no such budget), unless `ivr-auth tenant set` gave it its own.
    pub tenant_calls_per_minute: u32,
    pub tenant_calls_per_day: u32,
    /// Days finished requests are kept before the retention job deletes them.
    pub retention_days: u32,
    pub voice_prompts_dir: PathBuf,
    pub log_json: bool,
    /// How long after a `completed` status callback a call without a result
    /// is failed: the caller's last digits may still be on their way.
    pub call_end_grace: Duration,
    /// Simulator: prompts take as long as speaking them would (people need the time).
    pub simulator_pacing: bool,
    /// Audit events, funnel steps and timeline entries of a request's changes
    /// are written (always, but for measuring their cost).
    pub recording: bool,
    /// Let the simulator serve on an address other than loopback (it shows
    /// codes and numbers to anyone who can reach it).
    pub simulator_public: bool,
    /// When set, `/metrics` answers only requests with `Authorization: Bearer <token>`.
    pub metrics_token: Option<SecretString>,
    /// When set, signs an operator into the console (every tenant); at least 32 characters.
    pub operator_token: Option<SecretString>,
}

/// A setting that is missing, malformed or contradicts another: one line naming it.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {setting}: {problem}")]
pub struct ConfigError {
    pub setting: std::borrow::Cow<'static, str>,
    pub problem: String,
}

impl ConfigError {
    /// An error about a setting whose name is made at run time (an account's key).
    pub fn named(setting: std::borrow::Cow<'static, str>, problem: impl Into<String>) -> Self {
        Self { setting, problem: problem.into() }
    }
}

fn bad(setting: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError { setting: setting.into(), problem: problem.into() }
}

/// Parses a database URL: `sqlite://PATH` (relative or `sqlite:///abs`) or `postgres://…`.
pub fn parse_database_url(raw: &str) -> Result<DatabaseUrl, ConfigError> {
    DatabaseUrl::parse(raw).map_err(|message| bad("IVR_AUTH_DATABASE_URL", message))
}

/// The default region, the caller ID and the inbound number (with the
/// simulator, inbound mode works out of the box, on a simulated number).
fn numbers(
    a: &ServeArgs,
    provider: ProviderKind,
) -> Result<(Region, Option<PhoneNumber>, Option<PhoneNumber>), ConfigError> {
    let region_raw = a.default_region.as_deref().unwrap_or("JP");
    let default_region = Region::parse(region_raw)
        .ok_or_else(|| bad("IVR_AUTH_DEFAULT_REGION", "must be a two-letter region code like JP"))?;
    let caller_id =
        a.caller_id.as_deref().map(|n| parse_number("IVR_AUTH_CALLER_ID", n, default_region)).transpose()?;
    let inbound_number = a
        .inbound_number
        .as_deref()
        .map(|n| parse_number("IVR_AUTH_INBOUND_NUMBER", n, default_region))
        .transpose()?
        .or_else(|| {
            (provider == ProviderKind::Simulator).then(|| PhoneNumber::from_stored(SIMULATED_INBOUND_NUMBER.into()))
        });
    Ok((default_region, caller_id, inbound_number))
}

fn parse_number(setting: &'static str, raw: &str, region: Region) -> Result<PhoneNumber, ConfigError> {
    PhoneNumber::parse(raw, region).map_err(|e| bad(setting, format!("{e}")))
}

fn parse_base_url(setting: &'static str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw.trim_end_matches('/')).map_err(|e| bad(setting, e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(bad(setting, "must be an http:// or https:// URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(setting, "must not have a query or fragment"));
    }
    Ok(url)
}

fn in_range(setting: &'static str, value: u32, lo: u32, hi: u32) -> Result<u32, ConfigError> {
    if (lo..=hi).contains(&value) { Ok(value) } else { Err(bad(setting, format!("must be between {lo} and {hi}"))) }
}

/// The secret keys from their settings or the key file (see `secrets`):
/// the current one first, each checked.
fn secret_keys(
    value: Option<String>,
    file: Option<&std::path::Path>,
    previous: Option<String>,
) -> Result<Vec<SecretString>, ConfigError> {
    let (mut keys, setting) = match (value, file) {
        (Some(_), Some(_)) => {
            return Err(bad("IVR_AUTH_SECRET_KEY_FILE", "set either IVR_AUTH_SECRET_KEY or IVR_AUTH_SECRET_KEY_FILE"));
        }
        (Some(k), None) => (vec![k], "IVR_AUTH_SECRET_KEY"),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| bad("IVR_AUTH_SECRET_KEY_FILE", format!("cannot read {}: {e}", path.display())))?;
            let keys = crate::secrets::parse_key_file(&text);
            if keys.is_empty() {
                return Err(bad("IVR_AUTH_SECRET_KEY_FILE", format!("{} holds no key", path.display())));
            }
            (keys, "IVR_AUTH_SECRET_KEY_FILE")
        }
        (None, None) if previous.is_some() => {
            return Err(bad(
                "IVR_AUTH_SECRET_KEY_PREVIOUS",
                "an earlier key needs a current one (IVR_AUTH_SECRET_KEY)",
            ));
        }
        (None, None) => return Ok(Vec::new()),
    };
    for key in &keys {
        crate::secrets::material(key).map_err(|message| bad(setting, message))?;
    }
    if let Some(p) = previous {
        crate::secrets::material(&p).map_err(|message| bad("IVR_AUTH_SECRET_KEY_PREVIOUS", message))?;
        keys.push(p);
    }
    Ok(keys.into_iter().map(SecretString::from).collect())
}

impl Settings {
    /// The embedded defaults, as `ivr-auth serve` runs with no settings at all.
    pub fn defaults() -> Self {
        Self::from_args(ServeArgs::default()).unwrap_or_else(|_| unreachable!("defaults are valid"))
    }

    /// Validates merged arguments into settings, refusing anything half-configured.
    pub fn from_args(a: ServeArgs) -> Result<Self, ConfigError> {
        let listen_raw = a.listen.as_deref().unwrap_or("127.0.0.1:8080");
        let listen: SocketAddr =
            listen_raw.parse().map_err(|_| bad("IVR_AUTH_LISTEN", "must be host:port, e.g. 127.0.0.1:8080"))?;
        let database = parse_database_url(a.database_url.as_deref().unwrap_or("sqlite://ivr-auth.db"))?;
        let public_url = a.public_url.as_deref().map(|u| parse_base_url("IVR_AUTH_PUBLIC_URL", u)).transpose()?;
        // With [[accounts]] in the file and no IVR_AUTH_PROVIDER, the first account's provider.
        let first_table = a.accounts.as_ref().and_then(|t| t.first()).and_then(|t| t.provider.as_deref());
        let provider = match ProviderKind::parse(a.provider.as_deref().or(first_table).unwrap_or("simulator")) {
            Some(kind) => kind,
            None => return Err(bad("IVR_AUTH_PROVIDER", "must be simulator, twilio, signalwire, telnyx or vonage")),
        };
        let (default_region, caller_id, inbound_number) = numbers(&a, provider)?;
        let twilio_api_base =
            parse_base_url("TWILIO_API_BASE", a.twilio_api_base.as_deref().unwrap_or("https://api.twilio.com"))?;
        let accounts = a.accounts(provider, default_region)?;
        // Unset, the server's inbound number is the first one an account lists.
        let inbound_number =
            inbound_number.or_else(|| accounts.iter().find_map(|acct| acct.inbound_numbers.first().cloned()));
        let secret_keys =
            secret_keys(a.secret_key.clone(), a.secret_key_file.as_deref(), a.secret_key_previous.clone())?;
        if secret_keys.is_empty() && matches!(database, DatabaseUrl::Postgres(_)) {
            return Err(bad(
                "IVR_AUTH_SECRET_KEY",
                "required with PostgreSQL (or IVR_AUTH_SECRET_KEY_FILE): every node must hash codes with the same key",
            ));
        }
        let log_json = match a.log_format.as_deref().unwrap_or("text") {
            "text" => false,
            "json" => true,
            _ => return Err(bad("IVR_AUTH_LOG_FORMAT", "must be text or json")),
        };
        let settings = Self {
            listen,
            database,
            public_url,
            provider,
            twilio_account_sid: a.twilio_account_sid.clone().filter(|s| !s.is_empty()),
            twilio_auth_token: a.twilio_auth_token.clone().filter(|s| !s.is_empty()).map(SecretString::from),
            twilio_api_base,
            accounts,
            pace: Pacing { calls_per_second: a.calls_per_second, max_concurrent_calls: a.max_concurrent_calls },
            caller_id,
            inbound_number,
            default_region,
            allow_private_callbacks: a.allow_private_callbacks.unwrap_or(false),
            secret_keys,
            job_lease: Duration::from_secs(u64::from(in_range(
                "IVR_AUTH_JOB_LEASE_SECONDS",
                a.job_lease_seconds.unwrap_or(30),
                2,
                300,
            )?)),
            database_max_connections: in_range(
                "IVR_AUTH_DATABASE_MAX_CONNECTIONS",
                a.database_max_connections.unwrap_or(8),
                2,
                100,
            )?,
            gather_timeout: in_range("IVR_AUTH_GATHER_TIMEOUT", a.gather_timeout.unwrap_or(10), 1, 60)?,
            ring_timeout: in_range("IVR_AUTH_RING_TIMEOUT", a.ring_timeout.unwrap_or(30), 5, 600)?,
            rate_limit: a.rate_limit.unwrap_or(50),
            // Simulated phones cannot be pestered; real ones can.
            phone_rate_limit: a.phone_rate_limit.unwrap_or(if provider.is_real() { 10 } else { 0 }),
            phone_rate_limit_server: a.phone_rate_limit_server.unwrap_or(if provider.is_real() { 30 } else { 0 }),
            tenant_calls_per_minute: a.tenant_calls_per_minute.unwrap_or(600),
            tenant_calls_per_day: a.tenant_calls_per_day.unwrap_or(100_000),
            retention_days: in_range("IVR_AUTH_RETENTION_DAYS", a.retention_days.unwrap_or(30), 1, 3650)?,
            voice_prompts_dir: a.voice_prompts_dir.unwrap_or_else(|| PathBuf::from("voice_prompts")),
            log_json,
            call_end_grace: Duration::from_millis(a.call_end_grace_ms.unwrap_or(3000).min(60_000)),
            simulator_pacing: a.simulator_pacing.unwrap_or(true),
            recording: a.bench_recording.unwrap_or(true),
            simulator_public: a.simulator_allow_public.unwrap_or(false),
            metrics_token: match a.metrics_token.filter(|t| !t.is_empty()) {
                Some(t) if t.len() < 16 => return Err(bad("IVR_AUTH_METRICS_TOKEN", "must be at least 16 characters")),
                other => other.map(SecretString::from),
            },
            operator_token: match a.operator_token.filter(|t| !t.is_empty()) {
                Some(t) if t.len() < 32 => {
                    return Err(bad("IVR_AUTH_OPERATOR_TOKEN", "must be at least 32 characters"));
                }
                other => other.map(SecretString::from),
            },
        };
        settings.check_simulator()?;
        Ok(settings)
    }

    /// Warnings about the URL the provider must reach: with `twilio`, a
    /// loopback or private address is out of its reach (every call would fail
    /// at its first webhook), and plain `http://` sends webhooks in clear.
    /// Our own SIP trunk calls its own node: no provider needs to reach it.
    pub fn public_url_warnings(&self) -> Vec<String> {
        if !self.provider.is_real() || self.provider == ProviderKind::Sip {
            return Vec::new();
        }
        let (url, what) = match &self.public_url {
            Some(url) => (url.to_string(), "IVR_AUTH_PUBLIC_URL"),
            None => (format!("http://{}", self.listen), "IVR_AUTH_PUBLIC_URL is not set, so webhook URLs use"),
        };
        let url = url.trim_end_matches('/').to_owned();
        let host = Url::parse(&url).ok().and_then(|u| u.host().map(|h| h.to_owned()));
        if host.as_ref().is_some_and(unreachable_host) {
            return vec![format!(
                "{what} {url}, which the provider cannot reach (a loopback or private address): its webhooks \
                 will fail and calls will end at once; set IVR_AUTH_PUBLIC_URL to this server's public https:// URL"
            )];
        }
        if url.starts_with("http://") {
            return vec![format!(
                "{what} {url}: provider webhooks should use https:// (a TLS reverse proxy in front is fine), or \
                 calls' digits and signatures cross the network in clear; set IVR_AUTH_PUBLIC_URL to an https:// URL"
            )];
        }
        Vec::new()
    }

    /// The simulator shows typed codes, full numbers and any tenant's status
    /// without authentication: it stays on loopback unless explicitly allowed.
    fn check_simulator(&self) -> Result<(), ConfigError> {
        if self.provider == ProviderKind::Simulator && !self.listen.ip().is_loopback() && !self.simulator_public {
            return Err(bad(
                "IVR_AUTH_LISTEN",
                format!(
                    "{} is not a loopback address, and the simulator provider exposes codes and numbers to anyone \
                     who can reach it; listen on 127.0.0.1, or set IVR_AUTH_SIMULATOR_ALLOW_PUBLIC=true for a \
                     development machine on a trusted network",
                    self.listen
                ),
            ));
        }
        Ok(())
    }

    /// The settings the audit trail records at start: an allowlist of
    /// values that are not secret; of each secret only whether it is set
    /// (never its value), of the database only its kind.
    pub fn audit_summary(&self) -> serde_json::Value {
        let set = |s: &Option<SecretString>| s.is_some();
        serde_json::json!({
            "listen": self.listen.to_string(),
            "database": match self.database { DatabaseUrl::Sqlite(_) => "sqlite", DatabaseUrl::Postgres(_) => "postgres" },
            "public_url": self.public_url.as_ref().map(Url::as_str),
            "provider": format!("{:?}", self.provider).to_lowercase(),
            "accounts": self.accounts.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
            "calls_per_second": self.pace.calls_per_second,
            "max_concurrent_calls": self.pace.max_concurrent_calls,
            "caller_id": self.caller_id.as_ref().map(|n| crate::domain::phone::mask_numbers(n.as_str())),
            "inbound_number": self.inbound_number.as_ref().map(PhoneNumber::as_str),
            "default_region": self.default_region.to_string(),
            "allow_private_callbacks": self.allow_private_callbacks,
            "secret_keys": if self.secret_keys.is_empty() { "key file" } else { "set" },
            "twilio_auth_token": if set(&self.twilio_auth_token) { "set" } else { "unset" },
            "metrics_token": if set(&self.metrics_token) { "set" } else { "unset" },
            "job_lease_seconds": self.job_lease.as_secs(),
            "gather_timeout": self.gather_timeout,
            "ring_timeout": self.ring_timeout,
            "rate_limit": self.rate_limit,
            "phone_rate_limit": self.phone_rate_limit,
            "phone_rate_limit_server": self.phone_rate_limit_server,
            "tenant_calls_per_minute": self.tenant_calls_per_minute,
            "tenant_calls_per_day": self.tenant_calls_per_day,
            "retention_days": self.retention_days,
            "recording": self.recording,
        })
    }

    /// Whether outbound calls can be placed with these settings.
    pub fn outbound_enabled(&self) -> bool {
        self.provider == ProviderKind::Simulator
            || self.caller_id.is_some()
            || self.accounts.iter().any(|a| a.caller_id.is_some())
    }
}

/// A host that a provider on the internet cannot call back: loopback,
/// private, link-local or unspecified addresses, and `localhost`.
fn unreachable_host(host: &url::Host) -> bool {
    match host {
        url::Host::Domain(name) => {
            let name = name.to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        url::Host::Ipv4(ip) => ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified(),
        url::Host::Ipv6(ip) => {
            ip.is_loopback() || ip.is_unspecified() || ip.is_unique_local() || ip.is_unicast_link_local()
        }
    }
}

/// Environment variables that look like ours but are not: most likely typos.
pub fn unknown_env_vars() -> Vec<String> {
    // Every setting of `serve` names its variable; the log filter and the config file are read elsewhere.
    let command = <ServeArgs as clap::Args>::augment_args(clap::Command::new("serve"));
    let mut known: Vec<String> =
        command.get_arguments().filter_map(|a| a.get_env()).map(|e| e.to_string_lossy().into_owned()).collect();
    // `prompts render` reads the Japanese voice's path; an operator sets it beside the server's.
    known.extend(["IVR_AUTH_LOG", "IVR_AUTH_CONFIG", "IVR_AUTH_OPENJTALK_VOICE"].map(str::to_owned));
    unknown_among(std::env::vars().map(|(k, _)| k), &known)
}

fn unknown_among(names: impl Iterator<Item = String>, known: &[String]) -> Vec<String> {
    names.filter(|k| k.starts_with("IVR_AUTH_") && !known.contains(k)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_s_variable_is_known_and_a_typo_is_not() {
        let command = <ServeArgs as clap::Args>::augment_args(clap::Command::new("serve"));
        let known: Vec<String> =
            command.get_arguments().filter_map(|a| a.get_env()).map(|e| e.to_string_lossy().into_owned()).collect();
        assert!(known.len() >= 28, "{known:?}");
        for name in ["IVR_AUTH_TENANT_CALLS_PER_DAY", "IVR_AUTH_METRICS_TOKEN", "IVR_AUTH_PHONE_RATE_LIMIT_SERVER"] {
            assert!(known.iter().any(|k| k == name), "{name}");
        }
        let seen = ["IVR_AUTH_LISTEN", "IVR_AUTH_LISTN", "PATH"].map(String::from);
        assert_eq!(unknown_among(seen.into_iter(), &known), ["IVR_AUTH_LISTN"]);
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = Settings::defaults();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.database, DatabaseUrl::Sqlite("ivr-auth.db".into()));
        assert_eq!(s.provider, ProviderKind::Simulator);
        // Contract section 8: inbound mode works with the simulator without IVR_AUTH_INBOUND_NUMBER.
        assert_eq!(s.inbound_number.as_ref().map(PhoneNumber::as_str), Some(SIMULATED_INBOUND_NUMBER));
        assert_eq!(s.twilio_api_base.as_str(), "https://api.twilio.com/");
        assert!(!s.allow_private_callbacks);
        assert!(s.public_url.is_none());
    }

    #[test]
    fn twilio_without_credentials_names_every_missing_setting_in_one_line() {
        let args = ServeArgs { provider: Some("twilio".into()), ..Default::default() };
        let err = Settings::from_args(args).unwrap_err();
        assert_eq!(err.setting, "IVR_AUTH_PROVIDER");
        let line = err.to_string();
        for name in ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "IVR_AUTH_CALLER_ID"] {
            assert!(line.contains(name), "{name} is named: {line}");
        }
        assert!(!line.contains('\n'), "one line: {line}");
        // Only what is missing is named.
        let args = ServeArgs {
            provider: Some("twilio".into()),
            twilio_account_sid: Some("AC1".into()),
            inbound_number: Some("+815011112222".into()),
            ..Default::default()
        };
        let line = Settings::from_args(args).unwrap_err().to_string();
        assert!(line.contains("twilio needs TWILIO_AUTH_TOKEN, which is not set"), "{line}");
        assert!(!line.contains("TWILIO_ACCOUNT_SID") && !line.contains("IVR_AUTH_CALLER_ID"), "{line}");
    }

    fn twilio(public_url: Option<&str>, listen: &str) -> Settings {
        Settings::from_args(ServeArgs {
            listen: Some(listen.into()),
            public_url: public_url.map(Into::into),
            provider: Some("twilio".into()),
            twilio_account_sid: Some("AC1".into()),
            twilio_auth_token: Some("t".into()),
            caller_id: Some("+815011112222".into()),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn twilio_is_warned_about_a_public_url_it_cannot_reach_or_that_is_not_https() {
        let unreachable = [
            twilio(None, "127.0.0.1:8080"),
            twilio(Some("http://localhost:8080"), "127.0.0.1:8080"),
            twilio(Some("https://192.168.1.20"), "0.0.0.0:8080"),
            twilio(None, "0.0.0.0:8080"),
        ];
        for s in unreachable {
            let warnings = s.public_url_warnings();
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            assert!(warnings[0].contains("cannot reach"), "{}", warnings[0]);
            assert!(warnings[0].contains("IVR_AUTH_PUBLIC_URL"), "{}", warnings[0]);
        }
        let plain = twilio(Some("http://ivr.example.com"), "127.0.0.1:8080").public_url_warnings();
        assert_eq!(plain.len(), 1, "{plain:?}");
        assert!(plain[0].contains("should use https://"), "{}", plain[0]);
        assert!(twilio(Some("https://ivr.example.com"), "127.0.0.1:8080").public_url_warnings().is_empty());
        assert!(Settings::defaults().public_url_warnings().is_empty(), "the simulator needs no public URL");
        let sip = ServeArgs {
            provider: Some("sip".into()),
            inbound_number: Some("+81312345678".into()),
            sip_allowed_peers: Some("127.0.0.1".into()),
            ..Default::default()
        };
        let sip = Settings::from_args(sip).unwrap();
        assert!(sip.public_url_warnings().is_empty(), "our own trunk's engine calls its own node");
    }

    #[test]
    fn a_bad_number_or_boolean_names_its_environment_variable_in_one_line() {
        let command = <ServeArgs as clap::Args>::augment_args(clap::Command::new("serve"));
        let line = |args: &[&str]| {
            let err = command.clone().try_get_matches_from(args).unwrap_err();
            value_error_line(&err, &command)
        };
        let number = line(&["serve", "--gather-timeout", "abc"]).unwrap();
        assert_eq!(
            number,
            "configuration error: IVR_AUTH_GATHER_TIMEOUT (or --gather-timeout) (\"abc\"): must be a whole number of 0 or more"
        );
        let boolean = line(&["serve", "--allow-private-callbacks", "yes"]).unwrap();
        assert!(boolean.starts_with("configuration error: IVR_AUTH_ALLOW_PRIVATE_CALLBACKS"), "{boolean}");
        assert!(boolean.contains("true") && boolean.contains("false") && !boolean.contains('\n'), "{boolean}");
        assert_eq!(line(&["serve", "--no-such-flag"]), None, "other errors are clap's to explain");
    }

    #[test]
    fn bad_values_name_their_setting() {
        let cases: [(ServeArgs, &str); 7] = [
            (ServeArgs { listen: Some("nope".into()), ..Default::default() }, "IVR_AUTH_LISTEN"),
            (ServeArgs { database_url: Some("mysql://x".into()), ..Default::default() }, "IVR_AUTH_DATABASE_URL"),
            (ServeArgs { public_url: Some("ftp://x".into()), ..Default::default() }, "IVR_AUTH_PUBLIC_URL"),
            (ServeArgs { inbound_number: Some("12".into()), ..Default::default() }, "IVR_AUTH_INBOUND_NUMBER"),
            (ServeArgs { secret_key: Some("short".into()), ..Default::default() }, "IVR_AUTH_SECRET_KEY"),
            (
                ServeArgs { secret_key_previous: Some("k".repeat(32)), ..Default::default() },
                "IVR_AUTH_SECRET_KEY_PREVIOUS",
            ),
            (
                ServeArgs {
                    secret_key: Some("k".repeat(32)),
                    secret_key_previous: Some("hex:00".into()),
                    ..Default::default()
                },
                "IVR_AUTH_SECRET_KEY_PREVIOUS",
            ),
        ];
        for (args, setting) in cases {
            assert_eq!(Settings::from_args(args).unwrap_err().setting, setting);
        }
    }

    #[test]
    fn flags_and_env_win_over_the_file_which_wins_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ivr.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\ndatabase_url = \"sqlite://from-file.db\"\n").unwrap();
        let cli = ServeArgs { listen: Some("127.0.0.1:9100".into()), ..Default::default() };
        let s = Settings::from_args(cli.with_file(Some(&file)).unwrap()).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:9100");
        assert_eq!(s.database, DatabaseUrl::Sqlite("from-file.db".into()));
        assert_eq!(s.gather_timeout, 10);
        std::fs::write(&file, "listen = 5\n").unwrap();
        let err = ServeArgs::default().with_file(Some(&file)).unwrap_err();
        assert_eq!(err.setting, "--config");
        assert!(!err.to_string().contains('\n'), "one line: {err}");
    }

    #[test]
    fn a_toml_error_names_the_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ivr.toml");
        let at = |text: &str| {
            std::fs::write(&file, text).unwrap();
            let err = ServeArgs::default().with_file(Some(&file)).unwrap_err().to_string();
            assert!(!err.contains('\n'), "one line: {err}");
            err
        };
        let prefix = format!("configuration error: --config: {}:", file.display());
        // A wrong type on line 2, a key that does not exist at the start of line 3,
        // and a string left open on line 3.
        let wrong_type = at("listen = \"127.0.0.1:9000\"\ngather_timeout = \"ten\"\n");
        assert!(wrong_type.starts_with(&format!("{prefix}2:18: ")), "{wrong_type}");
        let unknown = at("# settings\nlisten = \"127.0.0.1:9000\"\nlistn = \"x\"\n");
        assert!(unknown.starts_with(&format!("{prefix}3:1: unknown field `listn`")), "{unknown}");
        assert!(!unknown.contains("expected one of"), "no list of thirty keys: {unknown}");
        let open = at("\n\nlisten = \"127.0.0.1\n");
        assert!(open.starts_with(&format!("{prefix}3:")), "{open}");
    }

    #[test]
    fn the_simulator_stays_on_loopback_unless_allowed() {
        let public = ServeArgs { listen: Some("0.0.0.0:8080".into()), ..Default::default() };
        assert_eq!(Settings::from_args(public).unwrap_err().setting, "IVR_AUTH_LISTEN");
        let allowed =
            ServeArgs { listen: Some("0.0.0.0:8080".into()), simulator_allow_public: Some(true), ..Default::default() };
        assert!(Settings::from_args(allowed).is_ok());
        let twilio = ServeArgs {
            listen: Some("0.0.0.0:8080".into()),
            provider: Some("twilio".into()),
            twilio_account_sid: Some("AC1".into()),
            twilio_auth_token: Some("t".into()),
            caller_id: Some("+815011112222".into()),
            ..Default::default()
        };
        assert!(Settings::from_args(twilio).is_ok(), "only the simulator is held to loopback");
    }

    #[test]
    fn secrets_are_not_printed() {
        let args = ServeArgs { twilio_auth_token: Some("tok-very-secret".into()), ..Default::default() };
        let s = Settings::from_args(args).unwrap();
        assert!(!format!("{s:?}").contains("tok-very-secret"));
    }
}
