//! The call script as a Vonage NCCO: a JSON array of actions, with SSML only where the script asks for it.
//!
//! What Vonage documents ("NCCO reference", developer.vonage.com/voice/voice-api/ncco-reference,
//! read from its source in `Nexmo/nexmo-developer`, `_documentation/en/voice/voice-api/ncco-reference.md`;
//! "Customizing spoken text", …/guides/customizing-tts; the Voice API OpenAPI in
//! `Nexmo/api-specification`, `definitions/voice.yml`), and how each step maps:
//! - `Say` → `talk` with `text` and `language` (BCP-47, the Voice API's `language` enum). A text is
//!   SSML only when wrapped in `<speak>`; so a plain `Say` is sent as it is, and one with a `rate` or
//!   a `pause` becomes `<speak><prosody rate="…">…</prosody></speak>` with `<break time="…"/>`
//!   after each `, ` (the code read digit by digit, as `twiml.rs` does), every text and attribute
//!   XML-escaped. A plain text that itself starts with `<speak` is escaped into SSML too, so a
//!   prompt cannot smuggle markup in. `voice` names a Twilio/Polly voice; Vonage's `style` is a
//!   per-language number with no mapping from it, so `voice` is dropped and Vonage picks style 0.
//! - `Play` → `stream` with `streamUrl: [url]` ("an array containing a single URL").
//! - `Pause` → `talk` actions whose SSML is only `<break time="Ns"/>`. Vonage documents no maximum,
//!   but its TTS speaks SSML as Amazon Polly does, whose `<break>` is at most 10 s ("Adding a pause",
//!   docs.aws.amazon.com/polly/latest/dg/break-tag.html); longer pauses are split into several.
//! - `Gather` → its prompts with `bargeIn: true` ("terminated when the user presses a button";
//!   an `input` must follow, which it does), then `input` with `type: ["dtmf"]`, `dtmf.maxDigits`
//!   (documented maximum 20, used when the script sets none), `dtmf.submitOnHash` (`#` is the only
//!   finish key Vonage has), `dtmf.timeOut` ("Max is 10"; clamped to 1..=10 seconds), `eventUrl`
//!   and `eventMethod: POST`. Vonage posts the result to `eventUrl` on `#`, on `maxDigits` and on
//!   the time-out too (`timed_out`, empty `digits`), so `action_on_empty_result` needs nothing here.
//!   Only `Say`, `Play` and `Pause` are rendered inside a gather, as the script's type promises.
//! - `Redirect` → NCCO has no redirect. Two actions hand the call to another URL whose answer
//!   "replaces the existing NCCO": `input` (its `eventUrl`) and `notify` ("Your webhook endpoint can
//!   return another NCCO that replaces the existing NCCO or return an empty payload meaning the
//!   existing NCCO will continue"). `notify` is used: it is synchronous, asks at once and does not
//!   wait for or swallow key presses as an `input` with a short time-out would. Its request body
//!   is the (required) `payload`, here `{}`; the handler behind the URL must read the call from
//!   its signed token or query, not from answer-webhook fields. As with TwiML's `<Redirect>`,
//!   nothing after it is rendered.
//! - `Hangup` → ends the NCCO: "When all the actions in the NCCO are complete, the Call ends", so
//!   nothing after it is rendered and no action is needed.

use actix_web::HttpResponse;
use serde_json::{Value, json};

use crate::call::script::Step;

/// The longest `<break>` the TTS engine honours, in seconds.
const MAX_BREAK_SECONDS: u32 = 10;
/// Vonage's largest `dtmf.maxDigits`, used when the script sets no count.
const MAX_DIGITS: u32 = 20;
/// Vonage's `dtmf.timeOut` range, in seconds.
const TIME_OUT_SECONDS: std::ops::RangeInclusive<u32> = 1..=10;

/// Characters XML 1.0 does not allow, even escaped, removed; the rest escaped for text and attributes.
fn xml_text(text: &str) -> String {
    let safe: String = text
        .chars()
        .filter(|&c| matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}'))
        .collect();
    quick_xml::escape::escape(safe.as_str()).into_owned()
}

/// SSML for a spoken text: an optional `<prosody rate>` around it, a `<break>` after each `, `.
fn ssml(text: &str, rate: Option<&str>, pause: Option<&str>) -> String {
    let spoken = match pause {
        Some(pause) => {
            let pause = format!(",<break time=\"{}\"/> ", xml_text(pause));
            text.split(", ").map(xml_text).collect::<Vec<_>>().join(&pause)
        }
        None => xml_text(text),
    };
    match rate {
        Some(rate) => format!("<speak><prosody rate=\"{}\">{spoken}</prosody></speak>", xml_text(rate)),
        None => format!("<speak>{spoken}</speak>"),
    }
}

fn talk(text: String, language: Option<&str>, barge_in: bool) -> Value {
    let mut action = json!({ "action": "talk", "text": text });
    if let Some(language) = language {
        action["language"] = json!(language);
    }
    if barge_in {
        action["bargeIn"] = json!(true);
    }
    action
}

/// The actions of a step that may also be a gather's prompt; `None` for the other kinds.
fn prompt(step: &Step, barge_in: bool) -> Option<Vec<Value>> {
    let actions = match step {
        Step::Say { text, language, voice: _, rate, pause } => {
            let plain = rate.is_none() && pause.is_none() && !text.trim_start().starts_with("<speak");
            let text = if plain { text.clone() } else { ssml(text, rate.as_deref(), pause.as_deref()) };
            vec![talk(text, Some(language), barge_in)]
        }
        Step::Play { url } => {
            let mut action = json!({ "action": "stream", "streamUrl": [url] });
            if barge_in {
                action["bargeIn"] = json!(true);
            }
            vec![action]
        }
        Step::Pause { seconds } => {
            let mut left = *seconds;
            let mut actions = Vec::new();
            while left > 0 {
                let now = left.min(MAX_BREAK_SECONDS);
                actions.push(talk(format!("<speak><break time=\"{now}s\"/></speak>"), None, barge_in));
                left -= now;
            }
            actions
        }
        Step::Gather { .. } | Step::Redirect { .. } | Step::Hangup => return None,
    };
    Some(actions)
}

fn input(action: &str, num_digits: Option<u32>, timeout: u32, finish_on_key: &str) -> Value {
    json!({
        "action": "input",
        "type": ["dtmf"],
        "dtmf": {
            "maxDigits": num_digits.unwrap_or(MAX_DIGITS).clamp(1, MAX_DIGITS),
            "submitOnHash": finish_on_key.contains('#'),
            "timeOut": timeout.clamp(*TIME_OUT_SECONDS.start(), *TIME_OUT_SECONDS.end()),
        },
        "eventUrl": [action],
        "eventMethod": "POST",
    })
}

/// The NCCO of a script: a JSON array, `[]` for an empty script.
pub fn render(steps: &[Step]) -> Value {
    let mut ncco = Vec::new();
    for step in steps {
        match step {
            Step::Gather { action, num_digits, timeout, finish_on_key, action_on_empty_result: _, prompts } => {
                ncco.extend(prompts.iter().filter_map(|p| prompt(p, true)).flatten());
                ncco.push(input(action, *num_digits, *timeout, finish_on_key));
            }
            Step::Redirect { url } => {
                ncco.push(json!({ "action": "notify", "payload": {}, "eventUrl": [url], "eventMethod": "POST" }));
                break;
            }
            Step::Hangup => break,
            other => ncco.extend(prompt(other, false).unwrap_or_default()),
        }
    }
    Value::Array(ncco)
}

/// The answer to a Vonage answer or event webhook: the script as an NCCO, `application/json`.
pub fn response(steps: &[Step]) -> HttpResponse {
    HttpResponse::Ok().json(render(steps))
}

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody;
    use actix_web::http::header::CONTENT_TYPE;

    use super::*;

    fn say(text: &str, rate: Option<&str>, pause: Option<&str>) -> Step {
        Step::Say {
            text: text.into(),
            language: "ja-JP".into(),
            voice: Some("Polly.Mizuki".into()),
            rate: rate.map(str::to_owned),
            pause: pause.map(str::to_owned),
        }
    }

    #[test]
    fn a_gather_is_barge_in_prompts_then_a_dtmf_input() {
        let ncco = render(&[
            say("Welcome", None, None),
            Step::Gather {
                action: "https://ivr.test/voice/digits?r=1&t=2".into(),
                num_digits: Some(6),
                timeout: 30,
                finish_on_key: "#".into(),
                action_on_empty_result: true,
                prompts: vec![say("Enter the code, then #", None, None), Step::Pause { seconds: 1 }],
            },
        ]);
        assert_eq!(
            ncco,
            json!([
                {"action": "talk", "text": "Welcome", "language": "ja-JP"},
                {"action": "talk", "text": "Enter the code, then #", "language": "ja-JP", "bargeIn": true},
                {"action": "talk", "text": "<speak><break time=\"1s\"/></speak>", "bargeIn": true},
                {
                    "action": "input",
                    "type": ["dtmf"],
                    "dtmf": {"maxDigits": 6, "submitOnHash": true, "timeOut": 10},
                    "eventUrl": ["https://ivr.test/voice/digits?r=1&t=2"],
                    "eventMethod": "POST",
                },
            ])
        );
        let open = render(&[Step::Gather {
            action: "https://ivr.test/g".into(),
            num_digits: None,
            timeout: 0,
            finish_on_key: String::new(),
            action_on_empty_result: false,
            prompts: vec![Step::Play { url: "https://ivr.test/a.mp3".into() }],
        }]);
        assert_eq!(open[0], json!({"action": "stream", "streamUrl": ["https://ivr.test/a.mp3"], "bargeIn": true}));
        assert_eq!(open[1]["dtmf"], json!({"maxDigits": 20, "submitOnHash": false, "timeOut": 1}));
    }

    #[test]
    fn ssml_text_is_escaped_and_digit_pauses_are_breaks() {
        let ncco = render(&[
            say("4, 8, 2", Some("90%"), Some("400ms")),
            say("A & B <c>\u{7}", None, Some("1s\"/><x")),
            say("<speak>sneaky</speak>", None, None),
        ]);
        assert_eq!(
            ncco[0]["text"],
            "<speak><prosody rate=\"90%\">4,<break time=\"400ms\"/> 8,<break time=\"400ms\"/> 2</prosody></speak>"
        );
        assert_eq!(ncco[1]["text"], "<speak>A &amp; B &lt;c&gt;</speak>");
        assert_eq!(ncco[2]["text"], "<speak>&lt;speak&gt;sneaky&lt;/speak&gt;</speak>");
        let odd = render(&[say("1, 2", None, Some("1s\"/><x"))]);
        assert_eq!(odd[0]["text"], "<speak>1,<break time=\"1s&quot;/&gt;&lt;x\"/> 2</speak>");
    }

    #[test]
    fn a_long_pause_is_split_into_breaks_vonage_honours() {
        let ncco = render(&[Step::Pause { seconds: 25 }, Step::Pause { seconds: 0 }]);
        let texts: Vec<&str> = ncco.as_array().unwrap().iter().map(|a| a["text"].as_str().unwrap()).collect();
        assert_eq!(
            texts,
            [
                "<speak><break time=\"10s\"/></speak>",
                "<speak><break time=\"10s\"/></speak>",
                "<speak><break time=\"5s\"/></speak>"
            ]
        );
    }

    #[test]
    fn a_redirect_is_a_notify_and_ends_the_ncco() {
        let ncco =
            render(&[Step::Redirect { url: "https://ivr.test/voice/next?a=1&b=2".into() }, say("never", None, None)]);
        assert_eq!(
            ncco,
            json!([{
                "action": "notify",
                "payload": {},
                "eventUrl": ["https://ivr.test/voice/next?a=1&b=2"],
                "eventMethod": "POST",
            }])
        );
    }

    #[test]
    fn a_hangup_cuts_the_rest_and_an_empty_script_is_an_empty_array() {
        assert_eq!(
            render(&[say("Bye", None, None), Step::Hangup, say("never", None, None)]),
            json!([{"action": "talk", "text": "Bye", "language": "ja-JP"}])
        );
        assert_eq!(render(&[]), json!([]));
        let resp = response(&[]);
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers().get(CONTENT_TYPE).unwrap(), "application/json");
        assert_eq!(resp.into_body().try_into_bytes().unwrap(), "[]");
    }
}
