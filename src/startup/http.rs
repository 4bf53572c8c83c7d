//! The HTTP side of start-up: the server, its middleware and the route table in one place.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, Service as _};
use actix_web::{App, HttpResponse, HttpServer, ResponseError, web};
use futures_util::FutureExt;

use super::StartError;
use crate::api::{ops, requests};
use crate::call::urls::Urls;
use crate::call::urls::paths;
use crate::error::AppError;
use crate::metrics::{HttpLabels, Metrics, RouteLabel};
use crate::simulator::Simulator;
use crate::state::AppState;
use crate::telephony::webhook::{Dialect, Verifier};
use crate::voice;
use crate::web::demo::DemoTenant;

/// The HTTP server on `listener`: the route table, and in simulator mode the
/// simulator's routes and the demo pages.
pub(super) fn http_server(
    state: web::Data<AppState>,
    simulator: Option<(Simulator, web::Data<DemoTenant>)>,
    dialects: Vec<Arc<dyn Dialect>>,
    listener: std::net::TcpListener,
) -> Result<Server, StartError> {
    // Each provider's folder: its dialect and the URLs of its webhooks.
    let folders: Vec<(web::Data<dyn Dialect>, web::Data<Urls>)> = dialects
        .into_iter()
        .map(|d| {
            let urls = web::Data::new(state.urls.of(d.name()));
            (web::Data::from(d), urls)
        })
        .collect();
    let simulator = simulator.map(|(sim, demo)| (web::Data::new(sim), demo));
    // The webhook extractor reads the state through the provider's trait, so
    // that the provider's module need not know `AppState`.
    let verifier: web::Data<dyn Verifier> = web::Data::from(state.clone().into_inner() as Arc<dyn Verifier>);
    let server = HttpServer::new(move || {
        let app = App::new().app_data(state.clone()).app_data(verifier.clone()).app_data(json_config()).wrap_fn(
            |req, srv| {
                let started = Instant::now();
                let metrics = req.app_data::<web::Data<AppState>>().map(|s| s.service.metrics.clone());
                let method = crate::metrics::method_label(req.method());
                srv.call(req).map(move |res| {
                    if let (Ok(res), Some(metrics)) = (&res, metrics) {
                        count_request(&metrics, res, method, started);
                    }
                    res
                })
            },
        );
        // The webhooks first: they are three of a lifecycle's five requests,
        // and each route tried before the one that matches costs a regex
        // match when its path has a parameter.
        let app = folders.iter().fold(app, |app, (dialect, urls)| {
            app.service(
                web::scope(&paths::folder(dialect.name()))
                    .app_data(dialect.clone())
                    .app_data(urls.clone())
                    .configure(webhook_routes),
            )
        });
        let app = app.configure(routes);
        let app = app.default_service(web::to(not_found));
        match &simulator {
            Some((sim, demo)) => app
                .app_data(sim.clone())
                .app_data(demo.clone())
                .configure(crate::simulator::api::routes)
                .configure(crate::web::routes),
            None => app,
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
    Ok(server)
}

/// Counts an answered request in the HTTP metrics, by route, method and status.
fn count_request(metrics: &Metrics, res: &actix_web::dev::ServiceResponse, method: &'static str, started: Instant) {
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".into());
    let labels = HttpLabels { route, method, status: res.status().as_u16() };
    metrics.http_requests.get_or_create(&labels).inc();
    metrics.http_duration.get_or_create(&RouteLabel { route: labels.route }).observe(started.elapsed().as_secs_f64());
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
        .route("/v1/auth-requests", web::get().to(crate::api::lookup::search))
        .route("/v1/auth-requests/{id}", web::get().to(requests::get))
        .route("/v1/auth-requests/{id}/timeline", web::get().to(crate::api::lookup::timeline))
        .route("/v1/auth-requests/{id}/cancel", web::post().to(requests::cancel))
        .route("/v1/auth-requests/{id}/check", web::post().to(requests::check))
        .route("/v1/tenant/voice", web::get().to(crate::api::tenant::get_voice))
        .route("/v1/tenant/voice", web::put().to(crate::api::tenant::put_voice))
        .route("/v1/tenant/voice/preview", web::get().to(crate::api::tenant::preview))
        .route("/v1/audit-events", web::get().to(crate::api::audit::list))
        .route("/v1/audit-events/verify", web::get().to(crate::api::audit::verify))
        .route("/v1/stats", web::get().to(crate::api::stats::stats))
        .route("/v1/usage", web::get().to(crate::api::usage::get))
        .route("/voice_prompts/{locale}/{file}", web::get().to(ops::prompt_audio))
        .route("/healthz", web::get().to(ops::healthz))
        .route("/readyz", web::get().to(ops::readyz))
        .route("/metrics", web::get().to(ops::metrics))
        .route("/openapi.json", web::get().to(ops::openapi))
        .route("/favicon.ico", web::get().to(crate::web::favicon))
        .configure(crate::web::console::routes);
}

/// The routes of one provider's folder (`/webhooks/<provider>`). The answer
/// webhooks also take `GET`: Vonage fetches an answer URL with `GET` unless
/// told otherwise; the signature check is the dialect's either way. The
/// ones every outbound call uses come first.
fn webhook_routes(cfg: &mut web::ServiceConfig) {
    let both = || web::route().guard(actix_web::guard::Any(actix_web::guard::Get()).or(actix_web::guard::Post()));
    cfg.route(paths::ANSWER, both().to(voice::answer))
        .route(paths::GATHER, web::post().to(voice::gather))
        .route(paths::STATUS, web::post().to(voice::status))
        .route(paths::NO_INPUT, web::post().to(voice::no_input))
        .route(paths::STATUS_BY_SID, web::post().to(voice::status_by_sid))
        .route(paths::INBOUND, both().to(voice::inbound))
        .route(paths::INBOUND_GATHER, web::post().to(voice::inbound_gather))
        .route(paths::OTP, web::post().to(voice::otp))
        .route(paths::SMS_STATUS, web::post().to(voice::sms_status));
}
