//! Where each clip's file lives: rendered speech and digits per locale under
//! the audio directory, the server's recordings beside its prompt files,
//! tenants' recordings downloaded under `recordings/`.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::source::Source;
use crate::call::prompts::Prompts;
use crate::domain::status::Locale;

/// Where a clip's audio comes from before it is an 8 kHz file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Rendered by the locale's text-to-speech engine.
    Speech { language: String, text: String },
    /// A file in the prompts directory (`voice_prompts/<locale>/<prompt>.*`);
    /// its 8 kHz WAV is `file` (the same path for a WAV).
    ServerRecording { original: PathBuf },
    /// A tenant's recording, downloaded once by `prompts render`.
    Download { url: String },
}

/// A clip's file and how it is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub file: PathBuf,
    pub origin: Origin,
}

/// The audio directory and what tells the server's recordings from a tenant's.
pub struct Layout<'a> {
    pub dir: &'a Path,
    pub prompts: &'a Prompts,
    /// The base of the server's own recording URLs (`Urls::base()`).
    pub audio_base: &'a str,
}

/// The first 16 hex digits of SHA-256: a name per content, short enough to
/// read, with no collision in any realistic set of prompts.
pub fn short_hash(s: &str) -> String {
    let digest = Sha256::digest(s.as_bytes());
    hex::encode(&digest[..8])
}

/// The file of a source when no recording of the server's applies: what a
/// call names in `Missing` without the prompts at hand.
pub fn plain_file(dir: &Path, source: &Source) -> PathBuf {
    match source {
        Source::Speech { language, text } => dir.join(language).join("tts").join(format!("{}.wav", short_hash(text))),
        Source::Digit { language, digit } => dir.join(language).join("digits").join(format!("{digit}.wav")),
        Source::Recording { url } => dir.join("recordings").join(format!("{}.wav", short_hash(url))),
    }
}

impl Layout<'_> {
    pub fn resolve(&self, source: &Source) -> Resolved {
        let file = plain_file(self.dir, source);
        let origin = match source {
            Source::Speech { language, text } => Origin::Speech { language: language.clone(), text: text.clone() },
            Source::Digit { language, digit } => Origin::Speech { language: language.clone(), text: digit.to_string() },
            Source::Recording { url } => match self.server_recording(url) {
                Some(original) => {
                    return Resolved {
                        file: original.with_extension("wav"),
                        origin: Origin::ServerRecording { original },
                    };
                }
                None => Origin::Download { url: url.clone() },
            },
        };
        Resolved { file, origin }
    }

    /// The file behind `{audio_base}/voice_prompts/{locale}/{file}`, if that
    /// is one of the server's recordings.
    fn server_recording(&self, url: &str) -> Option<PathBuf> {
        let rest = url.strip_prefix(self.audio_base)?.strip_prefix("/voice_prompts/")?;
        let (locale, file) = rest.split_once('/')?;
        self.prompts.audio_path(Locale::parse(locale)?, file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_recording_maps_to_its_file_and_any_other_url_to_a_download() {
        let prompts_dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(prompts_dir.path().join("en-US")).unwrap();
        std::fs::write(prompts_dir.path().join("en-US/success.wav"), b"RIFF").unwrap();
        std::fs::write(prompts_dir.path().join("en-US/failure.mp3"), b"ID3").unwrap();
        let prompts = Prompts::load(prompts_dir.path()).unwrap();
        let layout = Layout { dir: Path::new("audio"), prompts: &prompts, audio_base: "https://ivr.example" };
        let play = |url: &str| layout.resolve(&Source::Recording { url: url.into() });

        let success = prompts_dir.path().join("en-US/success.wav");
        let r = play("https://ivr.example/voice_prompts/en-US/success.wav");
        assert_eq!(r, Resolved { file: success.clone(), origin: Origin::ServerRecording { original: success } });
        let r = play("https://ivr.example/voice_prompts/en-US/failure.mp3");
        assert_eq!(r.file, prompts_dir.path().join("en-US/failure.wav"), "an mp3's 8 kHz WAV beside it");

        let cdn = "https://cdn.example/voice_prompts/en-US/success.wav";
        let r = play(cdn);
        assert_eq!(r.file, Path::new("audio/recordings").join(format!("{}.wav", short_hash(cdn))));
        assert_eq!(r.origin, Origin::Download { url: cdn.into() });
        let r = play("https://ivr.example/voice_prompts/en-US/../../secret.wav");
        assert!(matches!(r.origin, Origin::Download { .. }), "not a known prompt file");
    }

    #[test]
    fn speech_is_keyed_by_its_text() {
        let prompts = Prompts::load(Path::new("/nonexistent")).unwrap();
        let layout = Layout { dir: Path::new("audio"), prompts: &prompts, audio_base: "x" };
        let r = layout.resolve(&Source::Speech { language: "ja-JP".into(), text: "こんにちは".into() });
        assert_eq!(r.file, Path::new("audio/ja-JP/tts").join(format!("{}.wav", short_hash("こんにちは"))));
        assert_eq!(short_hash("こんにちは").len(), 16);
        let r = layout.resolve(&Source::Digit { language: "en-US".into(), digit: '7' });
        assert_eq!(r.file, Path::new("audio/en-US/digits/7.wav"));
    }
}
