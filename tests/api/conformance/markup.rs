//! The two markups the providers read, read back as a caller would hear them:
//! TwiML (Twilio, SignalWire's cXML, Telnyx's TeXML) and Vonage's NCCO.
//! Read here by hand, independently of the server's renderers.

use serde_json::Value;

/// What an answer tells the provider to do.
#[derive(Clone, Debug, Default)]
pub struct Script {
    /// The texts spoken, in order (SSML tags removed).
    pub says: Vec<String>,
    /// Where the typed digits (or the silence) go, when it gathers.
    pub gather_url: Option<String>,
    /// Where the call goes next (TwiML `<Redirect>`, NCCO `notify`).
    pub redirect: Option<String>,
    /// What an NCCO `notify` sends there (its `payload`, as JSON).
    pub redirect_payload: String,
    pub hangs_up: bool,
}

impl Script {
    /// The code read aloud digit by digit ("4, 8, 2, 9"), if one was.
    pub fn code_read(&self) -> Option<String> {
        self.says.iter().find_map(|t| {
            let parts: Vec<&str> = t.trim().trim_end_matches('.').split(", ").collect();
            let digits = parts.len() >= 4 && parts.iter().all(|p| p.len() == 1 && p.as_bytes()[0].is_ascii_digit());
            digits.then(|| parts.concat())
        })
    }

    /// Whether any spoken text contains `words`.
    pub fn says(&self, words: &str) -> bool {
        self.says.iter().any(|t| t.contains(words))
    }
}

/// XML's five entities, and numeric ones.
fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let Some(end) = rest[at..].find(';') else { break };
        let entity = &rest[at + 1..at + end];
        let ch = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        out.push(ch.unwrap_or('\u{FFFD}'));
        rest = &rest[at + end + 1..];
    }
    out.push_str(rest);
    out
}

/// The contents of every `<tag …>…</tag>`, unescaped.
fn contents(doc: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    doc.split(&open)
        .skip(1)
        .filter(|s| s.starts_with('>') || s.starts_with(' '))
        .filter_map(|s| s.split_once('>').and_then(|(_, rest)| rest.split_once(&close)).map(|(t, _)| unescape(t)))
        .collect()
}

/// The value of `attr` in the first `<tag …>`.
fn attribute(doc: &str, tag: &str, attr: &str) -> Option<String> {
    let (_, rest) = doc.split_once(&format!("<{tag} "))?;
    let start = rest.split_once('>')?.0;
    let (_, value) = start.split_once(&format!(" {attr}=\""))?;
    Some(unescape(value.split_once('"')?.0))
}

/// A TwiML document.
pub fn twiml(doc: &str) -> Script {
    assert!(doc.contains("<Response>") || doc.contains("<Response/>"), "not TwiML: {doc}");
    Script {
        says: contents(doc, "Say"),
        gather_url: attribute(doc, "Gather", "action"),
        redirect: contents(doc, "Redirect").into_iter().next(),
        redirect_payload: String::new(),
        hangs_up: doc.contains("<Hangup/>"),
    }
}

/// Text without its SSML tags.
fn without_tags(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in text.chars() {
        match c {
            '<' => inside = true,
            '>' => inside = false,
            c if !inside => out.push(c),
            _ => {}
        }
    }
    unescape(&out)
}

/// An NCCO: a JSON array of actions. It ends the call when nothing after it asks for more.
pub fn ncco(doc: &str) -> Script {
    let actions: Value = serde_json::from_str(doc).unwrap_or_else(|e| panic!("not an NCCO ({e}): {doc}"));
    let mut script = Script::default();
    for action in actions.as_array().unwrap_or_else(|| panic!("an NCCO is an array: {doc}")) {
        let first_url = || action["eventUrl"][0].as_str().map(str::to_owned);
        match action["action"].as_str() {
            Some("talk") => {
                let text = action["text"].as_str().unwrap_or_default();
                let spoken = if text.trim_start().starts_with("<speak") { without_tags(text) } else { text.into() };
                if !spoken.trim().is_empty() {
                    script.says.push(spoken);
                }
            }
            Some("input") => script.gather_url = first_url(),
            Some("notify") => {
                script.redirect = first_url();
                script.redirect_payload = action["payload"].to_string();
            }
            _ => {}
        }
    }
    script.hangs_up = script.gather_url.is_none() && script.redirect.is_none();
    script
}
