//! A TCP forwarder the test controls: the network between a server and the
//! database (or the provider) can work, refuse every connection, or swallow
//! traffic without an answer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    /// Set: the next connection to send a PostgreSQL `COMMIT` (simple query,
    /// unencrypted) has it passed on and is then cut before the answer comes
    /// back, so the commit happens and its client never hears of it.
    commit_lost: Arc<AtomicBool>,
}

impl Proxy {
    /// Forwards 127.0.0.1:<ephemeral> to `target`.
    pub async fn start(target: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, rx) = watch::channel(Mode::Forward);
        let stalled = Arc::new(Mutex::new(0));
        let counted = stalled.clone();
        let commit_lost = Arc::new(AtomicBool::new(false));
        let losing = commit_lost.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut rx = rx.clone();
                let counted = counted.clone();
                let losing = losing.clone();
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
                            pump(client, server, rx, losing).await;
                        }
                    }
                });
            }
        });
        Self { addr, mode, stalled, commit_lost }
    }

    /// `url` (a test database's, on 127.0.0.1:5432) reaching the database through this proxy.
    pub fn through(&self, url: &str) -> String {
        url.replace("127.0.0.1:5432", &self.addr.to_string())
    }

    /// Loses the answer of the next `COMMIT` that passes (see `commit_lost`).
    pub fn lose_next_commit_answer(&self) {
        self.commit_lost.store(true, Ordering::SeqCst);
    }

    /// Whether a `COMMIT` has passed since `lose_next_commit_answer`, its answer lost.
    pub fn commit_answer_lost(&self) -> bool {
        !self.commit_lost.load(Ordering::SeqCst)
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

/// Copies both ways until either side closes or the mode changes (which cuts
/// the connection), or a `COMMIT` whose answer is to be lost has passed.
async fn pump(client: TcpStream, server: TcpStream, mut rx: watch::Receiver<Mode>, commit_lost: Arc<AtomicBool>) {
    let (mut client_in, mut client_out) = client.into_split();
    let (mut server_in, mut server_out) = server.into_split();
    let cut = AtomicBool::new(false);
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = client_in.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            let commit = buf[..n].windows(7).any(|w| w == b"COMMIT\0");
            let losing = commit && commit_lost.swap(false, Ordering::SeqCst);
            if losing {
                // Nothing the server says from now on reaches the client.
                cut.store(true, Ordering::SeqCst);
            }
            if server_out.write_all(&buf[..n]).await.is_err() {
                return;
            }
            if losing {
                // Time for the server to commit, then the connection is gone.
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                return;
            }
        }
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = server_in.read(&mut buf).await.unwrap_or(0);
            if n == 0 || cut.load(Ordering::SeqCst) || client_out.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = rx.changed() => {}
    }
    let _ = client_out.shutdown().await;
    let _ = server_out.shutdown().await;
}
