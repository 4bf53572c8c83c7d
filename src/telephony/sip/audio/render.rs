//! `ivr-auth prompts render`: makes every clip the server may play, before
//! serving — speech with the installed engines, the server's recordings
//! converted beside themselves, tenants' recordings downloaded once — and
//! writes an `index.tsv` per locale saying which file says what.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::engine;
use super::layout::{Layout, Origin, Resolved};
use super::library::describe;
use super::needs::spoken;
use super::source::Source;
use super::wav::is_playable_file;
use crate::call::prompts::Prompts;
use crate::domain::tenant::TenantVoice;

/// Any base serves: the server's recordings are told by it, and render
/// makes the same files whatever the public URL.
const RENDER_BASE: &str = "render:";
/// The largest tenant recording downloaded (a prompt is seconds long).
const MAX_DOWNLOAD: usize = 20 * 1024 * 1024;

pub struct RenderOptions {
    /// The audio directory (`IVR_AUTH_PROMPT_AUDIO_DIR`).
    pub dir: PathBuf,
    /// Keep every file that exists; else render speech and download again.
    pub only_missing: bool,
    /// Open JTalk's HTS voice.
    pub voice_ja: PathBuf,
    /// A short tone for every text instead of speech: to try a trunk's
    /// signalling before the engines are installed, and for the tests.
    pub tone: bool,
}

/// What a render did, per group (`ja-JP`, `server recordings`, `tenant recordings`).
#[derive(Debug, Default)]
pub struct Summary {
    pub groups: BTreeMap<String, Counts>,
    pub indexes: Vec<PathBuf>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub rendered: usize,
    pub skipped: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (group, c) in &self.groups {
            writeln!(f, "{group}: {} rendered, {} skipped (present)", c.rendered, c.skipped)?;
        }
        let indexes: Vec<String> = self.indexes.iter().map(|p| p.display().to_string()).collect();
        write!(f, "index: {}", indexes.join(", "))
    }
}

/// One file to make.
enum Job {
    Speak { language: String, text: String, out: PathBuf },
    Convert { input: PathBuf, out: PathBuf, keep_original_as: Option<PathBuf> },
}

/// Renders what the server may play with `tenants` (see `needs::spoken`).
pub async fn render(
    options: &RenderOptions,
    prompts: &Prompts,
    tenants: &[TenantVoice],
    http: &reqwest::Client,
) -> Result<Summary, String> {
    let layout = Layout { dir: &options.dir, prompts, audio_base: RENDER_BASE };
    let planned: Vec<(Source, Resolved)> = spoken(prompts, RENDER_BASE, tenants)
        .into_iter()
        .map(|s| (layout.resolve(&s), s))
        .map(|(r, s)| (s, r))
        .collect();
    render_sources(options, &planned, http).await
}

/// Renders `planned`: the part of `render` past the enumeration.
async fn render_sources(
    options: &RenderOptions,
    planned: &[(Source, Resolved)],
    http: &reqwest::Client,
) -> Result<Summary, String> {
    let mut summary = Summary::default();
    let mut jobs = Vec::new();
    let mut downloads = Vec::new();
    for (source, Resolved { file, origin }) in planned {
        let group = group_of(source, origin);
        let counts = summary.groups.entry(group).or_default();
        let keep = match origin {
            Origin::ServerRecording { .. } => is_playable_file(file),
            _ => options.only_missing && file.exists(),
        };
        if keep {
            counts.skipped += 1;
            continue;
        }
        counts.rendered += 1;
        match origin {
            Origin::Speech { language, text } => {
                jobs.push(Job::Speak { language: language.clone(), text: text.clone(), out: file.clone() });
            }
            Origin::ServerRecording { original } if original == file => {
                // A WAV in another format: kept beside as `.orig.wav`, never overwritten.
                let kept = original.with_extension("orig.wav");
                jobs.push(Job::Convert { input: kept.clone(), out: file.clone(), keep_original_as: Some(kept) });
            }
            Origin::ServerRecording { original } => {
                jobs.push(Job::Convert { input: original.clone(), out: file.clone(), keep_original_as: None });
            }
            Origin::Download { url } => downloads.push((url.clone(), file.clone())),
        }
    }
    let languages: BTreeSet<&str> = jobs
        .iter()
        .filter_map(|j| match j {
            Job::Speak { language, .. } => Some(language.as_str()),
            Job::Convert { .. } => None,
        })
        .collect();
    if (!jobs.is_empty() || !downloads.is_empty()) && !options.tone {
        engine::check(languages, &options.voice_ja)?;
    }
    let work = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
    for (i, (url, out)) in downloads.into_iter().enumerate() {
        let input = download(http, &url, work.path(), i).await?;
        jobs.push(Job::Convert { input, out, keep_original_as: None });
    }
    let voice = (!options.tone).then(|| options.voice_ja.clone());
    tokio::task::spawn_blocking(move || run_all(jobs, voice.as_deref()))
        .await
        .map_err(|e| format!("rendering stopped: {e}"))??;
    drop(work);
    summary.indexes = write_indexes(&options.dir, planned)?;
    Ok(summary)
}

fn group_of(source: &Source, origin: &Origin) -> String {
    match (source, origin) {
        (_, Origin::ServerRecording { .. }) => "server recordings".into(),
        (_, Origin::Download { .. }) => "tenant recordings".into(),
        (Source::Speech { language, .. } | Source::Digit { language, .. }, _) => language.clone(),
        (Source::Recording { .. }, Origin::Speech { .. }) => "other".into(),
    }
}

/// Fetches a tenant's recording into `work`, named with the type sox reads it as.
async fn download(http: &reqwest::Client, url: &str, work: &Path, n: usize) -> Result<PathBuf, String> {
    let shown = describe(&Source::Recording { url: url.to_owned() });
    let mut response = http
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("downloading {shown}: {}", e.without_url()))?;
    let content_type =
        response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("downloading {shown}: {}", e.without_url()))? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOWNLOAD {
            return Err(format!("downloading {shown}: larger than {} MB", MAX_DOWNLOAD / 1024 / 1024));
        }
    }
    let path = work.join(format!("download-{n}.{}", audio_type(url, &content_type)));
    std::fs::write(&path, body).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// The file type of a recording: its URL's extension, else its content type.
fn audio_type(url: &str, content_type: &str) -> &'static str {
    let ext = url::Url::parse(url).ok().and_then(|u| {
        let path = u.path().to_ascii_lowercase();
        path.rsplit_once('.').map(|(_, e)| e.to_owned())
    });
    match (ext.as_deref(), content_type) {
        (Some("mp3"), _) | (_, "audio/mpeg" | "audio/mp3") => "mp3",
        (Some("ogg"), _) | (_, "audio/ogg") => "ogg",
        (Some("flac"), _) | (_, "audio/flac") => "flac",
        _ => "wav",
    }
}

/// Runs `jobs` on every core; the first failure is the error, after all ran.
/// `voice_ja`: `None` renders tones instead of speech.
fn run_all(jobs: Vec<Job>, voice_ja: Option<&Path>) -> Result<(), String> {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(jobs.len()).max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if let Err(e) = run_one(job, voice_ja)
                        && let Ok(mut f) = failures.lock()
                    {
                        f.push(e);
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap_or_default();
    match failures.split_first() {
        None => Ok(()),
        Some((first, [])) => Err(first.clone()),
        Some((first, rest)) => Err(format!("{first} (and {} more failures)", rest.len())),
    }
}

fn run_one(job: &Job, voice_ja: Option<&Path>) -> Result<(), String> {
    match job {
        Job::Speak { language, text, out } => match voice_ja {
            Some(voice_ja) => engine::speak(language, text, out, voice_ja),
            None => engine::tone(out),
        },
        Job::Convert { input, out, keep_original_as } => {
            if let Some(kept) = keep_original_as
                && !kept.exists()
            {
                std::fs::rename(out, kept).map_err(|e| format!("keeping {}: {e}", out.display()))?;
            }
            engine::convert(input, out)
        }
    }
}

/// `index.tsv` per locale (and for tenants' recordings): each file and what it holds.
fn write_indexes(dir: &Path, planned: &[(Source, Resolved)]) -> Result<Vec<PathBuf>, String> {
    let mut tables: BTreeMap<PathBuf, BTreeMap<String, String>> = BTreeMap::new();
    for (source, Resolved { file, origin }) in planned {
        let (index, what) = match (source, origin) {
            (_, Origin::ServerRecording { original }) => continue_with(dir, original, "recording"),
            (Source::Recording { .. }, _) => (dir.join("recordings/index.tsv"), describe(source)),
            (Source::Speech { language, text }, _) => (dir.join(language).join("index.tsv"), text.clone()),
            (Source::Digit { language, digit }, _) => (dir.join(language).join("index.tsv"), digit.to_string()),
        };
        let shown = file.strip_prefix(dir).unwrap_or(file).display().to_string();
        tables.entry(index).or_default().insert(shown, what.replace('\t', " ").replace('\n', "\\n"));
    }
    let mut written = Vec::new();
    for (index, rows) in tables {
        let mut text = String::from("file\ttext\n");
        for (file, what) in rows {
            let _ = writeln!(text, "{file}\t{what}");
        }
        if let Some(parent) = index.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&index, text).map_err(|e| format!("{}: {e}", index.display()))?;
        written.push(index);
    }
    Ok(written)
}

/// The index of the locale a server recording belongs to (its folder's name).
fn continue_with(dir: &Path, original: &Path, what: &str) -> (PathBuf, String) {
    let locale = original.parent().and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned());
    let index = dir.join(locale.unwrap_or_default()).join("index.tsv");
    (index, format!("{what} {}", original.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools_present() -> bool {
        let missing: Vec<&str> =
            ["sox", "espeak-ng", "open_jtalk"].into_iter().filter(|p| engine::find_program(p).is_none()).collect();
        if !missing.is_empty() {
            println!("note: render test skipped, not installed: {} (scripts/install-tts.sh)", missing.join(", "));
        }
        missing.is_empty()
    }

    fn voice() -> Option<PathBuf> {
        let voice = std::env::var_os("IVR_AUTH_OPENJTALK_VOICE")
            .map_or_else(|| PathBuf::from("/usr/local/share/ivr-auth/mei_normal.htsvoice"), PathBuf::from);
        if voice.exists() {
            Some(voice)
        } else {
            println!("note: render test skipped, no Open JTalk voice at {}", voice.display());
            None
        }
    }

    #[tokio::test]
    async fn render_makes_8_khz_mono_files_and_an_index() {
        let (true, Some(voice_ja)) = (tools_present(), voice()) else { return };
        let dir = tempfile::tempdir().unwrap();
        let prompts = Prompts::load(Path::new("/nonexistent")).unwrap();
        let layout = Layout { dir: dir.path(), prompts: &prompts, audio_base: RENDER_BASE };
        let sources = [
            Source::Speech { language: "ja-JP".into(), text: "認証が完了しました。".into() },
            Source::Speech { language: "en-US".into(), text: "-v Hello.\nBye.".into() },
            Source::Digit { language: "en-US".into(), digit: '7' },
        ];
        let planned: Vec<(Source, Resolved)> = sources.iter().map(|s| (s.clone(), layout.resolve(s))).collect();
        let options = RenderOptions { dir: dir.path().to_owned(), only_missing: true, voice_ja, tone: false };
        crate::install_tls_provider();
        let http = reqwest::Client::new();
        let summary = render_sources(&options, &planned, &http).await.unwrap();
        assert_eq!(summary.groups["ja-JP"], Counts { rendered: 1, skipped: 0 });
        assert_eq!(summary.groups["en-US"], Counts { rendered: 2, skipped: 0 });
        for (_, resolved) in &planned {
            let samples = super::super::wav::read(&resolved.file).unwrap();
            assert!(samples.len() > 1600, "{}: {} samples", resolved.file.display(), samples.len());
            assert!(samples.iter().any(|s| s.unsigned_abs() > 1000), "not silent");
        }
        let index = std::fs::read_to_string(dir.path().join("ja-JP/index.tsv")).unwrap();
        assert!(index.contains("\t認証が完了しました。"), "{index}");
        let again = render_sources(&options, &planned, &http).await.unwrap();
        assert_eq!(again.groups["en-US"], Counts { rendered: 0, skipped: 2 }, "--only-missing");
    }

    #[tokio::test]
    async fn a_missing_voice_is_one_line_naming_it() {
        if !tools_present() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let prompts = Prompts::load(Path::new("/nonexistent")).unwrap();
        let layout = Layout { dir: dir.path(), prompts: &prompts, audio_base: RENDER_BASE };
        let s = Source::Speech { language: "ja-JP".into(), text: "はい".into() };
        let planned = [(s.clone(), layout.resolve(&s))];
        let options = RenderOptions {
            dir: dir.path().to_owned(),
            only_missing: false,
            voice_ja: "/no/voice.htsvoice".into(),
            tone: false,
        };
        crate::install_tls_provider();
        let e = render_sources(&options, &planned, &reqwest::Client::new()).await.unwrap_err();
        assert!(e.starts_with("Open JTalk voice /no/voice.htsvoice is missing") && !e.contains('\n'), "{e}");
    }

    #[tokio::test]
    async fn a_server_recording_in_another_format_is_converted_and_its_original_kept() {
        if engine::find_program("sox").is_none() {
            println!("note: skipped, sox is not installed (scripts/install-tts.sh)");
            return;
        }
        let prompts_dir = tempfile::tempdir().unwrap();
        let success = prompts_dir.path().join("en-US/success.wav");
        let tone: Vec<i16> = (0..16000).map(|i| ((i % 40) * 500 - 10000) as i16).collect();
        super::super::wav::tests::write(&success, 16000, &tone);
        let prompts = Prompts::load(prompts_dir.path()).unwrap();
        let audio = tempfile::tempdir().unwrap();
        let layout = Layout { dir: audio.path(), prompts: &prompts, audio_base: RENDER_BASE };
        let s = Source::Recording { url: format!("{RENDER_BASE}/voice_prompts/en-US/success.wav") };
        let planned = [(s.clone(), layout.resolve(&s))];
        let options =
            RenderOptions { dir: audio.path().to_owned(), only_missing: false, voice_ja: "/none".into(), tone: false };
        crate::install_tls_provider();
        let summary = render_sources(&options, &planned, &reqwest::Client::new()).await.unwrap();
        assert_eq!(summary.groups["server recordings"], Counts { rendered: 1, skipped: 0 });
        let samples = super::super::wav::read(&success).unwrap();
        assert!((7900..=8100).contains(&samples.len()), "one second at 8 kHz: {}", samples.len());
        assert!(prompts_dir.path().join("en-US/success.orig.wav").exists(), "the original is kept");
        let again = render_sources(&options, &planned, &reqwest::Client::new()).await.unwrap();
        assert_eq!(again.groups["server recordings"], Counts { rendered: 0, skipped: 1 }, "already 8 kHz");
    }
}
