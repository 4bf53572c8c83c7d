//! RTP packets (RFC 3550), written here: `rtp-rs`, the usual crate, has had
//! no release since 2021, and we need only the fixed header, CSRC and
//! extension skipping, padding, and a writer.

use thiserror::Error;

/// Why a datagram is not an RTP packet we can use.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtpError {
    #[error("datagram of {0} bytes is shorter than an RTP header")]
    TooShort(usize),
    #[error("RTP version {0}, expected 2")]
    Version(u8),
    #[error("RTP header runs past the end of the datagram")]
    Truncated,
    #[error("RTP padding length {0} does not fit the datagram")]
    Padding(u8),
}

/// The fixed header fields we send and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// A parsed packet borrowing the datagram; the payload excludes padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub header: RtpHeader,
    pub csrc_count: u8,
    pub payload: &'a [u8],
}

const FIXED_HEADER: usize = 12;

impl<'a> RtpPacket<'a> {
    /// Parses a datagram; never panics, whatever the bytes.
    pub fn parse(datagram: &'a [u8]) -> Result<RtpPacket<'a>, RtpError> {
        let fixed: &[u8; FIXED_HEADER] = datagram.first_chunk().ok_or(RtpError::TooShort(datagram.len()))?;
        let version = fixed[0] >> 6;
        if version != 2 {
            return Err(RtpError::Version(version));
        }
        let csrc_count = fixed[0] & 0x0F;
        let mut offset = FIXED_HEADER + 4 * usize::from(csrc_count);
        if fixed[0] & 0x10 != 0 {
            offset = skip_extension(datagram, offset)?;
        }
        let end = payload_end(datagram, fixed[0] & 0x20 != 0)?;
        let payload = datagram.get(offset..end).ok_or(RtpError::Truncated)?;
        Ok(RtpPacket { header: header_fields(fixed), csrc_count, payload })
    }
}

fn header_fields(fixed: &[u8; FIXED_HEADER]) -> RtpHeader {
    RtpHeader {
        marker: fixed[1] & 0x80 != 0,
        payload_type: fixed[1] & 0x7F,
        sequence: u16::from_be_bytes([fixed[2], fixed[3]]),
        timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
        ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
    }
}

/// The extension header is 4 bytes (profile, length in 32-bit words) and
/// its data; we do not use extensions, only step over them.
fn skip_extension(datagram: &[u8], offset: usize) -> Result<usize, RtpError> {
    let head = datagram.get(offset..offset + 4).ok_or(RtpError::Truncated)?;
    let words = usize::from(u16::from_be_bytes([head[2], head[3]]));
    let end = offset + 4 + 4 * words;
    if end > datagram.len() {
        return Err(RtpError::Truncated);
    }
    Ok(end)
}

/// With the P bit set, the last byte counts the padding bytes, itself
/// included.
fn payload_end(datagram: &[u8], padded: bool) -> Result<usize, RtpError> {
    if !padded {
        return Ok(datagram.len());
    }
    let count = datagram.last().copied().unwrap_or(0);
    let padding = usize::from(count);
    if padding == 0 || padding > datagram.len() - FIXED_HEADER {
        return Err(RtpError::Padding(count));
    }
    Ok(datagram.len() - padding)
}

impl RtpHeader {
    /// Writes this header (no CSRC, no extension, no padding) and `payload`
    /// into `out`, replacing its contents; reusing `out` spares an
    /// allocation per packet on the media clock.
    pub fn write(&self, payload: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.push(0x80);
        out.push((u8::from(self.marker) << 7) | (self.payload_type & 0x7F));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header() -> RtpHeader {
        RtpHeader { marker: true, payload_type: 101, sequence: 0xFFFE, timestamp: 0xDEAD_BEEF, ssrc: 0x0102_0304 }
    }

    #[test]
    fn written_packet_parses_back() {
        let mut out = Vec::new();
        header().write(&[1, 2, 3], &mut out);
        assert_eq!(out.len(), 15);
        let packet = RtpPacket::parse(&out).unwrap();
        assert_eq!(packet.header, header());
        assert_eq!(packet.payload, &[1, 2, 3]);
        assert_eq!(packet.csrc_count, 0);
    }

    #[test]
    fn known_bytes() {
        let bytes = [0x80, 0x00, 0x00, 0x07, 0x00, 0x00, 0x01, 0x40, 0xAA, 0xBB, 0xCC, 0xDD, 0xFF];
        let packet = RtpPacket::parse(&bytes).unwrap();
        assert!(!packet.header.marker);
        assert_eq!(packet.header.payload_type, 0);
        assert_eq!(packet.header.sequence, 7);
        assert_eq!(packet.header.timestamp, 320);
        assert_eq!(packet.header.ssrc, 0xAABB_CCDD);
        assert_eq!(packet.payload, &[0xFF]);
    }

    /// Two CSRCs, a one-word extension, and three bytes of padding around a
    /// two-byte payload.
    #[test]
    fn csrc_extension_and_padding_are_skipped() {
        let mut bytes = vec![0xB2, 0x88, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        bytes.extend_from_slice(&[9; 8]); // CSRCs
        bytes.extend_from_slice(&[0xBE, 0xDE, 0, 1, 7, 7, 7, 7]); // extension
        bytes.extend_from_slice(&[0x55, 0x66]); // payload
        bytes.extend_from_slice(&[0, 0, 3]); // padding
        let packet = RtpPacket::parse(&bytes).unwrap();
        assert_eq!(packet.csrc_count, 2);
        assert!(packet.header.marker);
        assert_eq!(packet.header.payload_type, 8);
        assert_eq!(packet.payload, &[0x55, 0x66]);
    }

    #[test]
    fn malformed_packets_are_refused() {
        assert_eq!(RtpPacket::parse(&[0x80; 11]), Err(RtpError::TooShort(11)));
        let mut v1 = vec![0x40; 12];
        v1[1] = 0;
        assert_eq!(RtpPacket::parse(&v1), Err(RtpError::Version(1)));
        let mut csrc = vec![0x8F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        csrc.extend_from_slice(&[0; 20]);
        assert_eq!(RtpPacket::parse(&csrc), Err(RtpError::Truncated));
        let ext = [0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2, 3, 4];
        assert_eq!(RtpPacket::parse(&ext), Err(RtpError::Truncated));
        let zero_pad = [0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        assert_eq!(RtpPacket::parse(&zero_pad), Err(RtpError::Padding(0)));
        let long_pad = [0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 9];
        assert_eq!(RtpPacket::parse(&long_pad), Err(RtpError::Padding(9)));
    }

    /// Every prefix of a full-featured packet is refused or parsed, never a
    /// panic.
    #[test]
    fn every_truncation_is_handled() {
        let mut bytes = vec![0xB1, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4];
        bytes.extend_from_slice(&[0xBE, 0xDE, 0, 2, 1, 1, 1, 1, 2, 2, 2, 2, 5, 6, 2]);
        assert!(RtpPacket::parse(&bytes).is_ok());
        for len in 0..bytes.len() {
            let _ = RtpPacket::parse(&bytes[..len]);
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(packet) = RtpPacket::parse(&bytes) {
                prop_assert!(packet.payload.len() + FIXED_HEADER <= bytes.len());
            }
        }

        #[test]
        fn version_two_headers_round_trip(
            marker in any::<bool>(), pt in 0u8..128, seq in any::<u16>(),
            ts in any::<u32>(), ssrc in any::<u32>(),
            payload in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let header = RtpHeader { marker, payload_type: pt, sequence: seq, timestamp: ts, ssrc };
            let mut out = Vec::new();
            header.write(&payload, &mut out);
            let packet = RtpPacket::parse(&out).unwrap();
            prop_assert_eq!(packet.header, header);
            prop_assert_eq!(packet.payload, &payload[..]);
        }
    }
}
