//! The programs `prompts render` runs: Open JTalk (Japanese), espeak-ng
//! (English) and sox, which turns whatever they or a recording give into
//! 8 kHz mono 16-bit PCM. Each output appears whole or not at all.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Open JTalk's dictionary as Debian's `open-jtalk-mecab-naist-jdic` installs it.
pub const JTALK_DICTIONARY: &str = "/var/lib/mecab/dic/open-jtalk/naist-jdic";
pub const INSTALL_HINT: &str = "run scripts/install-tts.sh";

/// The programs and files rendering `languages` (and converting) needs,
/// each missing one as a line naming it.
pub fn check<'a>(languages: impl IntoIterator<Item = &'a str>, voice_ja: &Path) -> Result<(), String> {
    let mut needed: Vec<(&str, Option<PathBuf>)> = vec![("sox", None)];
    for language in languages {
        match language {
            "ja-JP" => {
                needed.push(("open_jtalk", None));
                needed.push(("Open JTalk dictionary", Some(PathBuf::from(JTALK_DICTIONARY))));
                needed.push(("Open JTalk voice", Some(voice_ja.to_owned())));
            }
            "en-US" => needed.push(("espeak-ng", None)),
            other => return Err(format!("no text-to-speech engine for {other}")),
        }
    }
    for (what, path) in needed {
        match path {
            None if find_program(what).is_none() => {
                return Err(format!("{what} is not installed (not on PATH) — {INSTALL_HINT}"));
            }
            Some(p) if !p.exists() => {
                return Err(format!("{what} {} is missing — {INSTALL_HINT} (or set --voice-ja)", p.display()));
            }
            _ => {}
        }
    }
    Ok(())
}

pub fn find_program(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.is_file())
}

/// Speaks `text` in `language` into `out` at 8 kHz.
pub fn speak(language: &str, text: &str, out: &Path, voice_ja: &Path) -> Result<(), String> {
    let work = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
    let input = work.path().join("text.txt");
    // Both engines read a file: a text starting with `-` is no option, and a
    // line break does not end the text.
    std::fs::write(&input, text.replace('\n', " ")).map_err(|e| format!("{}: {e}", input.display()))?;
    let raw = work.path().join("raw.wav");
    let mut command = match language {
        "ja-JP" => {
            let mut c = Command::new("open_jtalk");
            c.arg("-x").arg(JTALK_DICTIONARY).arg("-m").arg(voice_ja).arg("-ow").arg(&raw).arg(&input);
            c
        }
        "en-US" => {
            let mut c = Command::new("espeak-ng");
            c.args(["-v", "en-us", "-w"]).arg(&raw).arg("-f").arg(&input);
            c
        }
        other => return Err(format!("no text-to-speech engine for {other}")),
    };
    run(&mut command, out)?;
    convert(&raw, out)
}

/// A temporary file in `out`'s folder (made if need be), renamed over
/// `out` when whole: a file is there complete or not at all.
fn temp_beside(out: &Path) -> Result<tempfile::NamedTempFile, String> {
    let parent = out.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    tempfile::Builder::new()
        .prefix(".rendering-")
        .suffix(".wav")
        .tempfile_in(parent)
        .map_err(|e| format!("{}: {e}", parent.display()))
}

/// A 120 ms beep and 80 ms of quiet, 8 kHz: the stand-in for speech of
/// `prompts render --tone`.
pub fn tone(out: &Path) -> Result<(), String> {
    let temp = temp_beside(out)?;
    let spec =
        hound::WavSpec { channels: 1, sample_rate: 8000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(temp.path(), spec).map_err(|e| format!("{}: {e}", out.display()))?;
    for n in 0..1600u32 {
        let sample =
            if n < 960 { (8000.0 * (std::f64::consts::TAU * 1000.0 * f64::from(n) / 8000.0).sin()) as i16 } else { 0 };
        w.write_sample(sample).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    w.finalize().map_err(|e| format!("{}: {e}", out.display()))?;
    temp.persist(out).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(())
}

/// Converts the audio file `input` into an 8 kHz mono 16-bit PCM WAV at `out`.
pub fn convert(input: &Path, out: &Path) -> Result<(), String> {
    let temp = temp_beside(out)?;
    let mut sox = Command::new("sox");
    sox.arg(input).args(["-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer"]).arg(temp.path());
    run(&mut sox, out)?;
    temp.persist(out).map(drop).map_err(|e| format!("{}: {e}", out.display()))
}

/// Runs `command`; a failure names the program, the file it was making and
/// the first line it complained with.
fn run(command: &mut Command, making: &Path) -> Result<(), String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command.output().map_err(|e| format!("{program}: {e} — {INSTALL_HINT}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("no message");
    Err(format!("{program} failed making {} ({}): {first}", making.display(), output.status))
}
