//! What the server keeps of its audit trail and funnel: events appended
//! unsealed, sealed into chains afterwards, read, verified, purged.
//!
//! The rules of a chain (`domain::audit::link`, `first_broken`) are the
//! domain's; here are the walk over stored rows that both backends share
//! (`seal_rows`, `verify`) and the trait each backend answers with its SQL.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::audit::{self, GENESIS, Kind, Record};
use crate::domain::funnel::Step;
use crate::store::StoreError;

/// An audit event as stored: `seq` and `hash` are `None` until it is sealed.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Insertion order (unique across chains).
    pub id: i64,
    pub record: Record,
    pub seq: Option<u64>,
    pub hash: Option<[u8; 32]>,
}

/// A chain's head (its last sealed event) and anchor (its last purged one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: [u8; 32],
    pub anchor_seq: u64,
    pub anchor_hash: [u8; 32],
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only this tenant's chain; `None`: every chain.
    pub tenant: Option<Uuid>,
    /// Only these kinds (empty: all).
    pub kinds: Vec<Kind>,
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub to: Option<DateTime<Utc>>,
    pub request_id: Option<Uuid>,
    /// Newest first, with ids below this one (the API's cursor).
    pub before_id: Option<i64>,
    /// Oldest first, with ids above this one (the export's paging).
    pub after_id: Option<i64>,
    pub oldest_first: bool,
    pub limit: usize,
}

/// Steps counted in one period: (period start, step, detail, count).
pub type StepCount = (DateTime<Utc>, Step, Option<String>, u64);

/// The audit trail and the funnel's rows.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Appends events, unsealed, in one commit (events that are not written
    /// with a request's change: tenants', the server's, refusals).
    async fn append_audit(&self, records: Vec<Record>) -> Result<(), StoreError>;
    /// Seals up to `limit` unsealed events in id order (`seal_rows`); one
    /// sealer at a time across servers. Answers how many it sealed.
    async fn seal_audit(&self, limit: usize) -> Result<usize, StoreError>;
    /// Every chain's head.
    async fn audit_heads(&self) -> Result<HashMap<String, ChainHead>, StoreError>;
    /// The chains that have sealed events stored.
    async fn audit_chains_stored(&self) -> Result<Vec<String>, StoreError>;
    /// A chain's sealed events with seq above `after_seq`, by seq, at most `limit`.
    async fn audit_chain(&self, chain: &str, after_seq: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;
    /// How many events wait for the sealer.
    async fn unsealed_audit(&self) -> Result<u64, StoreError>;
    async fn audit_events(&self, query: AuditQuery) -> Result<Vec<StoredEvent>, StoreError>;
    /// Deletes sealed events older than `before`, per chain from its oldest,
    /// moving the chain's anchor to the last one deleted in the same commit;
    /// and funnel steps older than `before`. Answers how many rows went.
    async fn purge_audit(&self, before: DateTime<Utc>) -> Result<usize, StoreError>;
    /// The tenant's funnel steps at or after `from` and before `to`, counted
    /// per period of `bucket_seconds` (periods start at multiples of it since
    /// the epoch), step and detail; ordered by period, step, detail.
    async fn step_counts(
        &self,
        tenant: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket_seconds: u32,
    ) -> Result<Vec<StepCount>, StoreError>;
}

/// The seq and hash of each unsealed event (`rows`, in id order), each
/// linked to the one before it in its chain; `heads` moves along.
pub fn seal_rows(heads: &mut HashMap<String, ChainHead>, rows: &[(i64, Record)]) -> Vec<(i64, u64, [u8; 32])> {
    rows.iter()
        .map(|(id, record)| {
            let head = heads.entry(record.chain()).or_insert(ChainHead {
                seq: 0,
                hash: GENESIS,
                anchor_seq: 0,
                anchor_hash: GENESIS,
            });
            let seq = head.seq + 1;
            let hash = audit::link(&head.hash, record, seq);
            (head.seq, head.hash) = (seq, hash);
            (*id, seq, hash)
        })
        .collect()
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Intact {
        chains: usize,
        events: u64,
        unsealed: u64,
    },
    /// The first broken event of the first broken chain (chains in name order).
    Broken {
        chain: String,
        seq: u64,
        id: Option<i64>,
        kind: Option<Kind>,
        why: &'static str,
    },
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Intact { chains, events, unsealed } => {
                write!(f, "audit chains intact: {chains} chains, {events} sealed events, {unsealed} not sealed yet")
            }
            Self::Broken { chain, seq, id, kind, why } => {
                write!(f, "audit chain {chain} broken at seq {seq}")?;
                if let Some(id) = id {
                    write!(f, " (event id {id}")?;
                    if let Some(kind) = kind {
                        write!(f, ", {}", kind.as_str())?;
                    }
                    write!(f, ")")?;
                }
                write!(f, ": {why}")
            }
        }
    }
}

/// Events read per query while verifying.
const PAGE: usize = 1000;

/// Recomputes every chain from its anchor and checks that its head is its
/// last stored event (a removed tail is noticed too).
pub async fn verify(store: &dyn AuditStore) -> Result<Verdict, StoreError> {
    let heads = store.audit_heads().await?;
    let mut chains: Vec<String> = heads.keys().cloned().collect();
    for stored in store.audit_chains_stored().await? {
        if !heads.contains_key(&stored) {
            return Ok(head_missing(stored));
        }
    }
    chains.sort();
    let mut events = 0;
    for chain in &chains {
        match check_chain(store, chain, heads[chain]).await? {
            Ok(n) => events += n,
            Err(broken) => return Ok(broken),
        }
    }
    Ok(Verdict::Intact { chains: chains.len(), events, unsealed: store.unsealed_audit().await? })
}

/// `verify` for one chain (a tenant's id, or `server`). A chain with no
/// sealed event yet is intact with none; `unsealed` is not counted (0).
pub async fn verify_chain(store: &dyn AuditStore, chain: &str) -> Result<Verdict, StoreError> {
    let heads = store.audit_heads().await?;
    let Some(head) = heads.get(chain) else {
        if store.audit_chains_stored().await?.iter().any(|c| c == chain) {
            return Ok(head_missing(chain.to_owned()));
        }
        return Ok(Verdict::Intact { chains: 0, events: 0, unsealed: 0 });
    };
    Ok(match check_chain(store, chain, *head).await? {
        Ok(events) => Verdict::Intact { chains: 1, events, unsealed: 0 },
        Err(broken) => broken,
    })
}

fn head_missing(chain: String) -> Verdict {
    Verdict::Broken { chain, seq: 0, id: None, kind: None, why: "its head is missing" }
}

/// Recomputes one chain from its anchor to `head`: how many events it holds,
/// or where it breaks.
async fn check_chain(store: &dyn AuditStore, chain: &str, head: ChainHead) -> Result<Result<u64, Verdict>, StoreError> {
    let (mut seq, mut hash) = (head.anchor_seq, head.anchor_hash);
    let mut events = 0;
    loop {
        let page = store.audit_chain(chain, seq, PAGE).await?;
        let rows = page.iter().filter_map(|e| Some((e.seq?, &e.record, e.hash?)));
        if let Some(bad) = audit::first_broken(hash, seq, rows) {
            let at = page.iter().position(|e| e.seq == Some(bad));
            let e = at.map(|n| &page[n]);
            let in_place = at.is_some_and(|n| seq + 1 + n as u64 == bad);
            return Ok(Err(Verdict::Broken {
                chain: chain.to_owned(),
                seq: bad,
                id: e.map(|e| e.id),
                kind: e.map(|e| e.record.kind),
                why: if in_place { "its content or its link does not match" } else { "the event before it is missing" },
            }));
        }
        events += page.len() as u64;
        match page.last() {
            Some(last) => (seq, hash) = (last.seq.unwrap_or(seq), last.hash.unwrap_or(hash)),
            None => break,
        }
        if page.len() < PAGE {
            break;
        }
    }
    if (seq, hash) != (head.seq, head.hash) {
        return Ok(Err(Verdict::Broken {
            chain: chain.to_owned(),
            seq: head.seq,
            id: None,
            kind: None,
            why: "its last events are missing (the head is past the last stored event)",
        }));
    }
    Ok(Ok(events))
}

/// A stored hash of 32 bytes.
pub fn hash_from(bytes: &[u8]) -> Result<[u8; 32], StoreError> {
    bytes.try_into().map_err(|_| StoreError::Corrupt("an audit hash is not 32 bytes".into()))
}

/// A stored kind name.
pub fn kind_from(name: &str) -> Result<Kind, StoreError> {
    Kind::parse(name).ok_or_else(|| StoreError::Corrupt(format!("unknown audit event kind {name:?}")))
}

/// A stored step name.
pub fn step_from(name: &str) -> Result<Step, StoreError> {
    Step::parse(name).ok_or_else(|| StoreError::Corrupt(format!("unknown funnel step {name:?}")))
}

/// A stored JSON text; `what` names it in the error (an event's audit data,
/// a timeline entry's detail).
pub fn json_from(text: &str, what: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what} is not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_that_is_not_json_is_named_in_the_error() {
        assert_eq!(json_from(r#"{"a":1}"#, "audit data").unwrap(), serde_json::json!({"a": 1}));
        let Err(StoreError::Corrupt(message)) = json_from("{", "a timeline entry's detail") else {
            panic!("not JSON, yet read");
        };
        assert!(message.starts_with("a timeline entry's detail is not JSON: "), "{message}");
    }
}
