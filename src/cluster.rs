//! This server among the others on one database: it says it is alive, and
//! learns how many servers are, so limits meant for the whole service can be
//! shared out between them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::store::Store;

/// How often a server says it is alive (the store counts a server as alive
/// for three of these).
const HEARTBEAT: Duration = Duration::from_secs(5);

/// This server's identity and its view of the cluster.
pub struct Cluster {
    pub node: Uuid,
    /// Live servers, this one included.
    pub nodes: Arc<AtomicU32>,
    /// This server's provider is the simulator, whose calls live in its memory.
    simulator: bool,
}

/// Says when the count of live servers changes (`before`: 0 at joining,
/// where a server alone says nothing). A simulator among several servers is
/// warned about: the others know nothing of its calls.
fn counted(before: u32, n: u32, simulator: bool) {
    if before == n || (before == 0 && n == 1) {
        return;
    }
    tracing::info!(servers = n, "servers on this database changed");
    if simulator && n > 1 {
        tracing::warn!(
            servers = n,
            "several servers share this database, but this one runs the simulator, whose calls live in this \
             process only: the others' jobs, /dev/phone and /simulator do not see them. Use one simulator server \
             per database (several nodes on one machine: `bench run --nodes 3`)"
        );
    }
}

impl Cluster {
    /// Joins: the first heartbeat is written before the server answers anything.
    pub async fn join(store: &dyn Store, simulator: bool) -> Result<Self, crate::store::StoreError> {
        let node = Uuid::now_v7();
        let n = store.heartbeat(node).await?;
        counted(0, n, simulator);
        Ok(Self { node, nodes: Arc::new(AtomicU32::new(n)), simulator })
    }

    /// Keeps the heartbeat going until `shutdown`, then leaves.
    pub fn spawn(&self, store: Arc<dyn Store>, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        let (node, nodes, simulator) = (self.node, self.nodes.clone(), self.simulator);
        tokio::spawn(async move {
            while !*shutdown.borrow() {
                tokio::select! {
                    () = tokio::time::sleep(HEARTBEAT) => {}
                    _ = shutdown.changed() => break,
                }
                match store.heartbeat(node).await {
                    Ok(n) => counted(nodes.swap(n, Ordering::Relaxed), n, simulator),
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                }
            }
            if let Err(e) = store.leave(node).await {
                tracing::warn!(error = %e, "could not sign off from the database");
            }
        })
    }
}
