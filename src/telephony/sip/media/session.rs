//! One call's media. The clock sends (see `clock`), a task per session
//! receives; both meet in `Shared`, whose state sits behind a plain mutex
//! held only for a few microseconds and never across an await.

mod receive;
mod send;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::clock::Paced;
use super::counters::{CounterPair, CounterSnapshot, Counters, DigitSource};
use super::g711::Codec;
use super::pool::MediaPool;
use super::ports::PortLease;
use send::SendState;

#[derive(Debug, Error)]
pub enum MediaError {
    #[error("no free RTP port left in the configured range")]
    PortsExhausted,
    #[error("could not bind an RTP socket")]
    Bind(#[source] std::io::Error),
}

/// How a playback ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayOutcome {
    Finished,
    /// A digit arrived (with barge-in), or another playback replaced this one.
    Interrupted,
    Stopped,
}

/// What the SDP answer settled.
#[derive(Debug, Clone, Copy)]
struct Negotiated {
    remote: SocketAddr,
    codec: Codec,
    event_pt: Option<u8>,
}

pub(super) struct Shared {
    socket: UdpSocket,
    state: Mutex<SendState>,
    counters: CounterPair,
    digits: mpsc::Sender<char>,
    /// Counts digits, so a playback with barge-in wakes on the next one
    /// without taking it from the stream.
    digit_count: watch::Sender<u64>,
    stopped: watch::Sender<bool>,
    // Dropped after the socket (field order), so the port is free only once
    // the socket is closed.
    _lease: PortLease,
}

/// One call's RTP session. Dropping it stops it.
pub struct MediaSession {
    shared: Arc<Shared>,
    paced: Arc<dyn Paced>,
    pool: MediaPool,
    digits: mpsc::Receiver<char>,
    receiver: Option<JoinHandle<()>>,
}

impl MediaSession {
    /// Binds a socket on a free even port of the pool and starts receiving.
    pub async fn open(pool: &MediaPool) -> Result<MediaSession, MediaError> {
        let (socket, lease) = bind(pool).await?;
        let (digit_tx, digit_rx) = mpsc::channel(64);
        let shared = Arc::new(Shared {
            socket,
            state: Mutex::new(SendState::new()),
            counters: CounterPair { session: Arc::new(Counters::default()), node: pool.counters.clone() },
            digits: digit_tx,
            digit_count: watch::Sender::new(0),
            stopped: watch::Sender::new(false),
            _lease: lease,
        });
        let receiver = tokio::spawn(receive::run(shared.clone()));
        let paced: Arc<dyn Paced> = shared.clone();
        pool.clock.add(paced.clone());
        Ok(MediaSession { shared, paced, pool: pool.clone(), digits: digit_rx, receiver: Some(receiver) })
    }

    pub fn local_port(&self) -> u16 {
        self.shared._lease.port()
    }

    /// Starts sending once the SDP answer is known. `remote` is the SDP
    /// address; we send to the packets' source instead once they arrive.
    pub fn start(&self, remote: SocketAddr, codec: Codec, event_pt: Option<u8>) {
        self.shared.lock().negotiated = Some(Negotiated { remote, codec, event_pt });
    }

    /// Plays 8 kHz mono clips in order (zeros for a pause). A new playback
    /// replaces the current one. With `barge_in`, a digit arriving after
    /// this call ends it (the digit stays in the stream).
    pub fn play(&self, clips: Vec<Arc<[i16]>>, barge_in: bool) -> impl Future<Output = PlayOutcome> + Send + 'static {
        let (done_tx, done_rx) = oneshot::channel();
        let id = self.shared.lock().play(clips, done_tx);
        let shared = self.shared.clone();
        let mut digits = shared.digit_count.subscribe();
        digits.mark_unchanged();
        let mut stopped = shared.stopped.subscribe();
        async move {
            if *stopped.borrow_and_update() {
                return PlayOutcome::Stopped;
            }
            tokio::select! {
                _ = stopped.changed() => PlayOutcome::Stopped,
                done = done_rx => match done {
                    Ok(()) => PlayOutcome::Finished,
                    Err(_) if *stopped.borrow() => PlayOutcome::Stopped,
                    Err(_) => PlayOutcome::Interrupted,
                },
                _ = digits.changed(), if barge_in => {
                    shared.lock().cancel(id);
                    PlayOutcome::Interrupted
                }
            }
        }
    }

    /// The next digit from any source, waiting at most `timeout`.
    pub async fn next_digit(&mut self, timeout: Duration) -> Option<char> {
        tokio::time::timeout(timeout, self.digits.recv()).await.ok().flatten()
    }

    /// Feeds a digit the signalling layer received (SIP INFO) into the
    /// stream; `false` if `c` is not a DTMF key.
    pub fn inject_digit(&self, c: char) -> bool {
        match super::digit::normalize(c) {
            Some(key) => {
                self.shared.push_digit(key, DigitSource::Info);
                true
            }
            None => false,
        }
    }

    pub fn counters(&self) -> CounterSnapshot {
        self.shared.counters.session.snapshot()
    }

    /// Stops sending and receiving; playbacks end as `Stopped`. The port
    /// returns to the pool when the receive task has ended (at once with
    /// [`MediaSession::close`]).
    pub fn stop(&self) {
        self.shared.stopped.send_replace(true);
        self.pool.clock.remove(&self.paced);
    }

    /// Stops and waits until the socket is closed and the port is free.
    pub async fn close(mut self) {
        self.stop();
        if let Some(task) = self.receiver.take() {
            let _ = task.await;
        }
    }

    #[cfg(test)]
    fn receiver_finished(&self) -> bool {
        self.receiver.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for MediaSession {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, SendState> {
        // The state stays consistent across a panic: each update is one assignment.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push_digit(&self, key: char, source: DigitSource) {
        self.counters.bump(|c| c.digit(source));
        if self.digits.try_send(key).is_err() {
            tracing::warn!("digit stream full or closed; dropped a digit");
        }
        self.digit_count.send_modify(|n| *n += 1);
    }
}

async fn bind(pool: &MediaPool) -> Result<(UdpSocket, PortLease), MediaError> {
    // Try each free port once: another process may hold some of the range.
    let mut last_error = None;
    for _ in 0..pool.ports.free() {
        let Some(lease) = pool.ports.take() else { break };
        match UdpSocket::bind((pool.ip, lease.port())).await {
            Ok(socket) => return Ok((socket, lease)),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.map_or(MediaError::PortsExhausted, MediaError::Bind))
}
