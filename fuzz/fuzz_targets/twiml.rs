//! The TwiML writer (`telephony::twilio::twiml::render`).
//!
//! Input: UTF-8 text cut into fields at U+001F (unit separator); the first
//! character of a field says what it is, the rest is its value:
//!
//! ```text
//! S<say text>  Y<rate>|<digit pause>|<say text>  P<play URL>  R<redirect URL>
//! W<pause seconds>  H (hang up)
//! G<gather action URL> … g (the verbs between nest in the Gather)
//! N<numDigits>  T<timeout>  K<finishOnKey>  V<voice>  E (English; else Japanese)
//! ```
//!
//! A field with any other first character is said as a whole.
//!
//! Properties: the document is well-formed XML 1.0 (only characters XML
//! allows, one `<Response>` root, every element closed), and reading it back
//! the way the provider does (`simulator::twiml_parse::parse`) gives the same
//! verbs: the same text, URLs and attributes, exactly (line ends and tabs
//! included), up to the reader's trimming of text and the characters XML
//! cannot carry at all, which the writer drops.

#![no_main]

use ivr_auth::simulator::twiml_parse;
use ivr_auth::call::script::Step;
use ivr_auth::telephony::twilio::twiml::render;
use libfuzzer_sys::fuzz_target;
use quick_xml::Reader;
use quick_xml::events::Event;

/// `IVR_FUZZ_KNOWN=tolerate`: let the known, reported findings (docs/fuzzing.md)
/// pass, so that a run can look past them for new ones. Unset (the default
/// of `fuzz/run.sh`), every property is enforced.
fn tolerate_known() -> bool {
    static TOLERATE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TOLERATE.get_or_init(|| std::env::var("IVR_FUZZ_KNOWN").is_ok_and(|v| v == "tolerate"))
}

fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

/// What the provider reads back from text content: the characters XML can
/// carry (the writer drops the others), trimmed as the reader trims.
/// `\r` must survive: the writer writes it as `&#13;`, which no reader
/// turns into a line end.
fn as_text(s: &str) -> String {
    s.chars().filter(|&c| xml_char(c)).collect::<String>().trim().to_owned()
}

/// What the provider reads back from an attribute value: exactly what was
/// written, the writer escaping `\t`, `\n` and `\r` (else attribute-value
/// normalisation would turn them into spaces).
fn as_attr(s: &str) -> String {
    s.chars().filter(|&c| xml_char(c)).collect()
}

/// Known finding: the writer does not drop the characters XML cannot carry
/// from `voice` and `finishOnKey` (set by the operator's prompt files and the
/// code), as it does from text and URLs. Tolerated, they are dropped here.
fn operator_attr(value: String) -> String {
    if tolerate_known() { value.chars().filter(|&c| xml_char(c)).collect() } else { value }
}

fn build(data: &str) -> Vec<Step> {
    let mut verbs = Vec::new();
    let mut gather: Option<(String, Vec<Step>)> = None;
    let (mut english, mut voice, mut num_digits, mut timeout, mut key) = (false, None, None, 5, "#".to_owned());
    for field in data.split('\u{1f}').take(64) {
        let mut chars = field.chars();
        let op = chars.next().unwrap_or(' ');
        let value = chars.as_str().to_owned();
        let verb = match op {
            'S' => Step::Say {
                text: value,
                language: if english { "en-US" } else { "ja-JP" }.to_owned(),
                voice: voice.clone(),
                rate: None,
                pause: None,
            },
            // A code read with SSML: the value is "rate|pause|text".
            'Y' => {
                let mut parts = value.splitn(3, '|');
                let (rate, pause) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                Step::Say {
                    text: parts.next().unwrap_or("").to_owned(),
                    language: "ja-JP".to_owned(),
                    voice: voice.clone(),
                    rate: (!rate.is_empty()).then(|| rate.to_owned()),
                    pause: (!pause.is_empty()).then(|| pause.to_owned()),
                }
            }
            'P' => Step::Play { url: value },
            'R' => Step::Redirect { url: value },
            'W' => Step::Pause { seconds: value.parse().unwrap_or(1) },
            'H' => Step::Hangup,
            'E' => {
                english = !english;
                continue;
            }
            'V' => {
                voice = Some(operator_attr(value)).filter(|v| !v.is_empty());
                continue;
            }
            'N' => {
                num_digits = value.parse().ok();
                continue;
            }
            'T' => {
                timeout = value.parse().unwrap_or(5);
                continue;
            }
            'K' => {
                key = operator_attr(value);
                continue;
            }
            'G' => {
                if let Some((action, prompts)) = gather.take() {
                    verbs.push(Step::Gather { action, num_digits, timeout, finish_on_key: key.clone(), action_on_empty_result: false, prompts });
                }
                gather = Some((value, Vec::new()));
                continue;
            }
            'g' => {
                if let Some((action, prompts)) = gather.take() {
                    Step::Gather { action, num_digits, timeout, finish_on_key: key.clone(), action_on_empty_result: false, prompts }
                } else {
                    continue;
                }
            }
            _ => Step::Say {
                text: field.to_owned(),
                language: "ja-JP".to_owned(),
                voice: voice.clone(),
                rate: None,
                pause: None,
            },
        };
        match (&mut gather, verb) {
            (Some((_, prompts)), v @ (Step::Say { .. } | Step::Play { .. } | Step::Pause { .. })) => prompts.push(v),
            (_, v) => verbs.push(v),
        }
    }
    if let Some((action, prompts)) = gather {
        verbs.push(Step::Gather { action, num_digits, timeout, finish_on_key: key, action_on_empty_result: true, prompts });
    }
    verbs
}

/// The verbs as the provider must read them back.
fn expected(verbs: &[Step]) -> Vec<Step> {
    verbs
        .iter()
        .map(|v| match v {
            Step::Say { text, language, voice, rate, pause } => {
                Step::Say {
                    text: as_text(text),
                    language: as_attr(language),
                    voice: voice.as_deref().map(as_attr),
                    rate: rate.as_deref().map(as_attr),
                    // A pause is written as a `<break>` at each ", " of the
                    // text: without one, nothing of it can be read back.
                    pause: pause.as_deref().map(as_attr).filter(|_| as_attr(text).contains(", ")),
                }
            }
            Step::Play { url } => Step::Play { url: as_text(url) },
            Step::Redirect { url } => Step::Redirect { url: as_text(url) },
            Step::Gather { action, num_digits, timeout, finish_on_key, action_on_empty_result, prompts } => Step::Gather {
                action: as_attr(action),
                num_digits: *num_digits,
                timeout: *timeout,
                finish_on_key: as_attr(finish_on_key),
                action_on_empty_result: *action_on_empty_result,
                prompts: expected(prompts),
            },
            other => other.clone(),
        })
        .collect()
}

/// Well-formed: XML characters only, and a reader finds one closed `<Response>` root.
fn check_well_formed(doc: &str) {
    if let Some(bad) = doc.chars().find(|&c| !xml_char(c)) {
        panic!("character U+{:04X} that XML does not allow in {doc:?}", u32::from(bad));
    }
    assert!(doc.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response"), "{doc:?}");
    let mut reader = Reader::from_str(doc);
    let (mut depth, mut roots) = (0usize, 0usize);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                if depth == 0 {
                    roots += 1;
                }
                depth += 1;
                for a in e.attributes() {
                    a.unwrap_or_else(|err| panic!("bad attribute: {err} in {doc:?}"));
                }
            }
            Ok(Event::Empty(e)) => {
                if depth == 0 {
                    roots += 1;
                }
                for a in e.attributes() {
                    a.unwrap_or_else(|err| panic!("bad attribute: {err} in {doc:?}"));
                }
            }
            Ok(Event::End(_)) => depth = depth.checked_sub(1).unwrap_or_else(|| panic!("stray end tag in {doc:?}")),
            Ok(Event::Text(t)) => {
                let t: &str = t.as_ref();
                assert!(depth > 0 || t.chars().all(|c| c.is_ascii_whitespace()), "text outside the root");
            }
            Ok(Event::GeneralRef(r)) => {
                let name: &str = r.as_ref();
                assert!(
                    matches!(name, "amp" | "lt" | "gt" | "quot" | "apos") || name.starts_with('#'),
                    "entity &{name}; in {doc:?}"
                );
            }
            Ok(Event::Eof) => break,
            Ok(Event::Decl(_)) => {}
            Ok(other) => panic!("unexpected {other:?} in {doc:?}"),
            Err(e) => panic!("not well-formed: {e} in {doc:?}"),
        }
    }
    assert_eq!((depth, roots), (0, 1), "unclosed or several roots: {doc:?}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let verbs = build(text);
    let doc = render(&verbs);
    check_well_formed(&doc);
    let read = twiml_parse::parse(&doc).unwrap_or_else(|e| panic!("the provider cannot read {doc:?}: {e}"));
    assert_eq!(read, expected(&verbs), "read back otherwise: {doc:?}");
});
