//! The call script as TwiML, written straight into the response's text:
//! each text and attribute value stripped of what XML 1.0 does not allow and
//! escaped by `quick-xml`.

use std::borrow::Cow;
use std::fmt::{Display, Write};

use actix_web::HttpResponse;
use actix_web::http::header::CONTENT_TYPE;
use quick_xml::escape::escape;

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

/// A document being written. An element is `open`ed, given its attributes,
/// then either `inner` (content and `end` follow) or `empty`.
struct Doc(String);

impl Doc {
    fn open(&mut self, name: &str) -> &mut Self {
        self.0.push('<');
        self.0.push_str(name);
        self
    }

    /// An attribute. Beyond what `escape` does, a line end or a tab is
    /// written as a character reference: a reader normalizes a literal one
    /// in an attribute value to a space (as quick-xml's own writer does).
    fn attr(&mut self, name: &str, value: &str) -> &mut Self {
        self.0.push(' ');
        self.0.push_str(name);
        self.0.push_str("=\"");
        let safe = xml_safe(value);
        let escaped = escape(safe.as_ref());
        let mut rest = escaped.as_ref();
        while let Some(at) = rest.find(['\n', '\t']) {
            self.0.push_str(&rest[..at]);
            self.0.push_str(if rest.as_bytes()[at] == b'\n' { "&#10;" } else { "&#9;" });
            rest = &rest[at + 1..];
        }
        self.0.push_str(rest);
        self.0.push('"');
        self
    }

    /// An attribute whose value is a number (nothing to escape).
    fn number(&mut self, name: &str, value: impl Display) -> &mut Self {
        // Writing to a String cannot fail.
        let _ = write!(self.0, " {name}=\"{value}\"");
        self
    }

    fn inner(&mut self) -> &mut Self {
        self.0.push('>');
        self
    }

    fn empty(&mut self) {
        self.0.push_str("/>");
    }

    fn text(&mut self, text: &str) -> &mut Self {
        self.0.push_str(&escape(xml_safe(text).as_ref()));
        self
    }

    fn end(&mut self, name: &str) {
        self.0.push_str("</");
        self.0.push_str(name);
        self.0.push('>');
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Say { text, language, voice, rate, pause } => {
                self.open("Say").attr("language", language);
                if let Some(voice) = voice {
                    self.attr("voice", voice);
                }
                self.inner();
                match rate {
                    Some(rate) => {
                        self.open("prosody").attr("rate", rate).inner();
                        self.spoken(text, pause.as_deref());
                        self.end("prosody");
                    }
                    None => self.spoken(text, pause.as_deref()),
                }
                self.end("Say");
            }
            Step::Play { url } => self.open("Play").inner().text(url).end("Play"),
            Step::Pause { seconds } => self.open("Pause").number("length", seconds).empty(),
            Step::Gather { action, num_digits, timeout, finish_on_key, action_on_empty_result, prompts } => {
                self.open("Gather")
                    .attr("input", "dtmf")
                    .attr("action", action)
                    .attr("method", "POST")
                    .number("timeout", timeout)
                    .attr("finishOnKey", finish_on_key);
                if let Some(n) = num_digits {
                    self.number("numDigits", n);
                }
                if *action_on_empty_result {
                    self.attr("actionOnEmptyResult", "true");
                }
                self.inner();
                prompts.iter().for_each(|p| self.step(p));
                self.end("Gather");
            }
            Step::Redirect { url } => self.open("Redirect").attr("method", "POST").inner().text(url).end("Redirect"),
            Step::Hangup => self.open("Hangup").empty(),
        }
    }

    /// Text with an SSML `<break>` after each `, ` when `pause` is given; the
    /// text content stays the same (`4, 8, 2`).
    fn spoken(&mut self, text: &str, pause: Option<&str>) {
        let Some(pause) = pause else {
            self.text(text);
            return;
        };
        for (i, part) in xml_safe(text).split(", ").enumerate() {
            if i > 0 {
                self.text(",").open("break").attr("time", pause).empty();
                self.text(" ");
            }
            self.text(part);
        }
    }
}

/// A complete `<Response>` document with an XML declaration, UTF-8.
pub fn render(steps: &[Step]) -> String {
    let mut doc = Doc(String::with_capacity(512));
    doc.0.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    doc.open("Response").inner();
    steps.iter().for_each(|s| doc.step(s));
    doc.end("Response");
    doc.0
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
