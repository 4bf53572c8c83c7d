use std::net::{IpAddr, Ipv4Addr};

use tokio::net::UdpSocket;

use super::*;
use crate::telephony::sip::media::ports::PortRange;
use crate::telephony::sip::media::rfc4733::TelephoneEvent;
use crate::telephony::sip::media::rtp::RtpHeader;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn pool(first: u16, last: u16) -> MediaPool {
    MediaPool::start(LOOPBACK, PortRange { first, last })
}

fn packet(pt: u8, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    RtpHeader { marker, payload_type: pt, sequence: seq, timestamp: ts, ssrc: 42 }.write(payload, &mut out);
    out
}

async fn send_key(peer: &UdpSocket, to: SocketAddr, key: u8, ts: u32, seq: &mut u16) {
    for (i, end) in [false, false, true, true, true].into_iter().enumerate() {
        let event = TelephoneEvent { event: key, end, volume: 10, duration: 160 * (i as u16 + 1) };
        let _ = peer.send_to(&packet(101, *seq, ts, i == 0, &event.to_bytes()), to).await;
        *seq = seq.wrapping_add(1);
    }
}

fn ulaw_tone(low: f64, high: f64, ms: usize) -> Vec<u8> {
    let wave = |f: f64, i: usize| 4000.0 * (2.0 * std::f64::consts::PI * f * i as f64 / 8000.0).sin();
    (0..ms * 8).map(|i| Codec::Pcmu.encode((wave(low, i) + wave(high, i)) as i16)).collect()
}

#[tokio::test]
async fn loopback_digits_latching_and_playback() {
    let pool = pool(31000, 31009);
    let mut session = MediaSession::open(&pool).await.unwrap();
    let peer = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let local = SocketAddr::new(LOOPBACK, session.local_port());
    session.start(peer.local_addr().unwrap(), Codec::Pcmu, Some(101));

    let mut seq = 1;
    for (n, key) in [1u8, 2, 3, 4].into_iter().enumerate() {
        send_key(&peer, local, key, 1000 + 800 * n as u32, &mut seq).await;
    }
    let mut got = String::new();
    while let Some(d) = session.next_digit(Duration::from_millis(400)).await {
        got.push(d);
    }
    assert_eq!(got, "1234");

    // In-band tones after the RFC 4733 hold-off.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut audio = Vec::new();
    for (low, high) in [(770.0, 1336.0), (770.0, 1477.0)] {
        audio.extend(ulaw_tone(low, high, 60));
        audio.extend(vec![0xFF; 480]);
    }
    for (i, chunk) in audio.chunks(160).enumerate() {
        let _ = peer.send_to(&packet(0, seq, 160 * i as u32, false, chunk), local).await;
        seq = seq.wrapping_add(1);
    }
    let mut got = String::new();
    while let Some(d) = session.next_digit(Duration::from_millis(300)).await {
        got.push(d);
    }
    assert_eq!(got, "56");

    // After latching, a stranger's packets are dropped and counted.
    let stranger = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    for i in 0..3 {
        let _ = stranger.send_to(&packet(0, i, 0, false, &[0xFF; 160]), local).await;
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while session.counters().dropped_unexpected_source < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let counters = session.counters();
    assert_eq!(counters.dropped_unexpected_source, 3);
    assert_eq!((counters.digits_rfc4733, counters.digits_inband), (4, 2));

    // A 1 s clip: about 50 packets, 20 ms apart, marker on the first.
    let mut buf = [0u8; 2048];
    while tokio::time::timeout(Duration::from_millis(5), peer.recv_from(&mut buf)).await.is_ok() {}
    pool.reset_send_intervals();
    let clip: Arc<[i16]> = vec![1000; 8000].into();
    let playing = tokio::spawn(session.play(vec![clip], false));
    let started = Instant::now();
    let mut audio_packets = 0;
    let mut markers = 0;
    while !playing.is_finished() {
        if let Ok(Ok((len, _))) = tokio::time::timeout(Duration::from_millis(50), peer.recv_from(&mut buf)).await {
            let Ok(p) = RtpPacket::parse(&buf[..len]) else { continue };
            if p.payload.iter().any(|&b| b != 0xFF) {
                audio_packets += 1;
                markers += usize::from(p.header.marker);
            }
        }
    }
    assert_eq!(playing.await.unwrap(), PlayOutcome::Finished);
    let elapsed = started.elapsed();
    assert!((49..=51).contains(&audio_packets), "{audio_packets} packets");
    assert_eq!(markers, 1);
    assert!(elapsed >= Duration::from_millis(960) && elapsed < Duration::from_millis(1300), "{elapsed:?}");
    let stats = pool.send_intervals();
    assert!(stats.p50 >= Duration::from_millis(15) && stats.p50 <= Duration::from_millis(25), "{stats:?}");
    session.close().await;
}

use crate::telephony::sip::media::rtp::RtpPacket;
use tokio::time::Instant;

#[tokio::test]
async fn barge_in_interrupts_and_keeps_the_digit() {
    let pool = pool(31010, 31013);
    let mut session = MediaSession::open(&pool).await.unwrap();
    session.start(SocketAddr::new(LOOPBACK, 9), Codec::Pcma, None);
    let clip: Arc<[i16]> = vec![0; 80_000].into();
    let playing = tokio::spawn(session.play(vec![clip.clone()], true));
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert!(session.inject_digit('#'));
    assert!(!session.inject_digit('x'));
    assert_eq!(playing.await.unwrap(), PlayOutcome::Interrupted);
    assert_eq!(session.next_digit(Duration::from_millis(10)).await, Some('#'));
    assert_eq!(session.counters().digits_info, 1);

    let playing = tokio::spawn(session.play(vec![clip], false));
    tokio::time::sleep(Duration::from_millis(30)).await;
    session.stop();
    assert_eq!(playing.await.unwrap(), PlayOutcome::Stopped);
}

#[tokio::test]
async fn ports_come_back_however_the_session_ends() {
    let pool = pool(31020, 31021);
    let session = MediaSession::open(&pool).await.unwrap();
    let port = session.local_port();
    assert_eq!(port, 31020);
    assert!(matches!(MediaSession::open(&pool).await, Err(MediaError::PortsExhausted)));
    session.close().await;
    assert_eq!(pool.free_ports(), 1);

    // Reusable at once; then dropped without close.
    let session = MediaSession::open(&pool).await.unwrap();
    assert_eq!(session.local_port(), port);
    let handle_done = {
        let s = &session;
        s.receiver_finished()
    };
    assert!(!handle_done);
    drop(session);
    let deadline = Instant::now() + Duration::from_secs(2);
    while pool.free_ports() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(pool.free_ports(), 1);
    let again = MediaSession::open(&pool).await.unwrap();
    again.close().await;
}
