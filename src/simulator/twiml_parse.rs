//! Reads TwiML the way the provider does, into the same `Step`s the server writes.

use quick_xml::Reader;
use quick_xml::XmlVersion;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};

use crate::call::script::Step;

/// Parses a `<Response>` document. Unknown verbs are an error, as they are
/// for the provider ("application error").
pub fn parse(doc: &str) -> Result<Vec<Step>, String> {
    let mut reader = Reader::from_str(doc);
    // No trimming per event: it would eat the spaces around entity references.
    reader.config_mut().trim_text(false);
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Decl(_) | Event::Comment(_) | Event::Text(_) => {}
            Event::Start(e) if e.name().as_ref() == "Response" => return verbs_until(&mut reader, "Response"),
            Event::Empty(e) if e.name().as_ref() == "Response" => return Ok(Vec::new()),
            other => return Err(format!("expected <Response>, found {other:?}")),
        }
    }
}

fn attr(e: &BytesStart<'_>, name: &str) -> Result<Option<String>, String> {
    match e.try_get_attribute(name).map_err(|err| err.to_string())? {
        Some(a) => Ok(Some(a.normalized_value(XmlVersion::Implicit1_0).map_err(|err| err.to_string())?.into_owned())),
        None => Ok(None),
    }
}

fn number(e: &BytesStart<'_>, name: &str, default: u32) -> Result<u32, String> {
    match attr(e, name)? {
        Some(v) => v.parse().map_err(|_| format!("{name}=\"{v}\" is not a number")),
        None => Ok(default),
    }
}

/// Adds `event` to `out` when it is text (entity references resolved);
/// `false` when it is not text.
fn push_text(out: &mut String, event: &Event<'_>) -> Result<bool, String> {
    match event {
        Event::Text(t) => out.push_str(&t.xml10_content()),
        Event::CData(t) => out.push_str(&t.xml10_content()),
        Event::GeneralRef(r) => {
            if let Some(c) = r.resolve_char_ref().map_err(|e| e.to_string())? {
                out.push(c);
            } else {
                let name = r.xml10_content();
                out.push_str(resolve_predefined_entity(&name).ok_or_else(|| format!("unknown entity &{name};"))?);
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Text content up to the end tag, with entity references resolved.
fn text_until(reader: &mut Reader<&[u8]>, end: &str) -> Result<String, String> {
    let mut out = String::new();
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::End(e) if e.name().as_ref() == end => return Ok(out.trim().to_owned()),
            other => {
                if !push_text(&mut out, &other)? {
                    return Err(format!("unexpected {other:?} in text"));
                }
            }
        }
    }
}

/// A `<Say>`'s text, with the SSML the server writes read as it meant it:
/// the `<prosody>` rate, and the time of the `<break>`s between digits.
/// Other SSML elements are read for their text only.
fn spoken(reader: &mut Reader<&[u8]>) -> Result<(String, Option<String>, Option<String>), String> {
    let (mut out, mut rate, mut pause) = (String::new(), None, None);
    let mut depth = 0usize;
    loop {
        let event = reader.read_event().map_err(|e| e.to_string())?;
        if push_text(&mut out, &event)? {
            continue;
        }
        match event {
            Event::Start(e) => {
                if e.name().as_ref() == "prosody" {
                    rate = attr(&e, "rate")?;
                }
                depth += 1;
            }
            Event::Empty(e) if e.name().as_ref() == "break" => pause = pause.or(attr(&e, "time")?),
            Event::Empty(_) | Event::Comment(_) => {}
            Event::End(_) if depth > 0 => depth -= 1,
            Event::End(e) if e.name().as_ref() == "Say" => return Ok((out.trim().to_owned(), rate, pause)),
            other => return Err(format!("unexpected {other:?} in <Say>")),
        }
    }
}

fn verbs_until(reader: &mut Reader<&[u8]>, end: &str) -> Result<Vec<Step>, String> {
    let mut verbs = Vec::new();
    loop {
        let event = reader.read_event().map_err(|e| e.to_string())?;
        let (e, empty) = match event {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(e) if e.name().as_ref() == end => return Ok(verbs),
            Event::Comment(_) | Event::Text(_) => continue,
            Event::Eof => return Err("document ended inside an element".into()),
            other => return Err(format!("unexpected {other:?}")),
        };
        let name = e.name().as_ref().to_owned();
        let content = |reader: &mut Reader<&[u8]>| if empty { Ok(String::new()) } else { text_until(reader, &name) };
        let verb = match name.as_str() {
            "Say" => {
                let (text, rate, pause) = if empty { Default::default() } else { spoken(reader)? };
                Step::Say {
                    language: attr(&e, "language")?.unwrap_or_else(|| "en-US".into()),
                    voice: attr(&e, "voice")?,
                    text,
                    rate,
                    pause,
                }
            }
            "Play" => Step::Play { url: content(reader)? },
            "Pause" => {
                let seconds = number(&e, "length", 1)?;
                if !empty {
                    text_until(reader, "Pause")?;
                }
                Step::Pause { seconds }
            }
            "Redirect" => Step::Redirect { url: content(reader)? },
            "Hangup" | "Reject" => {
                if !empty {
                    text_until(reader, &name)?;
                }
                Step::Hangup
            }
            "Gather" => Step::Gather {
                action: attr(&e, "action")?.unwrap_or_default(),
                num_digits: attr(&e, "numDigits")?.map(|v| v.parse().map_err(|_| "bad numDigits")).transpose()?,
                timeout: number(&e, "timeout", 5)?,
                finish_on_key: attr(&e, "finishOnKey")?.unwrap_or_else(|| "#".into()),
                action_on_empty_result: attr(&e, "actionOnEmptyResult")?.is_some_and(|v| v == "true"),
                prompts: if empty { Vec::new() } else { verbs_until(reader, "Gather")? },
            },
            other => return Err(format!("unsupported verb <{}>", other)),
        };
        verbs.push(verb);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telephony::twilio::twiml::render;

    #[test]
    fn reads_back_what_the_server_writes() {
        let verbs = vec![
            Step::Say {
                text: "認証 & <ok>".into(),
                language: "ja-JP".into(),
                voice: Some("Polly.Mizuki".into()),
                rate: None,
                pause: None,
            },
            Step::Say {
                text: "4, 8, 2".into(),
                language: "ja-JP".into(),
                voice: None,
                rate: Some("slow".into()),
                pause: Some("300ms".into()),
            },
            Step::Gather {
                action: "http://x/g?a=1&b=2".into(),
                num_digits: Some(6),
                timeout: 10,
                finish_on_key: "#".into(),
                action_on_empty_result: false,
                prompts: vec![Step::Play { url: "http://x/a.wav".into() }, Step::Pause { seconds: 2 }],
            },
            Step::Redirect { url: "http://x/n".into() },
            Step::Hangup,
        ];
        assert_eq!(parse(&render(&verbs)).unwrap(), verbs);
    }

    /// Quotes and apostrophes in attributes and text, tabs and line ends
    /// (in attributes too, where a reader turns a literal one into a space),
    /// characters XML cannot carry (dropped), and text beside a digit pause.
    #[test]
    fn reads_back_escaped_attributes_and_text() {
        let say = |text: &str, voice: &str, rate: Option<&str>, pause: Option<&str>| Step::Say {
            text: text.into(),
            language: "en-US".into(),
            voice: Some(voice.into()),
            rate: rate.map(str::to_owned),
            pause: pause.map(str::to_owned),
        };
        let verbs = vec![
            say("say \"it's\"\tnow\n & <then>", "a\"b'c&d<e>\tf\ng\r", None, None),
            say("1, 2 & 3, <4>", "v", Some("90% \"x\""), Some("'400ms'")),
            say("1, 2", "v", None, Some("300ms")),
            Step::Gather {
                action: "http://x/g?a=\"1\"&b='2'\n\"3\"\t".into(),
                num_digits: None,
                timeout: 0,
                finish_on_key: "\"".into(),
                action_on_empty_result: true,
                prompts: vec![Step::Redirect { url: "http://x/r?a=<b>&c".into() }],
            },
        ];
        assert_eq!(parse(&render(&verbs)).unwrap(), verbs);
        let dropped = render(&[say("a\u{1}b", "v\u{7}", None, None)]);
        assert_eq!(parse(&dropped).unwrap(), vec![say("ab", "v", None, None)]);
    }

    #[test]
    fn defaults_and_errors() {
        let v = parse("<Response><Gather/></Response>").unwrap();
        assert_eq!(
            v,
            vec![Step::Gather {
                action: String::new(),
                num_digits: None,
                timeout: 5,
                finish_on_key: "#".into(),
                action_on_empty_result: false,
                prompts: vec![]
            }]
        );
        assert!(parse("<Response><Dial>1</Dial></Response>").is_err());
        assert!(parse("<html/>").is_err());
        assert_eq!(parse("<Response/>").unwrap(), vec![]);
    }
}
