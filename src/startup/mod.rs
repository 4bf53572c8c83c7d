//! Building and running the application: store, provider, jobs, and the route table in one place.

use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::web;
use rand::Rng;
use secrecy::SecretString;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::budgets::CallBudgets;
use crate::call::prompts::Prompts;
use crate::call::urls::Urls;
use crate::clock::{Clock, SystemClock};
use crate::cluster::Cluster;
use crate::config::{DatabaseUrl, ProviderKind, Settings};
use crate::domain::code::KeyRing;
use crate::domain::request::AuthRequest;
use crate::jobs::{Jobs, Line, Lines, spawn_sweeper};
use crate::limits::{Limiter, SharedLimiter};
use crate::metrics::Metrics;
use crate::service::Service;
use crate::simulator::Simulator;
use crate::state::AppState;
use crate::store::Job;
use crate::store::{self, NumberLimit, OpenOptions, Role};
use crate::telephony::twilio::webhooks::FormDialect;
use crate::telephony::webhook::Dialect;
use crate::web::demo::DemoTenant;

mod http;
mod providers;
mod sip;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Store(#[from] store::StoreError),
    /// The listen address could not be bound: says which and what to change.
    #[error("cannot listen on {addr}: {}; set IVR_AUTH_LISTEN (or --listen) to another address", bind_problem(.source))]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
    #[error("voice prompts: {0}")]
    Prompts(String),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    Keys(#[from] crate::secrets::KeyError),
    #[error("provider: {0}")]
    Provider(String),
}

/// Jobs this server inserted already leased to itself, for its runner.
type ClaimedJobs = tokio::sync::mpsc::UnboundedReceiver<(Job, std::sync::Arc<AuthRequest>)>;

/// A built, bound, not yet running server.
pub struct Application {
    port: u16,
    base_url: String,
    pages: Vec<String>,
    server: Server,
    shutdown: watch::Sender<bool>,
    background: Vec<JoinHandle<()>>,
    _signals: JoinHandle<()>,
}

/// SIGTERM and SIGINT, registered with the OS when installed.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
    }

    async fn recv(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// Why a bind failed, in the words an operator acts on.
fn bind_problem(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => "the address is in use (by another ivr-auth or another program)".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied (ports below 1024 need privileges)".into(),
        std::io::ErrorKind::AddrNotAvailable => "this machine has no such address".into(),
        _ => e.to_string(),
    }
}

/// Binds the listen address, before anything else is opened: a clash stops
/// the start without touching the database.
fn bind(addr: std::net::SocketAddr) -> Result<std::net::TcpListener, StartError> {
    crate::listen(addr).map_err(|source| StartError::Bind { addr, source })
}

fn random_secret() -> Vec<u8> {
    let mut s = vec![0u8; 32];
    rand::rng().fill_bytes(&mut s);
    s
}

impl Application {
    /// Opens the store, binds the listener, wires the provider and starts the
    /// background jobs. The server answers once `run_until_stopped` runs.
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// `build`, with the clock every rule reads (tests move it forward).
    pub async fn build_with_clock(settings: Settings, clock: Arc<dyn Clock>) -> Result<Self, StartError> {
        crate::install_tls_provider();
        let listener = bind(settings.listen)?;
        warn_if_simulator_is_public(&settings);
        let (store, cluster, keys) = open_store(&settings).await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let public =
            settings.public_url.as_ref().map_or(base_url.clone(), |u| u.as_str().trim_end_matches('/').to_owned());
        let urls = Urls::new(&public);
        let prompts = Arc::new(Prompts::load(&settings.voice_prompts_dir).map_err(StartError::Prompts)?);
        let http = http_client()?;
        let metrics = Arc::new(Metrics::default());
        let sip = sip::start(&settings, &http, &public, addr, &prompts, &*store, &metrics).await?;
        let provider = provider(&settings, &http, &base_url, &urls, sip.as_ref())?;
        let call_seats = provider.lines.all().iter().any(|l| l.pace.is_some_and(|p| p.max_concurrent.is_some()));
        let (service, claimed_rx) = service(&settings, store, clock, keys, metrics, call_seats);
        let state = web::Data::new(AppState {
            service: service.clone(),
            urls: urls.clone(),
            prompts: prompts.clone(),
            gather_timeout: settings.gather_timeout,
            allow_private_callbacks: settings.allow_private_callbacks,
            tenant_limiter: SharedLimiter::new(settings.rate_limit, Duration::from_secs(1), cluster.nodes.clone()),
            servers: cluster.nodes.clone(),
            metrics_token: settings.metrics_token.clone(),
            operator_token: settings.operator_token.clone(),
            secure_cookies: settings.public_url.as_ref().is_some_and(|u| u.scheme() == "https"),
            // Enough for a person trying the demo (tens a minute), not for a script.
            demo_limiter: Limiter::new(30, Duration::from_secs(60)),
            // A person mistyping a key, not a script guessing one.
            sign_in_limiter: Limiter::new(10, Duration::from_secs(60)),
            provider: settings.provider,
        });
        let jobs = Arc::new(Jobs {
            service: service.clone(),
            lines: provider.lines.clone(),
            urls,
            prompts,
            caller_id: settings.caller_id.clone(),
            ring_timeout: settings.ring_timeout,
            callbacks: crate::jobs::callback::client(settings.allow_private_callbacks)?,
            lease: settings.job_lease,
            allow_private_callbacks: settings.allow_private_callbacks,
        });
        if let Err(e) = service.audit_start(settings.audit_summary()).await {
            tracing::error!(error = %e, "recording the start in the audit trail failed");
        }
        let (shutdown, shutdown_rx) = watch::channel(false);
        let demo = match &provider.simulator {
            Some(_) => Some(web::Data::new(DemoTenant::provision(&service).await?)),
            None => None,
        };
        let background = vec![
            jobs.spawn(shutdown_rx.clone(), claimed_rx),
            cluster.spawn(service.store.clone(), shutdown_rx.clone()),
            sweeper(&settings, service, &state, shutdown_rx),
        ];
        let simulator = provider.simulator;
        let server = http::http_server(state, simulator.clone().zip(demo), provider.dialects, listener)?;
        let signals = stop_on_signals(&server, simulator)?;
        let pages = match settings.provider {
            ProviderKind::Simulator => vec![format!("{base_url}/dev/phone"), format!("{base_url}/demo")],
            _ => Vec::new(),
        };
        Ok(Self { port: addr.port(), base_url, pages, server, shutdown, background, _signals: signals })
    }

    /// The bound port (useful with `:0`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://<bound address>`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The browser pages (dev phone, demo site) in simulator mode.
    pub fn pages(&self) -> &[String] {
        &self.pages
    }

    /// Serves until SIGTERM/SIGINT (or a stop through the server handle),
    /// then stops the background jobs and lets the store flush.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        let _ = self.shutdown.send(true);
        for task in self.background {
            let _ = task.await;
        }
        tracing::info!("ivr-auth stopped");
        result
    }
}

fn warn_if_simulator_is_public(settings: &Settings) {
    if settings.provider == ProviderKind::Simulator && settings.simulator_public {
        tracing::warn!(
            listen = %settings.listen,
            "THE SIMULATOR IS SERVING ON A NON-LOOPBACK ADDRESS: anyone who can reach it sees typed codes and \
             full phone numbers and can dial in with any caller ID. Development only."
        );
    }
}

/// Opens (and migrates) the store, joins the cluster of servers on it, and
/// reads the key ring.
async fn open_store(settings: &Settings) -> Result<(Arc<dyn store::Store>, Cluster, KeyRing), StartError> {
    let options = OpenOptions {
        lease: settings.job_lease,
        max_connections: settings.database_max_connections,
        ..OpenOptions::new(Role::Server)
    };
    let store = store::open(&settings.database, options).await?;
    let cluster = Cluster::join(&*store, settings.provider == ProviderKind::Simulator).await?;
    let sqlite_file = match &settings.database {
        DatabaseUrl::Sqlite(path) => Some(path.as_path()),
        DatabaseUrl::Postgres(_) => None,
    };
    let keys = crate::secrets::key_ring(&settings.secret_keys, sqlite_file, &*store).await?;
    Ok((store, cluster, keys))
}

/// The client for every outgoing HTTP request (provider REST APIs, the simulator's webhooks).
fn http_client() -> Result<reqwest::Client, StartError> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("ivr-auth/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// The telephony provider as configured.
struct Provider {
    /// The provider accounts calls go out on.
    lines: Arc<Lines>,
    /// The webhooks of each provider that may call this server.
    dialects: Vec<Arc<dyn Dialect>>,
    /// The built-in simulator, in simulator mode.
    simulator: Option<Simulator>,
}

fn provider(
    settings: &Settings,
    http: &reqwest::Client,
    base_url: &str,
    urls: &Urls,
    sip: Option<&sip::Sip>,
) -> Result<Provider, StartError> {
    match settings.provider {
        ProviderKind::Simulator => {
            let token =
                settings.twilio_auth_token.clone().unwrap_or_else(|| SecretString::from(hex::encode(random_secret())));
            let sim = Simulator::new(
                http.clone(),
                token.clone(),
                settings.caller_id.as_ref(),
                settings.inbound_number.clone(),
                settings.simulator_pacing,
            );
            sim.attach(base_url.to_owned(), urls.clone());
            let dialects: Vec<Arc<dyn Dialect>> = vec![Arc::new(FormDialect::twilio(vec![token]))];
            let line = Line::plain("simulator", Arc::new(sim.clone()), settings.pace.pace());
            Ok(Provider { lines: Arc::new(Lines::new(vec![line])), dialects, simulator: Some(sim) })
        }
        _ => {
            let lines = settings
                .accounts
                .iter()
                .map(|account| providers::line(account, http, sip.map(|s| &s.engine)))
                .collect::<Result<Vec<_>, _>>()?;
            if lines.is_empty() {
                return Err(StartError::Provider("no provider account is configured".into()));
            }
            let mut dialects = providers::dialects(&settings.accounts);
            dialects.extend(sip.map(|s| s.dialect.clone()));
            Ok(Provider { lines: Arc::new(Lines::new(lines)), dialects, simulator: None })
        }
    }
}

/// The service, and the receiving end of the jobs it inserts already leased to this server.
fn service(
    settings: &Settings,
    store: Arc<dyn store::Store>,
    clock: Arc<dyn Clock>,
    keys: KeyRing,
    metrics: Arc<Metrics>,
    call_seats: bool,
) -> (Arc<Service>, ClaimedJobs) {
    let (claimed_jobs, claimed_rx) = tokio::sync::mpsc::unbounded_channel();
    let number_limit = (settings.phone_rate_limit > 0 || settings.phone_rate_limit_server > 0).then(|| NumberLimit {
        per_tenant: settings.phone_rate_limit,
        overall: settings.phone_rate_limit_server,
        window: chrono::Duration::minutes(10),
    });
    if !settings.recording {
        tracing::warn!(
            "IVR_AUTH_BENCH_RECORDING=false: no audit event, funnel step or timeline entry is written for request changes; for measuring only"
        );
    }
    let service = Arc::new(Service {
        store,
        clock,
        keys,
        inbound_number: settings.inbound_number.clone(),
        outbound_enabled: settings.outbound_enabled(),
        default_region: settings.default_region,
        budgets: CallBudgets::new(settings.tenant_calls_per_minute, settings.tenant_calls_per_day),
        call_end_grace: settings.call_end_grace,
        recording: settings.recording,
        number_limit,
        metrics,
        jobs_wakeup: Notify::new(),
        claimed_jobs,
        tenant_cache: Default::default(),
        call_seats,
    });
    (service, claimed_rx)
}

/// The sweeper, which also trims the edge's limiters now and then.
fn sweeper(
    settings: &Settings,
    service: Arc<Service>,
    state: &web::Data<AppState>,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let state = state.clone();
    let trim = move || {
        state.tenant_limiter.shrink();
        state.demo_limiter.shrink();
        state.sign_in_limiter.shrink();
    };
    spawn_sweeper(service, chrono::Duration::days(i64::from(settings.retention_days)), trim, shutdown)
}

/// Our own SIGTERM/SIGINT handlers, installed before anyone is told the
/// address, so a stop right after start-up is still graceful.
fn stop_on_signals(server: &Server, simulator: Option<Simulator>) -> Result<JoinHandle<()>, StartError> {
    let stop_on = Signals::install()?;
    let handle = server.handle();
    Ok(tokio::spawn(async move {
        stop_on.recv().await;
        tracing::info!("stop signal received; finishing in-flight requests");
        if let Some(sim) = simulator {
            sim.close();
        }
        handle.stop(true).await;
    }))
}
