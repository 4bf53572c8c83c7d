//! `LISTEN ivr_auth_jobs` on a connection of its own: another server's new
//! job wakes this server's runner at once instead of at its next poll.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;

use super::connect::Target;

/// The notification channel; the payload is the schema the job was added to.
pub const CHANNEL: &str = "ivr_auth_jobs";

/// Listens until aborted, reconnecting after a lost connection. After every
/// (re)connection it wakes the runner once, for jobs added while it was deaf.
pub fn spawn(target: Arc<Target>, schema: String, wake: Arc<Notify>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = listen(&target, &schema, &wake).await {
                tracing::warn!(error = %e, "job listener lost its database connection; reconnecting");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

async fn listen(target: &Target, schema: &str, wake: &Notify) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = target.config.connect(target.tls.clone()).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    wake.notify_one();
    while let Some(payload) = rx.recv().await {
        if payload == schema {
            wake.notify_one();
        }
    }
    drop(client);
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
