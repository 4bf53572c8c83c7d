//! Starts our own SIP trunk's engine when an account is `sip`: the prompt
//! audio checked and loaded first (a missing file stops the start, naming
//! it), then the listener, with the webhook key this node alone knows.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use super::StartError;
use crate::call::prompts::Prompts;
use crate::config::{Credentials, Settings};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::telephony::sip::audio::AudioLibrary;
use crate::telephony::sip::dialect::{Signer, SipDialect};
use crate::telephony::sip::engine::Engine;
use crate::telephony::sip::hooks::Hooks;
use crate::telephony::webhook::Dialect;

/// The running engine and the dialect of its webhooks.
pub(super) struct Sip {
    pub engine: Arc<Engine>,
    pub dialect: Arc<dyn Dialect>,
}

/// `http_addr`: the bound address of this node's HTTP listener, which the
/// engine's webhooks go to.
pub(super) async fn start(
    settings: &Settings,
    http: &reqwest::Client,
    public_base: &str,
    http_addr: SocketAddr,
    prompts: &Arc<Prompts>,
    store: &dyn Store,
    metrics: &Metrics,
) -> Result<Option<Sip>, StartError> {
    let Some(account) = settings.accounts.iter().find(|a| matches!(a.credentials, Credentials::Sip(_))) else {
        return Ok(None);
    };
    let Credentials::Sip(config) = &account.credentials else { return Ok(None) };
    let tenants = store.list_tenants().await?;
    let voices: Vec<_> = tenants.into_iter().map(|t| t.policy.voice).collect();
    let (dir, prompts) = (config.audio_dir.clone(), prompts.clone());
    let base = public_base.to_owned();
    let audio = tokio::task::spawn_blocking(move || AudioLibrary::load(&dir, &prompts, &base, &voices))
        .await
        .map_err(|e| StartError::Prompts(e.to_string()))?
        .map_err(StartError::Prompts)?;
    tracing::info!(clips = audio.len(), dir = %config.audio_dir.display(), "prompt audio loaded");
    let signer = Signer::random();
    let local = match http_addr.ip().is_unspecified() {
        true => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), http_addr.port()),
        false => http_addr,
    };
    let hooks = Hooks::new(http.clone(), public_base, &format!("http://{local}"), signer.clone());
    let max_calls = account.pacing.max_concurrent_calls.map(|n| n as usize);
    let engine = Engine::start((**config).clone(), hooks, Arc::new(audio), max_calls, metrics.sip.clone())
        .await
        .map_err(StartError::Provider)?;
    Ok(Some(Sip { engine, dialect: Arc::new(SipDialect::new(signer)) }))
}
