//! A TCP forwarder the test controls: the network between a server and the
//! database (or the provider) can work, refuse every connection, or swallow
//! traffic without an answer.

use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the forwarder does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Passes bytes both ways.
    Forward,
    /// Closes every connection at once, new ones included (the far side is unreachable).
    Refuse,
    /// Accepts but never passes anything on (the far side hangs); existing connections are cut.
    Stall,
}

pub struct Proxy {
    pub addr: std::net::SocketAddr,
    mode: watch::Sender<Mode>,
    /// Connections accepted while stalled (they never reach the target).
    pub stalled: Arc<Mutex<usize>>,
}

impl Proxy {
    /// Forwards 127.0.0.1:<ephemeral> to `target`.
    pub async fn start(target: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, rx) = watch::channel(Mode::Forward);
        let stalled = Arc::new(Mutex::new(0));
        let counted = stalled.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut rx = rx.clone();
                let counted = counted.clone();
                tokio::spawn(async move {
                    let current = *rx.borrow_and_update();
                    match current {
                        Mode::Refuse => drop(client),
                        Mode::Stall => {
                            *counted.lock().unwrap() += 1;
                            // Held open, unread, until the mode changes.
                            let _ = rx.changed().await;
                            drop(client);
                        }
                        Mode::Forward => {
                            let Ok(server) = TcpStream::connect(target).await else { return };
                            pump(client, server, rx).await;
                        }
                    }
                });
            }
        });
        Self { addr, mode, stalled }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

/// Copies both ways until either side closes or the mode changes (which cuts the connection).
async fn pump(mut client: TcpStream, mut server: TcpStream, mut rx: watch::Receiver<Mode>) {
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = rx.changed() => {}
    }
    let _ = client.shutdown().await;
    let _ = server.shutdown().await;
}
