//! Voice prompts per locale: text from `voice_prompts/*.toml`, recorded audio where a file exists.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::twiml::Verb;
use crate::domain::status::Locale;

/// Every prompt the IVR can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prompt {
    Greeting,
    EnterCode,
    WrongCode,
    Success,
    Failure,
    NoInput,
    WithheldCallerId,
    CallerIdUnverified,
    NoPendingRequest,
    Expired,
    Goodbye,
}

impl Prompt {
    pub const ALL: [Prompt; 11] = [
        Self::Greeting,
        Self::EnterCode,
        Self::WrongCode,
        Self::Success,
        Self::Failure,
        Self::NoInput,
        Self::WithheldCallerId,
        Self::CallerIdUnverified,
        Self::NoPendingRequest,
        Self::Expired,
        Self::Goodbye,
    ];

    /// The key in the prompt files and the stem of an audio file.
    pub fn key(self) -> &'static str {
        match self {
            Self::Greeting => "greeting",
            Self::EnterCode => "enter_code",
            Self::WrongCode => "wrong_code",
            Self::Success => "success",
            Self::Failure => "failure",
            Self::NoInput => "no_input",
            Self::WithheldCallerId => "withheld_caller_id",
            Self::CallerIdUnverified => "caller_id_unverified",
            Self::NoPendingRequest => "no_pending_request",
            Self::Expired => "expired",
            Self::Goodbye => "goodbye",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromptFile {
    language: String,
    voice: Option<String>,
    prompts: HashMap<String, String>,
}

struct PromptSet {
    language: String,
    voice: Option<String>,
    texts: HashMap<Prompt, String>,
    /// Audio file names (in `<dir>/<locale>/`) by prompt.
    audio: HashMap<Prompt, String>,
}

/// Values substituted into prompt text.
#[derive(Debug, Default, Clone, Copy)]
pub struct Vars {
    pub code_length: u8,
    pub attempts_left: u8,
}

/// All prompts of all locales, loaded once at start-up.
pub struct Prompts {
    sets: HashMap<Locale, PromptSet>,
    dir: PathBuf,
}

const BUILT_IN: [(Locale, &str); 2] = [
    (Locale::JaJp, include_str!("../../voice_prompts/ja-JP.toml")),
    (Locale::EnUs, include_str!("../../voice_prompts/en-US.toml")),
];
const AUDIO_EXTENSIONS: [&str; 2] = ["wav", "mp3"];

/// A prompt file: every prompt, or (`base` given) the ones it overrides,
/// the others taken from `base`, so a file written before a prompt was added
/// keeps working.
fn parse_set(locale: Locale, text: &str, origin: &str, base: Option<&PromptSet>) -> Result<PromptSet, String> {
    let file: PromptFile = toml::from_str(text).map_err(|e| format!("{origin}: {e}"))?;
    let mut texts = HashMap::new();
    for prompt in Prompt::ALL {
        let t = match (file.prompts.get(prompt.key()), base) {
            (Some(t), _) => t.clone(),
            (None, Some(base)) => base.texts.get(&prompt).cloned().unwrap_or_default(),
            (None, None) => return Err(format!("{origin}: prompt `{}` is missing", prompt.key())),
        };
        texts.insert(prompt, t);
    }
    if let Some(unknown) = file.prompts.keys().find(|k| !Prompt::ALL.iter().any(|p| p.key() == k.as_str())) {
        return Err(format!("{origin}: unknown prompt `{unknown}`"));
    }
    if file.language != locale.as_str() {
        return Err(format!("{origin}: language must be {locale}"));
    }
    let voice = file.voice.or_else(|| base.and_then(|b| b.voice.clone()));
    Ok(PromptSet { language: file.language, voice, texts, audio: HashMap::new() })
}

impl Prompts {
    /// The built-in prompts, overridden by `<dir>/<locale>.toml` files and
    /// `<dir>/<locale>/<prompt>.wav|mp3` audio where they exist.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let mut sets = HashMap::new();
        for (locale, built_in) in BUILT_IN {
            let file = dir.join(format!("{locale}.toml"));
            let built_in = parse_set(locale, built_in, "built-in prompts", None)?;
            let mut set = match std::fs::read_to_string(&file) {
                Ok(text) => parse_set(locale, &text, &file.display().to_string(), Some(&built_in))?,
                Err(_) => built_in,
            };
            for prompt in Prompt::ALL {
                for ext in AUDIO_EXTENSIONS {
                    let name = format!("{}.{ext}", prompt.key());
                    if dir.join(locale.as_str()).join(&name).is_file() {
                        set.audio.insert(prompt, name);
                        break;
                    }
                }
            }
            sets.insert(locale, set);
        }
        Ok(Self { sets, dir: dir.to_owned() })
    }

    /// The verb for `prompt`: `<Play>` of its audio under `audio_base`, or `<Say>` of its text.
    pub fn verb(&self, locale: Locale, prompt: Prompt, vars: Vars, audio_base: &str) -> Verb {
        let Some(set) = self.sets.get(&locale) else { return Verb::Pause { seconds: 1 } };
        if let Some(file) = set.audio.get(&prompt) {
            return Verb::Play { url: format!("{audio_base}/voice_prompts/{locale}/{file}") };
        }
        let text = set.texts.get(&prompt).map(String::as_str).unwrap_or_default();
        Verb::Say {
            text: text
                .replace("{code_length}", &vars.code_length.to_string())
                .replace("{attempts_left}", &vars.attempts_left.to_string()),
            language: set.language.clone(),
            voice: set.voice.clone(),
        }
    }

    /// The path of a served audio file, if `file` is one of the known prompt files of `locale`.
    pub fn audio_path(&self, locale: Locale, file: &str) -> Option<PathBuf> {
        let set = self.sets.get(&locale)?;
        set.audio.values().any(|f| f == file).then(|| self.dir.join(locale.as_str()).join(file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_prompts_load_and_fill_variables() {
        let p = Prompts::load(Path::new("/nonexistent")).unwrap();
        let vars = Vars { code_length: 6, attempts_left: 2 };
        match p.verb(Locale::JaJp, Prompt::EnterCode, vars, "https://x") {
            Verb::Say { text, language, .. } => {
                assert!(text.contains("6桁"), "{text}");
                assert_eq!(language, "ja-JP");
            }
            other => panic!("{other:?}"),
        }
        match p.verb(Locale::EnUs, Prompt::WithheldCallerId, vars, "https://x") {
            Verb::Say { text, .. } => assert!(text.contains("1, 8, 6")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn audio_files_turn_say_into_play() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("en-US")).unwrap();
        std::fs::write(dir.path().join("en-US/success.wav"), b"RIFF").unwrap();
        let p = Prompts::load(dir.path()).unwrap();
        let v = p.verb(Locale::EnUs, Prompt::Success, Vars::default(), "https://x");
        assert_eq!(v, Verb::Play { url: "https://x/voice_prompts/en-US/success.wav".into() });
        assert!(p.audio_path(Locale::EnUs, "success.wav").is_some());
        assert!(p.audio_path(Locale::EnUs, "../secret.wav").is_none());
        assert!(matches!(p.verb(Locale::JaJp, Prompt::Success, Vars::default(), "x"), Verb::Say { .. }));
    }

    #[test]
    fn an_override_file_keeps_the_built_in_text_of_prompts_it_leaves_out() {
        let dir = tempfile::tempdir().unwrap();
        let file = "language = \"en-US\"\n[prompts]\nsuccess = \"All done.\"\n";
        std::fs::write(dir.path().join("en-US.toml"), file).unwrap();
        let p = Prompts::load(dir.path()).unwrap();
        let say = |prompt| match p.verb(Locale::EnUs, prompt, Vars::default(), "x") {
            Verb::Say { text, voice, .. } => (text, voice),
            other => panic!("{other:?}"),
        };
        assert_eq!(say(Prompt::Success).0, "All done.");
        let (text, voice) = say(Prompt::CallerIdUnverified);
        assert!(text.contains("could not confirm"), "{text}");
        assert_eq!(voice.as_deref(), Some("Polly.Joanna"), "the built-in voice too");
        // An unknown prompt is still refused.
        std::fs::write(dir.path().join("en-US.toml"), "language = \"en-US\"\n[prompts]\nsucess = \"x\"\n").unwrap();
        assert!(Prompts::load(dir.path()).err().unwrap().contains("unknown prompt `sucess`"));
    }
}
