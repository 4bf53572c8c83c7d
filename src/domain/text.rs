//! What text that others read or hear may hold: nothing that is not seen as itself.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// A character that does not show as itself: a control character (Cc), or
/// a format character (Cf): zero-width spaces and joiners (U+200B–U+200D),
/// direction marks, embeddings, overrides and isolates (U+200E, U+200F,
/// U+202A–U+202E, U+2066–U+2069; U+202E can show a code reversed), the
/// byte-order mark U+FEFF, the soft hyphen U+00AD and the rest of Cf.
pub fn is_hidden(c: char) -> bool {
    c.is_control() || c.general_category() == GeneralCategory::Format
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_format_characters_are_hidden() {
        for c in ['\0', '\t', '\n', '\u{7f}', '\u{85}', '\u{ad}', '\u{200b}', '\u{200d}', '\u{200e}', '\u{200f}'] {
            assert!(is_hidden(c), "{c:?}");
        }
        for c in ['\u{202a}', '\u{202e}', '\u{2060}', '\u{2066}', '\u{2069}', '\u{feff}', '\u{e0001}', '\u{61c}'] {
            assert!(is_hidden(c), "{c:?}");
        }
        for c in ['a', ' ', 'あ', '銀', '【', '＋', '\u{3000}', '€', 'é', '😀'] {
            assert!(!is_hidden(c), "{c:?}");
        }
    }
}
