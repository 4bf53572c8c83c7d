//! The receive task: latches the peer (symmetric RTP), drops what comes
//! from elsewhere, and turns telephone events and audio into digits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Shared;
use crate::telephony::sip::media::counters::DigitSource;
use crate::telephony::sip::media::g711::Codec;
use crate::telephony::sip::media::inband::ToneDetector;
use crate::telephony::sip::media::rfc4733::EventDetector;
use crate::telephony::sip::media::rtp::RtpPacket;

/// How often a quiet session checks for telephone events that lost their
/// end packets.
const POLL: Duration = Duration::from_millis(50);
/// Senders that send RFC 4733 events often leave the tone in the audio
/// too; in-band digits this close to an event are the same key.
const INBAND_HOLD_OFF: Duration = Duration::from_millis(500);

struct Receiver {
    shared: Arc<Shared>,
    events: EventDetector,
    tones: ToneDetector,
    last_event: Option<Instant>,
    samples: Vec<i16>,
}

pub(super) async fn run(shared: Arc<Shared>) {
    let mut stopped = shared.stopped.subscribe();
    let mut receiver = Receiver {
        shared: shared.clone(),
        events: EventDetector::default(),
        tones: ToneDetector::default(),
        last_event: None,
        samples: Vec::with_capacity(160),
    };
    let mut buf = [0u8; 2048];
    loop {
        if *stopped.borrow_and_update() {
            break;
        }
        tokio::select! {
            _ = stopped.changed() => break,
            received = tokio::time::timeout(POLL, shared.socket.recv_from(&mut buf)) => {
                if let Ok(Ok((len, from))) = received {
                    receiver.on_datagram(&buf[..len], from);
                }
            }
        }
        if let Some(key) = receiver.events.poll(Instant::now().into_std()) {
            shared.push_digit(key, DigitSource::Rfc4733);
        }
    }
}

impl Receiver {
    fn on_datagram(&mut self, datagram: &[u8], from: SocketAddr) {
        let counters = &self.shared.counters;
        counters.bump(|c| &c.packets_received);
        let Ok(packet) = RtpPacket::parse(datagram) else {
            counters.bump(|c| &c.dropped_invalid);
            return;
        };
        let Some(kind) = self.admit(&packet, from) else {
            return;
        };
        match kind {
            Kind::Event => self.on_event(&packet),
            Kind::Audio(codec) => self.on_audio(&packet, codec),
        }
    }

    /// Classifies the packet and latches its source, or drops it.
    fn admit(&self, packet: &RtpPacket<'_>, from: SocketAddr) -> Option<Kind> {
        let counters = &self.shared.counters;
        let mut state = self.shared.lock();
        let Some(negotiated) = state.negotiated else {
            counters.bump(|c| &c.dropped_invalid);
            return None;
        };
        let pt = packet.header.payload_type;
        let kind = if Some(pt) == negotiated.event_pt {
            Kind::Event
        } else if let Some(codec) = Codec::from_payload_type(pt) {
            Kind::Audio(codec)
        } else {
            counters.bump(|c| &c.dropped_invalid);
            return None;
        };
        match state.latched {
            None => state.latched = Some(from),
            Some(peer) if peer != from => {
                counters.bump(|c| &c.dropped_unexpected_source);
                return None;
            }
            Some(_) => {}
        }
        Some(kind)
    }

    fn on_event(&mut self, packet: &RtpPacket<'_>) {
        let now = Instant::now().into_std();
        self.last_event = Some(Instant::now());
        if let Some(key) = self.events.on_packet(packet.header.timestamp, packet.payload, now) {
            self.shared.push_digit(key, DigitSource::Rfc4733);
        }
    }

    fn on_audio(&mut self, packet: &RtpPacket<'_>, codec: Codec) {
        self.samples.clear();
        codec.decode_into(packet.payload, &mut self.samples);
        let held_off = self.last_event.is_some_and(|at| at.elapsed() < INBAND_HOLD_OFF);
        let shared = &self.shared;
        self.tones.feed(&self.samples, |key| {
            if !held_off {
                shared.push_digit(key, DigitSource::Inband);
            }
        });
    }
}

enum Kind {
    Event,
    Audio(Codec),
}
