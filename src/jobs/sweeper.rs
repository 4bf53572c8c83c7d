//! Periodic housekeeping: store the expiry of overdue requests, purge old ones, trim limiter memory.
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
        while !*shutdown.borrow() {
            expire_overdue(&service).await;
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
    })
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
