//! The prompts a call can say, their keys in prompt files, and the rules for their text.

use crate::domain::text::is_hidden;

/// Every text the IVR speaks, and the text message it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prompt {
    /// The opening of a call the server placed: who calls, and why.
    GreetingOutbound,
    /// The opening of a call the user placed.
    GreetingInbound,
    EnterCode,
    /// Asks for a code of a length not said, ended with `#`: on a number
    /// several tenants share, whose codes differ in length.
    EnterCodeThenPound,
    /// A wrong code, with the tries left; the caller is asked again.
    WrongCode,
    /// The last try was wrong.
    TooManyAttempts,
    Success,
    Failure,
    NoInput,
    WithheldCallerId,
    CallerIdUnverified,
    NoPendingRequest,
    Expired,
    /// The last words of a call the server placed.
    GoodbyeOutbound,
    /// The last words of a call the user placed.
    GoodbyeInbound,
    /// `voice_otp`: before the code is read.
    OtpIntro,
    /// `voice_otp`: before the code is read the second time.
    OtpAgain,
    /// `voice_otp`: "press 1 to hear it again".
    OtpMenu,
    /// `voice_otp`: where to type the code, before goodbye.
    OtpEnterOnPage,
    /// The text message carrying a code (never spoken).
    Sms,
}

impl Prompt {
    pub const ALL: [Prompt; 20] = [
        Self::GreetingOutbound,
        Self::GreetingInbound,
        Self::EnterCode,
        Self::EnterCodeThenPound,
        Self::WrongCode,
        Self::TooManyAttempts,
        Self::Success,
        Self::Failure,
        Self::NoInput,
        Self::WithheldCallerId,
        Self::CallerIdUnverified,
        Self::NoPendingRequest,
        Self::Expired,
        Self::GoodbyeOutbound,
        Self::GoodbyeInbound,
        Self::OtpIntro,
        Self::OtpAgain,
        Self::OtpMenu,
        Self::OtpEnterOnPage,
        Self::Sms,
    ];

    /// The key in the prompt files and the tenant API, and the stem of an audio file.
    pub fn key(self) -> &'static str {
        match self {
            Self::GreetingOutbound => "greeting_outbound",
            Self::GreetingInbound => "greeting_inbound",
            Self::EnterCode => "enter_code",
            Self::EnterCodeThenPound => "enter_code_then_pound",
            Self::WrongCode => "wrong_code",
            Self::TooManyAttempts => "too_many_attempts",
            Self::Success => "success",
            Self::Failure => "failure",
            Self::NoInput => "no_input",
            Self::WithheldCallerId => "withheld_caller_id",
            Self::CallerIdUnverified => "caller_id_unverified",
            Self::NoPendingRequest => "no_pending_request",
            Self::Expired => "expired",
            Self::GoodbyeOutbound => "goodbye_outbound",
            Self::GoodbyeInbound => "goodbye_inbound",
            Self::OtpIntro => "otp_intro",
            Self::OtpAgain => "otp_again",
            Self::OtpMenu => "otp_menu",
            Self::OtpEnterOnPage => "otp_enter_on_page",
            Self::Sms => "sms",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.key() == key)
    }

    /// The placeholders this prompt may hold. `{code}` only in the text
    /// message: a spoken code is read by the server itself, digit by digit.
    pub fn placeholders(self) -> &'static [&'static str] {
        match self {
            Self::Sms => &["site_name", "code", "minutes"],
            _ => &["site_name", "code_length", "attempts_left"],
        }
    }
}

/// Keys of prompt files written before outbound and inbound calls had their
/// own greeting and goodbye: each still sets both.
pub(super) const LEGACY_KEYS: [(&str, [Prompt; 2]); 2] = [
    ("greeting", [Prompt::GreetingOutbound, Prompt::GreetingInbound]),
    ("goodbye", [Prompt::GoodbyeOutbound, Prompt::GoodbyeInbound]),
];

/// Checks a prompt text: at most 1,000 characters (text-to-speech engines
/// take about 3,000), no control or invisible format characters but line
/// breaks, and only the placeholders `prompt` knows, each closed.
pub fn check_text(prompt: Prompt, text: &str) -> Result<(), String> {
    if text.chars().count() > 1000 {
        return Err("is longer than 1000 characters".into());
    }
    if text.chars().any(|c| c != '\n' && is_hidden(c)) {
        return Err("contains a control or invisible formatting character (such as U+202E or U+200B)".into());
    }
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { return Err("has a `{` without its `}`".into()) };
        let name = &after[..close];
        if !prompt.placeholders().contains(&name) {
            let known: Vec<String> = prompt.placeholders().iter().map(|p| format!("{{{p}}}")).collect();
            return Err(format!("has an unknown placeholder {{{name}}} (known here: {})", known.join(", ")));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}
