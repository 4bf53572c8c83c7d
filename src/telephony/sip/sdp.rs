//! SDP offer and answer (RFC 3264) for the one thing our calls carry:
//! G.711 audio and keypad events.
//!
//! Written here rather than taken from a crate: the SDP crates on crates.io
//! are built for WebRTC (ICE, DTLS, bundles) or come with a whole VoIP stack;
//! what a trunk call needs is one audio line, two static payload types and a
//! `telephone-event` mapping, and the parse must never fail on lines it does
//! not know (SBCs add plenty).

use std::net::{IpAddr, SocketAddr};

/// The payload type ivr-auth names `telephone-event/8000` in its own offers.
pub const OFFERED_EVENT_PT: u8 = 101;

/// A G.711 law: the audio of every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    /// μ-law, payload type 0: North America and Japan.
    Pcmu,
    /// A-law, payload type 8: most of the rest of the world.
    Pcma,
}

impl Law {
    pub fn payload_type(self) -> u8 {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 8,
        }
    }

    fn from_pt(pt: u8) -> Option<Self> {
        match pt {
            0 => Some(Self::Pcmu),
            8 => Some(Self::Pcma),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
        }
    }
}

impl From<Law> for crate::telephony::sip::media::g711::Codec {
    fn from(law: Law) -> Self {
        match law {
            Law::Pcmu => Self::Pcmu,
            Law::Pcma => Self::Pcma,
        }
    }
}

/// What the far end's SDP says about its audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// Where to send RTP until its own packets say otherwise (symmetric RTP).
    pub addr: SocketAddr,
    /// The laws it takes, in its order of preference.
    pub laws: Vec<Law>,
    /// The payload type it names `telephone-event/8000`, if any.
    pub event_pt: Option<u8>,
}

/// Why an SDP cannot carry a call (answered 488).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("no audio line")]
    NoAudio,
    #[error("no connection address")]
    NoAddress,
    #[error("neither PCMU nor PCMA is offered")]
    NoCommonCodec,
}

/// Reads the first audio line of an SDP body.
pub fn parse(body: &str) -> Result<Remote, SdpError> {
    let mut session_ip: Option<IpAddr> = None;
    let mut media_ip: Option<IpAddr> = None;
    let mut audio: Option<(u16, Vec<u8>)> = None;
    let mut in_audio = false;
    let mut event_pt = None;
    let mut rtpmaps: Vec<(u8, String)> = Vec::new();
    for line in body.lines().map(str::trim) {
        let Some((kind, value)) = line.split_once('=') else { continue };
        match kind {
            "m" => {
                if audio.is_some() {
                    // Only the first audio stream is ours; later lines are not read.
                    in_audio = false;
                    if value.starts_with("audio ") {
                        break;
                    }
                    continue;
                }
                in_audio = value.starts_with("audio ");
                if in_audio {
                    audio = Some(media_line(value).ok_or(SdpError::NoAudio)?);
                }
            }
            "c" => {
                let ip = value.split_whitespace().nth(2).and_then(|a| a.split('/').next()?.parse().ok());
                if in_audio {
                    media_ip = ip;
                } else if audio.is_none() {
                    session_ip = ip;
                }
            }
            "a" if in_audio => {
                if let Some(map) = value.strip_prefix("rtpmap:")
                    && let Some((pt, name)) = map.split_once(' ')
                    && let Ok(pt) = pt.trim().parse::<u8>()
                {
                    rtpmaps.push((pt, name.trim().to_ascii_lowercase()));
                }
            }
            _ => {}
        }
    }
    let (port, formats) = audio.ok_or(SdpError::NoAudio)?;
    let ip = media_ip.or(session_ip).ok_or(SdpError::NoAddress)?;
    for (pt, name) in &rtpmaps {
        if name.starts_with("telephone-event/8000") && formats.contains(pt) {
            event_pt = Some(*pt);
        }
    }
    let laws: Vec<Law> = formats.iter().filter_map(|pt| Law::from_pt(*pt)).collect();
    if laws.is_empty() {
        return Err(SdpError::NoCommonCodec);
    }
    Ok(Remote { addr: SocketAddr::new(ip, port), laws, event_pt })
}

/// `audio PORT RTP/AVP 0 8 101` → the port and the payload types.
fn media_line(value: &str) -> Option<(u16, Vec<u8>)> {
    let mut parts = value.split_whitespace();
    parts.next()?;
    let port = parts.next()?.split('/').next()?.parse().ok()?;
    let _proto = parts.next()?;
    Some((port, parts.filter_map(|f| f.parse().ok()).collect()))
}

/// Our side of a call's audio.
#[derive(Debug, Clone, Copy)]
pub struct Local {
    pub ip: IpAddr,
    pub port: u16,
    /// A number for the `o=` line, the same for every SDP of one call.
    pub session_id: u64,
}

/// Our offer for an outbound call: μ-law first (Japan's trunks), A-law, and events on 101.
pub fn offer(local: &Local) -> String {
    body(local, &[Law::Pcmu, Law::Pcma], Some(OFFERED_EVENT_PT))
}

/// Our answer to `remote`'s offer: its first law, its event payload type.
pub fn answer(local: &Local, remote: &Remote) -> String {
    let law = remote.laws.first().copied().unwrap_or(Law::Pcmu);
    body(local, &[law], remote.event_pt)
}

fn body(local: &Local, laws: &[Law], event_pt: Option<u8>) -> String {
    let family = if local.ip.is_ipv6() { "IP6" } else { "IP4" };
    let mut formats: Vec<String> = laws.iter().map(|l| l.payload_type().to_string()).collect();
    formats.extend(event_pt.map(|pt| pt.to_string()));
    let mut sdp = format!(
        "v=0\r\no=ivr-auth {id} {id} IN {family} {ip}\r\ns=ivr-auth\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {formats}\r\n",
        id = local.session_id,
        ip = local.ip,
        port = local.port,
        formats = formats.join(" "),
    );
    for law in laws {
        sdp.push_str(&format!("a=rtpmap:{} {}/8000\r\n", law.payload_type(), law.name()));
    }
    if let Some(pt) = event_pt {
        sdp.push_str(&format!("a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-16\r\n"));
    }
    sdp.push_str("a=ptime:20\r\na=sendrecv\r\n");
    sdp
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIPP: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
        t=0 0\r\nm=audio 6000 RTP/AVP 8 0 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\n\
        a=fmtp:96 0-15\r\nm=video 6002 RTP/AVP 31\r\n";

    #[test]
    fn an_offer_s_first_law_and_its_own_event_payload_type_are_taken() {
        let remote = parse(SIPP).unwrap();
        assert_eq!(remote.addr, "127.0.0.1:6000".parse().unwrap());
        assert_eq!(remote.laws, vec![Law::Pcma, Law::Pcmu]);
        assert_eq!(remote.event_pt, Some(96));
        let local = Local { ip: "192.0.2.1".parse().unwrap(), port: 20000, session_id: 7 };
        let answer = answer(&local, &remote);
        assert!(answer.contains("m=audio 20000 RTP/AVP 8 96\r\n"), "{answer}");
        assert!(answer.contains("a=rtpmap:96 telephone-event/8000\r\n"), "{answer}");
        assert!(answer.contains("c=IN IP4 192.0.2.1\r\n"), "{answer}");
        let back = parse(&answer).unwrap();
        assert_eq!((back.laws, back.event_pt), (vec![Law::Pcma], Some(96)));
    }

    #[test]
    fn our_offer_names_both_laws_and_events_on_101() {
        let local = Local { ip: "127.0.0.1".parse().unwrap(), port: 20002, session_id: 1 };
        let remote = parse(&offer(&local)).unwrap();
        assert_eq!(remote.laws, vec![Law::Pcmu, Law::Pcma]);
        assert_eq!(remote.event_pt, Some(101));
    }

    #[test]
    fn offers_we_cannot_carry_are_refused_with_their_reason() {
        assert_eq!(parse("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 18\r\n"), Err(SdpError::NoCommonCodec));
        assert_eq!(parse("v=0\r\nm=audio 4000 RTP/AVP 0\r\n"), Err(SdpError::NoAddress));
        assert_eq!(parse("v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 4000 RTP/AVP 31\r\n"), Err(SdpError::NoAudio));
        assert_eq!(parse(""), Err(SdpError::NoAudio));
    }

    #[test]
    fn a_media_level_address_wins_over_the_session_s() {
        let sdp = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.0.0.2\r\n";
        assert_eq!(parse(sdp).unwrap().addr, "10.0.0.2:4000".parse().unwrap());
    }
}
