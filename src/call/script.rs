//! The call script: what a call says, which keys it gathers and when it hangs up, in no provider's markup.

/// One step of a call: say, play, pause, gather keys, go on at a URL, hang up.
/// Each provider renders it into its own markup (`telephony::twilio::twiml`);
/// our own SIP engine takes it as JSON (`telephony::sip::dialect`) and plays it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "verb", rename_all = "snake_case")]
pub enum Step {
    Say {
        text: String,
        language: String,
        voice: Option<String>,
        /// SSML speech rate (`slow`, `90%`…), for voices that take SSML.
        rate: Option<String>,
        /// SSML pause after each `, ` of the text (`400ms`): the code read digit by digit.
        pause: Option<String>,
    },
    Play {
        url: String,
    },
    Pause {
        seconds: u32,
    },
    /// Collects keypad digits; only `Say`, `Play` and `Pause` nest inside.
    Gather {
        action: String,
        num_digits: Option<u32>,
        timeout: u32,
        finish_on_key: String,
        /// Ask `action` even when nothing was typed (`actionOnEmptyResult`):
        /// how a press of the finish key alone reaches the server.
        action_on_empty_result: bool,
        prompts: Vec<Step>,
    },
    Redirect {
        url: String,
    },
    Hangup,
}

/// A call's whole answer to one webhook, in order.
pub type Script = Vec<Step>;
