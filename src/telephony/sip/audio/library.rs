//! `AudioLibrary`: every clip the server may play, loaded at start-up and
//! checked whole, so a missing file stops the start rather than a call.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::layout::{Layout, Origin, plain_file};
use super::needs::spoken;
use super::source::{Piece, Source, pieces};
use super::wav::{self, RATE, WavError};
use crate::call::prompts::Prompts;
use crate::call::script::Step;
use crate::domain::tenant::TenantVoice;

/// The prompt audio of every locale, 8 kHz mono 16-bit samples in memory.
pub struct AudioLibrary {
    dir: PathBuf,
    clips: HashMap<Source, Arc<[i16]>>,
}

/// A clip a step needs that the library does not hold (a tenant renamed or
/// added since the start, or a text never rendered). Prints as one line
/// naming the file, without the query of a URL or any digit of a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub file: PathBuf,
    /// What the file should hold: a text's beginning, "a digit", a URL.
    pub what: String,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "prompt audio missing: {} ({}) — run ivr-auth prompts render", self.file.display(), self.what)
    }
}

impl std::error::Error for Missing {}

impl Missing {
    fn of(file: PathBuf, source: &Source) -> Self {
        Self { file, what: describe(source) }
    }
}

/// A source as a log may show it.
pub(super) fn describe(source: &Source) -> String {
    match source {
        Source::Speech { text, .. } => {
            let mut short: String = text.chars().take(40).collect();
            if short.len() < text.len() {
                short.push('…');
            }
            format!("{short:?}")
        }
        Source::Digit { .. } => "a digit of a code".into(),
        Source::Recording { url } => match url::Url::parse(url) {
            Ok(u) => format!("{}{}", u.origin().ascii_serialization(), u.path()),
            Err(_) => "a recording".into(),
        },
    }
}

impl AudioLibrary {
    /// Loads the clip of everything the server may say or play with
    /// `tenants` (those known at the start): the audio directory `dir`
    /// (`IVR_AUTH_PROMPT_AUDIO_DIR`), the server's `prompts` and `audio_base`
    /// (`Urls::base()`, which the server's own recording URLs start with).
    /// Reads files: call it on a blocking thread. The error is one line
    /// naming the first missing or unplayable file.
    pub fn load<'a>(
        dir: &Path,
        prompts: &Prompts,
        audio_base: &str,
        tenants: impl IntoIterator<Item = &'a TenantVoice>,
    ) -> Result<Self, String> {
        let layout = Layout { dir, prompts, audio_base };
        let mut clips = HashMap::new();
        let mut missing: Vec<Missing> = Vec::new();
        for source in spoken(prompts, audio_base, tenants) {
            let resolved = layout.resolve(&source);
            match wav::read(&resolved.file) {
                Ok(samples) => drop(clips.insert(source, Arc::from(samples))),
                Err(WavError::NotFound) => missing.push(Missing::of(resolved.file, &source)),
                Err(WavError::Format(found)) => {
                    let server_wav =
                        matches!(&resolved.origin, Origin::ServerRecording { original } if *original == resolved.file);
                    let hint = if server_wav { " (the original is kept as .orig.wav)" } else { "" };
                    return Err(format!(
                        "prompt audio {} is not 8 kHz mono 16-bit PCM WAV ({found}) — run ivr-auth prompts render{hint}",
                        resolved.file.display()
                    ));
                }
            }
        }
        match missing.split_first() {
            None => Ok(Self { dir: dir.to_owned(), clips }),
            Some((first, [])) => Err(first.to_string()),
            Some((first, rest)) => Err(format!("{first} ({} more files missing)", rest.len())),
        }
    }

    /// The clips of `step`, in order, silences included (a Gather's are
    /// those of its prompts; a Redirect or Hangup has none). Cheap: clips
    /// are shared, silences are fresh zeros.
    pub fn clips(&self, step: &Step) -> Result<Vec<Arc<[i16]>>, Missing> {
        pieces(step)
            .into_iter()
            .map(|piece| match piece {
                Piece::Silence { ms } => Ok(silence(ms)),
                Piece::Clip(source) => self.clips.get(&source).cloned().ok_or_else(|| self.missing(&source)),
            })
            .collect()
    }

    /// How many clips are held (for a start-up log line).
    pub fn len(&self) -> usize {
        self.clips.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clips.is_empty()
    }

    fn missing(&self, source: &Source) -> Missing {
        let mut m = Missing::of(plain_file(&self.dir, source), source);
        if let Source::Digit { .. } = source {
            // The digit's file would tell a digit of the code being read.
            m.file.set_file_name("");
        }
        m
    }
}

fn silence(ms: u32) -> Arc<[i16]> {
    let samples = u64::from(ms) * u64::from(RATE) / 1000;
    Arc::from(vec![0i16; usize::try_from(samples).unwrap_or(0)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::status::Locale;
    use crate::telephony::sip::audio::wav::tests::write;

    /// An audio directory holding every file the built-in prompts need.
    fn complete(prompts: &Prompts, base: &str, tenants: &[TenantVoice]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout { dir: dir.path(), prompts, audio_base: base };
        for source in spoken(prompts, base, tenants) {
            let value = match &source {
                Source::Digit { digit, .. } => *digit as i16 - '0' as i16 + 1,
                _ => 7,
            };
            let file = layout.resolve(&source).file;
            if !file.exists() {
                write(&file, 8000, &[value; 3]);
            }
        }
        dir
    }

    fn built_in() -> Prompts {
        Prompts::load(Path::new("/nonexistent")).unwrap()
    }

    #[test]
    fn a_missing_file_stops_the_start_with_one_line_naming_it() {
        let prompts = built_in();
        let dir = complete(&prompts, "https://ivr.example", &[]);
        assert!(AudioLibrary::load(dir.path(), &prompts, "https://ivr.example", []).is_ok());
        let text = prompts.text(Locale::EnUs, crate::call::prompt::Prompt::Success, &Default::default(), None);
        let file = plain_file(dir.path(), &Source::Speech { language: "en-US".into(), text: text.clone() });
        std::fs::remove_file(&file).unwrap();
        let e = AudioLibrary::load(dir.path(), &prompts, "https://ivr.example", []).err().unwrap();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.starts_with(&format!("prompt audio missing: {} (", file.display())), "{e}");
        assert!(e.contains(&text[..10]) && e.ends_with("run ivr-auth prompts render"), "{e}");
    }

    #[test]
    fn a_wav_that_is_not_8_khz_is_refused_with_its_name() {
        let prompts = built_in();
        let dir = complete(&prompts, "x", &[]);
        let seven = dir.path().join("ja-JP/digits/7.wav");
        write(&seven, 16000, &[1, 2]);
        let e = AudioLibrary::load(dir.path(), &prompts, "x", []).err().unwrap();
        assert!(e.starts_with(&format!("prompt audio {} is not 8 kHz", seven.display())), "{e}");
        assert!(e.contains("16000 Hz") && e.contains("prompts render"), "{e}");
    }

    #[test]
    fn digits_are_separated_by_the_pause_in_zero_samples() {
        let prompts = built_in();
        let dir = complete(&prompts, "x", &[]);
        let library = AudioLibrary::load(dir.path(), &prompts, "x", []).unwrap();
        let mut step = prompts.say_digits(Locale::JaJp, "4, 0, 9");
        if let Step::Say { pause, .. } = &mut step {
            *pause = Some("400ms".into());
        }
        let clips = library.clips(&step).unwrap();
        let lens: Vec<usize> = clips.iter().map(|c| c.len()).collect();
        assert_eq!(lens, [3, 3200, 3, 3200, 3]);
        assert_eq!((clips[0][0], clips[2][0], clips[4][0]), (5, 1, 10), "the digits 4, 0, 9 in order");
        assert!(clips[1].iter().chain(clips[3].iter()).all(|s| *s == 0));
        let pause = library.clips(&Step::Pause { seconds: 2 }).unwrap();
        assert_eq!(pause.iter().map(|c| c.len()).sum::<usize>(), 16000);
    }

    #[test]
    fn play_of_a_server_recording_is_its_file_and_an_unknown_text_is_missing() {
        let prompts_dir = tempfile::tempdir().unwrap();
        write(&prompts_dir.path().join("en-US/success.wav"), 8000, &[42; 5]);
        let prompts = Prompts::load(prompts_dir.path()).unwrap();
        let base = "https://ivr.example";
        let dir = complete(&prompts, base, &[]);
        let library = AudioLibrary::load(dir.path(), &prompts, base, []).unwrap();
        let step = prompts.step(Locale::EnUs, crate::call::prompt::Prompt::Success, &Default::default(), None, base);
        assert_eq!(step, Step::Play { url: format!("{base}/voice_prompts/en-US/success.wav") });
        assert_eq!(&*library.clips(&step).unwrap()[0], &[42; 5]);

        let renamed = prompts.say(Locale::EnUs, "Welcome to Renamed Bank.");
        let m = library.clips(&renamed).unwrap_err();
        assert_eq!(
            m.file,
            plain_file(
                dir.path(),
                &Source::Speech { language: "en-US".into(), text: "Welcome to Renamed Bank.".into() }
            )
        );
        let url = "https://cdn.example/a.wav?token=secret";
        let m = library.clips(&Step::Play { url: url.into() }).unwrap_err();
        assert!(!m.to_string().contains("secret"), "{m}");
    }
}
