//! `audit verify` (check every chain, naming the first broken event) and
//! `audit export` (JSON lines, oldest first, with each event's seq and hash).

use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::Subcommand;
use serde_json::json;

use super::{CliError, DbArgs};
use crate::store::{self, AuditQuery, OpenOptions, Role, StoredEvent, Verdict};

#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Seal what is stored, then check every chain (the server's and each
    /// tenant's); exit 0 when intact, 1 naming the first broken event otherwise
    Verify,
    /// Write the events as JSON lines, oldest first, with their seq and hash
    Export {
        /// Only this tenant's events (its name)
        #[arg(long)]
        tenant: Option<String>,
        /// Events at or after this time (RFC 3339)
        #[arg(long, value_parser = rfc3339)]
        from: Option<DateTime<Utc>>,
        /// Events before this time (RFC 3339)
        #[arg(long, value_parser = rfc3339)]
        to: Option<DateTime<Utc>>,
    },
}

fn rfc3339(raw: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(raw).map(|t| t.with_timezone(&Utc)).map_err(|e| format!("an RFC 3339 time: {e}"))
}

/// Events read per query while exporting.
const PAGE: usize = 1000;
const SEAL_BATCH: usize = 5000;

/// Runs an audit command: `Ok` with what is left to print (the export
/// writes its lines itself), or `Err` (exit 1) with the line naming what is wrong.
pub async fn audit(
    db: &DbArgs,
    config: Option<&std::path::Path>,
    action: AuditAction,
) -> Result<Option<String>, CliError> {
    let store = store::open(&db.url(config)?, OpenOptions::new(Role::Cli)).await?;
    match action {
        AuditAction::Verify => {
            while store.seal_audit(SEAL_BATCH).await? == SEAL_BATCH {}
            match store::audit::verify(&*store).await? {
                intact @ Verdict::Intact { .. } => Ok(Some(intact.to_string())),
                broken => Err(CliError::Usage(broken.to_string())),
            }
        }
        AuditAction::Export { tenant, from, to } => {
            let tenant = match tenant {
                Some(name) => match store.list_tenants().await?.into_iter().find(|t| t.name == name) {
                    Some(t) => Some(t.id),
                    None => return Err(CliError::Usage(format!("no tenant named {name:?}"))),
                },
                None => None,
            };
            let mut query = AuditQuery { tenant, from, to, oldest_first: true, limit: PAGE, ..AuditQuery::default() };
            let mut out = std::io::stdout().lock();
            loop {
                let page = store.audit_events(query.clone()).await?;
                for e in &page {
                    writeln!(out, "{}", line(e)).map_err(|e| CliError::Usage(format!("writing the export: {e}")))?;
                }
                match page.last() {
                    Some(last) if page.len() == PAGE => query.after_id = Some(last.id),
                    _ => break,
                }
            }
            out.flush().map_err(|e| CliError::Usage(format!("writing the export: {e}")))?;
            Ok(None)
        }
    }
}

/// One event as a JSON line.
fn line(e: &StoredEvent) -> serde_json::Value {
    let r = &e.record;
    json!({
        "id": e.id,
        "chain": r.chain(),
        "seq": e.seq,
        "hash": e.hash.map(hex::encode),
        "type": r.kind.as_str(),
        "tenant_id": r.tenant_id,
        "request_id": r.request_id,
        "at": r.at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": r.data,
    })
}
