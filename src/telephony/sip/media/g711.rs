//! G.711 μ-law and A-law (ITU-T G.711), written here rather than taken from
//! a crate: the one maintained Rust implementation (`ezk-g711`) pulls in its
//! whole media framework for two 20-line functions.

/// The audio codecs a SIP trunk offers: G.711 only, as every carrier and
/// SBC accepts it and it needs no transcoding library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// μ-law, RTP payload type 0 (North America, Japan).
    Pcmu,
    /// A-law, RTP payload type 8 (the rest of the world).
    Pcma,
}

impl Codec {
    /// The static RTP payload type (RFC 3551).
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The codec of a static payload type, if it is G.711.
    pub fn from_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Codec::Pcmu => ulaw_encode(sample),
            Codec::Pcma => alaw_encode(sample),
        }
    }

    pub fn decode(self, byte: u8) -> i16 {
        match self {
            Codec::Pcmu => ulaw_decode(byte),
            Codec::Pcma => alaw_decode(byte),
        }
    }

    /// Appends the encoding of `samples` to `out`.
    pub fn encode_into(self, samples: &[i16], out: &mut Vec<u8>) {
        out.extend(samples.iter().map(|&s| self.encode(s)));
    }

    /// Appends the decoding of `bytes` to `out`.
    pub fn decode_into(self, bytes: &[u8], out: &mut Vec<i16>) {
        out.extend(bytes.iter().map(|&b| self.decode(b)));
    }
}

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32635;

/// Linear 16-bit to μ-law.
pub fn ulaw_encode(sample: i16) -> u8 {
    let linear = i32::from(sample);
    let sign = if linear < 0 { 0x80 } else { 0 };
    let magnitude = linear.abs().min(ULAW_CLIP) + ULAW_BIAS;
    // The biased magnitude lies in 132..=32767, so its top bit is bit 7..=14.
    let exponent = (31 - magnitude.leading_zeros() as i32 - 7).clamp(0, 7);
    let mantissa = (magnitude >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// μ-law to linear 16-bit.
pub fn ulaw_decode(byte: u8) -> i16 {
    let u = !byte;
    let magnitude = ((i32::from(u & 0x0F) << 3) + ULAW_BIAS) << ((u & 0x70) >> 4);
    let linear = if u & 0x80 != 0 { ULAW_BIAS - magnitude } else { magnitude - ULAW_BIAS };
    linear as i16
}

/// Linear 16-bit to A-law.
pub fn alaw_encode(sample: i16) -> u8 {
    // A-law works on 13 bits; the sign is folded so -1 maps like 0.
    let pcm = i32::from(sample) >> 3;
    let (mask, magnitude) = if pcm >= 0 { (0xD5, pcm) } else { (0x55, -pcm - 1) };
    let segment = (0..8).find(|&seg| magnitude < (0x20 << seg));
    let Some(segment) = segment else {
        return 0x7F ^ mask;
    };
    let shift = if segment < 2 { 1 } else { segment };
    let code = (segment << 4) | ((magnitude >> shift) & 0x0F);
    (code as u8) ^ mask
}

/// A-law to linear 16-bit.
pub fn alaw_decode(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let mantissa = i32::from(a & 0x0F) << 4;
    let segment = (a & 0x70) >> 4;
    let magnitude = match segment {
        0 => mantissa + 8,
        1 => mantissa + 0x108,
        _ => (mantissa + 0x108) << (segment - 1),
    };
    let linear = if a & 0x80 != 0 { magnitude } else { -magnitude };
    linear as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_values() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(-1), 0x7F);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_encode(1000), 0xCE);
    }

    #[test]
    fn alaw_known_values() {
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(alaw_encode(1000), 0xFA);
    }

    /// The quantisation step doubles with each segment, so the error is at
    /// most half a step: about 1/32 of the magnitude plus the first step.
    #[test]
    fn round_trip_error_is_within_half_a_step() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            for x in -32000..=32000i32 {
                let back = i32::from(codec.decode(codec.encode(x as i16)));
                let bound = x.abs() / 32 + 16;
                assert!((back - x).abs() <= bound, "{codec:?} {x} -> {back}");
            }
        }
    }

    #[test]
    fn every_code_decodes_to_itself() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            for byte in 0..=255u8 {
                let linear = codec.decode(byte);
                let again = codec.encode(linear);
                // μ-law has two zeros (0x7F and 0xFF); both decode to 0.
                assert_eq!(codec.decode(again), linear, "{codec:?} {byte:#x}");
            }
        }
    }

    #[test]
    fn payload_types() {
        assert_eq!(Codec::from_payload_type(0), Some(Codec::Pcmu));
        assert_eq!(Codec::from_payload_type(8), Some(Codec::Pcma));
        assert_eq!(Codec::from_payload_type(101), None);
        assert_eq!(Codec::Pcma.payload_type(), 8);
    }
}
