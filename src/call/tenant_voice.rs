//! A tenant's own voice settings, checked before they are stored (by the API and the CLI alike).

use crate::domain::sms;
use crate::domain::status::Locale;
use crate::domain::tenant::TenantVoice;
use crate::domain::text::is_hidden;

use super::prompt::{Prompt, check_text};
use super::prompts::Prompts;

/// The most parts a tenant's text message may take: each part is billed,
/// and a whole message is one slot of the tenant's budget.
pub const MAX_SMS_PARTS: usize = 2;
/// The longest a code can be (`code_length` 10) and the most minutes a
/// request can last (`ttl_seconds` 600): the message is measured with both.
const LONGEST_CODE: &str = "0123456789";
const MOST_MINUTES: u32 = 10;

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
/// prompts, with known placeholders; recordings as https URLs; a text
/// message (the tenant's words or `prompts`' own, with its name) of at most
/// `MAX_SMS_PARTS` parts.
pub fn validate(voice: &TenantVoice, prompts: &Prompts) -> Result<(), Refused> {
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
    for locale in [Locale::JaJp, Locale::EnUs] {
        sms_size(voice, prompts, locale)?;
    }
    Ok(())
}

/// The text message of `locale` with the longest code and expiry filled in,
/// and the tenant's name: at most `MAX_SMS_PARTS` parts. Refused on what
/// the tenant set that makes it longer: its words, else its name.
fn sms_size(voice: &TenantVoice, prompts: &Prompts, locale: Locale) -> Result<(), Refused> {
    let l = locale.as_str();
    let field = if voice.text_for(l, Prompt::Sms.key()).is_some() {
        format!("prompts.{l}.sms")
    } else if voice.display_names.contains_key(l) {
        format!("display_names.{l}")
    } else if voice.display_name.is_some() {
        "display_name".to_owned()
    } else {
        return Ok(()); // the server's own words and name
    };
    let parts = sms::parts(&prompts.sms(locale, LONGEST_CODE, MOST_MINUTES, Some(voice)));
    if parts > MAX_SMS_PARTS {
        return Err(refused(
            field,
            format!(
                "makes the {l} text message {parts} parts with a 10-digit code and the name filled in; \
                 at most {MAX_SMS_PARTS} (306 characters of the GSM alphabet, or 134 when it holds \
                 any other character, such as Japanese)"
            ),
        ));
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
    if name.chars().any(|c| is_hidden(c) || matches!(c, '{' | '}')) {
        return Err(refused(field, "must not contain control or invisible formatting characters, or braces"));
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
        validate(&v, &Prompts::load(std::path::Path::new("/nonexistent")).unwrap())
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

    /// Issue 13, item 7: U+202E can show a code reversed; zero-width
    /// characters hide what a caller is told.
    #[test]
    fn names_and_prompts_refuse_invisible_format_characters() {
        for hidden in ['\u{202e}', '\u{200b}', '\u{2066}', '\u{feff}', '\u{200f}'] {
            let name = format!("さくら{hidden}銀行");
            let cases = [
                (with(|v| v.display_name = Some(name.clone())), "display_name"),
                (
                    with(|v| {
                        v.display_names.insert("en-US".into(), format!("Sakura{hidden} Bank"));
                    }),
                    "display_names.en-US",
                ),
                (with(text("ja-JP", "success", &format!("認証{hidden}完了"))), "prompts.ja-JP.success"),
                (with(text("en-US", "sms", &format!("{{code}}{hidden} is your code"))), "prompts.en-US.sms"),
            ];
            for (result, field) in cases {
                let e = result.expect_err(field);
                assert_eq!(e.field, field, "{hidden:?}: {e:?}");
                assert!(e.message.contains("invisible formatting"), "{e:?}");
            }
        }
        assert!(with(text("ja-JP", "success", "認証が\n完了しました")).is_ok(), "a line break is seen");
    }

    /// Issue 13, item 7: a 1,000-character text message was billed as about
    /// 15 parts for one slot of the budget.
    #[test]
    fn a_text_message_is_at_most_two_parts_with_the_longest_code_and_the_name() {
        let sms = |locale: &str, t: &str| with(text(locale, "sms", t));
        let refusal = |result: Result<(), Refused>| result.err().map(|e| e.field);
        // GSM: 306 septets. `{code}` is 10 digits, `{minutes}` 2, and the name
        // unset here the server's ("the verification service", 24).
        let fill = 10 + 2 + 24;
        let gsm = |n: usize| format!("{{code}}{{minutes}}{{site_name}}{}", "a".repeat(n - fill));
        assert_eq!(refusal(sms("en-US", &gsm(306))), None);
        assert_eq!(refusal(sms("en-US", &gsm(307))).as_deref(), Some("prompts.en-US.sms"));
        let escaped = |n: usize| format!("{{code}}{{minutes}}{{site_name}}{}", "€".repeat(n));
        // 36 + 2 × 135 = 306 septets, yet an escaped pair is not split across parts.
        assert_eq!(refusal(sms("en-US", &escaped(134))), None);
        assert_eq!(refusal(sms("en-US", &escaped(135))).as_deref(), Some("prompts.en-US.sms"));
        // UCS-2: 134 units; the Japanese server name is 本人確認サービス (8).
        let ucs2 = |n: usize| format!("{{code}}{{minutes}}{{site_name}}{}", "あ".repeat(n - 20));
        assert_eq!(refusal(sms("ja-JP", &ucs2(134))), None);
        assert_eq!(refusal(sms("ja-JP", &ucs2(135))).as_deref(), Some("prompts.ja-JP.sms"));
        assert_eq!(refusal(sms("ja-JP", &"あ".repeat(1000))).as_deref(), Some("prompts.ja-JP.sms"));
        // One Japanese character makes an English message UCS-2.
        assert_eq!(refusal(sms("en-US", &format!("{}。", gsm(140)))).as_deref(), Some("prompts.en-US.sms"));
        let e = sms("ja-JP", &"あ".repeat(1000)).unwrap_err();
        assert!(e.message.contains("15 parts") && e.message.contains("at most 2"), "{e:?}");
        // The server's words with a long name: the name is what made it long.
        let long_name = "さくら".repeat(13); // 39 characters: an English message of 135 units
        assert_eq!(refusal(with(|v| v.display_name = Some(long_name.clone()))).as_deref(), Some("display_name"));
        let named = with(|v| {
            v.display_name = Some(long_name.clone());
            v.display_names.insert("en-US".into(), "Sakura Bank".into());
        });
        assert_eq!(refusal(named), None, "an English name for English messages");
        assert_eq!(refusal(with(|v| v.display_name = Some("さくら".repeat(20)))).as_deref(), Some("display_name"));
        assert_eq!(refusal(with(|v| v.display_name = Some("Sakura Bank".repeat(5)))), None);
    }
}
