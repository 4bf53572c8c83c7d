//! The call script as TwiML, written with `quick-xml` so every text and URL is escaped.

use std::borrow::Cow;
use std::io::Cursor;

use actix_web::HttpResponse;
use actix_web::http::header::CONTENT_TYPE;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};

use crate::call::script::Step;

/// Whether XML 1.0 allows `c`, escaped where it must be.
fn xml_allows(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

/// `text` without the characters XML 1.0 does not allow, even escaped
/// (borrowed when it has none, as almost every text has).
fn xml_safe(text: &str) -> Cow<'_, str> {
    if text.chars().all(xml_allows) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.chars().filter(|&c| xml_allows(c)).collect())
    }
}

fn write_step(w: &mut Writer<Cursor<Vec<u8>>>, step: &Step) -> std::io::Result<()> {
    match step {
        Step::Say { text, language, voice, rate, pause } => {
            let mut el = w.create_element("Say").with_attribute(("language", xml_safe(language).as_ref()));
            if let Some(voice) = voice {
                el = el.with_attribute(("voice", xml_safe(voice).as_ref()));
            }
            match (rate, pause) {
                (None, None) => {
                    el.write_text_content(BytesText::new(&xml_safe(text)))?;
                }
                (Some(rate), pause) => {
                    el.write_inner_content(|w| {
                        w.create_element("prosody")
                            .with_attribute(("rate", xml_safe(rate).as_ref()))
                            .write_inner_content(|w| write_spoken(w, text, pause.as_deref()))
                            .map(|_| ())
                    })?;
                }
                (None, Some(pause)) => {
                    el.write_inner_content(|w| write_spoken(w, text, Some(pause)))?;
                }
            }
        }
        Step::Play { url } => {
            w.create_element("Play").write_text_content(BytesText::new(&xml_safe(url)))?;
        }
        Step::Pause { seconds } => {
            w.create_element("Pause").with_attribute(("length", seconds.to_string().as_str())).write_empty()?;
        }
        Step::Gather { action, num_digits, timeout, finish_on_key, action_on_empty_result, prompts } => {
            let mut el = w
                .create_element("Gather")
                .with_attribute(("input", "dtmf"))
                .with_attribute(("action", xml_safe(action).as_ref()))
                .with_attribute(("method", "POST"))
                .with_attribute(("timeout", timeout.to_string().as_str()))
                .with_attribute(("finishOnKey", xml_safe(finish_on_key).as_ref()));
            if let Some(n) = num_digits {
                el = el.with_attribute(("numDigits", n.to_string().as_str()));
            }
            if *action_on_empty_result {
                el = el.with_attribute(("actionOnEmptyResult", "true"));
            }
            el.write_inner_content(|w| prompts.iter().try_for_each(|p| write_step(w, p)))?;
        }
        Step::Redirect { url } => {
            w.create_element("Redirect")
                .with_attribute(("method", "POST"))
                .write_text_content(BytesText::new(&xml_safe(url)))?;
        }
        Step::Hangup => {
            w.create_element("Hangup").write_empty()?;
        }
    }
    Ok(())
}

/// Text with an SSML `<break>` after each `, ` when `pause` is given; the
/// text content stays the same (`4, 8, 2`).
fn write_spoken(w: &mut Writer<Cursor<Vec<u8>>>, text: &str, pause: Option<&str>) -> std::io::Result<()> {
    let text = xml_safe(text);
    let Some(pause) = pause else { return w.write_event(Event::Text(BytesText::new(&text))) };
    let parts: Vec<&str> = text.split(", ").collect();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            w.create_element("break").with_attribute(("time", xml_safe(pause).as_ref())).write_empty()?;
            w.write_event(Event::Text(BytesText::new(" ")))?;
        }
        w.write_event(Event::Text(BytesText::new(part)))?;
        if i + 1 < parts.len() {
            w.write_event(Event::Text(BytesText::new(",")))?;
        }
    }
    Ok(())
}

/// A complete `<Response>` document with an XML declaration, UTF-8.
pub fn render(steps: &[Step]) -> String {
    let mut w = Writer::new(Cursor::new(Vec::with_capacity(512)));
    let written = w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None))).and_then(|()| {
        w.create_element("Response")
            .write_inner_content(|w| steps.iter().try_for_each(|s| write_step(w, s)))
            .map(|_| ())
    });
    match written {
        Ok(()) => String::from_utf8(w.into_inner().into_inner()).unwrap_or_default(),
        // Writing to memory cannot fail; if it ever did, hanging up is the safe answer.
        Err(_) => r#"<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>"#.to_owned(),
    }
}

/// The answer to a Twilio webhook: the script as a TwiML document.
pub fn response(steps: &[Step]) -> HttpResponse {
    HttpResponse::Ok().insert_header((CONTENT_TYPE, "text/xml; charset=utf-8")).body(render(steps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_gather_with_escaped_text_and_urls() {
        let doc = render(&[
            Step::Say {
                text: "A & B <ok>\u{7}".into(),
                language: "en-US".into(),
                voice: Some("Polly.Joanna".into()),
                rate: None,
                pause: None,
            },
            Step::Gather {
                action: "https://x.test/g?a=1&b=2".into(),
                num_digits: Some(6),
                timeout: 10,
                finish_on_key: "#".into(),
                action_on_empty_result: false,
                prompts: vec![Step::Pause { seconds: 1 }],
            },
            Step::Redirect { url: "https://x.test/n".into() },
            Step::Hangup,
        ]);
        assert_eq!(
            doc,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>\
             <Say language=\"en-US\" voice=\"Polly.Joanna\">A &amp; B &lt;ok&gt;</Say>\
             <Gather input=\"dtmf\" action=\"https://x.test/g?a=1&amp;b=2\" method=\"POST\" timeout=\"10\" finishOnKey=\"#\" numDigits=\"6\"><Pause length=\"1\"/></Gather>\
             <Redirect method=\"POST\">https://x.test/n</Redirect><Hangup/></Response>"
        );
    }

    #[test]
    fn a_rate_and_digit_pauses_are_ssml_around_the_same_text() {
        let say = |rate: Option<&str>, pause: Option<&str>| {
            render(&[Step::Say {
                text: "4, 8, 2".into(),
                language: "ja-JP".into(),
                voice: None,
                rate: rate.map(str::to_owned),
                pause: pause.map(str::to_owned),
            }])
        };
        assert!(say(None, None).contains("<Say language=\"ja-JP\">4, 8, 2</Say>"));
        assert!(
            say(Some("90%"), Some("400ms")).contains(
                "<Say language=\"ja-JP\"><prosody rate=\"90%\">4,<break time=\"400ms\"/> 8,<break time=\"400ms\"/> 2</prosody></Say>"
            ),
            "{}",
            say(Some("90%"), Some("400ms"))
        );
    }

    #[test]
    fn empty_response() {
        assert_eq!(render(&[]), "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>");
    }

    /// Found by fuzzing (fuzz/artifacts/twiml): a control character in an
    /// attribute (a voice name from a prompt file, say) made the XML invalid.
    #[test]
    fn attributes_are_xml_safe_too() {
        let doc = render(&[
            Step::Say {
                text: "x".into(),
                language: "en-US\u{7}".into(),
                voice: Some("Polly.Mizuki\u{7}".into()),
                rate: None,
                pause: None,
            },
            Step::Gather {
                action: "https://x.test/g".into(),
                num_digits: None,
                timeout: 5,
                finish_on_key: "#\u{1}".into(),
                action_on_empty_result: true,
                prompts: vec![],
            },
        ]);
        assert!(!doc.contains('\u{7}') && !doc.contains('\u{1}'), "{doc:?}");
        let mut reader = quick_xml::Reader::from_str(&doc);
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("not well-formed: {e}: {doc:?}"),
            }
        }
    }
}
