//! A tenant's own voice settings, checked before they are stored (by the API and the CLI alike).

use crate::domain::status::Locale;
use crate::domain::tenant::TenantVoice;

use super::prompts::{Prompt, check_text};

/// Why a voice setting was refused: the field (`display_name`,
/// `prompts.ja-JP.success`, …) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub field: String,
    pub message: String,
}

fn refused(field: impl Into<String>, message: impl std::fmt::Display) -> Refused {
    let field = field.into();
    Refused { message: format!("{field}: {message}"), field }
}

/// Checks every part of `voice`: a display name of 1 to 60 printable
/// characters without braces; prompt texts only for known locales and
/// prompts, with known placeholders; recordings as https URLs.
pub fn validate(voice: &TenantVoice) -> Result<(), Refused> {
    if let Some(name) = &voice.display_name {
        check_name("display_name", name)?;
    }
    for (locale, name) in &voice.display_names {
        let field = format!("display_names.{locale}");
        known_locale(&field, locale)?;
        check_name(&field, name)?;
    }
    for (locale, texts) in &voice.prompts {
        known_locale(&format!("prompts.{locale}"), locale)?;
        for (key, text) in texts {
            let field = format!("prompts.{locale}.{key}");
            let prompt = known_prompt(&field, key)?;
            check_text(prompt, text).map_err(|e| refused(&field, e))?;
            if text.trim().is_empty() {
                return Err(refused(&field, "must not be empty (leave the prompt out to use the server's)"));
            }
        }
    }
    for (locale, files) in &voice.audio {
        known_locale(&format!("audio.{locale}"), locale)?;
        for (key, url) in files {
            let field = format!("audio.{locale}.{key}");
            let prompt = known_prompt(&field, key)?;
            if prompt == Prompt::Sms {
                return Err(refused(&field, "a text message has no recording"));
            }
            recording_url(url).map_err(|e| refused(&field, e))?;
        }
    }
    Ok(())
}

/// A name callers hear: 1 to 60 printable characters, no braces (a name is
/// not a template).
fn check_name(field: &str, name: &str) -> Result<(), Refused> {
    let count = name.trim().chars().count();
    if count == 0 || count > 60 {
        return Err(refused(field, "must be 1 to 60 characters"));
    }
    if name.chars().any(|c| c.is_control() || matches!(c, '{' | '}')) {
        return Err(refused(field, "must not contain control characters or braces"));
    }
    Ok(())
}

fn known_locale(field: &str, locale: &str) -> Result<Locale, Refused> {
    Locale::parse(locale).ok_or_else(|| refused(field, "is not a locale of the server (ja-JP, en-US)"))
}

fn known_prompt(field: &str, key: &str) -> Result<Prompt, Refused> {
    Prompt::from_key(key).ok_or_else(|| {
        let keys: Vec<&str> = Prompt::ALL.iter().map(|p| p.key()).collect();
        refused(field, format!("is not a prompt (prompts: {})", keys.join(", ")))
    })
}

/// A recording the provider fetches: an absolute https URL with a host, no
/// credentials, at most 2048 characters.
fn recording_url(raw: &str) -> Result<(), &'static str> {
    if raw.len() > 2048 {
        return Err("must be at most 2048 characters");
    }
    let url = url::Url::parse(raw).map_err(|_| "must be an absolute https URL")?;
    if url.scheme() != "https" || url.host().is_none() {
        return Err("must be an https URL (the provider fetches it)");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut TenantVoice)) -> Result<(), Refused> {
        let mut v = TenantVoice::default();
        f(&mut v);
        validate(&v)
    }

    fn text(locale: &str, key: &str, t: &str) -> impl FnOnce(&mut TenantVoice) {
        let (locale, key, t) = (locale.to_owned(), key.to_owned(), t.to_owned());
        move |v| {
            v.prompts.entry(locale).or_default().insert(key, t);
        }
    }

    #[test]
    fn each_refusal_names_its_field() {
        assert!(with(|v| v.display_name = Some("さくら銀行".into())).is_ok());
        assert!(with(text("ja-JP", "wrong_code", "あと{attempts_left}回")).is_ok());
        let cases: Vec<(Result<(), Refused>, &str)> = vec![
            (with(|v| v.display_name = Some(" ".into())), "display_name"),
            (with(|v| v.display_name = Some("a{code}".into())), "display_name"),
            (
                with(|v| {
                    v.display_names.insert("fr-FR".into(), "Banque".into());
                }),
                "display_names.fr-FR",
            ),
            (
                with(|v| {
                    v.display_names.insert("en-US".into(), String::new());
                }),
                "display_names.en-US",
            ),
            (with(text("fr-FR", "success", "ok")), "prompts.fr-FR"),
            (with(text("ja-JP", "sucess", "ok")), "prompts.ja-JP.sucess"),
            (with(text("ja-JP", "wrong_code", "{attempts}")), "prompts.ja-JP.wrong_code"),
            (with(text("en-US", "success", " ")), "prompts.en-US.success"),
            (
                with(|v| {
                    v.audio
                        .entry("en-US".into())
                        .or_default()
                        .insert("success".into(), "http://x.example/a.wav".into());
                }),
                "audio.en-US.success",
            ),
            (
                with(|v| {
                    v.audio.entry("en-US".into()).or_default().insert("sms".into(), "https://x.example/a.wav".into());
                }),
                "audio.en-US.sms",
            ),
        ];
        for (result, field) in cases {
            let e = result.expect_err(field);
            assert_eq!(e.field, field, "{e:?}");
            assert!(e.message.starts_with(field), "{e:?}");
        }
    }
}
