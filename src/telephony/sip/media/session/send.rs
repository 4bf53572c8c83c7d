//! What the clock sends each 20 ms: the next 160 samples of the playback,
//! or encoded silence, which keeps NAT bindings and SBC media timers alive.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Negotiated, Shared};
use crate::telephony::sip::media::clock::Paced;
use crate::telephony::sip::media::rtp::RtpHeader;

const SAMPLES: usize = 160;

struct Playback {
    id: u64,
    clips: VecDeque<Arc<[i16]>>,
    position: usize,
    done: oneshot::Sender<()>,
}

pub(super) struct SendState {
    pub(super) negotiated: Option<Negotiated>,
    /// The source of the first valid packets (symmetric RTP).
    pub(super) latched: Option<SocketAddr>,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
    marker: bool,
    playback: Option<Playback>,
    next_id: u64,
    last_sent: Option<Instant>,
    samples: Vec<i16>,
    payload: Vec<u8>,
    packet: Vec<u8>,
}

impl SendState {
    pub(super) fn new() -> SendState {
        SendState {
            negotiated: None,
            latched: None,
            // Random starts (RFC 3550 §5.1) make a known-plaintext attack
            // on SRTP harder and tell restarted streams apart.
            sequence: rand::random(),
            timestamp: rand::random(),
            ssrc: rand::random(),
            marker: true,
            playback: None,
            next_id: 0,
            last_sent: None,
            samples: Vec::with_capacity(SAMPLES),
            payload: Vec::with_capacity(SAMPLES),
            packet: Vec::with_capacity(12 + SAMPLES),
        }
    }

    pub(super) fn play(&mut self, clips: Vec<Arc<[i16]>>, done: oneshot::Sender<()>) -> u64 {
        self.next_id += 1;
        self.marker = true;
        self.playback = Some(Playback { id: self.next_id, clips: clips.into(), position: 0, done });
        self.next_id
    }

    pub(super) fn cancel(&mut self, id: u64) {
        if self.playback.as_ref().is_some_and(|p| p.id == id) {
            self.playback = None;
        }
    }

    /// Fills `samples` with the next frame; true when the playback ended.
    fn next_frame(&mut self) -> bool {
        self.samples.clear();
        let Some(playback) = self.playback.as_mut() else {
            self.samples.resize(SAMPLES, 0);
            return false;
        };
        while self.samples.len() < SAMPLES {
            let Some(clip) = playback.clips.front() else { break };
            let rest = clip.get(playback.position..).unwrap_or_default();
            let take = rest.len().min(SAMPLES - self.samples.len());
            self.samples.extend_from_slice(&rest[..take]);
            playback.position += take;
            if playback.position >= clip.len() {
                playback.clips.pop_front();
                playback.position = 0;
            }
        }
        self.samples.resize(SAMPLES, 0);
        playback.clips.is_empty()
    }

    fn build_packet(&mut self, negotiated: &Negotiated) {
        self.payload.clear();
        negotiated.codec.encode_into(&self.samples, &mut self.payload);
        let header = RtpHeader {
            marker: self.marker,
            payload_type: negotiated.codec.payload_type(),
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
        };
        header.write(&self.payload, &mut self.packet);
    }
}

impl Paced for Shared {
    fn tick(&self, now: Instant) -> Option<Duration> {
        if *self.stopped.borrow() {
            return None;
        }
        let mut state = self.lock();
        let negotiated = state.negotiated?;
        let ended = state.next_frame();
        state.build_packet(&negotiated);
        let to = state.latched.unwrap_or(negotiated.remote);
        match self.socket.try_send_to(&state.packet, to) {
            Ok(_) => self.counters.bump(|c| &c.packets_sent),
            // A full socket buffer loses one frame; waiting would hold up
            // every other call on the clock.
            Err(_) => self.counters.bump(|c| &c.send_failures),
        }
        state.marker = false;
        state.sequence = state.sequence.wrapping_add(1);
        state.timestamp = state.timestamp.wrapping_add(SAMPLES as u32);
        if ended && let Some(playback) = state.playback.take() {
            let _ = playback.done.send(());
        }
        let interval = state.last_sent.map(|last| now.duration_since(last));
        state.last_sent = Some(now);
        interval
    }
}
