//! Facts and rules of one phone call: the keys its caller pressed, and the tries of a shared-number call.

/// The key that asks to hear the current prompt again (and ends a Gather).
pub const REPEAT_KEY: &str = "*";

/// Tries a caller has, on a number several tenants share, to type a code
/// that belongs to one of the requests waiting for them.
pub const SHARED_TRIES: u32 = 3;

/// Keys a provider reports, at most: more are no code and are not read.
const MAX_KEYS: usize = 32;

/// The keys a caller pressed at a code prompt, as the provider reported
/// them. Never logged: `Debug` shows how many digits, not which.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    /// The digits among them.
    digits: String,
    /// `*` was pressed (or ended the prompt): the caller asks to hear it again.
    repeat: bool,
    /// A `#` was among them: never part of a code (a habit from other IVRs,
    /// typed after the last digit had ended the code).
    stray: bool,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { digits, repeat, stray } = self;
        write!(f, "Keys({} digits, repeat: {repeat}, stray: {stray})", digits.len())
    }
}

impl Keys {
    /// From the provider's report: the keys `typed` and the key the prompt
    /// `finished_on` (empty when it ended on the code's last digit).
    pub fn parse(typed: &str, finished_on: &str) -> Self {
        let typed: String = typed.chars().take(MAX_KEYS).collect();
        Self {
            digits: typed.chars().filter(char::is_ascii_digit).collect(),
            repeat: finished_on == REPEAT_KEY || typed.contains('*'),
            stray: typed.contains('#'),
        }
    }

    /// The digits typed (no `*` or `#`).
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// Nothing at all was pressed: the prompt heard no input.
    pub fn is_silence(&self) -> bool {
        self.digits.is_empty() && !self.repeat && !self.stray
    }

    /// The caller asked to hear the prompt again.
    pub fn asks_repeat(&self) -> bool {
        self.repeat
    }

    /// Whether these keys are a code entered for a request whose codes have
    /// `code_length` digits, and so cost an attempt when wrong. A repeat is
    /// not, nor is a code cut short by a late `#`.
    pub fn are_a_code(&self, code_length: u8) -> bool {
        let cut_short = self.stray && self.digits.len() < usize::from(code_length);
        !self.repeat && !cut_short
    }
}

/// A call on an inbound number several tenants share, before its code picks
/// the one request it is for (it is bound to none until then). It lives in
/// the call's webhook URLs, signed like every other parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundCall {
    /// Which try the caller is on, from 1.
    try_number: u32,
}

impl InboundCall {
    /// A call just answered: its first try.
    pub fn first() -> Self {
        Self { try_number: 1 }
    }

    /// The call on try `n`, as its URL says; a URL that says none is on its last try.
    pub fn at_try(n: Option<u32>) -> Self {
        Self { try_number: n.unwrap_or(SHARED_TRIES) }
    }

    /// Which try the caller is on (what its URL carries).
    pub fn try_number(self) -> u32 {
        self.try_number
    }

    /// Tries the caller has after this one.
    pub fn tries_left(self) -> u8 {
        SHARED_TRIES.saturating_sub(self.try_number).try_into().unwrap_or(0)
    }

    /// After a code that picked no request (or silence): the next try, or
    /// `None` when the caller has had all of them.
    pub fn missed(self) -> Option<Self> {
        (self.try_number < SHARED_TRIES).then(|| Self { try_number: self.try_number + 1 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_or_a_code_cut_short_by_a_stray_pound_is_no_code() {
        assert!(Keys::parse("123456", "").are_a_code(6));
        assert!(Keys::parse("123456#", "").are_a_code(6), "a # after a whole code changes nothing");
        assert!(!Keys::parse("123#", "").are_a_code(6), "cut short by a #");
        assert!(!Keys::parse("12", "*").are_a_code(6), "ended with the repeat key");
        assert!(!Keys::parse("12*34", "").are_a_code(4), "a * among the digits");
        assert!(Keys::parse("12", "").are_a_code(6), "too short, but meant: a wrong code");
        assert_eq!(Keys::parse("1#2*3", "").digits(), "123");
    }

    #[test]
    fn only_no_key_at_all_is_silence() {
        assert!(Keys::parse("", "").is_silence());
        assert!(!Keys::parse("", "*").is_silence());
        assert!(!Keys::parse("#", "").is_silence());
        assert!(!Keys::parse("1", "").is_silence());
        assert!(Keys::parse("", "*").asks_repeat());
    }

    #[test]
    fn no_more_than_32_keys_are_read() {
        let long = format!("{}#", "1".repeat(40));
        let keys = Keys::parse(&long, "");
        assert_eq!(keys.digits().len(), 32);
        assert!(!keys.stray, "the # beyond the first 32 keys is not read");
    }

    #[test]
    fn debug_never_shows_the_digits() {
        assert_eq!(format!("{:?}", Keys::parse("482913#", "")), "Keys(6 digits, repeat: false, stray: true)");
    }

    #[test]
    fn a_shared_number_call_has_three_tries() {
        let first = InboundCall::first();
        assert_eq!((first.try_number(), first.tries_left()), (1, 2));
        let second = first.missed().unwrap();
        let third = second.missed().unwrap();
        assert_eq!((third.try_number(), third.tries_left()), (3, 0));
        assert_eq!(third.missed(), None);
        assert_eq!(InboundCall::at_try(None), third, "a URL without a try is on its last");
        assert_eq!(InboundCall::at_try(Some(0)).tries_left(), 3);
        assert_eq!(InboundCall::at_try(Some(9)).missed(), None);
    }
}
