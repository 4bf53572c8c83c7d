//! How many parts a text message is sent (and billed) as: the GSM 7-bit
//! alphabet when every character is in it, UCS-2 otherwise (3GPP TS 23.038).

/// The GSM 7-bit default alphabet: one septet each.
const GSM7: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                    ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// Its extension table: two septets each (an escape, then the character).
const GSM7_EXTENDED: &str = "\u{c}^{}\\[~]|€";

/// The parts `text` is sent as: one of 160 septets (70 UTF-16 units when a
/// character is outside GSM 7-bit), or else parts of 153 (67), the header
/// taking the rest, a character never split between two parts.
pub fn parts(text: &str) -> usize {
    let septets: Option<Vec<usize>> = text
        .chars()
        .map(|c| match c {
            c if GSM7.contains(c) => Some(1),
            c if GSM7_EXTENDED.contains(c) => Some(2),
            _ => None,
        })
        .collect();
    match septets {
        Some(septets) => pack(&septets, 160, 153),
        None => pack(&text.chars().map(char::len_utf16).collect::<Vec<_>>(), 70, 67),
    }
}

/// How many parts units of `sizes` fill: one if they fit in `single`, else
/// parts of `each`, each size kept whole within one part.
fn pack(sizes: &[usize], single: usize, each: usize) -> usize {
    if sizes.iter().sum::<usize>() <= single {
        return 1;
    }
    let (mut parts, mut used) = (1, 0);
    for &size in sizes {
        if used + size > each {
            parts += 1;
            used = 0;
        }
        used += size;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm_text_is_160_alone_and_153_a_part() {
        assert_eq!(parts(""), 1);
        assert_eq!(parts(&"a".repeat(160)), 1);
        assert_eq!(parts(&"a".repeat(161)), 2);
        assert_eq!(parts(&"a".repeat(306)), 2);
        assert_eq!(parts(&"a".repeat(307)), 3);
        assert_eq!(parts(&"é£$@".repeat(40)), 1, "accented letters of the alphabet count one");
    }

    #[test]
    fn extension_characters_count_two_and_are_never_split() {
        assert_eq!(parts(&"€".repeat(80)), 1);
        assert_eq!(parts(&"€".repeat(81)), 2);
        assert_eq!(parts(&"{}".repeat(76)), 2, "304 septets");
        // 152 septets, then an escaped character that would straddle the part.
        assert_eq!(parts(&format!("{}^{}", "a".repeat(152), "a".repeat(152))), 3);
        assert_eq!(parts(&format!("{}^{}", "a".repeat(151), "a".repeat(152))), 2);
    }

    #[test]
    fn other_text_is_70_alone_and_67_a_part_in_utf16_units() {
        assert_eq!(parts(&"あ".repeat(70)), 1);
        assert_eq!(parts(&"あ".repeat(71)), 2);
        assert_eq!(parts(&"あ".repeat(134)), 2);
        assert_eq!(parts(&"あ".repeat(135)), 3);
        assert_eq!(parts(&format!("{}あ", "a".repeat(69))), 1, "one character outside GSM makes it all UCS-2");
        assert_eq!(parts(&format!("{}あ", "a".repeat(70))), 2);
        assert_eq!(parts(&"😀".repeat(35)), 1, "two units each");
        assert_eq!(parts(&format!("{0}😀{0}", "a".repeat(66))), 3, "134 units, and a pair is not split");
        assert_eq!(parts(&format!("{0}😀{0}", "a".repeat(65))), 2);
        assert_eq!(parts(&"😀".repeat(66)), 2, "33 pairs a part");
        assert_eq!(parts(&"😀".repeat(67)), 3, "134 units, yet three parts");
    }
}
