//! The audit trail: what happened to tenants, requests and the server, as
//! events that can be appended and never changed unnoticed.
//!
//! Each event belongs to one chain: its tenant's, or the server's. Events
//! are written in the commit that makes the change they tell of, without a
//! link; a sealer links them afterwards, in the order they were stored, each
//! to the one before it in its chain (`link`). So one tenant's traffic on
//! several nodes is never serialised on its chain's head, and a stored event
//! changed or removed after sealing breaks its chain where it stood.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::request::{AuthRequest, Event};
use super::status::Status;

/// What an audit event tells of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    TenantCreated,
    KeyRotated,
    SettingsChanged,
    RequestRegistered,
    RequestVerified,
    RequestFailed,
    RequestCanceled,
    RequestExpired,
    /// The server started, with its settings (secrets masked).
    ServerStarted,
    /// Requests refused in one minute (bad signatures, rate limits, budgets), counted.
    Refusals,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Self::TenantCreated,
        Self::KeyRotated,
        Self::SettingsChanged,
        Self::RequestRegistered,
        Self::RequestVerified,
        Self::RequestFailed,
        Self::RequestCanceled,
        Self::RequestExpired,
        Self::ServerStarted,
        Self::Refusals,
    ];

    /// The name in the API and the export (`request.verified`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TenantCreated => "tenant.created",
            Self::KeyRotated => "tenant.key_rotated",
            Self::SettingsChanged => "tenant.settings_changed",
            Self::RequestRegistered => "request.registered",
            Self::RequestVerified => "request.verified",
            Self::RequestFailed => "request.failed",
            Self::RequestCanceled => "request.canceled",
            Self::RequestExpired => "request.expired",
            Self::ServerStarted => "server.started",
            Self::Refusals => "refusals",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One event, before the store gives it its place in a chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub kind: Kind,
    /// `None`: a server-wide event (its chain is the server's).
    pub tenant_id: Option<Uuid>,
    pub request_id: Option<Uuid>,
    pub at: DateTime<Utc>,
    /// Facts of the event; never a code, a key or a full phone number.
    pub data: Value,
}

/// The chain of a tenant's events, or the server's.
pub fn chain_of(tenant: Option<Uuid>) -> String {
    tenant.map_or_else(|| "server".to_owned(), |t| t.to_string())
}

impl Record {
    pub fn chain(&self) -> String {
        chain_of(self.tenant_id)
    }

    /// The bytes a link covers: every field, in a fixed order and form, so
    /// that the same event always hashes the same on every backend.
    pub fn canonical(&self, seq: u64) -> String {
        /// The fields in the order of their names, as the first chains were
        /// sealed; `data` too: serde_json's `Map` keeps its keys in order
        /// (without its `preserve_order` feature, which no crate here turns on:
        /// `the_canonical_form_does_not_depend_on_key_order`).
        #[derive(serde::Serialize)]
        struct Canonical<'a> {
            at: String,
            chain: String,
            data: &'a Value,
            kind: &'a str,
            request_id: Option<String>,
            seq: u64,
        }
        let canonical = Canonical {
            at: self.at.to_rfc3339_opts(SecondsFormat::Millis, true),
            chain: self.chain(),
            data: &self.data,
            kind: self.kind.as_str(),
            request_id: self.request_id.map(|r| r.to_string()),
            seq,
        };
        serde_json::to_string(&canonical).unwrap_or_default()
    }
}

/// The hash before a chain's first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// The hash of the event at `seq` in its chain, over the one before it.
pub fn link(prev: &[u8; 32], record: &Record, seq: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(record.canonical(seq).as_bytes());
    h.finalize().into()
}

/// The event a request's change tells of, if it is one the audit keeps:
/// its registration is told by `registered`; here its end.
pub fn for_change(before: &AuthRequest, event: &Event, after: &AuthRequest, at: DateTime<Utc>) -> Option<Record> {
    if before.status == after.status || !after.status.is_terminal() {
        return None;
    }
    let kind = match after.status {
        Status::Verified => Kind::RequestVerified,
        Status::Failed => Kind::RequestFailed,
        Status::Canceled => Kind::RequestCanceled,
        Status::Expired => Kind::RequestExpired,
        Status::Pending | Status::Calling | Status::InProgress => return None,
    };
    let mut data = Map::new();
    data.insert("channel".into(), Value::from(after.delivery.channel.as_str()));
    data.insert("mode".into(), Value::from(after.mode.as_str()));
    data.insert("attempts".into(), Value::from(after.attempts));
    if let Some(reason) = after.failure_reason {
        data.insert("reason".into(), Value::from(reason.as_str()));
    }
    data.insert("by".into(), Value::from(cause(event)));
    Some(Record { kind, tenant_id: Some(after.tenant_id), request_id: Some(after.id), at, data: Value::Object(data) })
}

/// Who ended a request, in a word.
fn cause(event: &Event) -> &'static str {
    match event {
        Event::Cancel => "site",
        Event::CodeChecked { .. } => "site_check",
        Event::Expire => "clock",
        Event::CodeEntered { .. } | Event::KeysPressed { .. } | Event::InboundCodeEntered { .. } => "caller",
        Event::SmsFailed | Event::SmsSent { .. } | Event::SmsDelivered { .. } => "sms",
        _ => "call",
    }
}

/// A request's registration.
pub fn registered(r: &AuthRequest) -> Record {
    let mut data = Map::new();
    data.insert("channel".into(), Value::from(r.delivery.channel.as_str()));
    data.insert("mode".into(), Value::from(r.mode.as_str()));
    data.insert("number".into(), Value::from(crate::domain::phone::mask_numbers(r.phone_number.as_str())));
    if let Some(external) = &r.external_id {
        data.insert("external_id".into(), Value::from(external.as_str()));
    }
    Record {
        kind: Kind::RequestRegistered,
        tenant_id: Some(r.tenant_id),
        request_id: Some(r.id),
        at: r.created_at,
        data: Value::Object(data),
    }
}

/// Checks one chain's sealed events, oldest first, from `anchor` (the hash
/// of the last purged event, or `GENESIS`). Returns the seq of the first
/// event whose stored hash is not what its content and predecessor give.
pub fn first_broken<'a>(
    anchor: [u8; 32],
    anchor_seq: u64,
    events: impl IntoIterator<Item = (u64, &'a Record, [u8; 32])>,
) -> Option<u64> {
    let mut prev = anchor;
    for (expected_seq, (seq, record, stored)) in (anchor_seq + 1..).zip(events) {
        if seq != expected_seq || link(&prev, record, seq) != stored {
            return Some(seq);
        }
        prev = stored;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: i64) -> Record {
        Record {
            kind: Kind::RequestVerified,
            tenant_id: Some(Uuid::nil()),
            request_id: Some(Uuid::from_u128(n as u128)),
            at: DateTime::from_timestamp(1_800_000_000 + n, 0).unwrap(),
            data: serde_json::json!({ "z": 1, "a": { "y": 2, "b": 3 } }),
        }
    }

    fn sealed(records: &[Record]) -> Vec<(u64, &Record, [u8; 32])> {
        let mut prev = GENESIS;
        records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let seq = i as u64 + 1;
                prev = link(&prev, r, seq);
                (seq, r, prev)
            })
            .collect()
    }

    #[test]
    fn a_chain_verifies_until_an_event_is_changed_or_removed() {
        let records: Vec<Record> = (0..5).map(record).collect();
        let chain = sealed(&records);
        assert_eq!(first_broken(GENESIS, 0, chain.clone()), None);

        let mut changed = records.clone();
        changed[2].data = serde_json::json!({ "reason": "wrong_code" });
        let tampered: Vec<_> = chain.iter().zip(&changed).map(|((s, _, h), r)| (*s, r, *h)).collect();
        assert_eq!(first_broken(GENESIS, 0, tampered), Some(3), "the changed event is named");

        let mut removed = chain.clone();
        removed.remove(1);
        assert_eq!(first_broken(GENESIS, 0, removed), Some(3), "the one after the gap is named");
    }

    #[test]
    fn a_purged_head_leaves_an_anchor_the_rest_verifies_from() {
        let records: Vec<Record> = (0..5).map(record).collect();
        let chain = sealed(&records);
        let (anchor_seq, _, anchor) = chain[1];
        assert_eq!(first_broken(anchor, anchor_seq, chain[2..].to_vec()), None);
        assert_eq!(first_broken(GENESIS, 0, chain[2..].to_vec()), Some(3), "no anchor, no proof");
    }

    #[test]
    fn the_canonical_form_does_not_depend_on_key_order() {
        let a = record(1);
        let mut b = a.clone();
        b.data = serde_json::json!({ "a": { "b": 3, "y": 2 }, "z": 1 });
        assert_eq!(a.canonical(7), b.canonical(7));
        assert_ne!(a.canonical(7), a.canonical(8), "the position is covered");
        assert!(a.canonical(7).contains(r#""at":"2027-01-15T08:00:01.000Z""#), "{}", a.canonical(7));
    }

    #[test]
    fn the_canonical_form_is_the_one_every_stored_chain_was_sealed_with() {
        let mut r = record(1);
        r.request_id = Some(Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef));
        // Fixed text: a change to it breaks the check of every chain already stored.
        assert_eq!(
            r.canonical(42),
            r#"{"at":"2027-01-15T08:00:01.000Z","chain":"00000000-0000-0000-0000-000000000000","data":{"a":{"b":3,"y":2},"z":1},"kind":"request.verified","request_id":"01234567-89ab-cdef-0123-456789abcdef","seq":42}"#
        );
        r.tenant_id = None;
        r.request_id = None;
        assert_eq!(
            r.canonical(43),
            r#"{"at":"2027-01-15T08:00:01.000Z","chain":"server","data":{"a":{"b":3,"y":2},"z":1},"kind":"request.verified","request_id":null,"seq":43}"#
        );
    }

    #[test]
    fn kinds_have_stable_names() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Kind::RequestFailed.as_str(), "request.failed");
    }
}
