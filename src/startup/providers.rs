//! The provider accounts as clients (`Telephony`) and as webhook dialects.

use std::sync::Arc;

use secrecy::SecretString;

use super::StartError;
use crate::config::{Account, Credentials};
use crate::jobs::Line;
use crate::telephony::Telephony;
use crate::telephony::signalwire;
use crate::telephony::sip::client::SipTelephony;
use crate::telephony::sip::engine::Engine;
use crate::telephony::telnyx::signature::parse_public_key;
use crate::telephony::telnyx::webhooks::TelnyxDialect;
use crate::telephony::twilio::TwilioClient;
use crate::telephony::twilio::webhooks::FormDialect;
use crate::telephony::vonage::webhooks::VonageDialect;
use crate::telephony::webhook::Dialect;

/// One account as a line calls go out on.
pub(super) fn line(account: &Account, http: &reqwest::Client, sip: Option<&Arc<Engine>>) -> Result<Line, StartError> {
    Ok(Line {
        name: account.name.clone(),
        telephony: client(account, http, sip)?,
        pace: account.pacing.pace(),
        countries: account.countries.clone(),
        weight: account.weight,
        caller_id: account.caller_id.clone(),
    })
}

/// The REST client of one account.
fn client(
    account: &Account,
    http: &reqwest::Client,
    sip: Option<&Arc<Engine>>,
) -> Result<Arc<dyn Telephony>, StartError> {
    Ok(match &account.credentials {
        Credentials::Sip(_) => match sip {
            Some(engine) => Arc::new(SipTelephony::new(engine.clone())),
            None => return Err(StartError::Provider("the SIP engine did not start".into())),
        },
        Credentials::Twilio { account_sid, auth_token, api_base } => {
            Arc::new(TwilioClient::new(http.clone(), api_base, account_sid.clone(), auth_token.clone()))
        }
        Credentials::SignalWire { project_id, api_token, api_base, .. } => {
            // The compatibility API is Twilio's, under `/api/laml` of the Space.
            let laml = api_base
                .join(&format!("{}/api/laml", api_base.path().trim_end_matches('/')))
                .map_err(|e| StartError::Provider(format!("SIGNALWIRE_API_BASE: {e}")))?;
            Arc::new(TwilioClient::compatible(http.clone(), &laml, project_id.clone(), api_token.clone(), "signalwire"))
        }
        Credentials::Telnyx { api_key, account_sid, application_sid, api_base, .. } => {
            Arc::new(crate::telephony::telnyx::client::TelnyxClient::new(
                http.clone(),
                api_base,
                api_key.clone(),
                account_sid.clone(),
                application_sid.clone(),
            ))
        }
        Credentials::Vonage { application_id, private_key, api_base, .. } => Arc::new(
            crate::telephony::vonage::client::VonageClient::new(
                http.clone(),
                api_base,
                application_id.clone(),
                private_key.clone(),
            )
            .map_err(|e| StartError::Provider(format!("account {:?}: {e}", account.name)))?,
        ),
    })
}

/// One dialect per provider that has accounts, knowing every account's key.
pub(super) fn dialects(accounts: &[Account]) -> Vec<Arc<dyn Dialect>> {
    let mut twilio: Vec<SecretString> = Vec::new();
    let mut signalwire: Vec<SecretString> = Vec::new();
    let mut telnyx = Vec::new();
    let mut vonage: Vec<SecretString> = Vec::new();
    for account in accounts {
        match &account.credentials {
            Credentials::Twilio { auth_token, .. } => twilio.push(auth_token.clone()),
            Credentials::SignalWire { signing_key, .. } => signalwire.push(signing_key.clone()),
            // Checked when the settings were read.
            Credentials::Telnyx { public_key, .. } => telnyx.extend(parse_public_key(public_key)),
            Credentials::Vonage { signature_secret, .. } => vonage.push(signature_secret.clone()),
            // The engine's own dialect, with the node's key (`startup::sip`).
            Credentials::Sip(_) => {}
        }
    }
    let mut dialects: Vec<Arc<dyn Dialect>> = Vec::new();
    if !twilio.is_empty() {
        dialects.push(Arc::new(FormDialect::twilio(twilio)));
    }
    if !signalwire.is_empty() {
        dialects.push(Arc::new(signalwire::dialect(signalwire)));
    }
    if !telnyx.is_empty() {
        dialects.push(Arc::new(TelnyxDialect::new(telnyx)));
    }
    if !vonage.is_empty() {
        dialects.push(Arc::new(VonageDialect::new(vonage)));
    }
    dialects
}
