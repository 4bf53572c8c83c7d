//! The settings as given: `serve`'s flags and environment variables, merged with a TOML file.

use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;

use super::{ConfigError, bad};

/// Flags of `ivr-auth serve`; each also reads its environment variable.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// Listen address
    #[arg(long, env = "IVR_AUTH_LISTEN")]
    pub listen: Option<String>,
    /// sqlite://PATH or postgres://...
    #[arg(long, env = "IVR_AUTH_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Base URL the provider reaches (webhook URLs and signatures use it)
    #[arg(long, env = "IVR_AUTH_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// simulator or twilio
    #[arg(long, env = "IVR_AUTH_PROVIDER")]
    pub provider: Option<String>,
    #[arg(long, env = "TWILIO_ACCOUNT_SID")]
    pub twilio_account_sid: Option<String>,
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub twilio_auth_token: Option<String>,
    #[arg(long, env = "TWILIO_API_BASE")]
    pub twilio_api_base: Option<String>,
    /// From number of outbound calls (E.164)
    #[arg(long, env = "IVR_AUTH_CALLER_ID")]
    pub caller_id: Option<String>,
    /// The number users call in inbound mode (E.164), shared by the tenants without one of their own;
    /// unset: the simulator's +815010000000 with the simulator, none with twilio (inbound requests of
    /// tenants without a number answer 422)
    #[arg(long, env = "IVR_AUTH_INBOUND_NUMBER")]
    pub inbound_number: Option<String>,
    /// Region of national-format numbers
    #[arg(long, env = "IVR_AUTH_DEFAULT_REGION")]
    pub default_region: Option<String>,
    /// Allow callback URLs on loopback/private/link-local hosts (development only)
    #[arg(long, env = "IVR_AUTH_ALLOW_PRIVATE_CALLBACKS")]
    pub allow_private_callbacks: Option<bool>,
    /// Server secret for code hashes (≥ 32 characters); required with PostgreSQL, the same on every node
    #[arg(long, env = "IVR_AUTH_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// A file holding the server secret (instead of IVR_AUTH_SECRET_KEY): one key per line, the current first
    #[arg(long, env = "IVR_AUTH_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// An earlier secret key, still accepted for the requests it made (rotation)
    #[arg(long, env = "IVR_AUTH_SECRET_KEY_PREVIOUS", hide_env_values = true)]
    pub secret_key_previous: Option<String>,
    /// Seconds a claimed job stays its runner's before another server may take it over
    #[arg(long, env = "IVR_AUTH_JOB_LEASE_SECONDS")]
    pub job_lease_seconds: Option<u32>,
    /// Database connections this server opens at most (PostgreSQL; max_connections is shared by all nodes)
    #[arg(long, env = "IVR_AUTH_DATABASE_MAX_CONNECTIONS")]
    pub database_max_connections: Option<u32>,
    /// Seconds to wait between keypad digits
    #[arg(long, env = "IVR_AUTH_GATHER_TIMEOUT")]
    pub gather_timeout: Option<u32>,
    /// Seconds an outbound call rings
    #[arg(long, env = "IVR_AUTH_RING_TIMEOUT")]
    pub ring_timeout: Option<u32>,
    /// Site-API requests per second per tenant (0 = unlimited)
    #[arg(long, env = "IVR_AUTH_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
    /// Registrations per phone number per 10 minutes (0 = unlimited)
    #[arg(long, env = "IVR_AUTH_PHONE_RATE_LIMIT")]
    pub phone_rate_limit: Option<u32>,
    /// Registrations per phone number per 10 minutes by all tenants together (0 = unlimited)
    #[arg(long, env = "IVR_AUTH_PHONE_RATE_LIMIT_SERVER")]
    pub phone_rate_limit_server: Option<u32>,
    /// Outbound calls per minute a tenant may have placed, unless it has its own budget (0 = no budget)
    #[arg(long, env = "IVR_AUTH_TENANT_CALLS_PER_MINUTE")]
    pub tenant_calls_per_minute: Option<u32>,
    /// Outbound calls per 24 hours a tenant may have placed, unless it has its own budget (0 = no budget)
    #[arg(long, env = "IVR_AUTH_TENANT_CALLS_PER_DAY")]
    pub tenant_calls_per_day: Option<u32>,
    /// Days finished requests are kept
    #[arg(long, env = "IVR_AUTH_RETENTION_DAYS")]
    pub retention_days: Option<u32>,
    /// Folder with prompt overrides and audio files
    #[arg(long, env = "IVR_AUTH_VOICE_PROMPTS_DIR")]
    pub voice_prompts_dir: Option<PathBuf>,
    /// text or json
    #[arg(long, env = "IVR_AUTH_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Milliseconds of grace after a call completes before it fails without a result
    #[arg(long, env = "IVR_AUTH_CALL_END_GRACE_MS")]
    pub call_end_grace_ms: Option<u64>,
    /// Simulator: let prompts take as long as speaking them would (true), or no time (false, for tests)
    #[arg(long, env = "IVR_AUTH_SIMULATOR_PACING")]
    pub simulator_pacing: Option<bool>,
    /// Simulator: allow a non-loopback listen address (development machines shared on a network only)
    #[arg(long, env = "IVR_AUTH_SIMULATOR_ALLOW_PUBLIC")]
    pub simulator_allow_public: Option<bool>,
    /// Bearer token that /metrics requires (unset: /metrics is open)
    #[arg(long, env = "IVR_AUTH_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

macro_rules! merge {
    ($cli:ident, $file:ident, $($field:ident),+) => {
        ServeArgs { $($field: $cli.$field.or($file.$field)),+ }
    };
}

impl ServeArgs {
    /// Fills what flags and environment left open from the TOML file at `path`.
    pub fn with_file(self, path: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else { return Ok(self) };
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad("--config", format!("cannot read {}: {e}", path.display())))?;
        let file: ServeArgs = toml::from_str(&text).map_err(|e| bad("--config", toml_problem(path, &text, &e)))?;
        let cli = self;
        Ok(merge!(
            cli,
            file,
            listen,
            database_url,
            public_url,
            provider,
            twilio_account_sid,
            twilio_auth_token,
            twilio_api_base,
            caller_id,
            inbound_number,
            default_region,
            allow_private_callbacks,
            secret_key,
            secret_key_file,
            secret_key_previous,
            job_lease_seconds,
            database_max_connections,
            gather_timeout,
            ring_timeout,
            rate_limit,
            phone_rate_limit,
            phone_rate_limit_server,
            tenant_calls_per_minute,
            tenant_calls_per_day,
            retention_days,
            voice_prompts_dir,
            log_format,
            call_end_grace_ms,
            simulator_pacing,
            simulator_allow_public,
            metrics_token
        ))
    }
}

/// A TOML error as one line, `FILE:LINE:COLUMN: message`, without the
/// parser's source excerpt (the position is where an editor jumps to).
fn toml_problem(path: &std::path::Path, text: &str, e: &toml::de::Error) -> String {
    let at = e.span().map(|span| {
        let before = text.get(..span.start).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!(":{line}:{column}")
    });
    let message = e.message().trim();
    // For an unknown key serde lists all thirty known ones; name the key instead.
    let message = match message.split_once(", expected one of") {
        Some((unknown, _)) => format!("{unknown} (keys are the flags of `serve` with underscores, e.g. database_url)"),
        None => message.to_owned(),
    };
    let message = message.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
    format!("{}{}: {message}", path.display(), at.unwrap_or_default())
}

/// One line for a flag or environment value that the command line parser
/// refused (a number that is not one, a boolean other than true/false),
/// naming the environment variable and the flag. `None` for every other
/// parse error, which clap explains well enough itself.
pub fn value_error_line(err: &clap::Error, command: &clap::Command) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(err.kind(), ErrorKind::InvalidValue | ErrorKind::ValueValidation) {
        return None;
    }
    let Some(ContextValue::String(shown)) = err.get(ContextKind::InvalidArg) else { return None };
    // clap shows the argument as `--gather-timeout <GATHER_TIMEOUT>`.
    let long = shown.strip_prefix("--")?.split([' ', '=']).next()?;
    let arg = find_arg(command, long)?;
    let env = arg.get_env()?.to_string_lossy().into_owned();
    let problem = match err.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(valid)) => format!("must be one of {}", valid.join(", ")),
        _ => match std::error::Error::source(err) {
            Some(why) if why.is::<std::num::ParseIntError>() => "must be a whole number of 0 or more".to_owned(),
            Some(why) => why.to_string(),
            None => "is not valid".to_owned(),
        },
    };
    let value = match err.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(v)) if !arg.is_hide_env_values_set() => format!(" ({v:?})"),
        _ => String::new(),
    };
    Some(format!("configuration error: {env} (or --{long}){value}: {problem}"))
}

/// The argument `--long` of `command` or of any of its subcommands.
fn find_arg<'a>(command: &'a clap::Command, long: &str) -> Option<&'a clap::Arg> {
    command
        .get_arguments()
        .find(|a| a.get_long() == Some(long))
        .or_else(|| command.get_subcommands().find_map(|sub| find_arg(sub, long)))
}
