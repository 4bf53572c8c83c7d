//! Batched point reads: the lookups of requests by id and of tenants by key
//! id that queue up together are answered by one `= ANY($1)` query each.
//!
//! Every site-API call looks its tenant up and most read a request; one round
//! trip for many of them costs the database and this process far less than
//! one each. A read is sent after it was asked for, so it is as fresh as a
//! read of its own.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use uuid::Uuid;

use super::queue;
use super::rows::{request_from_row, tenant_from_row};
use super::{Db, Fail};
use crate::domain::request::AuthRequest;
use crate::domain::tenant::Tenant;
use crate::store::StoreError;

/// Reads in one batch at most.
const MAX_BATCH: usize = 512;
/// Batches in flight at once (a connection each).
const READERS: usize = 2;

pub(super) const REQUESTS: &str = concat!("SELECT ", request_columns!(), " FROM auth_requests WHERE id = ANY($1)");
const TENANTS: &str = concat!("SELECT ", tenant_columns!(), " FROM tenants WHERE key_id = ANY($1)");

/// A queued read and where its answer goes.
pub(super) enum Read {
    Request { id: Uuid, reply: oneshot::Sender<Result<Option<AuthRequest>, StoreError>> },
    Tenant { key_id: String, reply: oneshot::Sender<Result<Option<Tenant>, StoreError>> },
}

/// Starts the readers; they stop when the returned sender is dropped.
pub(super) fn spawn(db: Arc<Db>) -> (mpsc::UnboundedSender<Read>, Vec<AbortHandle>) {
    queue::spawn(db, READERS, MAX_BATCH, |db, batch| async move { run(&db, batch).await })
}

/// The rows a batch found.
#[derive(Default)]
struct Found {
    requests: HashMap<Uuid, AuthRequest>,
    tenants: HashMap<String, Tenant>,
}

async fn run(db: &Db, batch: Vec<Read>) {
    let ids: Vec<Uuid> =
        batch.iter().filter_map(|r| if let Read::Request { id, .. } = r { Some(*id) } else { None }).collect();
    let keys: Vec<&str> = batch
        .iter()
        .filter_map(|r| if let Read::Tenant { key_id, .. } = r { Some(key_id.as_str()) } else { None })
        .collect();
    let found = retrying!(db, "read", |conn, _tries| {
        let requests = async {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let stmt = conn.prepare_cached(REQUESTS).await?;
            conn.query(&stmt, &[&ids]).await
        };
        let tenants = async {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let stmt = conn.prepare_cached(TENANTS).await?;
            conn.query(&stmt, &[&keys]).await
        };
        let (requests, tenants) = tokio::try_join!(requests, tenants)?;
        let mut found = Found::default();
        for row in &requests {
            let r = request_from_row(row)?;
            found.requests.insert(r.id, r);
        }
        for row in &tenants {
            let t = tenant_from_row(row)?;
            found.tenants.insert(t.key_id.clone(), t);
        }
        Ok::<Found, Fail>(found)
    });
    match found {
        Ok(found) => {
            for read in batch {
                match read {
                    Read::Request { id, reply } => drop(reply.send(Ok(found.requests.get(&id).cloned()))),
                    Read::Tenant { key_id, reply } => drop(reply.send(Ok(found.tenants.get(&key_id).cloned()))),
                }
            }
        }
        Err(e) => {
            let unavailable = matches!(e, StoreError::Unavailable(_));
            let why = e.to_string();
            let error = || {
                if unavailable {
                    StoreError::Unavailable(why.clone().into())
                } else {
                    StoreError::Database(why.clone().into())
                }
            };
            for read in batch {
                match read {
                    Read::Request { reply, .. } => drop(reply.send(Err(error()))),
                    Read::Tenant { reply, .. } => drop(reply.send(Err(error()))),
                }
            }
        }
    }
}
