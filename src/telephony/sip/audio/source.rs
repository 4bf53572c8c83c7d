//! What one step of a call script is made of: clips (by what they say or
//! play) and silences. Both the start-up check and the call use this one
//! reading of a step, so they cannot disagree.

use crate::call::script::Step;

/// The pause between the digits of a code read aloud when the locale sets
/// none: about the pause a text-to-speech voice makes at a comma.
pub const DEFAULT_DIGIT_GAP_MS: u32 = 300;

/// Where one clip's audio comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// A text spoken in `language` (`ja-JP`), rendered before serving.
    Speech { language: String, text: String },
    /// One digit of a code read aloud; a code is never rendered whole, so
    /// no file or log names a code.
    Digit { language: String, digit: char },
    /// A recording the script plays: the server's own, or a tenant's URL.
    Recording { url: String },
}

/// One piece of a step's audio, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Clip(Source),
    Silence { ms: u32 },
}

/// The pieces of `step`; a Gather's are those of the prompts it plays, and
/// a Redirect or Hangup plays nothing.
pub fn pieces(step: &Step) -> Vec<Piece> {
    match step {
        Step::Say { text, language, pause, .. } => say(text, language, pause.as_deref()),
        Step::Play { url } => vec![Piece::Clip(Source::Recording { url: url.clone() })],
        Step::Pause { seconds } => vec![Piece::Silence { ms: seconds.saturating_mul(1000) }],
        Step::Gather { prompts, .. } => prompts.iter().flat_map(pieces).collect(),
        Step::Redirect { .. } | Step::Hangup => Vec::new(),
    }
}

/// A code (`4, 8, 2`, as `Prompts::say_digits` writes it, with or without
/// the locale's `digit_pause`) becomes digit clips with the pause between;
/// any other text is one spoken clip.
fn say(text: &str, language: &str, pause: Option<&str>) -> Vec<Piece> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    let Some(digits) = digits_of(text) else {
        return vec![Piece::Clip(Source::Speech { language: language.to_owned(), text: text.to_owned() })];
    };
    let gap = pause.and_then(pause_ms).unwrap_or(DEFAULT_DIGIT_GAP_MS);
    let mut out = Vec::with_capacity(digits.len() * 2);
    for (i, digit) in digits.into_iter().enumerate() {
        if i > 0 {
            out.push(Piece::Silence { ms: gap });
        }
        out.push(Piece::Clip(Source::Digit { language: language.to_owned(), digit }));
    }
    out
}

/// The digits of a text made only of single digits separated by commas.
fn digits_of(text: &str) -> Option<Vec<char>> {
    text.split(',')
        .map(|part| {
            let mut chars = part.trim().chars();
            match (chars.next(), chars.next()) {
                (Some(d), None) if d.is_ascii_digit() => Some(d),
                _ => None,
            }
        })
        .collect()
}

/// An SSML break time (`400ms`, `0.4s`) in milliseconds; `Prompts` checked
/// its range when it loaded the locale's file.
fn pause_ms(p: &str) -> Option<u32> {
    let ms = match p.strip_suffix("ms") {
        Some(ms) => ms.trim().parse::<f64>().ok()?,
        None => p.strip_suffix('s')?.trim().parse::<f64>().ok()? * 1000.0,
    };
    (ms.is_finite() && (0.0..=10_000.0).contains(&ms)).then_some(ms.round() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn say_step(text: &str, pause: Option<&str>) -> Step {
        Step::Say { text: text.into(), language: "en-US".into(), voice: None, rate: None, pause: pause.map(Into::into) }
    }

    #[test]
    fn a_code_is_read_digit_by_digit_with_the_locale_s_pause() {
        let d = |digit| Piece::Clip(Source::Digit { language: "en-US".into(), digit });
        let gap = Piece::Silence { ms: 400 };
        assert_eq!(pieces(&say_step("4, 8, 2", Some("400ms"))), [d('4'), gap.clone(), d('8'), gap, d('2')]);
        let comma = Piece::Silence { ms: DEFAULT_DIGIT_GAP_MS };
        assert_eq!(pieces(&say_step("4, 8", None)), [d('4'), comma, d('8')], "no digit_pause set");
        assert_eq!(pieces(&say_step("4, 8", Some("0.5s")))[1], Piece::Silence { ms: 500 });
        let text = "Dial 1, 8, 6 first.";
        assert_eq!(
            pieces(&say_step(text, None)),
            [Piece::Clip(Source::Speech { language: "en-US".into(), text: text.into() })]
        );
    }
}
