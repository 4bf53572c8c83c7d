//! Building and running the application: store, provider, jobs, and the route table in one place.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, Service};
use actix_web::{App, HttpResponse, HttpServer, ResponseError, web};
use futures_util::FutureExt;
use rand::Rng;
use secrecy::SecretString;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::api::{ops, requests};
use crate::budgets::CallBudgets;
use crate::clock::{Clock, SystemClock};
use crate::cluster::Cluster;
use crate::config::{DatabaseUrl, ProviderKind, Settings};
use crate::error::AppError;
use crate::jobs::{Jobs, spawn_sweeper};
use crate::limits::{Limiter, SharedLimiter};
use crate::metrics::{HttpLabels, Metrics, RouteLabel};
use crate::service::Core;
use crate::simulator::Simulator;
use crate::state::AppState;
use crate::store::{self, NumberLimit, OpenOptions, Role};
use crate::telephony::Telephony;
use crate::telephony::twilio::TwilioClient;
use crate::voice::prompts::Prompts;
use crate::voice::urls::{Urls, paths};
use crate::voice::webhooks;
use crate::web::demo::DemoTenant;

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
}

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
        let options = OpenOptions {
            lease: settings.job_lease,
            max_connections: settings.database_max_connections,
            ..OpenOptions::new(Role::Server)
        };
        if settings.provider == ProviderKind::Simulator && settings.simulator_public {
            tracing::warn!(
                listen = %settings.listen,
                "THE SIMULATOR IS SERVING ON A NON-LOOPBACK ADDRESS: anyone who can reach it sees typed codes and \
                 full phone numbers and can dial in with any caller ID. Development only."
            );
        }
        let store = store::open(&settings.database, options).await?;
        let cluster = Cluster::join(&*store, settings.provider == ProviderKind::Simulator).await?;
        let sqlite_file = match &settings.database {
            DatabaseUrl::Sqlite(path) => Some(path.as_path()),
            DatabaseUrl::Postgres(_) => None,
        };
        let keys = crate::secrets::key_ring(&settings.secret_keys, sqlite_file, &*store).await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let public =
            settings.public_url.as_ref().map_or(base_url.clone(), |u| u.as_str().trim_end_matches('/').to_owned());
        let urls = Urls::new(&public);
        let prompts = Arc::new(Prompts::load(&settings.voice_prompts_dir).map_err(StartError::Prompts)?);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("ivr-auth/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let metrics = Arc::new(Metrics::default());

        let (telephony, webhook_token, simulator): (Arc<dyn Telephony>, SecretString, Option<Simulator>) =
            match settings.provider {
                ProviderKind::Simulator => {
                    let token = settings
                        .twilio_auth_token
                        .clone()
                        .unwrap_or_else(|| SecretString::from(hex::encode(random_secret())));
                    let sim = Simulator::new(
                        http.clone(),
                        token.clone(),
                        settings.caller_id.as_ref(),
                        settings.inbound_number.clone(),
                        settings.simulator_pacing,
                    );
                    sim.attach(base_url.clone(), urls.clone());
                    (Arc::new(sim.clone()), token, Some(sim))
                }
                ProviderKind::Twilio => {
                    let (Some(sid), Some(token)) =
                        (settings.twilio_account_sid.clone(), settings.twilio_auth_token.clone())
                    else {
                        return Err(StartError::Prompts("twilio credentials missing".into()));
                    };
                    let client = TwilioClient::new(http.clone(), &settings.twilio_api_base, sid, token.clone());
                    (Arc::new(client), token, None)
                }
            };

        let (claimed_jobs, claimed_rx) = tokio::sync::mpsc::unbounded_channel();
        let core = Arc::new(Core {
            store,
            clock,
            keys,
            inbound_number: settings.inbound_number.clone(),
            outbound_enabled: settings.outbound_enabled(),
            default_region: settings.default_region,
            budgets: CallBudgets::new(settings.tenant_calls_per_minute, settings.tenant_calls_per_day),
            call_end_grace: settings.call_end_grace,
            number_limit: (settings.phone_rate_limit > 0 || settings.phone_rate_limit_server > 0).then(|| {
                NumberLimit {
                    per_tenant: settings.phone_rate_limit,
                    overall: settings.phone_rate_limit_server,
                    window: chrono::Duration::minutes(10),
                }
            }),
            metrics: metrics.clone(),
            jobs_wakeup: Notify::new(),
            claimed_jobs,
            tenant_cache: Default::default(),
        });
        let state = web::Data::new(AppState {
            core: core.clone(),
            urls: urls.clone(),
            prompts: prompts.clone(),
            webhook_token,
            gather_timeout: settings.gather_timeout,
            default_region: settings.default_region,
            inbound_number: settings.inbound_number.clone(),
            allow_private_callbacks: settings.allow_private_callbacks,
            tenant_limiter: SharedLimiter::new(settings.rate_limit, Duration::from_secs(1), cluster.nodes.clone()),
            servers: cluster.nodes.clone(),
            metrics_token: settings.metrics_token.clone(),
            // Enough for a person trying the demo (tens a minute), not for a script.
            demo_limiter: Limiter::new(30, Duration::from_secs(60)),
            metrics,
            provider: settings.provider,
            replays: Default::default(),
        });

        let (shutdown, shutdown_rx) = watch::channel(false);
        let jobs = Arc::new(Jobs {
            core: core.clone(),
            telephony,
            urls,
            prompts,
            caller_id: settings.caller_id.clone(),
            ring_timeout: settings.ring_timeout,
            callbacks: crate::jobs::callback::client(settings.allow_private_callbacks)?,
            lease: settings.job_lease,
            allow_private_callbacks: settings.allow_private_callbacks,
        });
        let trim_state = state.clone();
        let core_for_demo = core.clone();
        let background = vec![
            jobs.spawn(shutdown_rx.clone(), claimed_rx),
            cluster.spawn(core.store.clone(), shutdown_rx.clone()),
            spawn_sweeper(
                core,
                chrono::Duration::days(i64::from(settings.retention_days)),
                move || {
                    trim_state.tenant_limiter.shrink();
                    trim_state.demo_limiter.shrink();
                },
                shutdown_rx,
            ),
        ];

        let demo = match &simulator {
            Some(_) => Some(web::Data::new(DemoTenant::provision(&*core_for_demo.store).await?)),
            None => None,
        };
        let closer = simulator.clone();
        let sim_data = simulator.map(web::Data::new);
        let server = HttpServer::new(move || {
            let app = App::new()
                .app_data(state.clone())
                .app_data(json_config())
                .wrap_fn(|req, srv| {
                    let started = Instant::now();
                    let metrics = req.app_data::<web::Data<AppState>>().map(|s| s.metrics.clone());
                    let method = req.method().to_string();
                    srv.call(req).map(move |res| {
                        if let (Ok(res), Some(metrics)) = (&res, metrics) {
                            let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".into());
                            let status = res.status().as_u16();
                            metrics
                                .http_requests
                                .get_or_create(&HttpLabels { route: route.clone(), method, status })
                                .inc();
                            metrics
                                .http_duration
                                .get_or_create(&RouteLabel { route })
                                .observe(started.elapsed().as_secs_f64());
                        }
                        res
                    })
                })
                .configure(routes)
                .default_service(web::to(not_found));
            match (&sim_data, &demo) {
                (Some(sim), Some(demo)) => app
                    .app_data(sim.clone())
                    .app_data(demo.clone())
                    .configure(crate::simulator::api::routes)
                    .configure(crate::web::routes),
                _ => app,
            }
        })
        .shutdown_timeout(10)
        // A request's head must arrive within 5 s of the connection (or of the
        // previous request on it); its body within 10 s more (`body.rs`).
        .client_request_timeout(Duration::from_secs(5))
        .client_disconnect_timeout(Duration::from_secs(1))
        .disable_signals()
        .listen(listener)?
        .run();
        // Our own handlers, installed before anyone is told the address, so a
        // SIGTERM right after start-up still stops gracefully.
        let stop_on = Signals::install()?;
        let handle = server.handle();
        let background_signal = tokio::spawn(async move {
            stop_on.recv().await;
            tracing::info!("stop signal received; finishing in-flight requests");
            if let Some(sim) = closer {
                sim.close();
            }
            handle.stop(true).await;
        });

        let pages = match settings.provider {
            ProviderKind::Simulator => vec![format!("{base_url}/dev/phone"), format!("{base_url}/demo")],
            ProviderKind::Twilio => Vec::new(),
        };
        Ok(Self { port: addr.port(), base_url, pages, server, shutdown, background, _signals: background_signal })
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

fn json_config() -> web::JsonConfig {
    web::JsonConfig::default().limit(crate::body::MAX_BODY).error_handler(|err, _| {
        use actix_web::error::JsonPayloadError as E;
        let app = match err {
            E::Overflow { .. } | E::OverflowKnownLength { .. } => AppError::PayloadTooLarge,
            E::ContentType => AppError::UnsupportedMediaType,
            E::Deserialize(e) if e.is_data() => AppError::invalid("body", e.to_string()),
            other => AppError::MalformedJson(other.to_string()),
        };
        actix_web::error::InternalError::from_response("", app.error_response()).into()
    })
}

async fn not_found() -> HttpResponse {
    AppError::NotFound("no such route").error_response()
}

/// The route table.
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/auth-requests", web::post().to(requests::register))
        .route("/v1/auth-requests/{id}", web::get().to(requests::get))
        .route("/v1/auth-requests/{id}/cancel", web::post().to(requests::cancel))
        .route("/v1/auth-requests/{id}/check", web::post().to(requests::check))
        .route("/v1/tenant/voice", web::get().to(crate::api::tenant::get_voice))
        .route("/v1/tenant/voice", web::put().to(crate::api::tenant::put_voice))
        .route("/v1/tenant/voice/preview", web::get().to(crate::api::tenant::preview))
        .route(paths::ANSWER, web::post().to(webhooks::answer))
        .route(paths::GATHER, web::post().to(webhooks::gather))
        .route(paths::NO_INPUT, web::post().to(webhooks::no_input))
        .route(paths::STATUS, web::post().to(webhooks::status))
        .route(paths::STATUS_BY_SID, web::post().to(webhooks::status_by_sid))
        .route(paths::INBOUND, web::post().to(webhooks::inbound))
        .route(paths::INBOUND_GATHER, web::post().to(webhooks::inbound_gather))
        .route(paths::OTP, web::post().to(webhooks::otp))
        .route(paths::SMS_STATUS, web::post().to(webhooks::sms_status))
        .route("/voice_prompts/{locale}/{file}", web::get().to(ops::prompt_audio))
        .route("/healthz", web::get().to(ops::healthz))
        .route("/readyz", web::get().to(ops::readyz))
        .route("/metrics", web::get().to(ops::metrics))
        .route("/openapi.json", web::get().to(ops::openapi))
        .route("/favicon.ico", web::get().to(crate::web::favicon));
}
