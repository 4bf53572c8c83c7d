//! Voice prompts per locale: text from `voice_prompts/*.toml`, recorded audio where a file exists,
//! and a tenant's own words and recordings over both.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::prompt::{LEGACY_KEYS, Prompt, check_text};
use super::script::Step;
use crate::domain::status::Locale;
use crate::domain::tenant::TenantVoice;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromptFile {
    language: String,
    voice: Option<String>,
    /// How the site is named when its tenant has no display name.
    site_name: Option<String>,
    /// SSML speech rate of every prompt (`x-slow` … `x-fast`, or `50%` to
    /// `200%`); unset: the voice's own.
    rate: Option<String>,
    /// SSML pause between the digits of a code read aloud (`100ms` to
    /// `2000ms`, or `0.1s` to `2s`); unset: the comma's own pause.
    digit_pause: Option<String>,
    /// The text message of a tenant without a display name (the `sms`
    /// prompt names the site); unset: `sms` with `site_name`.
    sms_without_site_name: Option<String>,
    prompts: HashMap<String, String>,
}

struct PromptSet {
    language: String,
    voice: Option<String>,
    rate: Option<String>,
    digit_pause: Option<String>,
    site_name: String,
    sms_without_site_name: Option<String>,
    texts: HashMap<Prompt, String>,
    /// Audio file names (in `<dir>/<locale>/`) by prompt.
    audio: HashMap<Prompt, String>,
}

/// Values substituted into prompt text.
#[derive(Debug, Default, Clone)]
pub struct Vars {
    pub code_length: u8,
    pub attempts_left: u8,
    /// The tenant's display name; `None`: the locale's default name.
    pub site_name: Option<String>,
    /// Only for the text message.
    pub code: Option<String>,
    pub minutes: u32,
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
    let mut given: HashMap<Prompt, &String> = HashMap::new();
    for (key, text) in &file.prompts {
        let prompts = match (Prompt::from_key(key), LEGACY_KEYS.iter().find(|(k, _)| k == key)) {
            (Some(p), _) => vec![p],
            (None, Some((_, both))) => both.to_vec(),
            (None, None) => return Err(format!("{origin}: unknown prompt `{key}`")),
        };
        for p in prompts {
            check_text(p, text).map_err(|e| format!("{origin}: prompt `{key}` {e}"))?;
            // The new key wins over its legacy spelling, whatever the order.
            if Prompt::from_key(key).is_some() || !given.contains_key(&p) {
                given.insert(p, text);
            }
        }
    }
    let mut texts = HashMap::new();
    for prompt in Prompt::ALL {
        let t = match (given.get(&prompt), base) {
            (Some(t), _) => (*t).clone(),
            (None, Some(base)) => base.texts.get(&prompt).cloned().unwrap_or_default(),
            (None, None) => return Err(format!("{origin}: prompt `{}` is missing", prompt.key())),
        };
        texts.insert(prompt, t);
    }
    if file.language != locale.as_str() {
        return Err(format!("{origin}: language must be {locale}"));
    }
    let voice = file.voice.or_else(|| base.and_then(|b| b.voice.clone()));
    let site_name = match (file.site_name, base) {
        (Some(name), _) => name,
        (None, Some(base)) => base.site_name.clone(),
        (None, None) => return Err(format!("{origin}: site_name is missing")),
    };
    let rate = file.rate.or_else(|| base.and_then(|b| b.rate.clone()));
    if let Some(r) = rate.as_deref().filter(|r| !is_rate(r)) {
        return Err(format!("{origin}: rate {r:?} must be x-slow, slow, medium, fast, x-fast or 50% to 200%"));
    }
    let digit_pause = file.digit_pause.or_else(|| base.and_then(|b| b.digit_pause.clone()));
    if let Some(p) = digit_pause.as_deref().filter(|p| !is_pause(p)) {
        return Err(format!("{origin}: digit_pause {p:?} must be 100ms to 2000ms (or 0.1s to 2s)"));
    }
    // A file that words its own `sms` has it sent to every tenant, named or not.
    let sms_without_site_name = match (file.sms_without_site_name, base) {
        (Some(text), _) => {
            check_text(Prompt::Sms, &text).map_err(|e| format!("{origin}: sms_without_site_name {e}"))?;
            Some(text)
        }
        (None, Some(base)) if !given.contains_key(&Prompt::Sms) => base.sms_without_site_name.clone(),
        (None, _) => None,
    };
    Ok(PromptSet {
        language: file.language,
        voice,
        rate,
        digit_pause,
        site_name,
        sms_without_site_name,
        texts,
        audio: HashMap::new(),
    })
}

/// An SSML `prosody` rate a provider's voices take.
fn is_rate(r: &str) -> bool {
    matches!(r, "x-slow" | "slow" | "medium" | "fast" | "x-fast")
        || r.strip_suffix('%').and_then(|n| n.parse::<u32>().ok()).is_some_and(|n| (50..=200).contains(&n))
}

/// An SSML `break` time between 0.1 and 2 seconds.
fn is_pause(p: &str) -> bool {
    let ms = match (p.strip_suffix("ms"), p.strip_suffix('s')) {
        (Some(ms), _) => ms.parse::<f64>().ok(),
        (None, Some(s)) => s.parse::<f64>().ok().map(|s| s * 1000.0),
        _ => None,
    };
    ms.is_some_and(|ms| (100.0..=2000.0).contains(&ms))
}

/// `text` with each `{variable}` replaced, in one pass: what a variable
/// brings in (a site's name) is never read for variables itself. A brace
/// that opens no known variable stays as it is.
fn fill(text: &str, vars: &Vars, default_name: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(text.len() + 32);
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        rest = &rest[open..];
        let name = rest[1..].find('}').map(|close| &rest[1..=close]);
        let known = match name {
            Some("code_length") => write!(out, "{}", vars.code_length).is_ok(),
            Some("attempts_left") => write!(out, "{}", vars.attempts_left).is_ok(),
            Some("minutes") => write!(out, "{}", vars.minutes).is_ok(),
            Some("site_name") => {
                out.push_str(vars.site_name.as_deref().unwrap_or(default_name));
                true
            }
            Some("code") => {
                out.push_str(vars.code.as_deref().unwrap_or(""));
                true
            }
            _ => false,
        };
        match (known, name) {
            (true, Some(name)) => rest = &rest[name.len() + 2..],
            _ => {
                out.push('{');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
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
                let stems = std::iter::once(prompt.key())
                    .chain(LEGACY_KEYS.iter().filter(|(_, ps)| ps.contains(&prompt)).map(|(k, _)| *k));
                'found: for stem in stems {
                    for ext in AUDIO_EXTENSIONS {
                        let name = format!("{stem}.{ext}");
                        if dir.join(locale.as_str()).join(&name).is_file() {
                            set.audio.insert(prompt, name);
                            break 'found;
                        }
                    }
                }
            }
            sets.insert(locale, set);
        }
        Ok(Self { sets, dir: dir.to_owned() })
    }

    /// The verb for `prompt`: the tenant's recording, the server's recording
    /// (under `audio_base`), or `<Say>` of the tenant's or the server's text.
    pub fn step(
        &self,
        locale: Locale,
        prompt: Prompt,
        vars: &Vars,
        tenant: Option<&TenantVoice>,
        audio_base: &str,
    ) -> Step {
        let Some(set) = self.sets.get(&locale) else { return Step::Pause { seconds: 1 } };
        if let Some(url) = tenant.and_then(|t| t.audio_for(locale.as_str(), prompt.key())) {
            return Step::Play { url: url.to_owned() };
        }
        if let Some(file) = set.audio.get(&prompt) {
            return Step::Play { url: format!("{audio_base}/voice_prompts/{locale}/{file}") };
        }
        self.say(locale, &self.text(locale, prompt, vars, tenant))
    }

    /// `<Say>` of `text` in the voice and at the rate of `locale`.
    pub fn say(&self, locale: Locale, text: &str) -> Step {
        let set = self.sets.get(&locale);
        Step::Say {
            text: text.to_owned(),
            language: set.map_or_else(|| locale.as_str().to_owned(), |s| s.language.clone()),
            voice: set.and_then(|s| s.voice.clone()),
            rate: set.and_then(|s| s.rate.clone()),
            pause: None,
        }
    }

    /// `<Say>` of a code's digits (`4, 8, 2, …`), with the locale's pause between them.
    pub fn say_digits(&self, locale: Locale, digits: &str) -> Step {
        let mut verb = self.say(locale, digits);
        if let Step::Say { pause, .. } = &mut verb {
            *pause = self.sets.get(&locale).and_then(|s| s.digit_pause.clone());
        }
        verb
    }

    /// The text of `prompt`: the tenant's, or the server's, filled in.
    pub fn text(&self, locale: Locale, prompt: Prompt, vars: &Vars, tenant: Option<&TenantVoice>) -> String {
        let Some(set) = self.sets.get(&locale) else { return String::new() };
        let own = tenant.and_then(|t| t.text_for(locale.as_str(), prompt.key()));
        let text = own.or_else(|| set.texts.get(&prompt).map(String::as_str)).unwrap_or_default();
        fill(text, vars, &set.site_name)
    }

    /// The text message carrying `code`, valid for `minutes`, in `locale`
    /// with the tenant's name and words.
    /// A tenant with neither a display name nor its own text gets the
    /// locale's text that names no site.
    pub fn sms(&self, locale: Locale, code: &str, minutes: u32, tenant: Option<&TenantVoice>) -> String {
        let vars = Vars {
            site_name: tenant.and_then(|t| t.name_for(locale.as_str())).map(str::to_owned),
            code: Some(code.to_owned()),
            minutes,
            ..Vars::default()
        };
        let own = tenant.and_then(|t| t.text_for(locale.as_str(), Prompt::Sms.key()));
        let unnamed = self.sets.get(&locale).and_then(|s| s.sms_without_site_name.as_deref());
        let text = match (&vars.site_name, own, unnamed) {
            (None, None, Some(text)) => fill(text, &vars, ""),
            _ => self.text(locale, Prompt::Sms, &vars, tenant),
        };
        // English counts: "1 minute", "2 minutes" (the text is written for the plural).
        if locale == Locale::EnUs && minutes == 1 { text.replace("1 minutes", "1 minute") } else { text }
    }

    /// Every built-in (or operator-overridden) text of `locale`, by key.
    pub fn defaults(&self, locale: Locale) -> BTreeMap<&'static str, String> {
        let Some(set) = self.sets.get(&locale) else { return BTreeMap::new() };
        Prompt::ALL.into_iter().map(|p| (p.key(), set.texts.get(&p).cloned().unwrap_or_default())).collect()
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

    fn say_text(v: Step) -> String {
        match v {
            Step::Say { text, .. } => text,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn built_in_prompts_load_and_fill_variables() {
        let p = Prompts::load(Path::new("/nonexistent")).unwrap();
        let vars = Vars { code_length: 6, attempts_left: 2, ..Vars::default() };
        match p.step(Locale::JaJp, Prompt::EnterCode, &vars, None, "https://x") {
            Step::Say { text, language, .. } => {
                assert!(text.contains("6桁"), "{text}");
                assert_eq!(language, "ja-JP");
            }
            other => panic!("{other:?}"),
        }
        let wrong = say_text(p.step(Locale::EnUs, Prompt::WrongCode, &vars, None, "x"));
        assert!(wrong.contains('2'), "the tries left: {wrong}");
        let withheld = say_text(p.step(Locale::EnUs, Prompt::WithheldCallerId, &vars, None, "https://x"));
        assert!(withheld.contains("1, 8, 6"));
    }

    #[test]
    fn variables_are_filled_in_one_pass() {
        let vars = Vars {
            code_length: 6,
            attempts_left: 2,
            site_name: Some("{code} Bank".into()),
            code: Some("123456".into()),
            minutes: 5,
        };
        let text = "{site_name}: {code} ({code_length} digits, {attempts_left} tries, {minutes} min) {x} {code";
        assert_eq!(fill(text, &vars, "ignored"), "{code} Bank: 123456 (6 digits, 2 tries, 5 min) {x} {code");
        let unnamed = Vars { site_name: None, ..vars };
        assert_eq!(fill("{{site_name}}", &unnamed, "当社"), "{当社}");
        assert_eq!(fill("", &unnamed, "x"), "");
    }

    #[test]
    fn the_greeting_names_the_tenant_or_the_locale_s_default() {
        let p = Prompts::load(Path::new("/nonexistent")).unwrap();
        let named = Vars { site_name: Some("さくら銀行".into()), ..Vars::default() };
        let text = say_text(p.step(Locale::JaJp, Prompt::GreetingOutbound, &named, None, "x"));
        assert!(text.contains("さくら銀行"), "{text}");
        let unnamed = say_text(p.step(Locale::JaJp, Prompt::GreetingOutbound, &Vars::default(), None, "x"));
        assert!(!unnamed.contains('{'), "{unnamed}");
    }

    #[test]
    fn a_tenant_s_words_and_recordings_come_first() {
        let p = Prompts::load(Path::new("/nonexistent")).unwrap();
        let mut voice = TenantVoice::default();
        voice.prompts.entry("en-US".into()).or_default().insert("success".into(), "Done, {site_name}.".into());
        voice.audio.entry("en-US".into()).or_default().insert("failure".into(), "https://cdn.example/f.mp3".into());
        let vars = Vars { site_name: Some("Acme".into()), ..Vars::default() };
        assert_eq!(say_text(p.step(Locale::EnUs, Prompt::Success, &vars, Some(&voice), "x")), "Done, Acme.");
        let failure = p.step(Locale::EnUs, Prompt::Failure, &vars, Some(&voice), "x");
        assert_eq!(failure, Step::Play { url: "https://cdn.example/f.mp3".into() });
        // Another locale keeps the server's text.
        assert_ne!(say_text(p.step(Locale::JaJp, Prompt::Success, &vars, Some(&voice), "x")), "Done, Acme.");
    }

    #[test]
    fn rate_and_digit_pause_are_per_locale_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = "language = \"ja-JP\"\nrate = \"90%\"\ndigit_pause = \"400ms\"\n[prompts]\n";
        std::fs::write(dir.path().join("ja-JP.toml"), file).unwrap();
        let p = Prompts::load(dir.path()).unwrap();
        match p.say_digits(Locale::JaJp, "4, 8") {
            Step::Say { rate, pause, .. } => {
                assert_eq!((rate.as_deref(), pause.as_deref()), (Some("90%"), Some("400ms")))
            }
            other => panic!("{other:?}"),
        }
        match p.say_digits(Locale::EnUs, "4, 8") {
            Step::Say { rate, pause, .. } => assert_eq!((rate, pause), (None, None), "another locale"),
            other => panic!("{other:?}"),
        }
        for bad in ["rate = \"warp\"", "rate = \"300%\"", "digit_pause = \"5s\"", "digit_pause = \"abc\""] {
            std::fs::write(dir.path().join("ja-JP.toml"), format!("language = \"ja-JP\"\n{bad}\n[prompts]\n")).unwrap();
            assert!(Prompts::load(dir.path()).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_text_message_counts_minutes_and_names_no_site_it_does_not_know() {
        let p = Prompts::load(Path::new("/nonexistent")).unwrap();
        let one = p.sms(Locale::EnUs, "1234", 1, None);
        assert_eq!(one, "Your verification code is 1234. It expires in 1 minute. Never share it with anyone.");
        assert!(p.sms(Locale::EnUs, "1234", 2, None).contains("in 2 minutes."));
        assert!(p.sms(Locale::EnUs, "1234", 11, None).contains("in 11 minutes."));
        let ja = p.sms(Locale::JaJp, "1234", 1, None);
        assert!(ja.starts_with("認証番号は 1234 です。1分以内に") && !ja.contains("【"), "{ja}");
        let mut voice = TenantVoice::default();
        voice.display_names.insert("en-US".into(), "Acme".into());
        let named = p.sms(Locale::EnUs, "1234", 5, Some(&voice));
        assert!(named.starts_with("Your verification code for Acme is 1234."), "{named}");
        assert!(!p.sms(Locale::JaJp, "1234", 5, Some(&voice)).contains("Acme"), "another locale's name is not used");
    }

    #[test]
    fn unknown_placeholders_are_refused() {
        assert!(check_text(Prompt::WrongCode, "あと{attempts_left}回").is_ok());
        assert!(check_text(Prompt::WrongCode, "{attempts}").unwrap_err().contains("{attempts}"));
        assert!(check_text(Prompt::EnterCode, "your code is {code}").is_err(), "a spoken code");
        assert!(check_text(Prompt::Sms, "{code} {minutes} {site_name}").is_ok());
        assert!(check_text(Prompt::Sms, "{code").is_err());
    }

    #[test]
    fn audio_files_turn_say_into_play() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("en-US")).unwrap();
        std::fs::write(dir.path().join("en-US/success.wav"), b"RIFF").unwrap();
        std::fs::write(dir.path().join("en-US/greeting.mp3"), b"ID3").unwrap();
        let p = Prompts::load(dir.path()).unwrap();
        let v = p.step(Locale::EnUs, Prompt::Success, &Vars::default(), None, "https://x");
        assert_eq!(v, Step::Play { url: "https://x/voice_prompts/en-US/success.wav".into() });
        let v = p.step(Locale::EnUs, Prompt::GreetingInbound, &Vars::default(), None, "https://x");
        assert_eq!(v, Step::Play { url: "https://x/voice_prompts/en-US/greeting.mp3".into() }, "a legacy name");
        assert!(p.audio_path(Locale::EnUs, "success.wav").is_some());
        assert!(p.audio_path(Locale::EnUs, "../secret.wav").is_none());
        assert!(matches!(p.step(Locale::JaJp, Prompt::Success, &Vars::default(), None, "x"), Step::Say { .. }));
    }

    #[test]
    fn an_override_file_keeps_the_built_in_text_of_prompts_it_leaves_out() {
        let dir = tempfile::tempdir().unwrap();
        let file = "language = \"en-US\"\n[prompts]\nsuccess = \"All done.\"\ngoodbye = \"Bye.\"\n";
        std::fs::write(dir.path().join("en-US.toml"), file).unwrap();
        let p = Prompts::load(dir.path()).unwrap();
        let say = |prompt| match p.step(Locale::EnUs, prompt, &Vars::default(), None, "x") {
            Step::Say { text, voice, .. } => (text, voice),
            other => panic!("{other:?}"),
        };
        assert_eq!(say(Prompt::Success).0, "All done.");
        assert_eq!(say(Prompt::GoodbyeInbound).0, "Bye.", "a legacy key sets both goodbyes");
        assert_eq!(say(Prompt::GoodbyeOutbound).0, "Bye.");
        let (text, voice) = say(Prompt::CallerIdUnverified);
        assert!(text.contains("could not confirm"), "{text}");
        assert_eq!(voice.as_deref(), Some("Polly.Joanna"), "the built-in voice too");
        // An unknown prompt, or placeholder, is still refused.
        std::fs::write(dir.path().join("en-US.toml"), "language = \"en-US\"\n[prompts]\nsucess = \"x\"\n").unwrap();
        assert!(Prompts::load(dir.path()).err().unwrap().contains("unknown prompt `sucess`"));
        std::fs::write(dir.path().join("en-US.toml"), "language = \"en-US\"\n[prompts]\nsuccess = \"{tries}\"\n")
            .unwrap();
        assert!(Prompts::load(dir.path()).err().unwrap().contains("{tries}"));
    }
}
