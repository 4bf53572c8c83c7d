//! The PostgreSQL backend's audit trail and funnel steps. Any node inserts
//! events unsealed; one node at a time (an advisory lock) seals or purges.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::PgStore;
use super::retry::Fail;
use crate::clock::to_millis;
use crate::domain::audit::Record;
use crate::domain::funnel::Reached;
use crate::store::audit::{StepCount, hash_from, json_from, kind_from, seal_rows, step_from};
use crate::store::{AuditQuery, AuditStore, ChainHead, StoreError, StoredEvent};

const EVENT_COLUMNS: &str = "id, kind, tenant_id, request_id, at, data, seq, hash";
/// Held by the node that seals or purges, for its transaction.
/// Advisory locks are the database's, not the schema's: the key names the
/// schema, so that deployments in two schemas of one database (and tests
/// running side by side) never take each other's turn.
pub const LOCK: &str =
    "SELECT pg_try_advisory_xact_lock(hashtextextended('ivr-auth audit sealer ' || current_schema(), 0))";

/// Audit events as the column arrays of `ADD_EVENTS`.
pub(super) struct EventArrays {
    chain: Vec<String>,
    kind: Vec<&'static str>,
    tenant: Vec<Option<Uuid>>,
    request: Vec<Option<Uuid>>,
    at: Vec<DateTime<Utc>>,
    data: Vec<String>,
}

pub(super) const ADD_EVENTS: &str = "INSERT INTO audit_events (chain, kind, tenant_id, request_id, at, data) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[], $4::uuid[], $5::timestamptz[], $6::text[])";

impl EventArrays {
    pub(super) fn new<'a>(records: impl IntoIterator<Item = &'a Record>) -> Self {
        let mut a = Self {
            chain: Vec::new(),
            kind: Vec::new(),
            tenant: Vec::new(),
            request: Vec::new(),
            at: Vec::new(),
            data: Vec::new(),
        };
        for r in records {
            a.chain.push(r.chain());
            a.kind.push(r.kind.as_str());
            a.tenant.push(r.tenant_id);
            a.request.push(r.request_id);
            a.at.push(to_millis(r.at));
            a.data.push(r.data.to_string());
        }
        a
    }

    pub(super) fn is_empty(&self) -> bool {
        self.chain.is_empty()
    }

    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 6] {
        [&self.chain, &self.kind, &self.tenant, &self.request, &self.at, &self.data]
    }
}

/// Funnel steps as the column arrays of `ADD_STEPS`.
pub(super) struct StepArrays {
    request: Vec<Uuid>,
    tenant: Vec<Uuid>,
    step: Vec<&'static str>,
    detail: Vec<Option<String>>,
    at: Vec<DateTime<Utc>>,
}

pub(super) const ADD_STEPS: &str = "INSERT INTO request_steps (request_id, tenant_id, step, detail, at) \
     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[])";

impl StepArrays {
    pub(super) fn new<'a>(steps: impl IntoIterator<Item = &'a Reached>) -> Self {
        let mut a =
            Self { request: Vec::new(), tenant: Vec::new(), step: Vec::new(), detail: Vec::new(), at: Vec::new() };
        for s in steps {
            a.request.push(s.request_id);
            a.tenant.push(s.tenant_id);
            a.step.push(s.step.as_str());
            a.detail.push(s.detail.clone());
            a.at.push(to_millis(s.at));
        }
        a
    }

    pub(super) fn is_empty(&self) -> bool {
        self.request.is_empty()
    }

    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 5] {
        [&self.request, &self.tenant, &self.step, &self.detail, &self.at]
    }
}

fn event(row: &Row) -> Result<StoredEvent, Fail> {
    let kind: String = row.try_get(1)?;
    let data: String = row.try_get(5)?;
    let seq: Option<i64> = row.try_get(6)?;
    let hash: Option<Vec<u8>> = row.try_get(7)?;
    Ok(StoredEvent {
        id: row.try_get(0)?,
        record: Record {
            kind: kind_from(&kind)?,
            tenant_id: row.try_get(2)?,
            request_id: row.try_get(3)?,
            at: row.try_get(4)?,
            data: json_from(&data, "audit data")?,
        },
        seq: seq.map(|s| s as u64),
        hash: hash.as_deref().map(hash_from).transpose()?,
    })
}

async fn heads(c: &impl GenericClient) -> Result<HashMap<String, ChainHead>, Fail> {
    let rows = c.query("SELECT chain, seq, hash, anchor_seq, anchor_hash FROM audit_chains", &[]).await?;
    let mut out = HashMap::new();
    for r in rows {
        let (hash, anchor): (Vec<u8>, Vec<u8>) = (r.try_get(2)?, r.try_get(4)?);
        let head = ChainHead {
            seq: r.try_get::<_, i64>(1)? as u64,
            hash: hash_from(&hash)?,
            anchor_seq: r.try_get::<_, i64>(3)? as u64,
            anchor_hash: hash_from(&anchor)?,
        };
        out.insert(r.try_get(0)?, head);
    }
    Ok(out)
}

async fn save_heads(c: &impl GenericClient, heads: &[(&String, &ChainHead)]) -> Result<(), Fail> {
    let chain: Vec<&str> = heads.iter().map(|(c, _)| c.as_str()).collect();
    let seq: Vec<i64> = heads.iter().map(|(_, h)| h.seq as i64).collect();
    let hash: Vec<&[u8]> = heads.iter().map(|(_, h)| h.hash.as_slice()).collect();
    let anchor_seq: Vec<i64> = heads.iter().map(|(_, h)| h.anchor_seq as i64).collect();
    let anchor_hash: Vec<&[u8]> = heads.iter().map(|(_, h)| h.anchor_hash.as_slice()).collect();
    c.execute(
        "INSERT INTO audit_chains (chain, seq, hash, anchor_seq, anchor_hash) \
         SELECT * FROM unnest($1::text[], $2::int8[], $3::bytea[], $4::int8[], $5::bytea[]) \
         ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, \
         anchor_seq = excluded.anchor_seq, anchor_hash = excluded.anchor_hash",
        &[&chain, &seq, &hash, &anchor_seq, &anchor_hash],
    )
    .await?;
    Ok(())
}

#[async_trait]
impl AuditStore for PgStore {
    async fn append_audit(&self, records: Vec<Record>) -> Result<(), StoreError> {
        let a = EventArrays::new(&records);
        if a.is_empty() {
            return Ok(());
        }
        retrying!(&self.db, "operation", |c, _tries| {
            c.execute(ADD_EVENTS, &a.params()).await?;
            Ok(())
        })
    }

    async fn seal_audit(&self, limit: usize) -> Result<usize, StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            let tx = c.transaction().await?;
            if !tx.query_one(LOCK, &[]).await?.try_get::<_, bool>(0)? {
                // Another node is sealing now.
                return Ok(0);
            }
            let sql = format!("SELECT {EVENT_COLUMNS} FROM audit_events WHERE seq IS NULL ORDER BY id LIMIT $1");
            let rows = tx.query(&sql, &[&(limit as i64)]).await?;
            if rows.is_empty() {
                return Ok(0);
            }
            let unsealed: Vec<(i64, Record)> =
                rows.iter().map(event).map(|e| e.map(|e| (e.id, e.record))).collect::<Result<_, Fail>>()?;
            let mut heads = heads(&tx).await?;
            let sealed = seal_rows(&mut heads, &unsealed);
            let ids: Vec<i64> = sealed.iter().map(|s| s.0).collect();
            let seqs: Vec<i64> = sealed.iter().map(|s| s.1 as i64).collect();
            let hashes: Vec<&[u8]> = sealed.iter().map(|s| s.2.as_slice()).collect();
            tx.execute(
                "UPDATE audit_events AS a SET seq = u.seq, hash = u.hash \
                 FROM unnest($1::int8[], $2::int8[], $3::bytea[]) AS u(id, seq, hash) WHERE a.id = u.id",
                &[&ids, &seqs, &hashes],
            )
            .await?;
            let touched: std::collections::HashSet<String> = unsealed.iter().map(|(_, r)| r.chain()).collect();
            let changed: Vec<(&String, &ChainHead)> = heads.iter().filter(|(c, _)| touched.contains(*c)).collect();
            save_heads(&tx, &changed).await?;
            tx.commit().await?;
            Ok(sealed.len())
        })
    }

    async fn audit_heads(&self) -> Result<HashMap<String, ChainHead>, StoreError> {
        retrying!(&self.db, "operation", |c, _tries| heads(&*c).await)
    }

    async fn audit_chains_stored(&self) -> Result<Vec<String>, StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            let rows = c.query("SELECT DISTINCT chain FROM audit_events WHERE seq IS NOT NULL", &[]).await?;
            Ok(rows.iter().map(|r| r.try_get(0)).collect::<Result<Vec<String>, _>>()?)
        })
    }

    async fn audit_chain(&self, chain: &str, after_seq: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let sql =
            format!("SELECT {EVENT_COLUMNS} FROM audit_events WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3");
        retrying!(&self.db, "operation", |c, _tries| {
            let rows = c.query(&sql, &[&chain, &(after_seq as i64), &(limit as i64)]).await?;
            rows.iter().map(event).collect::<Result<Vec<_>, Fail>>()
        })
    }

    async fn unsealed_audit(&self) -> Result<u64, StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            let n: i64 = c.query_one("SELECT count(*) FROM audit_events WHERE seq IS NULL", &[]).await?.try_get(0)?;
            Ok(n as u64)
        })
    }

    async fn audit_events(&self, q: AuditQuery) -> Result<Vec<StoredEvent>, StoreError> {
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM audit_events WHERE true");
        let mut p: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut add = |cond: &str, v: Box<dyn ToSql + Sync + Send>| {
            p.push(v);
            sql.push_str(&format!(" AND {cond} ${}", p.len()));
        };
        if let Some(t) = q.tenant {
            add("tenant_id =", Box::new(t));
        }
        if let Some(r) = q.request_id {
            add("request_id =", Box::new(r));
        }
        if let Some(from) = q.from {
            add("at >=", Box::new(from));
        }
        if let Some(to) = q.to {
            add("at <", Box::new(to));
        }
        if let Some(id) = q.before_id {
            add("id <", Box::new(id));
        }
        if let Some(id) = q.after_id {
            add("id >", Box::new(id));
        }
        if !q.kinds.is_empty() {
            let kinds: Vec<&'static str> = q.kinds.iter().map(|k| k.as_str()).collect();
            p.push(Box::new(kinds));
            sql.push_str(&format!(" AND kind = ANY(${})", p.len()));
        }
        sql.push_str(if q.oldest_first { " ORDER BY id" } else { " ORDER BY id DESC" });
        p.push(Box::new(q.limit as i64));
        sql.push_str(&format!(" LIMIT ${}", p.len()));
        let params: Vec<&(dyn ToSql + Sync)> = p.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect();
        retrying!(&self.db, "operation", |c, _tries| {
            let rows = c.query(&sql, &params).await?;
            rows.iter().map(event).collect::<Result<Vec<_>, Fail>>()
        })
    }

    async fn purge_audit(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            let tx = c.transaction().await?;
            if !tx.query_one(LOCK, &[]).await?.try_get::<_, bool>(0)? {
                return Ok(0);
            }
            let mut gone = 0;
            let mut moved = Vec::new();
            for (chain, mut head) in heads(&tx).await? {
                // The newest event of the old prefix: every one up to it is older than `before`.
                let last = tx
                    .query_opt(
                        "SELECT seq, hash FROM audit_events WHERE chain = $1 AND seq IS NOT NULL AND at < $2 \
                         AND seq < COALESCE((SELECT min(seq) FROM audit_events \
                                             WHERE chain = $1 AND seq IS NOT NULL AND at >= $2), $3) \
                         ORDER BY seq DESC LIMIT 1",
                        &[&chain, &before, &(head.seq as i64 + 1)],
                    )
                    .await?;
                let Some(last) = last else { continue };
                let (seq, hash): (i64, Vec<u8>) = (last.try_get(0)?, last.try_get(1)?);
                gone += tx.execute("DELETE FROM audit_events WHERE chain = $1 AND seq <= $2", &[&chain, &seq]).await?;
                (head.anchor_seq, head.anchor_hash) = (seq as u64, hash_from(&hash)?);
                moved.push((chain, head));
            }
            let refs: Vec<(&String, &ChainHead)> = moved.iter().map(|(c, h)| (c, h)).collect();
            if !refs.is_empty() {
                save_heads(&tx, &refs).await?;
            }
            // Per tenant, along the (tenant_id, at) index: no index on `at` alone to keep up.
            gone += tx
                .execute(
                    "DELETE FROM request_steps WHERE tenant_id IN (SELECT id FROM tenants) AND at < $1",
                    &[&before],
                )
                .await?;
            tx.commit().await?;
            Ok(gone as usize)
        })
    }

    async fn step_counts(
        &self,
        tenant: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket_seconds: u32,
    ) -> Result<Vec<StepCount>, StoreError> {
        let width = f64::from(bucket_seconds.max(1));
        retrying!(&self.db, "operation", |c, _tries| {
            let rows = c
                .query(
                    "SELECT to_timestamp(floor(extract(epoch FROM at)::float8 / $4) * $4) AS bucket, step, detail, count(*) \
                     FROM request_steps WHERE tenant_id = $1 AND at >= $2 AND at < $3 \
                     GROUP BY 1, 2, 3",
                    &[&tenant, &from, &to, &width],
                )
                .await?;
            let mut out: Vec<StepCount> = Vec::with_capacity(rows.len());
            for r in &rows {
                let step: String = r.try_get(1)?;
                let n: i64 = r.try_get(3)?;
                out.push((r.try_get(0)?, step_from(&step)?, r.try_get(2)?, n as u64));
            }
            out.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
            Ok(out)
        })
    }
}
