//! Reading the one WAV format calls play: 8 kHz, mono, 16-bit PCM (what
//! G.711 carries, so no resampling on the call's path).

use std::path::Path;

pub const RATE: u32 = 8000;

/// Why a file cannot be played.
#[derive(Debug)]
pub enum WavError {
    NotFound,
    /// Another format, or not a WAV at all: `prompts render` converts it.
    Format(String),
}

/// The samples of an 8 kHz mono 16-bit PCM WAV at `path`.
pub fn read(path: &Path) -> Result<Vec<i16>, WavError> {
    let reader = match hound::WavReader::open(path) {
        Ok(r) => r,
        Err(hound::Error::IoError(e)) if e.kind() == std::io::ErrorKind::NotFound => return Err(WavError::NotFound),
        Err(e) => return Err(WavError::Format(e.to_string())),
    };
    let spec = reader.spec();
    if !is_playable(spec) {
        return Err(WavError::Format(format!(
            "{} Hz, {} channel(s), {}-bit {:?}",
            spec.sample_rate, spec.channels, spec.bits_per_sample, spec.sample_format
        )));
    }
    reader.into_samples::<i16>().collect::<Result<_, _>>().map_err(|e| WavError::Format(e.to_string()))
}

/// Whether `path` is already a WAV calls can play (false for a missing or unreadable one).
pub fn is_playable_file(path: &Path) -> bool {
    hound::WavReader::open(path).is_ok_and(|r| is_playable(r.spec()))
}

fn is_playable(spec: hound::WavSpec) -> bool {
    spec.sample_rate == RATE
        && spec.channels == 1
        && spec.bits_per_sample == 16
        && spec.sample_format == hound::SampleFormat::Int
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Writes a WAV of `samples` at `rate` Hz, mono 16-bit.
    pub fn write(path: &Path, rate: u32, samples: &[i16]) {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for s in samples {
            w.write_sample(*s).unwrap();
        }
        w.finalize().unwrap();
    }

    #[test]
    fn only_8_khz_mono_16_bit_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("ok.wav");
        write(&ok, 8000, &[1, 2, 3]);
        assert_eq!(read(&ok).unwrap(), [1, 2, 3]);
        let wide = dir.path().join("wide.wav");
        write(&wide, 48000, &[1, 2, 3]);
        assert!(matches!(read(&wide), Err(WavError::Format(f)) if f.starts_with("48000 Hz")));
        assert!(matches!(read(&dir.path().join("none.wav")), Err(WavError::NotFound)));
        std::fs::write(dir.path().join("mp3.wav"), b"ID3\x03").unwrap();
        assert!(matches!(read(&dir.path().join("mp3.wav")), Err(WavError::Format(_))));
    }
}
