//! Periodic housekeeping: store the expiry of overdue requests, seal the audit
//! trail and write its refusal counts, purge old rows, trim limiter memory.
//!
//! Every server may run it at once: an expiry is a transition like any other
//! (only the first write of it takes effect), and purges skip rows another
//! server is deleting.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::domain::request::Event;
use crate::service::Service;

/// Requests expired per pass; more wait for the next pass (one second later).
const EXPIRE_BATCH: usize = 500;
const PURGE_BATCH: usize = 5000;
/// Purge and trim every this many passes (about a minute).
const HOUSEKEEPING_EVERY: u32 = 60;

/// Starts the sweeper. Reads already show expiry at once; the sweeper makes
/// it durable and triggers the result callback.
pub fn spawn_sweeper(
    service: Arc<Service>,
    retention: chrono::Duration,
    trim: impl Fn() + Send + 'static,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut pass: u32 = 0;
        let mut refusals_since = service.now();
        while !*shutdown.borrow() {
            expire_overdue(&service).await;
            // Refusals are written once a minute (on the service's clock).
            if service.now().timestamp() / 60 != refusals_since.timestamp() / 60 {
                refusals_since = flush_refusals(&service, refusals_since).await;
            }
            seal(&service).await;
            if pass.is_multiple_of(HOUSEKEEPING_EVERY) {
                purge(&service, retention).await;
                forget(&service).await;
                trim();
            }
            pass = pass.wrapping_add(1);
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => {}
            }
        }
        flush_refusals(&service, refusals_since).await;
        seal(&service).await;
    })
}

/// Writes the refusals counted since `since`; answers when the next count starts.
async fn flush_refusals(service: &Service, since: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    match service.flush_refusals(since).await {
        Ok(_) => service.now(),
        Err(e) => {
            tracing::error!(error = %e, "writing the refusals into the audit trail failed; kept for the next minute");
            since
        }
    }
}

/// Links the audit events stored since the last pass into their chains.
async fn seal(service: &Service) {
    if let Err(e) = service.seal_audit().await {
        tracing::error!(error = %e, "sealing audit events failed");
    }
}

async fn expire_overdue(service: &Service) {
    let ids = match service.store.overdue_requests(service.now(), EXPIRE_BATCH).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::error!(error = %e, "listing overdue requests failed");
            return;
        }
    };
    for id in ids {
        if let Err(e) = service.apply(id, Event::Expire).await {
            tracing::error!(request_id = %id, error = %e, "expiring a request failed");
        }
    }
}

/// Drops used one-time tokens and call counts that no longer decide anything.
async fn forget(service: &Service) {
    match service.forget_spent().await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(rows = n, "used tokens and old call counts forgotten"),
        Err(e) => tracing::error!(error = %e, "forgetting used tokens failed"),
    }
}

async fn purge(service: &Service, retention: chrono::Duration) {
    let before = service.now() - retention;
    match service.store.purge_audit(before).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(purged = n, "audit events and funnel steps past retention deleted"),
        Err(e) => tracing::error!(error = %e, "audit retention purge failed"),
    }
    // Usage is billed by the month, so kept by its own age, not the requests' retention.
    let usage_before = service.now() - chrono::Duration::days(crate::domain::usage::RETENTION_DAYS);
    match service.store.purge_usage(usage_before).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(purged = n, "usage rows past 400 days deleted"),
        Err(e) => tracing::error!(error = %e, "usage purge failed"),
    }
    loop {
        match service.store.purge_finished(before, PURGE_BATCH).await {
            Ok(n) if n == PURGE_BATCH => continue,
            Ok(n) => {
                if n > 0 {
                    tracing::info!(purged = n, "finished requests past retention deleted");
                }
                break;
            }
            Err(e) => {
                tracing::error!(error = %e, "retention purge failed");
                break;
            }
        }
    }
}
