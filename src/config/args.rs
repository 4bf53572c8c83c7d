//! The settings as given: `serve`'s flags and environment variables, merged with a TOML file.

use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;

use super::accounts::AccountArgs;
use super::{ConfigError, bad};

/// Flags of `ivr-auth serve`; each also reads its environment variable.
#[derive(Debug, Default, Clone, Args, Deserialize)]
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
    /// simulator, twilio, signalwire, telnyx or vonage (unset with [[accounts]] in the file: theirs)
    #[arg(long, env = "IVR_AUTH_PROVIDER")]
    pub provider: Option<String>,
    #[arg(long, env = "TWILIO_ACCOUNT_SID")]
    pub twilio_account_sid: Option<String>,
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub twilio_auth_token: Option<String>,
    #[arg(long, env = "TWILIO_AUTH_TOKEN_FILE")]
    pub twilio_auth_token_file: Option<PathBuf>,
    #[arg(long, env = "TWILIO_API_BASE")]
    pub twilio_api_base: Option<String>,
    /// SignalWire Space URL (https://example.signalwire.com)
    #[arg(long, env = "SIGNALWIRE_SPACE_URL")]
    pub signalwire_space_url: Option<String>,
    #[arg(long, env = "SIGNALWIRE_PROJECT_ID")]
    pub signalwire_project_id: Option<String>,
    #[arg(long, env = "SIGNALWIRE_API_TOKEN", hide_env_values = true)]
    pub signalwire_api_token: Option<String>,
    #[arg(long, env = "SIGNALWIRE_API_TOKEN_FILE")]
    pub signalwire_api_token_file: Option<PathBuf>,
    /// The project's signing key: it signs SignalWire's webhooks
    #[arg(long, env = "SIGNALWIRE_SIGNING_KEY", hide_env_values = true)]
    pub signalwire_signing_key: Option<String>,
    #[arg(long, env = "SIGNALWIRE_SIGNING_KEY_FILE")]
    pub signalwire_signing_key_file: Option<PathBuf>,
    /// Default: the Space URL
    #[arg(long, env = "SIGNALWIRE_API_BASE")]
    pub signalwire_api_base: Option<String>,
    #[arg(long, env = "TELNYX_API_KEY", hide_env_values = true)]
    pub telnyx_api_key: Option<String>,
    #[arg(long, env = "TELNYX_API_KEY_FILE")]
    pub telnyx_api_key_file: Option<PathBuf>,
    #[arg(long, env = "TELNYX_ACCOUNT_SID")]
    pub telnyx_account_sid: Option<String>,
    /// The TeXML application
    #[arg(long, env = "TELNYX_APPLICATION_SID")]
    pub telnyx_application_sid: Option<String>,
    /// Base64 Ed25519 public key that verifies Telnyx's webhooks
    #[arg(long, env = "TELNYX_PUBLIC_KEY")]
    pub telnyx_public_key: Option<String>,
    #[arg(long, env = "TELNYX_PUBLIC_KEY_FILE")]
    pub telnyx_public_key_file: Option<PathBuf>,
    #[arg(long, env = "TELNYX_API_BASE")]
    pub telnyx_api_base: Option<String>,
    #[arg(long, env = "VONAGE_APPLICATION_ID")]
    pub vonage_application_id: Option<String>,
    /// The application's private key (PEM): signs API requests (RS256)
    #[arg(long, env = "VONAGE_PRIVATE_KEY_FILE")]
    pub vonage_private_key_file: Option<PathBuf>,
    /// The signature secret: signs Vonage's webhooks (HS256)
    #[arg(long, env = "VONAGE_SIGNATURE_SECRET", hide_env_values = true)]
    pub vonage_signature_secret: Option<String>,
    #[arg(long, env = "VONAGE_SIGNATURE_SECRET_FILE")]
    pub vonage_signature_secret_file: Option<PathBuf>,
    #[arg(long, env = "VONAGE_API_BASE")]
    pub vonage_api_base: Option<String>,
    /// Our own SIP trunk: the address SIP is taken on, over UDP and TCP (default 127.0.0.1:5060)
    #[arg(long, env = "IVR_AUTH_SIP_LISTEN")]
    pub sip_listen: Option<String>,
    /// The SIP URI outbound INVITEs go to, e.g. sip:sbc.example:5060;transport=udp
    #[arg(long, env = "IVR_AUTH_SIP_TRUNK")]
    pub sip_trunk: Option<String>,
    /// Digest username, answered when the trunk challenges an INVITE
    #[arg(long, env = "IVR_AUTH_SIP_USERNAME")]
    pub sip_username: Option<String>,
    #[arg(long, env = "IVR_AUTH_SIP_PASSWORD", hide_env_values = true)]
    pub sip_password: Option<String>,
    #[arg(long, env = "IVR_AUTH_SIP_PASSWORD_FILE")]
    pub sip_password_file: Option<PathBuf>,
    /// Addresses or CIDR blocks whose INVITEs are taken, comma-separated (default: the trunk's address)
    #[arg(long, env = "IVR_AUTH_SIP_ALLOWED_PEERS")]
    pub sip_allowed_peers: Option<String>,
    /// The address written in Contact and SDP (default: the listen address)
    #[arg(long, env = "IVR_AUTH_SIP_PUBLIC_ADDRESS")]
    pub sip_public_address: Option<String>,
    /// UDP ports for call media, A-B (default 20000-20999)
    #[arg(long, env = "IVR_AUTH_RTP_PORTS")]
    pub rtp_ports: Option<String>,
    /// Rendered or recorded prompt audio for SIP calls (default voice_prompts/audio)
    #[arg(long, env = "IVR_AUTH_PROMPT_AUDIO_DIR")]
    pub prompt_audio_dir: Option<String>,
    /// Milliseconds an inbound SIP call rings (180 Ringing) before it is answered (default 0, at most 10000)
    #[arg(long, env = "IVR_AUTH_SIP_ANSWER_DELAY_MS")]
    pub sip_answer_delay_ms: Option<u32>,
    /// Calls the one account of the environment starts per second, across all nodes (unset: not paced)
    #[arg(long, env = "IVR_AUTH_CALLS_PER_SECOND")]
    pub calls_per_second: Option<f64>,
    /// Calls the one account of the environment may have up at once, across all nodes (unset: no cap)
    #[arg(long, env = "IVR_AUTH_MAX_CONCURRENT_CALLS")]
    pub max_concurrent_calls: Option<u32>,
    /// Several provider accounts (only in the TOML file: `[[accounts]]`)
    #[arg(skip)]
    pub accounts: Option<Vec<AccountArgs>>,
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
    /// Measuring only: `false` writes no audit event, funnel step or timeline
    /// entry for a request's changes, to measure what recording costs
    /// (BENCHMARKS.md). Never for a server in use.
    #[arg(long, env = "IVR_AUTH_BENCH_RECORDING", hide = true)]
    pub bench_recording: Option<bool>,
    /// Simulator: allow a non-loopback listen address (development machines shared on a network only)
    #[arg(long, env = "IVR_AUTH_SIMULATOR_ALLOW_PUBLIC")]
    pub simulator_allow_public: Option<bool>,
    /// Bearer token that /metrics requires (unset: /metrics is open)
    #[arg(long, env = "IVR_AUTH_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Token that signs an operator into the console, seeing every tenant (unset: no operator sign-in)
    #[arg(long, env = "IVR_AUTH_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<String>,
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
            twilio_auth_token_file,
            twilio_api_base,
            signalwire_space_url,
            signalwire_project_id,
            signalwire_api_token,
            signalwire_api_token_file,
            signalwire_signing_key,
            signalwire_signing_key_file,
            signalwire_api_base,
            telnyx_api_key,
            telnyx_api_key_file,
            telnyx_account_sid,
            telnyx_application_sid,
            telnyx_public_key,
            telnyx_public_key_file,
            telnyx_api_base,
            vonage_application_id,
            vonage_private_key_file,
            vonage_signature_secret,
            vonage_signature_secret_file,
            vonage_api_base,
            sip_listen,
            sip_trunk,
            sip_username,
            sip_password,
            sip_password_file,
            sip_allowed_peers,
            sip_public_address,
            rtp_ports,
            prompt_audio_dir,
            sip_answer_delay_ms,
            calls_per_second,
            max_concurrent_calls,
            accounts,
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
            bench_recording,
            simulator_allow_public,
            metrics_token,
            operator_token
        ))
    }
}

impl ServeArgs {
    /// The provider accounts: the file's `[[accounts]]`, else the one the
    /// environment's variables describe for `provider` (none for the simulator).
    pub(super) fn accounts(
        &self,
        provider: super::ProviderKind,
        region: crate::domain::phone::Region,
    ) -> Result<Vec<super::Account>, ConfigError> {
        if let Some(tables) = &self.accounts {
            let accounts = tables
                .iter()
                .enumerate()
                .map(|(i, t)| t.validate_table(i + 1, region))
                .collect::<Result<Vec<_>, _>>()?;
            let mut names: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
            names.sort_unstable();
            if let Some(twice) = names.windows(2).find(|w| w[0] == w[1]) {
                return Err(bad("IVR_AUTH_CONFIG", format!("two [[accounts]] are named {:?}", twice[0])));
            }
            return Ok(accounts);
        }
        if !provider.is_real() {
            return Ok(Vec::new());
        }
        let no_number = self.caller_id.is_none() && self.inbound_number.is_none();
        Ok(vec![self.env_account().validate_env(region, no_number)?])
    }

    /// The environment's variables as one account.
    fn env_account(&self) -> AccountArgs {
        let provider = self.provider.clone().unwrap_or_default();
        let s = self.clone();
        let mut a = AccountArgs {
            provider: Some(provider.clone()),
            calls_per_second: s.calls_per_second,
            max_concurrent_calls: s.max_concurrent_calls,
            ..AccountArgs::default()
        };
        match provider.as_str() {
            "twilio" => {
                a.account_sid = s.twilio_account_sid;
                a.auth_token = s.twilio_auth_token;
                a.auth_token_file = s.twilio_auth_token_file;
                a.api_base = s.twilio_api_base;
            }
            "signalwire" => {
                a.space_url = s.signalwire_space_url;
                a.project_id = s.signalwire_project_id;
                a.api_token = s.signalwire_api_token;
                a.api_token_file = s.signalwire_api_token_file;
                a.signing_key = s.signalwire_signing_key;
                a.signing_key_file = s.signalwire_signing_key_file;
                a.api_base = s.signalwire_api_base;
            }
            "telnyx" => {
                a.api_key = s.telnyx_api_key;
                a.api_key_file = s.telnyx_api_key_file;
                a.account_sid = s.telnyx_account_sid;
                a.application_sid = s.telnyx_application_sid;
                a.public_key = s.telnyx_public_key;
                a.public_key_file = s.telnyx_public_key_file;
                a.api_base = s.telnyx_api_base;
            }
            "vonage" => {
                a.application_id = s.vonage_application_id;
                a.private_key_file = s.vonage_private_key_file;
                a.signature_secret = s.vonage_signature_secret;
                a.signature_secret_file = s.vonage_signature_secret_file;
                a.api_base = s.vonage_api_base;
            }
            "sip" => {
                a.listen = s.sip_listen;
                a.trunk = s.sip_trunk;
                a.username = s.sip_username;
                a.password = s.sip_password;
                a.password_file = s.sip_password_file;
                a.allowed_peers = s.sip_allowed_peers;
                a.public_address = s.sip_public_address;
                a.rtp_ports = s.rtp_ports;
                a.audio_dir = s.prompt_audio_dir;
                a.answer_delay_ms = s.sip_answer_delay_ms;
            }
            _ => {}
        }
        a
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
