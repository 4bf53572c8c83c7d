//! The one state shared by every handler, registered once.

use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use secrecy::SecretString;
use uuid::Uuid;

use crate::call::prompts::Prompts;
use crate::call::speaker::Voice;
use crate::call::urls::Urls;
use crate::config::ProviderKind;
use crate::limits::{Limiter, SharedLimiter};
use crate::service::Service;
use crate::telephony::webhook::Verifier;

/// The service plus the settings only the edges use, built once by `startup`.
/// What the service already holds (the inbound number, the default region,
/// the metrics) is read from `service`, not copied here.
pub struct AppState {
    pub service: Arc<Service>,
    pub urls: Urls,
    pub prompts: Arc<Prompts>,
    /// Seconds between digits before a Gather gives up.
    pub gather_timeout: u32,
    pub allow_private_callbacks: bool,
    /// Site-API requests per tenant, shared out between the live servers.
    pub tenant_limiter: SharedLimiter<Uuid>,
    /// Servers alive on this database, this one included.
    pub servers: Arc<AtomicU32>,
    /// What `/metrics` requires, if anything.
    pub metrics_token: Option<SecretString>,
    /// What signs an operator into the console, if anything.
    pub operator_token: Option<SecretString>,
    /// The console's cookie carries `Secure` (the public URL is https).
    pub secure_cookies: bool,
    /// Demo-page starts per client address (simulator only).
    pub demo_limiter: Limiter<std::net::IpAddr>,
    /// Failed console sign-ins per client address.
    pub sign_in_limiter: Limiter<std::net::IpAddr>,
    pub provider: ProviderKind,
}

impl AppState {
    /// What a call's script is made of, for `call::speaker::Speaker`.
    pub fn voice(&self) -> Voice<'_> {
        self.voice_with(&self.urls)
    }

    /// `voice`, with the webhook URLs of one provider's folder.
    pub fn voice_with<'a>(&'a self, urls: &'a Urls) -> Voice<'a> {
        Voice { prompts: &self.prompts, urls, gather_timeout: self.gather_timeout, keys: &self.service.keys }
    }
}

impl Verifier for AppState {
    fn now_unix(&self) -> i64 {
        self.service.now().timestamp()
    }

    fn public_url(&self, path_and_query: &str) -> String {
        self.urls.signed_url(path_and_query)
    }

    fn refused(&self) {
        self.service.metrics.signature_rejections.inc();
        // The tenant is not known before the signature is: the server's chain.
        self.service.metrics.refusals.count(None, "signature");
    }
}
