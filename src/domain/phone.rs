//! E.164 phone numbers: parsed once at the edge, compared and masked everywhere else.

use std::collections::HashMap;
use std::fmt;

use phonenumber::{Type, country};
use serde::{Deserialize, Serialize};

/// A dialable phone number in E.164 form (`+819012345678`).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

/// Why a phone number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("is not a phone number")]
    NotANumber,
    /// A character that is neither a digit nor a separator: a letter would
    /// otherwise be read as its keypad digit, and an extension dropped.
    #[error(
        "may hold only digits, spaces, hyphens, dots, parentheses and a leading +; found {0:?} \
         (letters and extensions are not read)"
    )]
    Character(char),
    #[error("is not a valid, dialable number")]
    Invalid,
    #[error("is a premium-rate number, which is never called")]
    PremiumRate,
}

/// A region for national-format numbers (`JP`), checked against libphonenumber's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region(country::Id);

impl Region {
    /// Parses an ISO 3166-1 alpha-2 region code known to libphonenumber.
    pub fn parse(code: &str) -> Option<Self> {
        code.to_ascii_uppercase().parse::<country::Id>().ok().map(Self)
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_ref())
    }
}

impl Default for Region {
    fn default() -> Self {
        Self(country::Id::JP)
    }
}

/// What a number reaches: its country and its kind of line, as
/// libphonenumber's metadata says. Decides whether a call may be placed to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    /// `None` for the non-geographic codes: satellite phones (+881, +870) and
    /// international networks (+882, +883), none of which is a country.
    pub country: Option<Region>,
    pub country_code: u16,
    pub kind: Type,
}

impl Line {
    /// Whether a text message can reach this line: not a fixed line (a
    /// number that may be either, as in the US, is given the benefit).
    pub fn receives_sms(&self) -> bool {
        !matches!(self.kind, Type::FixedLine)
    }

    /// Why no call is placed to this line for a tenant whose calls may go to
    /// `allowed` countries, or `None` when it may be called. Only lines a person
    /// answers, at an ordinary rate, are called: fixed, mobile and IP phones.
    pub fn refusal(&self, allowed: &[Region]) -> Option<String> {
        let Some(country) = self.country else {
            return Some(format!(
                "is a satellite or international-network number (+{}), which is never called",
                self.country_code
            ));
        };
        let kind = match self.kind {
            Type::FixedLine | Type::Mobile | Type::FixedLineOrMobile | Type::Voip => None,
            Type::PremiumRate => Some("a premium-rate"),
            Type::SharedCost => Some("a shared-cost"),
            Type::PersonalNumber => Some("a personal (forwarding)"),
            Type::Uan => Some("a universal access (UAN)"),
            Type::TollFree => Some("a freephone"),
            Type::Pager => Some("a pager"),
            Type::Voicemail => Some("a voicemail access"),
            _ => Some("an unknown kind of"),
        };
        if let Some(kind) = kind {
            return Some(format!("is {kind} number, which is never called"));
        }
        if !allowed.contains(&country) {
            let list: Vec<String> = allowed.iter().map(Region::to_string).collect();
            return Some(format!(
                "calls to {country} (+{}) are not allowed for this tenant (allowed: {}; \
                 an operator can change it with ivr-auth tenant set --allowed-countries)",
                self.country_code,
                list.join(", ")
            ));
        }
        None
    }
}

impl PhoneNumber {
    /// Parses an E.164 number or a national number of `region`, accepting
    /// digits and the usual separators only (full-width ones too), and
    /// refusing numbers that are not valid for their country or that cost the
    /// caller a premium.
    pub fn parse(input: &str, region: Region) -> Result<Self, PhoneError> {
        Self::parse_line(input, region).map(|(number, _)| number)
    }

    /// `parse`, and what the number reaches.
    pub fn parse_line(input: &str, region: Region) -> Result<(Self, Line), PhoneError> {
        let ascii = to_ascii_digits(input.trim())?;
        if ascii.is_empty() || ascii.len() > 40 {
            return Err(PhoneError::NotANumber);
        }
        // A number written with its country code is parsed without a region:
        // libphonenumber would otherwise strip the region's trunk prefix from
        // it (found by fuzzing: `+39 0331 234567` became another Italian number).
        let international = ascii.trim_start().starts_with('+');
        let parsed = phonenumber::parse(if international { None } else { Some(region.0) }, &ascii)
            .map_err(|_| PhoneError::NotANumber)?;
        // `is_valid` is "the number's type is known", asked of the national
        // number's text with its leading zeros; `number_type` asks it of the
        // digits without them. With no leading zero the two are one question,
        // and each is the costliest step of a parse: ask it once.
        let kind = parsed.number_type(&phonenumber::metadata::DATABASE);
        let valid = match parsed.national().zeros() {
            0 => kind != Type::Unknown,
            _ => phonenumber::is_valid(&parsed),
        };
        if !valid {
            return Err(PhoneError::Invalid);
        }
        // What is stored must read back as the same number. An input that is
        // already that E.164 text was just read back, by the same parse.
        let e164 = e164_text(&parsed);
        if !(international && ascii == e164) {
            if international && !typed_digits_kept(&ascii, &e164, parsed.country().code()) {
                return Err(PhoneError::Invalid);
            }
            let again = phonenumber::parse(None, &e164).ok().filter(phonenumber::is_valid);
            if again.map(|n| e164_text(&n)).as_deref() != Some(e164.as_str()) {
                return Err(PhoneError::Invalid);
            }
        }
        if kind == Type::PremiumRate {
            return Err(PhoneError::PremiumRate);
        }
        let line = Line { country: parsed.country().id().map(Region), country_code: parsed.country().code(), kind };
        known_lines().remember(&e164, Some(line));
        Ok((Self(e164), line))
    }

    /// What a stored number reaches (`None` if it no longer parses).
    /// Remembered per number (`KNOWN_LINES`): a lifecycle asks it of its
    /// number several times (routing, usage), and a full parse is among the
    /// costliest steps of a lifecycle (docs/profiling.md).
    pub fn line(&self) -> Option<Line> {
        if let Some(known) = known_lines().get(&self.0) {
            return known;
        }
        let line = Self::parse_line(&self.0, Region::default()).ok().map(|(_, line)| line);
        known_lines().remember(&self.0, line);
        line
    }

    /// Wraps a value that is already E.164 (read back from storage).
    pub fn from_stored(e164: String) -> Self {
        Self(e164)
    }

    /// The E.164 text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A form safe for logs: only the last four digits are shown.
    pub fn masked(&self) -> Masked<'_> {
        Masked(&self.0)
    }
}

/// A parsed number's E.164 text: `+`, the country code, the national number
/// (with the leading zeros some countries keep). What libphonenumber's E.164
/// formatter writes, without the search for a national format it makes first
/// and then ignores (about 40,000 instructions a number).
fn e164_text(parsed: &phonenumber::PhoneNumber) -> String {
    format!("+{}{}", parsed.country().code(), parsed.national())
}

/// Whether a number typed with its country code became the number it spells:
/// the digits after the country code are the stored national number, or the
/// country's trunk prefix followed by it (`+81 090…` is `+81 90…`; Italy has
/// no trunk prefix and keeps its `0`). libphonenumber drops more than that
/// from some inputs (`+252 00 98704887` became `+25298704887`: fuzzing,
/// docs/fuzzing.md finding 4), and a number that is not the one typed is
/// never called.
fn typed_digits_kept(ascii: &str, e164: &str, country_code: u16) -> bool {
    let mut typed = ascii.bytes().filter(u8::is_ascii_digit);
    let code = country_code.to_string();
    if !code.bytes().all(|d| typed.next() == Some(d)) {
        return false;
    }
    let typed: Vec<u8> = typed.collect();
    let national = &e164.as_bytes()[1 + code.len()..];
    typed == national
        || phonenumber::metadata::DATABASE.by_code(&country_code).unwrap_or_default().iter().any(|region| {
            region.national_prefix().is_some_and(|prefix| typed.strip_prefix(prefix.as_bytes()) == Some(national))
        })
}

/// The lines of the numbers parsed lately, by E.164 text: at most
/// `KNOWN_LINES` of them, forgotten all at once when full (a number's line
/// depends only on the metadata compiled into the binary, so it never goes stale).
struct KnownLines(std::sync::Mutex<HashMap<String, Option<Line>>>);

const KNOWN_LINES: usize = 20_000;

impl KnownLines {
    fn get(&self, e164: &str) -> Option<Option<Line>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(e164).copied()
    }

    fn remember(&self, e164: &str, line: Option<Line>) {
        let mut known = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if known.len() >= KNOWN_LINES {
            known.clear();
        }
        known.insert(e164.to_owned(), line);
    }
}

fn known_lines() -> &'static KnownLines {
    static KNOWN: std::sync::OnceLock<KnownLines> = std::sync::OnceLock::new();
    KNOWN.get_or_init(|| KnownLines(std::sync::Mutex::new(HashMap::new())))
}

/// Digits and separators, full-width and dash variants folded to ASCII so
/// that the parser sees `090-1234-5678`. Anything else is refused, never
/// skipped: libphonenumber reads a letter as its keypad digit
/// (`090-1234-567a` would call `…5672`) and drops a trailing extension.
fn to_ascii_digits(input: &str) -> Result<String, PhoneError> {
    let mut ascii = String::with_capacity(input.len());
    for c in input.chars() {
        let folded = match c {
            '0'..='9' | ' ' | '-' | '.' | '(' | ')' | '+' => c,
            '０'..='９' => char::from(b'0' + (c as u32 - '０' as u32) as u8),
            '＋' => '+',
            // Hyphens, dashes and minus signs, and the katakana long-vowel
            // mark a Japanese keyboard gives for `-` in kana mode.
            '‐' | '‑' | '‒' | '–' | '—' | '―' | '−' | '－' | '﹣' | 'ー' | 'ｰ' => '-',
            '．' => '.',
            '（' => '(',
            '）' => ')',
            '\u{3000}' | '\u{a0}' => ' ',
            other => return Err(PhoneError::Character(other)),
        };
        // A `+` only opens an international number.
        if folded == '+' && !ascii.is_empty() {
            return Err(PhoneError::Character(c));
        }
        ascii.push(folded);
    }
    Ok(ascii)
}

/// Display wrapper that masks all but the last four digits of a number.
pub struct Masked<'a>(&'a str);

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", mask(self.0))
    }
}

/// Masks any string that may hold a phone number: keeps the last four characters.
pub fn mask(raw: &str) -> String {
    let chars: Vec<char> = raw.chars().collect();
    let keep = chars.len().min(4);
    let hidden = chars.len() - keep;
    let tail: String = chars[hidden..].iter().collect();
    format!("{}{}", "*".repeat(hidden.min(8)), tail)
}

/// `text` with every run that may be a phone number masked as `mask` does:
/// an optional `+` or `(`, then digits and separators (spaces, hyphens, dots,
/// parentheses) holding 7 digits or more. For text others wrote (a
/// provider's error message quotes the number it refused) before it is
/// logged or stored. Dates and long ids are masked too: better one too many.
pub fn mask_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let opens =
            c.is_ascii_digit() || (matches!(c, '+' | '(') && chars.get(i + 1).is_some_and(char::is_ascii_digit));
        // A number does not continue a word (`CA0123…` is a sid).
        let inside_word = i > 0 && chars[i - 1].is_alphanumeric();
        if !opens || inside_word {
            out.push(c);
            i += 1;
            continue;
        }
        // The run: digits and separators, ending at its last digit.
        let (mut end, mut j) = (i + 1, i + 1);
        while j < chars.len() && (chars[j].is_ascii_digit() || matches!(chars[j], ' ' | '-' | '.' | '(' | ')')) {
            j += 1;
            if chars[j - 1].is_ascii_digit() {
                end = j;
            }
        }
        let digits: String = chars[i..end].iter().filter(|c| c.is_ascii_digit()).collect();
        if digits.len() >= 7 {
            out.push_str(&mask(&digits));
        } else {
            out.extend(&chars[i..end]);
        }
        i = end;
    }
    out
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.masked().fmt(f)
    }
}

/// How strongly the originating carrier vouched for a caller ID (STIR/SHAKEN):
/// `A` (full: the caller is its customer and may use the number), `B`
/// (partial: its customer, the number not known to be theirs), `C`
/// (gateway: it only passed the call on). Ordered weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Attestation {
    C,
    B,
    A,
}

impl Attestation {
    /// `A`, `B` or `C`, as an operator writes a required level.
    pub fn parse(level: &str) -> Option<Self> {
        match level.trim().to_ascii_uppercase().as_str() {
            "A" => Some(Self::A),
            "B" => Some(Self::B),
            "C" => Some(Self::C),
            _ => None,
        }
    }

    /// The level a provider's verification status proves: Twilio's
    /// `StirVerstat` (`TN-Validation-Passed-A`), Telnyx's and SignalWire's
    /// `verstat` (`TN-Validation-Passed` is A there). A failed check, no check
    /// (`No-TN-Validation`), a missing or unknown value proves nothing.
    pub fn from_verstat(verstat: &str) -> Option<Self> {
        let v = verstat.trim().to_ascii_lowercase();
        match v.strip_prefix("tn-validation-passed")? {
            "" | "-a" => Some(Self::A),
            "-b" => Some(Self::B),
            "-c" => Some(Self::C),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::B => "B",
            Self::C => "C",
        }
    }
}

/// Caller-ID values that mean "withheld": the provider's keypad spellings
/// (ANONYMOUS, RESTRICTED, BLOCKED, UNKNOWN, UNAVAILABLE) and the plain words
/// other providers send.
pub fn is_withheld_caller_id(from: &str) -> bool {
    const SPELLED: [&str; 6] = ["+266696687", "+7378742833", "+17378742833", "+2562533", "+8656696", "+86282452253"];
    let from = from.trim();
    if from.is_empty() || SPELLED.contains(&from) {
        return true;
    }
    let lower = from.to_ascii_lowercase();
    // A SIP name-addr (`"Anonymous" <sip:anonymous@host>`): the URI in the angle brackets.
    let uri = match (lower.find('<'), lower.rfind('>')) {
        (Some(a), Some(b)) if a < b => &lower[a + 1..b],
        _ => lower.as_str(),
    };
    let uri = uri.trim();
    let user = ["sip:", "sips:", "tel:"].iter().find_map(|p| uri.strip_prefix(p)).unwrap_or(uri);
    // The user part, without parameters (`anonymous;phone-context=…`) or host.
    let user = user.split(['@', ';']).next().unwrap_or(user).trim_matches('"');
    matches!(user, "anonymous" | "restricted" | "private" | "blocked" | "unknown" | "unavailable" | "withheld")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_e164_text_is_libphonenumbers_own() {
        // Leading zeros kept (Italy), trunk prefixes dropped (Japan, UK), long and short numbers.
        for n in [
            "+81 90 1234 5678",
            "+81 3 1234 5678",
            "+39 06 6982 1234",
            "+39 0331 234567",
            "+44 20 7946 0958",
            "+1 212 555 0123",
            "+65 6123 4567",
            "+49 30 123456",
            "+225 07 12 34 5678",
        ] {
            let parsed = phonenumber::parse(None, n).unwrap();
            assert_eq!(e164_text(&parsed), parsed.format().mode(phonenumber::Mode::E164).to_string(), "{n}");
        }
    }

    /// `parse_line` asks a number's type once and takes "valid" from it when
    /// the national number has no leading zero; libphonenumber's own
    /// `is_valid` must agree on every number, zeros or not.
    #[test]
    fn validity_and_line_agree_with_libphonenumbers_own_checks() {
        let db = &phonenumber::metadata::DATABASE;
        let mut n: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            n ^= n << 13;
            n ^= n >> 7;
            n ^= n << 17;
            n
        };
        let mut valid = 0;
        for cc in ["81", "39", "44", "1", "7", "49", "65", "225", "379", "262", "61", "33", "82"] {
            for _ in 0..150 {
                let len = 6 + (next() % 8) as usize;
                let digits: String = (0..len).map(|_| char::from(b'0' + (next() % 10) as u8)).collect();
                let input = format!("+{cc}{digits}");
                let Ok(parsed) = phonenumber::parse(None, &input) else { continue };
                // Numbers libphonenumber reads as another (`+49 00…` loses its
                // zeros) are refused whatever their type: the test below.
                if e164_text(&parsed) != input {
                    continue;
                }
                let expected = match phonenumber::is_valid(&parsed) {
                    false => Err(PhoneError::Invalid),
                    true => match parsed.number_type(db) {
                        Type::PremiumRate => Err(PhoneError::PremiumRate),
                        kind => Ok(kind),
                    },
                };
                let ours = PhoneNumber::parse_line(&input, Region::default()).map(|(_, line)| line.kind);
                // A number that does not read back as itself is refused either way.
                if ours != Err(PhoneError::Invalid) || expected.is_ok() {
                    assert_eq!(ours, expected, "{input}");
                }
                valid += usize::from(ours.is_ok());
            }
        }
        assert!(valid > 100, "too few valid numbers to compare: {valid}");
    }

    fn jp(s: &str) -> Result<String, PhoneError> {
        PhoneNumber::parse(s, Region::default()).map(|p| p.0)
    }

    #[test]
    fn japanese_national_formats_become_e164() {
        assert_eq!(jp("090-1234-5678").unwrap(), "+819012345678");
        assert_eq!(jp("09012345678").unwrap(), "+819012345678");
        assert_eq!(jp("03-1234-5678").unwrap(), "+81312345678");
        assert_eq!(jp("+81 90 1234 5678").unwrap(), "+819012345678");
        assert_eq!(jp("+819012345678").unwrap(), "+819012345678");
        assert_eq!(jp("０９０－１２３４－５６７８").unwrap(), "+819012345678");
        assert_eq!(jp("+1 415 867 5309").unwrap(), "+14158675309");
    }

    /// The review's mistyped numbers (issue 13): a letter read as a keypad
    /// digit called someone else, and an extension was silently dropped.
    #[test]
    fn only_digits_and_separators_are_a_number() {
        for (input, found) in [
            ("090-1234-567a", 'a'),
            ("+81 90 1234 5678 ext. 12", 'e'),
            ("+81 90 1234 5678 x12", 'x'),
            ("090-1234-5678#12", '#'),
            ("090-1234-5678;ext=12", ';'),
            ("tel:+819012345678", 't'),
            ("1-800-FLOWERS", 'F'),
            ("090-1234-5678,1", ','),
            ("090/1234/5678", '/'),
            ("090\t1234\t5678", '\t'),
            ("090\u{200b}1234\u{200b}5678", '\u{200b}'),
            ("٠٩٠١٢٣٤٥٦٧٨", '٠'),
            ("+81+9012345678", '+'),
            ("++819012345678", '+'),
            ("090-1234-5678+", '+'),
        ] {
            assert_eq!(jp(input), Err(PhoneError::Character(found)), "{input:?}");
        }
        let message = PhoneError::Character('a').to_string();
        assert!(message.contains("only digits") && message.contains("'a'"), "{message}");
        // What Japanese keyboards and copied text give is still a number.
        for input in [
            "(090) 1234.5678",
            "０９０－１２３４－５６７８",
            "０９０ー１２３４ー５６７８",
            "090‐1234‐5678",
            "090−1234−5678",
            "090–1234–5678",
            "＋８１　９０　１２３４　５６７８",
            "（０９０）１２３４．５６７８",
            "090\u{a0}1234\u{a0}5678",
        ] {
            assert_eq!(jp(input).as_deref(), Ok("+819012345678"), "{input:?}");
        }
    }

    #[test]
    fn bad_numbers_are_refused() {
        assert!(jp("").is_err());
        assert!(jp("hello").is_err());
        assert!(jp("090-1234").is_err());
        assert!(jp("123").is_err());
        assert!(jp("090-1234-5678-9999-1234").is_err());
        assert!(jp("+81 00 0000 0000").is_err());
    }

    /// Why a call to `number` is refused for a tenant allowed `allowed`, if it is.
    fn refusal(number: &str, allowed: &[&str]) -> Option<String> {
        let allowed: Vec<Region> = allowed.iter().map(|c| Region::parse(c).unwrap()).collect();
        let (_, line) = PhoneNumber::parse_line(number, Region::default()).unwrap_or_else(|e| panic!("{number}: {e}"));
        line.refusal(&allowed)
    }

    #[test]
    fn the_review_s_toll_fraud_destinations_are_never_called() {
        let refused = [
            ("+881612345678", "satellite"),       // Iridium
            ("+870301234567", "satellite"),       // Inmarsat
            ("+8823421234", "satellite"),         // international networks
            ("+883510012345", "satellite"),       //
            ("+5351234567", "(+53)"),             // Cuba
            ("+23225123456", "(+232)"),           // Sierra Leone
            ("+25271123456", "(+252)"),           // Somalia
            ("+6745551234", "(+674)"),            // Nauru
            ("+2463801234", "(+246)"),            // Diego Garcia
            ("+447012345678", "personal"),        // UK 070
            ("0570-123-456", "universal access"), // JP navi dial
            ("0120-123-456", "freephone"),
            ("020-1234-5678", "pager"),
            ("+538071234567", "shared-cost"),
        ];
        for (number, why) in refused {
            let refusal = refusal(number, &["JP"]).unwrap_or_else(|| panic!("{number} would be called"));
            assert!(refusal.contains(why), "{number}: {refusal}");
        }
        // A tenant may allow other countries, never the kinds of line above.
        assert!(refusal("+5351234567", &["JP", "CU"]).is_none());
        assert!(refusal("+447012345678", &["GB"]).unwrap().contains("personal"));
        assert!(refusal("+881612345678", &["JP", "US"]).unwrap().contains("satellite"));
        // Numbers a person answers in an allowed country are called.
        for number in ["090-1234-5678", "03-1234-5678", "050-1234-5678"] {
            assert_eq!(refusal(number, &["JP"]), None, "{number}");
        }
        assert!(refusal("+14158675309", &["JP"]).unwrap().contains("(+1)"));
        assert_eq!(refusal("+14158675309", &["US"]), None);
    }

    #[test]
    fn verification_statuses_prove_their_level_and_failures_prove_nothing() {
        use Attestation::*;
        let cases = [
            ("TN-Validation-Passed-A", Some(A)),
            ("TN-Validation-Passed-B", Some(B)),
            ("TN-Validation-Passed-C", Some(C)),
            ("tn-validation-passed", Some(A)),
            ("TN-Validation-Failed-A", None),
            ("TN-Validation-Failed", None),
            ("No-TN-Validation", None),
            ("TN-Validation-Passed-D", None),
            ("TN-Validation-Passed-AB", None),
            ("", None),
        ];
        for (verstat, level) in cases {
            assert_eq!(Attestation::from_verstat(verstat), level, "{verstat}");
        }
        assert!(A > B && B > C);
        assert_eq!(Attestation::parse("b"), Some(B));
        assert_eq!(Attestation::parse("none"), None);
    }

    /// Found by fuzzing (fuzz/artifacts/phone): a number with its country
    /// code must keep its digits, whatever the default region.
    #[test]
    fn a_number_with_its_country_code_keeps_its_digits_in_every_region() {
        let us = Region::parse("US").unwrap();
        for (input, region) in [
            ("+39 0331 234567", Region::default()),
            ("+49 1511 2345678", us),
            ("+49 1611 2345678", us),
            ("+49 1711 2345678", us),
        ] {
            let digits: String = input.chars().filter(char::is_ascii_digit).collect();
            match PhoneNumber::parse(input, region) {
                Ok(n) => assert_eq!(n.as_str(), format!("+{digits}"), "{input}"),
                Err(e) => assert_ne!(e, PhoneError::NotANumber, "{input}"),
            }
        }
        // Only the country's trunk prefix may be dropped from what was typed
        // after the country code (fuzzing, docs/fuzzing.md finding 4).
        for (input, stored) in [("+81 090 1234 5678", "+819012345678"), ("+44 (0) 20 7946 0958", "+442079460958")] {
            assert_eq!(PhoneNumber::parse(input, Region::default()).unwrap().as_str(), stored, "{input}");
        }
        for region in [Region::default(), us] {
            assert_eq!(PhoneNumber::parse("+2520 0987048 87", region), Err(PhoneError::Invalid), "in {region}");
            assert_eq!(PhoneNumber::parse("+49 00 7653134483", region), Err(PhoneError::Invalid), "in {region}");
            assert_eq!(PhoneNumber::parse("+81 0090 1234 5678", region), Err(PhoneError::Invalid), "in {region}");
        }
        // What is accepted reads back as itself.
        for input in ["+91 00000800 0145356", "+1 415 867 5309", "090-1234-5678", "+81 90 1234 5678"] {
            if let Ok(n) = PhoneNumber::parse(input, Region::default()) {
                assert_eq!(PhoneNumber::parse(n.as_str(), Region::default()).unwrap(), n, "{input}");
            }
        }
    }

    #[test]
    fn a_remembered_line_is_the_line_a_fresh_parse_gives_and_the_memory_stays_bounded() {
        let jp = PhoneNumber::from_stored("+819012345678".into());
        let fresh = PhoneNumber::parse_line("+819012345678", Region::default()).unwrap().1;
        assert_eq!(jp.line(), Some(fresh));
        assert_eq!(jp.line(), Some(fresh), "asked again, from memory");
        assert_eq!(known_lines().get("+819012345678"), Some(Some(fresh)));
        assert_eq!(PhoneNumber::from_stored("+1".into()).line(), None, "a number that does not parse has none");
        for n in 0..KNOWN_LINES + 1 {
            known_lines().remember(&format!("+8190{n:08}"), None);
        }
        assert!(known_lines().0.lock().unwrap().len() <= KNOWN_LINES);
        assert_eq!(jp.line(), Some(fresh), "forgotten, then parsed again");
    }

    #[test]
    fn masking_keeps_four_digits() {
        let p = PhoneNumber::parse("090-1234-5678", Region::default()).unwrap();
        assert_eq!(p.to_string(), "********5678");
        assert_eq!(format!("{p:?}"), "PhoneNumber(********5678)");
        assert_eq!(mask("12"), "12");
    }

    /// Issue 13, item 6: a provider's message quoted the full number.
    #[test]
    fn numbers_in_free_text_are_masked() {
        let cases = [
            (
                "The 'To' number +819012345678 is not a valid phone number.",
                "The 'To' number ********5678 is not a valid phone number.",
            ),
            ("To: +81 90-1234-5678, From: (03) 1234.5678.", "To: ********5678, From: ******5678."),
            (
                "Permission to send an SMS has not been enabled for 09012345678",
                "Permission to send an SMS has not been enabled for *******5678",
            ),
            ("HTTP 400 Bad Request (code 21211)", "HTTP 400 Bad Request (code 21211)"),
            ("call CA0123456789abcdef failed", "call CA0123456789abcdef failed"),
            ("retry in 30 s, 2 of 5", "retry in 30 s, 2 of 5"),
        ];
        for (text, masked) in cases {
            assert_eq!(mask_numbers(text), masked, "{text}");
        }
        // Whatever the text, no run of 7 digits is left whole.
        for text in ["+1 (415) 867-5309", "415.867.5309x", "a 4158675309", "+14158675309+14158675309"] {
            let got = mask_numbers(text);
            assert!(!got.contains("8675309") && !got.contains("867-5309"), "{text} → {got}");
        }
    }

    #[test]
    fn withheld_caller_ids() {
        for s in [
            "",
            "anonymous",
            "Restricted",
            "+266696687",
            "sip:anonymous@x.invalid",
            "tel:anonymous",
            "TEL:Anonymous",
            "\"Anonymous\" <sip:anonymous@anonymous.invalid>",
            "<sip:anonymous@anonymous.invalid;transport=udp>",
            "sips:Restricted@x.invalid",
            "tel:anonymous;phone-context=x.invalid",
        ] {
            assert!(is_withheld_caller_id(s), "{s}");
        }
        assert!(!is_withheld_caller_id("+819012345678"));
        assert!(!is_withheld_caller_id("\"Anonymous\" <sip:+819012345678@x.invalid>"), "a name is not the number");
    }
}
