//! The sixteen DTMF keys as characters, shared by the three detectors so a
//! digit looks the same whichever way it arrived.

/// The keys in RFC 4733 event order: events 0-9, `*` (10), `#` (11), A-D
/// (12-15).
const KEYS: [char; 16] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D'];

/// The key of an RFC 4733 event number, if it is a DTMF key.
pub fn from_event(event: u8) -> Option<char> {
    KEYS.get(usize::from(event)).copied()
}

/// A DTMF key in canonical form (letters upper case), or `None`.
pub fn normalize(c: char) -> Option<char> {
    let upper = c.to_ascii_uppercase();
    KEYS.contains(&upper).then_some(upper)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_characters() {
        assert_eq!(from_event(0), Some('0'));
        assert_eq!(from_event(10), Some('*'));
        assert_eq!(from_event(11), Some('#'));
        assert_eq!(from_event(15), Some('D'));
        assert_eq!(from_event(16), None);
        assert_eq!(normalize('a'), Some('A'));
        assert_eq!(normalize('E'), None);
    }
}
