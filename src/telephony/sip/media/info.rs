//! DTMF carried in SIP INFO requests. Some carriers send keys this way
//! instead of RFC 4733; the signalling layer hands us the body and feeds the
//! digit into the same stream as the media digits.

/// The digit a SIP INFO body carries, or `None` for any other body.
///
/// `application/dtmf-relay` is `Signal=5\r\nDuration=160\r\n` (keys in any
/// case, spaces allowed around the value); `application/dtmf` is just the
/// key. Parameters on the content type (`; charset=...`) are ignored.
pub fn info_digit(content_type: &str, body: &[u8]) -> Option<char> {
    let media_type = content_type.split(';').next()?.trim();
    let body = std::str::from_utf8(body).ok()?;
    if media_type.eq_ignore_ascii_case("application/dtmf-relay") {
        relay_signal(body)
    } else if media_type.eq_ignore_ascii_case("application/dtmf") {
        single_key(body.trim())
    } else {
        None
    }
}

fn relay_signal(body: &str) -> Option<char> {
    body.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        if key.trim().eq_ignore_ascii_case("signal") { single_key(value.trim()) } else { None }
    })
}

/// One key, as a DTMF character (`0-9 * # A-D`); some phones send the
/// RFC 4733 event number (10 for `*`, 11 for `#`) instead.
fn single_key(value: &str) -> Option<char> {
    let mut chars = value.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => super::digit::normalize(c),
        _ => value.parse::<u8>().ok().and_then(super::digit::from_event),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtmf_relay_bodies() {
        let relay = "application/dtmf-relay";
        assert_eq!(info_digit(relay, b"Signal=5\r\nDuration=160\r\n"), Some('5'));
        assert_eq!(info_digit(relay, b"Signal= #\r\nDuration= 100\r\n"), Some('#'));
        assert_eq!(info_digit(relay, b"signal=*\nduration=160\n"), Some('*'));
        assert_eq!(info_digit(relay, b"Duration=160\r\nSIGNAL=d\r\n"), Some('D'));
        assert_eq!(info_digit(relay, b"Signal=11\r\n"), Some('#'));
        assert_eq!(info_digit("Application/DTMF-Relay; x=y", b"Signal=0"), Some('0'));
    }

    #[test]
    fn dtmf_bodies() {
        assert_eq!(info_digit("application/dtmf", b"5"), Some('5'));
        assert_eq!(info_digit("application/dtmf", b"#\r\n"), Some('#'));
        assert_eq!(info_digit("application/dtmf", b"10"), Some('*'));
    }

    #[test]
    fn anything_else_is_none() {
        assert_eq!(info_digit("application/sdp", b"Signal=5"), None);
        assert_eq!(info_digit("application/dtmf-relay", b"Duration=160"), None);
        assert_eq!(info_digit("application/dtmf-relay", b"Signal=X"), None);
        assert_eq!(info_digit("application/dtmf-relay", b"Signal=55"), None);
        assert_eq!(info_digit("application/dtmf", b""), None);
        assert_eq!(info_digit("application/dtmf", &[0xFF, 0xFE]), None);
        assert_eq!(info_digit("text/plain", b"5"), None);
    }
}
