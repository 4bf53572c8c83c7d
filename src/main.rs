//! `ivr-auth`: parse the command line, run one command.
//!
//! The load generator (`bench`) is a tool beside the server, built into the
//! same binary but not into the server's library.

mod bench;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use ivr_auth::cli::{self, DbArgs, PromptsAction, TenantAction};
use ivr_auth::config::{ServeArgs, Settings, unknown_env_vars, value_error_line};
use ivr_auth::startup::Application;

/// IVR phone-authentication server.
#[derive(Debug, Parser)]
#[command(name = "ivr-auth", version, about)]
pub struct Cli {
    /// TOML file with settings (names as the flags, with underscores)
    #[arg(long, global = true, env = "IVR_AUTH_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start-up
pub enum Command {
    /// Run the server
    Serve(ServeArgs),
    /// Manage tenants (the sites that use the API)
    Tenant {
        #[command(flatten)]
        db: DbArgs,
        #[command(subcommand)]
        action: TenantAction,
    },
    /// Load generator and database seeding (see BENCHMARKS.md)
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// Prompt audio for our own SIP trunk (tenants' names and words are read from the database)
    Prompts {
        #[command(flatten)]
        db: DbArgs,
        #[command(subcommand)]
        action: PromptsAction,
    },
    /// The audit trail: verify its chains, export it (JSON lines)
    Audit {
        #[command(flatten)]
        db: DbArgs,
        #[command(subcommand)]
        action: cli::AuditAction,
    },
    /// Usage for billing in a month: calls placed and taken, call-seconds, text
    /// messages, per tenant, provider account and country (a table per tenant, or CSV)
    Usage(cli::UsageArgs),
    /// Create or upgrade the database schema, then exit
    Migrate {
        #[command(flatten)]
        db: DbArgs,
    },
    /// The operator console (served at /console)
    Console {
        #[command(subcommand)]
        action: ConsoleAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConsoleAction {
    /// Print a one-time sign-in link for a tenant (for tenants that sign their requests)
    Link(ivr_auth::console_link::LinkArgs),
}

/// One line on stderr; a stderr that is gone is not worth a panic.
fn complain(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "ivr-auth: {message}");
}

/// The parsed command line; a bad value of a setting is one line naming its
/// environment variable, anything else as clap says it (help, usage).
fn parse_command_line() -> Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|err| match value_error_line(&err, &Cli::command()) {
        Some(line) => {
            complain(&line);
            ExitCode::FAILURE
        }
        None => err.exit(),
    })
}

fn main() -> ExitCode {
    let args = match parse_command_line() {
        Ok(args) => args,
        Err(code) => return code,
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if matches!(args.command, Command::Bench { command: bench::BenchCommand::Run(_) }) {
        // The load generator shares the cores with the server it measures and
        // needs about a quarter of one: a second worker thread only wakes up
        // to take a task from the first, and costs it 10 % more CPU per
        // lifecycle (BENCHMARKS.md, issue 18's thirteenth sitting).
        runtime.worker_threads(1);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            complain(&format!("cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let config = args.config.clone();
    let result = runtime.block_on(async move {
        match args.command {
            Command::Serve(serve) => serve_command(serve, config.as_deref()).await,
            Command::Tenant { db, action } => cli::tenant(&db, config.as_deref(), action)
                .await
                .map(|out| ivr_auth::telemetry::say(&out))
                .map_err(|e| e.to_string()),
            Command::Bench { command: bench::BenchCommand::Run(args) } => bench::run(args).await,
            Command::Bench { command: bench::BenchCommand::Seed(args) } => bench::seed(args).await,
            Command::Bench { command: bench::BenchCommand::Burst(args) } => bench::burst(args).await,
            Command::Bench { command: bench::BenchCommand::Sip(args) } => bench::sip(args).await,
            Command::Prompts { db, action } => cli::prompts(&db, config.as_deref(), action)
                .await
                .map(|out| ivr_auth::telemetry::say(&out))
                .map_err(|e| e.to_string()),
            Command::Console { action: ConsoleAction::Link(args) } => {
                ivr_auth::console_link::link(args, config.as_deref())
                    .await
                    .map(|out| ivr_auth::telemetry::say(&out))
                    .map_err(|e| e.to_string())
            }
            Command::Audit { db, action } => cli::audit(&db, config.as_deref(), action)
                .await
                .map(|out| out.iter().for_each(|line| ivr_auth::telemetry::say(line)))
                .map_err(|e| e.to_string()),
            Command::Usage(args) => cli::usage(args, config.as_deref())
                .await
                .map(|out| ivr_auth::telemetry::say(&out))
                .map_err(|e| e.to_string()),
            Command::Migrate { db } => cli::migrate(&db, config.as_deref())
                .await
                .map(|out| ivr_auth::telemetry::say(&out))
                .map_err(|e| e.to_string()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            complain(&message);
            ExitCode::FAILURE
        }
    }
}

async fn serve_command(serve: ServeArgs, config: Option<&std::path::Path>) -> Result<(), String> {
    let settings = serve.with_file(config).and_then(Settings::from_args).map_err(|e| e.to_string())?;
    let filter = ivr_auth::telemetry::filter_from_env()?;
    let _logging = ivr_auth::telemetry::init(settings.log_json, filter);
    for name in unknown_env_vars() {
        tracing::warn!(variable = %name, "unknown IVR_AUTH_ environment variable ignored (typo?)");
    }
    for warning in settings.public_url_warnings() {
        tracing::warn!(setting = "IVR_AUTH_PUBLIC_URL", "{warning}");
    }
    let app = Application::build(settings).await.map_err(|e| e.to_string())?;
    tracing::info!(url = %app.base_url(), "ivr-auth listening");
    ivr_auth::telemetry::say(&format!("ivr-auth is listening on {}", app.base_url()));
    if let [phone, demo] = app.pages() {
        ivr_auth::telemetry::say(&format!("  dev phone (answer simulated calls): {phone}"));
        ivr_auth::telemetry::say(&format!("  demo site (try a verification):     {demo}"));
    }
    app.run_until_stopped().await.map_err(|e| e.to_string())
}

/// jemalloc rather than glibc's malloc: about 6 % fewer instructions per
/// lifecycle at the same peak memory (BENCHMARKS.md, issue 18). Its settings
/// are compiled in (`.cargo/config.toml`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
