//! Logging: `tracing` to stdout, text or JSON, filtered by `IVR_AUTH_LOG` (or `RUST_LOG`).
//! Phone numbers are logged masked (`PhoneNumber`'s `Display`); codes and keys never.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Directive;

/// Libraries whose debug events carry statement parameters or request bodies
/// (phone numbers, code hashes, callback secrets): capped at `info`, whatever
/// the filter says. And actix-server, whose `log` records (bridged into
/// tracing) narrate its runtime and workers at every start and stop ("Tokio
/// runtime found; starting in existing Tokio runtime", "starting 2 workers",
/// "shutting down idle worker"): capped at `warn`, so the start-up output is
/// ours and says what an operator needs.
const CHATTY: [&str; 3] = ["tokio_postgres=info", "deadpool_postgres=info", "actix_server=warn"];

/// Installs the global subscriber once; later calls do nothing. Events are
/// written to stdout by a thread of their own through a bounded queue that
/// drops lines when full: a slow, full or closed stdout (a pipe whose reader
/// stopped or exited) never blocks or stops serving. Keep the guard until
/// exit: dropping it flushes what is queued.
pub fn init(json: bool) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = std::env::var("IVR_AUTH_LOG").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_else(|_| "info".into());
    let mut filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    for cap in CHATTY {
        if let Ok(d) = cap.parse::<Directive>() {
            filter = filter.add_directive(d);
        }
    }
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let (writer, guard) =
        tracing_appender::non_blocking::NonBlockingBuilder::default().lossy(true).finish(std::io::stdout());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi).with_writer(writer);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
    guard
}

/// Prints a line to stdout for the operator; a stdout that is gone is not an error.
pub fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}
