//! Digits carried through a database outage (`call::hold`): `seal` and
//! `unseal`, and the `?hold=N&held=…` query the redirect carries.
//!
//! Input (one line each, the last runs to the end):
//!
//! ```text
//! <CallSid>\n<digits>\n<a `held` token as a client may send it>\n<query>
//! ```
//!
//! Properties: nothing panics on any token or query; sealed digits open for
//! their request and call while fresh and for nothing else (another call,
//! another request, another key, too late, one character changed); a token
//! never shows the digits; the redirect a hold answers is valid TwiML.

#![no_main]

use chrono::{DateTime, Duration, Utc};
use ivr_auth::call::hold::{Hold, MAX_HOLDS, seal, unseal};
use ivr_auth::telephony::twilio::twiml::render;
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

const KEY: [u8; 32] = [7; 32];
const ID: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);

fn line(rest: &mut &str) -> String {
    let (head, tail) = rest.split_once('\n').unwrap_or((rest, ""));
    *rest = tail;
    head.to_owned()
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut rest) = std::str::from_utf8(data) else { return };
    let call_sid = line(&mut rest);
    let digits = line(&mut rest);
    let token = line(&mut rest);
    let query = rest;
    let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap_or_default();

    // Whatever a caller puts in `held`, or a client in the query.
    let _ = unseal(&KEY, &token, ID, &call_sid, now);
    let hold = Hold::from_query(query);
    match hold.again("https://ivr.example.com/webhooks/twilio/voice/gather/x", hold.sealed.as_deref()) {
        Some(verbs) => {
            assert!(hold.count < MAX_HOLDS);
            let doc = render(&verbs);
            assert!(doc.ends_with("</Response>"), "{doc:?}");
            let again = ivr_auth::simulator::twiml_parse::parse(&doc).unwrap_or_else(|e| panic!("{e}: {doc:?}"));
            assert_eq!(again.len(), 2);
        }
        None => assert!(hold.count >= MAX_HOLDS),
    }

    // A genuine seal of what the caller typed.
    let sealed = seal(&KEY, ID, &call_sid, &digits, now);
    // Eight characters or more: a shorter string turns up in random base64 by chance.
    if digits.len() >= 8 {
        assert!(!sealed.contains(&digits), "the token shows the digits");
    }
    let is_digits = digits.bytes().all(|b| b.is_ascii_digit());
    let opened = unseal(&KEY, &sealed, ID, &call_sid, now + Duration::seconds(30));
    assert_eq!(opened.as_deref(), is_digits.then_some(digits.as_str()), "sealed {digits:?} on {call_sid:?}");
    assert_eq!(unseal(&KEY, &sealed, ID, &format!("{call_sid}x"), now), None, "another call");
    assert_eq!(unseal(&KEY, &sealed, Uuid::from_u128(2), &call_sid, now), None, "another request");
    assert_eq!(unseal(&[8; 32], &sealed, ID, &call_sid, now), None, "another key");
    assert_eq!(unseal(&KEY, &sealed, ID, &call_sid, now + Duration::seconds(121)), None, "too late");
    assert_eq!(unseal(&KEY, &sealed, ID, &call_sid, now - Duration::seconds(1)), None, "from the future");
    let mut changed = sealed.clone().into_bytes();
    let i = usize::from(data.first().copied().unwrap_or(0)) % changed.len();
    changed[i] = if changed[i] == b'A' { b'B' } else { b'A' };
    let changed = String::from_utf8(changed).unwrap_or_default();
    assert_eq!(unseal(&KEY, &changed, ID, &call_sid, now), None, "a changed token opened");
});
