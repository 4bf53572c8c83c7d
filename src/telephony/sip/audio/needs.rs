//! Every clip the server may play: each prompt of each locale for every
//! value its text can take, with and without each tenant's words and names,
//! and the ten digits. `prompts render` renders exactly these and the start
//! check requires exactly these, so the two cannot disagree.

use std::collections::HashSet;

use super::source::{Source, pieces};
use crate::call::prompt::Prompt;
use crate::call::prompts::{Prompts, Vars};
use crate::domain::status::Locale;
use crate::domain::tenant::TenantVoice;

/// The locales the server speaks (those of `Prompts`' built-in files).
pub const LOCALES: [Locale; 2] = [Locale::JaJp, Locale::EnUs];
/// A code's length as a prompt says it: 4 to 10 (the API's `code_length`),
/// or 0 on a number several tenants share whose codes differ in length.
const CODE_LENGTHS: [u8; 8] = [0, 4, 5, 6, 7, 8, 9, 10];
/// Tries left: 0 to 10 (the API's `max_attempts` is at most 10).
const MOST_ATTEMPTS: u8 = 10;

/// Every clip the server may play with the tenants `tenants`, without
/// repeats, in a stable order. `audio_base` is the base of the server's own
/// recording URLs (`Urls::base()`).
pub fn spoken<'a>(
    prompts: &Prompts,
    audio_base: &str,
    tenants: impl IntoIterator<Item = &'a TenantVoice>,
) -> Vec<Source> {
    let tenants: Vec<Option<&TenantVoice>> = std::iter::once(None).chain(tenants.into_iter().map(Some)).collect();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for locale in LOCALES {
        let digits = prompts.say_digits(locale, "0, 1, 2, 3, 4, 5, 6, 7, 8, 9");
        let steps = tenants.iter().flat_map(|t| steps_of(prompts, locale, *t, audio_base)).chain([digits]);
        for step in steps {
            for piece in pieces(&step) {
                if let super::source::Piece::Clip(source) = piece
                    && seen.insert(source.clone())
                {
                    out.push(source);
                }
            }
        }
    }
    out
}

/// The steps of every prompt but the text message, for one tenant (or
/// none), named as `Speaker` names it, over the values its text uses.
fn steps_of(
    prompts: &Prompts,
    locale: Locale,
    tenant: Option<&TenantVoice>,
    audio_base: &str,
) -> Vec<crate::call::script::Step> {
    let site_name = tenant.and_then(|t| t.name_for(locale.as_str())).map(str::to_owned);
    let base = Vars { site_name, ..Vars::default() };
    let mut steps = Vec::new();
    for prompt in Prompt::ALL.into_iter().filter(|p| *p != Prompt::Sms) {
        // Only the values a text uses multiply its files.
        let text_with = |vars: &Vars| prompts.text(locale, prompt, vars, tenant);
        let uses_length =
            text_with(&Vars { code_length: 4, ..base.clone() }) != text_with(&Vars { code_length: 5, ..base.clone() });
        let uses_attempts = text_with(&Vars { attempts_left: 1, ..base.clone() })
            != text_with(&Vars { attempts_left: 2, ..base.clone() });
        let lengths: &[u8] = if uses_length { &CODE_LENGTHS } else { &[0] };
        let attempts = if uses_attempts { 0..=MOST_ATTEMPTS } else { 0..=0 };
        for &code_length in lengths {
            for attempts_left in attempts.clone() {
                let vars = Vars { code_length, attempts_left, ..base.clone() };
                steps.push(prompts.step(locale, prompt, &vars, tenant, audio_base));
            }
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn speech(sources: &[Source], language: &str) -> Vec<String> {
        sources
            .iter()
            .filter_map(|s| match s {
                Source::Speech { language: l, text } if l == language => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn every_value_a_text_takes_and_each_tenant_s_names_and_words_are_covered() {
        let prompts = Prompts::load(std::path::Path::new("/nonexistent")).unwrap();
        let mut acme = TenantVoice { display_name: Some("さくら銀行".into()), ..TenantVoice::default() };
        acme.display_names.insert("en-US".into(), "Sakura Bank".into());
        acme.prompts.entry("en-US".into()).or_default().insert("success".into(), "All set, {site_name}.".into());
        acme.audio.entry("en-US".into()).or_default().insert("failure".into(), "https://cdn.example/f.mp3".into());
        let sources = spoken(&prompts, "https://ivr.example", [&acme]);
        let en = speech(&sources, "en-US");
        let ja = speech(&sources, "ja-JP");

        let greeting = |vars: &Vars, t| prompts.text(Locale::EnUs, Prompt::GreetingOutbound, vars, t);
        let named = Vars { site_name: Some("Sakura Bank".into()), ..Vars::default() };
        assert!(en.contains(&greeting(&Vars::default(), None)), "the server's own name");
        assert!(en.contains(&greeting(&named, Some(&acme))), "the tenant's English name");
        assert!(ja.iter().any(|t| t.contains("さくら銀行")), "the tenant's Japanese name");
        assert!(!ja.iter().any(|t| t.contains("Sakura Bank")), "a name only where it is said");
        assert!(en.contains(&"All set, Sakura Bank.".to_owned()), "the tenant's own words");
        assert!(sources.contains(&Source::Recording { url: "https://cdn.example/f.mp3".into() }));
        for attempts_left in 0..=10 {
            let vars = Vars { attempts_left, ..Vars::default() };
            assert!(en.contains(&prompts.text(Locale::EnUs, Prompt::WrongCode, &vars, None)), "{attempts_left}");
        }
        for code_length in 4..=10 {
            let vars = Vars { code_length, ..Vars::default() };
            assert!(ja.contains(&prompts.text(Locale::JaJp, Prompt::EnterCode, &vars, None)), "{code_length}");
        }
        for digit in '0'..='9' {
            assert!(sources.contains(&Source::Digit { language: "ja-JP".into(), digit }));
        }
        assert!(!en.iter().any(|t| t.contains("Never share it")), "the text message is never spoken");
        assert_eq!(sources.len(), sources.iter().collect::<HashSet<_>>().len(), "no repeats");
    }
}
