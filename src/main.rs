//! `ivr-auth`: parse the command line, run one command.

use std::process::ExitCode;

use clap::Parser;
use ivr_auth::cli::{self, Cli, Command};
use ivr_auth::config::{Settings, unknown_env_vars};
use ivr_auth::startup::Application;

fn main() -> ExitCode {
    let args = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ivr-auth: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = args.config.clone();
    let result = runtime.block_on(async move {
        match args.command {
            Command::Serve(serve) => serve_command(serve, config.as_deref()).await,
            Command::Tenant { db, action } => cli::tenant(&db, config.as_deref(), action)
                .await
                .map(|out| println!("{out}"))
                .map_err(|e| e.to_string()),
            Command::Bench { command: ivr_auth::bench::BenchCommand::Run(args) } => ivr_auth::bench::run(args).await,
            Command::Bench { command: ivr_auth::bench::BenchCommand::Seed(args) } => ivr_auth::bench::seed(args).await,
            Command::Migrate { db } => {
                cli::migrate(&db, config.as_deref()).await.map(|out| println!("{out}")).map_err(|e| e.to_string())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ivr-auth: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_command(serve: ivr_auth::config::ServeArgs, config: Option<&std::path::Path>) -> Result<(), String> {
    let settings = serve.with_file(config).and_then(Settings::from_args).map_err(|e| e.to_string())?;
    ivr_auth::telemetry::init(settings.log_json);
    for name in unknown_env_vars() {
        tracing::warn!(variable = %name, "unknown IVR_AUTH_ environment variable ignored (typo?)");
    }
    let app = Application::build(settings).await.map_err(|e| e.to_string())?;
    tracing::info!(url = %app.base_url(), "ivr-auth listening");
    println!("ivr-auth is listening on {}", app.base_url());
    if let [phone, demo] = app.pages() {
        println!("  dev phone (answer simulated calls): {phone}");
        println!("  demo site (try a verification):     {demo}");
    }
    app.run_until_stopped().await.map_err(|e| e.to_string())
}
