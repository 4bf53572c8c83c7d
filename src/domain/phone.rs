//! E.164 phone numbers: parsed once at the edge, compared and masked everywhere else.

use std::fmt;

use phonenumber::{Mode, country};
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

impl Default for Region {
    fn default() -> Self {
        Self(country::Id::JP)
    }
}

impl PhoneNumber {
    /// Parses an E.164 number or a national number of `region`, accepting the
    /// usual separators and full-width digits, and refusing numbers that are
    /// not valid for their country or that cost the caller a premium.
    pub fn parse(input: &str, region: Region) -> Result<Self, PhoneError> {
        let ascii = to_ascii_digits(input.trim());
        if ascii.is_empty() || ascii.len() > 40 {
            return Err(PhoneError::NotANumber);
        }
        let parsed = phonenumber::parse(Some(region.0), &ascii).map_err(|_| PhoneError::NotANumber)?;
        if !phonenumber::is_valid(&parsed) {
            return Err(PhoneError::Invalid);
        }
        if parsed.number_type(&phonenumber::metadata::DATABASE) == phonenumber::Type::PremiumRate {
            return Err(PhoneError::PremiumRate);
        }
        Ok(Self(parsed.format().mode(Mode::E164).to_string()))
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

/// Full-width digits and punctuation, as Japanese forms often send them,
/// folded to ASCII so that the parser sees `090-1234-5678`.
fn to_ascii_digits(input: &str) -> String {
    input
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from(b'0' + (c as u32 - '０' as u32) as u8),
            '＋' => '+',
            '－' | 'ー' | '―' | '‐' | '−' => '-',
            '（' => '(',
            '）' => ')',
            '　' => ' ',
            other => other,
        })
        .collect()
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

    #[test]
    fn bad_numbers_are_refused() {
        assert!(jp("").is_err());
        assert!(jp("hello").is_err());
        assert!(jp("090-1234").is_err());
        assert!(jp("123").is_err());
        assert!(jp("090-1234-5678-9999-1234").is_err());
        assert!(jp("+81 00 0000 0000").is_err());
    }

    #[test]
    fn masking_keeps_four_digits() {
        let p = PhoneNumber::parse("090-1234-5678", Region::default()).unwrap();
        assert_eq!(p.to_string(), "********5678");
        assert_eq!(format!("{p:?}"), "PhoneNumber(********5678)");
        assert_eq!(mask("12"), "12");
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
