//! The queues in front of PostgreSQL's group-commit writers (`batch`) and
//! batched point readers (`reads`): each worker takes whatever has queued up.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc};
use tokio::task::AbortHandle;

use super::Db;

/// Starts `workers` tasks that each wait for an item, take whatever else has
/// queued up behind it (`max` at most) and `run` them together; they stop
/// when the returned sender is dropped.
pub(super) fn spawn<T, F, Fut>(
    db: Arc<Db>,
    workers: usize,
    max: usize,
    run: F,
) -> (mpsc::UnboundedSender<T>, Vec<AbortHandle>)
where
    T: Send + 'static,
    F: Fn(Arc<Db>, Vec<T>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let rx = Arc::new(Mutex::new(rx));
    let tasks = (0..workers)
        .map(|_| {
            let (rx, db, run) = (rx.clone(), db.clone(), run.clone());
            tokio::spawn(async move {
                while let Some(batch) = next_batch(&rx, max).await {
                    run(db.clone(), batch).await;
                }
            })
            .abort_handle()
        })
        .collect();
    (tx, tasks)
}

/// Waits for an item, then takes whatever else has queued up behind it,
/// `max` at most; `None` once the queue's senders are gone.
async fn next_batch<T>(rx: &Mutex<mpsc::UnboundedReceiver<T>>, max: usize) -> Option<Vec<T>> {
    let mut rx = rx.lock().await;
    let mut batch = vec![rx.recv().await?];
    while batch.len() < max {
        match rx.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
    Some(batch)
}
