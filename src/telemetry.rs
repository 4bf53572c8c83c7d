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
/// `rsipstack` writes whole SIP messages at info: phone numbers and digest
/// `Authorization` headers, which never go to a log.
const CHATTY: [&str; 4] = ["tokio_postgres=info", "deadpool_postgres=info", "actix_server=warn", "rsipstack=warn"];

/// The levels a log filter may name; a bare word must be one of them.
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// The log filter of `IVR_AUTH_LOG` (or else `RUST_LOG`; default `info`).
/// A filter that does not parse is refused, and so is a bare word that is
/// no level: `EnvFilter` reads `verbose` as "everything of the target
/// `verbose`", which silences every line the server writes.
pub fn filter_from_env() -> Result<EnvFilter, String> {
    let set = |name: &'static str| std::env::var(name).ok().filter(|v| !v.trim().is_empty()).map(|v| (name, v));
    let Some((name, value)) = set("IVR_AUTH_LOG").or_else(|| set("RUST_LOG")) else {
        return Ok(EnvFilter::new("info"));
    };
    parse_filter(&value).map_err(|why| {
        format!(
            "configuration error: {name} ({value:?}): {why}; use one of {} (e.g. IVR_AUTH_LOG=debug), \
             or filter directives such as info,ivr_auth=debug",
            LEVELS.join(", ")
        )
    })
}

fn parse_filter(value: &str) -> Result<EnvFilter, String> {
    let unknown = value
        .split(',')
        .map(str::trim)
        .find(|d| !d.is_empty() && !d.contains(['=', '[']) && !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(d)));
    if let Some(word) = unknown {
        return Err(format!("{word:?} is no log level"));
    }
    EnvFilter::builder().parse(value).map_err(|e| format!("not a log filter ({e})"))
}

/// Installs the global subscriber once; later calls do nothing. Events are
/// written to stdout by a thread of their own through a bounded queue that
/// drops lines when full: a slow, full or closed stdout (a pipe whose reader
/// stopped or exited) never blocks or stops serving. Keep the guard until
/// exit: dropping it flushes what is queued.
pub fn init(json: bool, mut filter: EnvFilter) -> tracing_appender::non_blocking::WorkerGuard {
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

#[cfg(test)]
mod tests {
    use super::parse_filter;

    #[test]
    fn levels_and_directives_are_accepted_and_unknown_words_refused() {
        for ok in ["info", "DEBUG", "warn,ivr_auth=debug", "ivr_auth=trace", "info,actix_web[request]=debug"] {
            assert!(parse_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["verbose", "info,loud", "ivr_auth=loud", "=debug"] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }
}
