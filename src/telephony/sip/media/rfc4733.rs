//! RFC 4733 telephone-events. A key press is one event identified by its
//! RTP timestamp; senders repeat packets during the press and send the end
//! packet three times, and any of them may be lost, duplicated or
//! reordered. We report each timestamp once: on its first end packet, or,
//! when every end packet was lost, when a later event starts or the event
//! has gone quiet.

use std::time::{Duration, Instant};

/// How long an event without its end packet may stay silent before we take
/// it as ended.
pub const END_TIMEOUT: Duration = Duration::from_millis(300);

/// The decoded 4-byte event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    pub volume: u8,
    pub duration: u16,
}

impl TelephoneEvent {
    pub fn parse(payload: &[u8]) -> Option<TelephoneEvent> {
        let bytes: &[u8; 4] = payload.first_chunk()?;
        Some(TelephoneEvent {
            event: bytes[0],
            end: bytes[1] & 0x80 != 0,
            volume: bytes[1] & 0x3F,
            duration: u16::from_be_bytes([bytes[2], bytes[3]]),
        })
    }

    pub fn to_bytes(self) -> [u8; 4] {
        let [d0, d1] = self.duration.to_be_bytes();
        [self.event, (u8::from(self.end) << 7) | (self.volume & 0x3F), d0, d1]
    }
}

#[derive(Debug)]
struct Current {
    timestamp: u32,
    key: char,
    reported: bool,
    last_seen: Instant,
}

/// Turns a stream of telephone-event packets into key presses.
#[derive(Debug, Default)]
pub struct EventDetector {
    current: Option<Current>,
}

impl EventDetector {
    /// Feeds one packet's RTP timestamp and payload; returns a key when a
    /// press is complete. A press that lost its end packets may be
    /// reported here, when the next press starts.
    pub fn on_packet(&mut self, timestamp: u32, payload: &[u8], now: Instant) -> Option<char> {
        let event = TelephoneEvent::parse(payload)?;
        let key = super::digit::from_event(event.event)?;
        let mut finished = None;
        if let Some(current) = &mut self.current {
            if current.timestamp == timestamp {
                current.last_seen = now;
                return report_end(current, event.end);
            }
            if is_older(timestamp, current.timestamp) {
                // A late packet of an earlier press: that press is done.
                return None;
            }
            finished = (!current.reported).then_some(current.key);
        }
        let mut current = Current { timestamp, key, reported: false, last_seen: now };
        // One packet reports one key: when it also closes the earlier
        // press, the new press is reported by its next (redundant) end
        // packet or by `poll`.
        let ended = match finished {
            Some(_) => None,
            None => report_end(&mut current, event.end),
        };
        self.current = Some(current);
        finished.or(ended)
    }

    /// Reports a press whose end packets were all lost once it has been
    /// quiet for [`END_TIMEOUT`]. Call it regularly.
    pub fn poll(&mut self, now: Instant) -> Option<char> {
        let current = self.current.as_mut()?;
        if current.reported || now.duration_since(current.last_seen) < END_TIMEOUT {
            return None;
        }
        current.reported = true;
        Some(current.key)
    }
}

fn report_end(current: &mut Current, end: bool) -> Option<char> {
    if end && !current.reported {
        current.reported = true;
        return Some(current.key);
    }
    None
}

/// RTP timestamps wrap; `a` is older than `b` when it is less than half the
/// space behind it.
fn is_older(a: u32, b: u32) -> bool {
    let behind = b.wrapping_sub(a);
    behind != 0 && behind < 0x8000_0000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(key: u8, end: bool, duration: u16) -> [u8; 4] {
        TelephoneEvent { event: key, end, volume: 10, duration }.to_bytes()
    }

    /// The packets a sender emits for one press: three progress packets
    /// and three end packets.
    fn press(detector: &mut EventDetector, ts: u32, key: u8, at: Instant) -> Vec<char> {
        let mut out = Vec::new();
        for (i, end) in [false, false, false, true, true, true].into_iter().enumerate() {
            let duration = 160 * (i as u16 + 1);
            out.extend(detector.on_packet(ts, &packet(key, end, duration), at));
        }
        out
    }

    #[test]
    fn payload_round_trip() {
        let bytes = [11, 0x8A, 0x03, 0x20];
        let event = TelephoneEvent::parse(&bytes).unwrap();
        assert_eq!(event.event, 11);
        assert!(event.end);
        assert_eq!(event.volume, 10);
        assert_eq!(event.duration, 800);
        assert_eq!(event.to_bytes(), bytes);
        assert_eq!(TelephoneEvent::parse(&[1, 2, 3]), None);
    }

    #[test]
    fn redundant_end_packets_count_once() {
        let mut detector = EventDetector::default();
        let now = Instant::now();
        assert_eq!(press(&mut detector, 1000, 5, now), vec!['5']);
        assert_eq!(detector.poll(now + Duration::from_secs(1)), None);
    }

    #[test]
    fn two_presses_of_the_same_key_count_twice() {
        let mut detector = EventDetector::default();
        let now = Instant::now();
        let mut keys = press(&mut detector, 1000, 7, now);
        keys.extend(press(&mut detector, 2600, 7, now));
        assert_eq!(keys, vec!['7', '7']);
    }

    #[test]
    fn duplicates_and_late_packets_make_no_digit() {
        let mut detector = EventDetector::default();
        let now = Instant::now();
        let mut keys = press(&mut detector, 1000, 1, now);
        keys.extend(press(&mut detector, 2000, 2, now));
        // A late copy of the first press, a duplicate end of the second.
        keys.extend(detector.on_packet(1000, &packet(1, true, 480), now));
        keys.extend(detector.on_packet(1000, &packet(1, false, 160), now));
        keys.extend(detector.on_packet(2000, &packet(2, true, 480), now));
        keys.extend(detector.poll(now + Duration::from_secs(1)));
        assert_eq!(keys, vec!['1', '2']);
    }

    #[test]
    fn lost_end_is_reported_when_the_next_press_starts() {
        let mut detector = EventDetector::default();
        let now = Instant::now();
        assert_eq!(detector.on_packet(1000, &packet(3, false, 160), now), None);
        assert_eq!(detector.on_packet(1000, &packet(3, false, 320), now), None);
        assert_eq!(detector.on_packet(3000, &packet(4, false, 160), now), Some('3'));
        assert_eq!(detector.on_packet(3000, &packet(4, true, 320), now), Some('4'));
    }

    #[test]
    fn a_lone_end_packet_after_a_lost_end_is_not_lost() {
        let mut detector = EventDetector::default();
        let now = Instant::now();
        detector.on_packet(1000, &packet(3, false, 160), now);
        assert_eq!(detector.on_packet(3000, &packet(4, true, 320), now), Some('3'));
        assert_eq!(detector.on_packet(3000, &packet(4, true, 320), now), Some('4'));
    }

    #[test]
    fn lost_end_is_reported_after_a_quiet_spell() {
        let mut detector = EventDetector::default();
        let now = Instant::now();
        detector.on_packet(1000, &packet(9, false, 160), now);
        assert_eq!(detector.poll(now + Duration::from_millis(200)), None);
        assert_eq!(detector.poll(now + Duration::from_millis(310)), Some('9'));
        assert_eq!(detector.poll(now + Duration::from_millis(900)), None);
        // A straggler of the same press after the timeout is not a new key.
        let later = now + Duration::from_secs(1);
        assert_eq!(detector.on_packet(1000, &packet(9, true, 480), later), None);
    }

    #[test]
    fn timestamps_wrap() {
        let mut detector = EventDetector::default();
        let now = Instant::now();
        let mut keys = press(&mut detector, u32::MAX - 100, 0, now);
        keys.extend(press(&mut detector, 500, 0, now));
        keys.extend(detector.on_packet(u32::MAX - 100, &packet(0, true, 480), now));
        assert_eq!(keys, vec!['0', '0']);
    }

    #[test]
    fn non_dtmf_events_are_ignored() {
        let mut detector = EventDetector::default();
        let now = Instant::now();
        assert_eq!(detector.on_packet(1000, &packet(16, true, 160), now), None);
        assert_eq!(detector.poll(now + Duration::from_secs(1)), None);
    }
}
