//! Provider accounts: one from the environment (`IVR_AUTH_PROVIDER` and its
//! provider's variables), or several `[[accounts]]` tables in the TOML file.
//!
//! Each credential may be given as a value or as a `…_file` path (read once,
//! at start, its trailing newline dropped). A missing or malformed credential
//! stops the start with one line that names it; no credential is ever
//! printed, logged or stored in the database (`SecretString` masks `Debug`).

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use super::sip::{SipArgs, SipConfig};
use super::{ConfigError, parse_base_url};
use crate::domain::phone::{PhoneNumber, Region};

/// One account as written: an `[[accounts]]` table, or the environment's.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountArgs {
    pub name: Option<String>,
    pub provider: Option<String>,
    pub account_sid: Option<String>,
    pub auth_token: Option<String>,
    pub auth_token_file: Option<PathBuf>,
    pub api_base: Option<String>,
    pub space_url: Option<String>,
    pub project_id: Option<String>,
    pub api_token: Option<String>,
    pub api_token_file: Option<PathBuf>,
    pub signing_key: Option<String>,
    pub signing_key_file: Option<PathBuf>,
    pub api_key: Option<String>,
    pub api_key_file: Option<PathBuf>,
    pub application_sid: Option<String>,
    pub public_key: Option<String>,
    pub public_key_file: Option<PathBuf>,
    pub application_id: Option<String>,
    pub private_key_file: Option<PathBuf>,
    pub signature_secret: Option<String>,
    pub signature_secret_file: Option<PathBuf>,
    /// The From number of this account's outbound calls.
    pub caller_id: Option<String>,
    /// The numbers of this account that users call.
    pub inbound_numbers: Option<Vec<String>>,
    /// Calls this account may start per second (unset: not paced).
    pub calls_per_second: Option<f64>,
    /// Calls this account may have up at once (unset: no cap).
    pub max_concurrent_calls: Option<u32>,
    /// Regions (`JP`, `US`, …) this account may call; unset: any.
    pub countries: Option<Vec<String>>,
    /// Share of the calls among accounts that may take them (default 1).
    pub weight: Option<u32>,
    /// `sip`: the SIP listener (`IVR_AUTH_SIP_LISTEN`).
    pub listen: Option<String>,
    /// `sip`: where outbound INVITEs go (`IVR_AUTH_SIP_TRUNK`).
    pub trunk: Option<String>,
    /// `sip`: digest credentials for the trunk's challenges.
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    /// `sip`: addresses or CIDR blocks whose INVITEs are taken, comma-separated.
    pub allowed_peers: Option<String>,
    /// `sip`: the address in Contact and SDP.
    pub public_address: Option<String>,
    /// `sip`: UDP ports for media, `A-B`.
    pub rtp_ports: Option<String>,
    /// `sip`: the prompt audio directory.
    pub audio_dir: Option<String>,
    /// `sip`: milliseconds an inbound call rings before it is answered.
    pub answer_delay_ms: Option<u32>,
}

/// How to reach one provider account, and how it signs its webhooks.
#[derive(Debug, Clone)]
pub enum Credentials {
    Twilio {
        account_sid: String,
        auth_token: SecretString,
        api_base: Url,
    },
    /// SignalWire's compatibility API: Twilio's REST API under the Space URL.
    SignalWire {
        project_id: String,
        api_token: SecretString,
        signing_key: SecretString,
        api_base: Url,
    },
    /// Telnyx TeXML: `public_key` is the account's base64 Ed25519 key (public, not secret).
    Telnyx {
        api_key: SecretString,
        account_sid: String,
        application_sid: String,
        public_key: String,
        api_base: Url,
    },
    /// Vonage Voice API: `private_key` is the application's PEM (signs API calls).
    Vonage {
        application_id: String,
        private_key: SecretString,
        signature_secret: SecretString,
        api_base: Url,
    },
    /// Our own SIP trunk: no provider, the server is the telephone endpoint.
    Sip(Box<SipConfig>),
}

impl Credentials {
    /// The provider's name, as in `IVR_AUTH_PROVIDER` and the webhook folder.
    pub fn provider(&self) -> &'static str {
        match self {
            Self::Twilio { .. } => "twilio",
            Self::SignalWire { .. } => "signalwire",
            Self::Telnyx { .. } => "telnyx",
            Self::Vonage { .. } => "vonage",
            Self::Sip(_) => "sip",
        }
    }
}

/// Limits an account places calls under, across every node.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pacing {
    pub calls_per_second: Option<f64>,
    pub max_concurrent_calls: Option<u32>,
}

impl Pacing {
    /// The pace calls keep, if any limit is set.
    pub fn pace(&self) -> Option<crate::domain::pacing::Pace> {
        use crate::domain::pacing::Pace;
        match (self.calls_per_second, self.max_concurrent_calls) {
            (Some(cps), cap) => Some(Pace::new(cps, cap)),
            (None, Some(cap)) => Some(Pace::cap_only(cap)),
            (None, None) => None,
        }
    }
}

/// A validated provider account.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub credentials: Credentials,
    pub caller_id: Option<PhoneNumber>,
    pub inbound_numbers: Vec<PhoneNumber>,
    pub pacing: Pacing,
    /// Regions it may call; empty: any.
    pub countries: Vec<Region>,
    pub weight: u32,
}

/// How an account's settings are named in errors: environment variables
/// (`TELNYX_API_KEY`) or the keys of an `[[accounts]]` table.
enum Naming {
    Env(&'static str),
    Table(String),
}

impl Naming {
    fn name(&self, field: &str) -> Cow<'static, str> {
        match self {
            Self::Env(prefix) => Cow::Owned(format!("{prefix}_{}", field.to_ascii_uppercase())),
            Self::Table(label) => Cow::Owned(format!("{label}.{field}")),
        }
    }

    /// The setting an error names when it is about the account as a whole.
    fn whole(&self) -> Cow<'static, str> {
        match self {
            Self::Env(_) => Cow::Borrowed("IVR_AUTH_PROVIDER"),
            Self::Table(label) => Cow::Owned(label.clone()),
        }
    }
}

fn env_prefix(provider: &str) -> Option<&'static str> {
    Some(match provider {
        "twilio" => "TWILIO",
        "signalwire" => "SIGNALWIRE",
        "telnyx" => "TELNYX",
        "vonage" => "VONAGE",
        "sip" => "IVR_AUTH_SIP",
        _ => return None,
    })
}

/// Collects what is missing, so one line names every setting a new setup lacks.
struct Reader<'a> {
    naming: &'a Naming,
    missing: Vec<Cow<'static, str>>,
}

impl Reader<'_> {
    fn text(&mut self, field: &str, value: &Option<String>) -> String {
        match value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            Some(v) => v.to_owned(),
            None => {
                self.missing.push(self.naming.name(field));
                String::new()
            }
        }
    }

    /// A secret from its value or its `…_file`.
    fn secret(
        &mut self,
        field: &str,
        value: &Option<String>,
        file: &Option<PathBuf>,
    ) -> Result<SecretString, ConfigError> {
        let value = value.as_deref().filter(|v| !v.is_empty());
        match (value, file) {
            (Some(_), Some(_)) => Err(ConfigError::named(
                self.naming.name(&format!("{field}_file")),
                format!("set either {} or {}_file, not both", self.naming.name(field), self.naming.name(field)),
            )),
            (Some(v), None) => Ok(SecretString::from(v.to_owned())),
            (None, Some(path)) => read_secret(self.naming.name(&format!("{field}_file")), path),
            (None, None) => {
                self.missing.push(self.naming.name(field));
                Ok(SecretString::from(String::new()))
            }
        }
    }

    fn url(&self, field: &str, value: Option<&str>, default: &str) -> Result<Url, ConfigError> {
        parse_base_url("", value.unwrap_or(default)).map_err(|e| ConfigError::named(self.naming.name(field), e.problem))
    }
}

/// A secret file's content, without its trailing newline.
fn read_secret(setting: Cow<'static, str>, path: &Path) -> Result<SecretString, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::named(setting.clone(), format!("cannot read {}: {e}", path.display())))?;
    let text = text.trim_end_matches(['\n', '\r']);
    if text.trim().is_empty() {
        return Err(ConfigError::named(setting, format!("{} is empty", path.display())));
    }
    Ok(SecretString::from(text.to_owned()))
}

impl AccountArgs {
    /// The account of the environment, under the provider's variable names.
    /// `no_number`: neither `IVR_AUTH_CALLER_ID` nor `IVR_AUTH_INBOUND_NUMBER`
    /// is set, which is named with the missing credentials.
    pub fn validate_env(&self, region: Region, no_number: bool) -> Result<Account, ConfigError> {
        let provider = self.provider.as_deref().unwrap_or_default();
        let prefix = env_prefix(provider).ok_or_else(|| ConfigError::named("IVR_AUTH_PROVIDER".into(), "unknown"))?;
        self.validate(&Naming::Env(prefix), region, no_number)
    }

    /// The `index`th `[[accounts]]` table (from 1).
    pub fn validate_table(&self, index: usize, region: Region) -> Result<Account, ConfigError> {
        let label = match &self.name {
            Some(name) => format!("[[accounts]] {name:?}"),
            None => format!("[[accounts]] #{index}"),
        };
        self.validate(&Naming::Table(label), region, false)
    }

    fn validate(&self, naming: &Naming, region: Region, no_number: bool) -> Result<Account, ConfigError> {
        let mut r = Reader { naming, missing: Vec::new() };
        let provider = self.provider.as_deref().unwrap_or_default();
        let credentials = match provider {
            "twilio" => Credentials::Twilio {
                account_sid: r.text("account_sid", &self.account_sid),
                auth_token: r.secret("auth_token", &self.auth_token, &self.auth_token_file)?,
                api_base: r.url("api_base", self.api_base.as_deref(), "https://api.twilio.com")?,
            },
            "signalwire" => {
                let space = r.text("space_url", &self.space_url);
                let space = if space.is_empty() { "https://example.signalwire.com".to_owned() } else { space };
                Credentials::SignalWire {
                    project_id: r.text("project_id", &self.project_id),
                    api_token: r.secret("api_token", &self.api_token, &self.api_token_file)?,
                    signing_key: r.secret("signing_key", &self.signing_key, &self.signing_key_file)?,
                    api_base: r.url("api_base", self.api_base.as_deref(), &space)?,
                }
            }
            "telnyx" => Credentials::Telnyx {
                api_key: r.secret("api_key", &self.api_key, &self.api_key_file)?,
                account_sid: r.text("account_sid", &self.account_sid),
                application_sid: r.text("application_sid", &self.application_sid),
                public_key: telnyx_key(&mut r, &self.public_key, &self.public_key_file)?,
                api_base: r.url("api_base", self.api_base.as_deref(), "https://api.telnyx.com")?,
            },
            "vonage" => Credentials::Vonage {
                application_id: r.text("application_id", &self.application_id),
                private_key: match &self.private_key_file {
                    Some(path) => read_secret(naming.name("private_key_file"), path)?,
                    None => {
                        r.missing.push(naming.name("private_key_file"));
                        SecretString::from(String::new())
                    }
                },
                signature_secret: r.secret("signature_secret", &self.signature_secret, &self.signature_secret_file)?,
                api_base: r.url("api_base", self.api_base.as_deref(), "https://api.nexmo.com")?,
            },
            "sip" => {
                let namer = |field: &str| naming.name(field);
                let args = SipArgs {
                    listen: self.listen.as_deref(),
                    trunk: self.trunk.as_deref(),
                    username: self.username.as_deref(),
                    password: match self.password.is_some() || self.password_file.is_some() {
                        true => Some(r.secret("password", &self.password, &self.password_file)?),
                        false => None,
                    },
                    allowed_peers: self.allowed_peers.as_deref(),
                    public_address: self.public_address.as_deref(),
                    rtp_ports: self.rtp_ports.as_deref(),
                    audio_dir: self.audio_dir.as_deref(),
                    answer_delay_ms: self.answer_delay_ms,
                };
                Credentials::Sip(Box::new(args.validate(&namer)?))
            }
            other => {
                return Err(ConfigError::named(
                    match naming {
                        Naming::Env(_) => "IVR_AUTH_PROVIDER".into(),
                        Naming::Table(_) => naming.name("provider"),
                    },
                    format!("{other:?} is not twilio, signalwire, telnyx, vonage or sip"),
                ));
            }
        };
        if no_number {
            r.missing.push("IVR_AUTH_CALLER_ID".into());
        }
        if !r.missing.is_empty() {
            let names = join_names(&r.missing);
            let are = if r.missing.len() == 1 { "is" } else { "are" };
            let number_hint = if no_number {
                " (IVR_AUTH_CALLER_ID is the From number of outbound calls; an inbound-only server sets \
                 IVR_AUTH_INBOUND_NUMBER instead)"
            } else {
                ""
            };
            return Err(ConfigError::named(
                naming.whole(),
                format!("{provider} needs {names}, which {are} not set{number_hint}"),
            ));
        }
        self.account(naming, credentials, region)
    }

    /// The parts every provider's account has: numbers, pacing, reach.
    fn account(&self, naming: &Naming, credentials: Credentials, region: Region) -> Result<Account, ConfigError> {
        let number = |field: &str, raw: &str| {
            PhoneNumber::parse(raw, region).map_err(|e| ConfigError::named(naming.name(field), e.to_string()))
        };
        let caller_id = self.caller_id.as_deref().map(|n| number("caller_id", n)).transpose()?;
        let inbound_numbers =
            self.inbound_numbers.iter().flatten().map(|n| number("inbound_numbers", n)).collect::<Result<_, _>>()?;
        if let Some(cps) = self.calls_per_second
            && !(cps > 0.0 && cps <= 1000.0)
        {
            return Err(ConfigError::named(naming.name("calls_per_second"), "must be more than 0 and at most 1000"));
        }
        if self.max_concurrent_calls == Some(0) {
            return Err(ConfigError::named(naming.name("max_concurrent_calls"), "must be at least 1"));
        }
        let countries = self
            .countries
            .iter()
            .flatten()
            .map(|c| {
                Region::parse(c).ok_or_else(|| {
                    ConfigError::named(naming.name("countries"), format!("{c:?} is not a two-letter region code"))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Account {
            name: self.name.clone().unwrap_or_else(|| credentials.provider().to_owned()),
            credentials,
            caller_id,
            inbound_numbers,
            pacing: Pacing { calls_per_second: self.calls_per_second, max_concurrent_calls: self.max_concurrent_calls },
            countries,
            weight: self.weight.unwrap_or(1).max(1),
        })
    }
}

/// Telnyx's public key: base64 of a valid Ed25519 key, checked now so a
/// wrong one stops the start instead of refusing every webhook.
fn telnyx_key(r: &mut Reader<'_>, value: &Option<String>, file: &Option<PathBuf>) -> Result<String, ConfigError> {
    use secrecy::ExposeSecret;
    let key = r.secret("public_key", value, file)?;
    let text = key.expose_secret().trim().to_owned();
    if !text.is_empty() && crate::telephony::telnyx::signature::parse_public_key(&text).is_none() {
        return Err(ConfigError::named(r.naming.name("public_key"), "is not a base64 Ed25519 public key (32 bytes)"));
    }
    Ok(text)
}

fn join_names(names: &[Cow<'static, str>]) -> String {
    match names.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.iter().map(|n| n.as_ref()).collect::<Vec<_>>().join(", ")),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jp() -> Region {
        Region::parse("JP").unwrap()
    }

    #[test]
    fn a_telnyx_account_from_the_environment_names_every_missing_variable() {
        let args = AccountArgs { provider: Some("telnyx".into()), ..Default::default() };
        let err = args.validate_env(jp(), false).unwrap_err();
        assert_eq!(err.setting, "IVR_AUTH_PROVIDER");
        assert_eq!(
            err.problem,
            "telnyx needs TELNYX_API_KEY, TELNYX_ACCOUNT_SID, TELNYX_APPLICATION_SID and TELNYX_PUBLIC_KEY, which are \
             not set"
        );
    }

    #[test]
    fn a_table_names_its_account_and_keys() {
        let args = AccountArgs {
            name: Some("tokyo".into()),
            provider: Some("vonage".into()),
            application_id: Some("app".into()),
            ..Default::default()
        };
        let err = args.validate_table(2, jp()).unwrap_err();
        assert_eq!(err.setting, "[[accounts]] \"tokyo\"");
        assert!(err.problem.contains("vonage needs [[accounts]] \"tokyo\".private_key_file and"), "{}", err.problem);
    }

    #[test]
    fn a_wrong_telnyx_key_or_pacing_stops_the_start_naming_it() {
        let base = AccountArgs {
            provider: Some("telnyx".into()),
            api_key: Some("KEY".into()),
            account_sid: Some("acc".into()),
            application_sid: Some("app".into()),
            public_key: Some("11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=".into()),
            ..Default::default()
        };
        assert!(base.validate_env(jp(), false).is_ok());
        let wrong = AccountArgs { public_key: Some("not a key".into()), ..base.clone() };
        assert_eq!(wrong.validate_env(jp(), false).unwrap_err().setting, "TELNYX_PUBLIC_KEY");
        let fast = AccountArgs { calls_per_second: Some(0.0), ..base };
        assert_eq!(fast.validate_table(1, jp()).unwrap_err().setting, "[[accounts]] #1.calls_per_second");
    }

    #[test]
    fn a_secret_is_read_from_its_file_and_never_shown() {
        let dir = std::env::temp_dir().join(format!("ivr-acct-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "s3cret-token\n").unwrap();
        let args = AccountArgs {
            provider: Some("twilio".into()),
            account_sid: Some("AC1".into()),
            auth_token_file: Some(path.clone()),
            ..Default::default()
        };
        let account = args.validate_env(jp(), false).unwrap();
        let Credentials::Twilio { auth_token, .. } = &account.credentials else { panic!("twilio") };
        assert_eq!(secrecy::ExposeSecret::expose_secret(auth_token), "s3cret-token");
        assert!(!format!("{account:?}").contains("s3cret"));
        let both = AccountArgs { auth_token: Some("x".into()), ..args };
        assert_eq!(both.validate_env(jp(), false).unwrap_err().setting, "TWILIO_AUTH_TOKEN_FILE");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
