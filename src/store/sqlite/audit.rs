//! The SQLite backend's audit trail and funnel steps (sealed on the writer thread).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, Row, ToSql, params, params_from_iter};
use uuid::Uuid;

use super::SqliteStore;
use super::pool::{Writer, db_err};
use super::rows::{from_ms, ms};
use crate::domain::audit::Record;
use crate::domain::funnel::Reached;
use crate::store::audit::{StepCount, hash_from, json_from, kind_from, seal_rows, step_from};
use crate::store::{AuditQuery, AuditStore, ChainHead, StoreError, StoredEvent};

const EVENT_COLUMNS: &str = "id, kind, tenant_id, request_id, at, data, seq, hash";

/// Appends audit events, unsealed.
pub(super) fn insert_records(c: &Writer<'_>, records: &[Record]) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let sql = "INSERT INTO audit_events (chain, kind, tenant_id, request_id, at, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    c.with(sql, |stmt| {
        for r in records {
            let tenant = r.tenant_id.as_ref().map(|t| t.as_bytes().as_slice());
            let request = r.request_id.as_ref().map(|t| t.as_bytes().as_slice());
            stmt.execute(params![r.chain(), r.kind.as_str(), tenant, request, ms(r.at), r.data.to_string()])?;
        }
        Ok(())
    })
    .map_err(db_err)
}

/// Appends funnel steps.
pub(super) fn insert_steps(c: &Writer<'_>, steps: &[Reached]) -> Result<(), StoreError> {
    if steps.is_empty() {
        return Ok(());
    }
    let sql = "INSERT INTO request_steps (request_id, tenant_id, step, detail, at) VALUES (?1, ?2, ?3, ?4, ?5)";
    c.with(sql, |stmt| {
        for s in steps {
            stmt.execute(params![
                s.request_id.as_bytes(),
                s.tenant_id.as_bytes(),
                s.step.as_str(),
                s.detail,
                ms(s.at)
            ])?;
        }
        Ok(())
    })
    .map_err(db_err)
}

fn uuid_of(bytes: Option<Vec<u8>>) -> rusqlite::Result<Option<Uuid>> {
    bytes.map(|b| Uuid::from_slice(&b).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))).transpose()
}

/// A row of `EVENT_COLUMNS`, its parts still raw (errors sorted out by `event`).
type RawEvent = (i64, String, Option<Vec<u8>>, Option<Vec<u8>>, i64, String, Option<i64>, Option<Vec<u8>>);

fn raw(row: &Row<'_>) -> rusqlite::Result<RawEvent> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?, row.get(7)?))
}

fn event(raw: RawEvent) -> Result<StoredEvent, StoreError> {
    let (id, kind, tenant, request, at, data, seq, hash) = raw;
    Ok(StoredEvent {
        id,
        record: Record {
            kind: kind_from(&kind)?,
            tenant_id: uuid_of(tenant).map_err(db_err)?,
            request_id: uuid_of(request).map_err(db_err)?,
            at: from_ms(at).map_err(db_err)?,
            data: json_from(&data, "audit data")?,
        },
        seq: seq.map(|s| s as u64),
        hash: hash.as_deref().map(hash_from).transpose()?,
    })
}

fn events(c: &Connection, sql: &str, p: &[&dyn ToSql]) -> Result<Vec<StoredEvent>, StoreError> {
    let mut stmt = c.prepare_cached(sql).map_err(db_err)?;
    let rows = stmt.query_map(p, raw).map_err(db_err)?.collect::<Result<Vec<_>, _>>().map_err(db_err)?;
    rows.into_iter().map(event).collect()
}

fn heads(c: &Connection) -> Result<HashMap<String, ChainHead>, StoreError> {
    let mut stmt =
        c.prepare_cached("SELECT chain, seq, hash, anchor_seq, anchor_hash FROM audit_chains").map_err(db_err)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Vec<u8>>(4)?,
            ))
        })
        .map_err(db_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(db_err)?;
    rows.into_iter()
        .map(|(chain, seq, hash, anchor_seq, anchor)| {
            let head = ChainHead {
                seq: seq as u64,
                hash: hash_from(&hash)?,
                anchor_seq: anchor_seq as u64,
                anchor_hash: hash_from(&anchor)?,
            };
            Ok((chain, head))
        })
        .collect()
}

fn save_head(c: &Connection, chain: &str, h: &ChainHead) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO audit_chains (chain, seq, hash, anchor_seq, anchor_hash) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, \
         anchor_seq = excluded.anchor_seq, anchor_hash = excluded.anchor_hash",
    )
    .and_then(|mut s| {
        s.execute(params![chain, h.seq as i64, h.hash.as_slice(), h.anchor_seq as i64, h.anchor_hash.as_slice()])
    })
    .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, records: Vec<Record>) -> Result<(), StoreError> {
        self.pool.write(move |c| insert_records(c, &records)).await
    }

    async fn seal_audit(&self, limit: usize) -> Result<usize, StoreError> {
        self.pool
            .write(move |c| {
                let sql = format!("SELECT {EVENT_COLUMNS} FROM audit_events WHERE seq IS NULL ORDER BY id LIMIT ?1");
                let unsealed = events(c, &sql, &[&(limit as i64)])?;
                if unsealed.is_empty() {
                    return Ok(0);
                }
                let mut heads = heads(c)?;
                let rows: Vec<(i64, Record)> = unsealed.into_iter().map(|e| (e.id, e.record)).collect();
                let sealed = seal_rows(&mut heads, &rows);
                let mut stmt =
                    c.prepare_cached("UPDATE audit_events SET seq = ?2, hash = ?3 WHERE id = ?1").map_err(db_err)?;
                for (id, seq, hash) in &sealed {
                    stmt.execute(params![id, *seq as i64, hash.as_slice()]).map_err(db_err)?;
                }
                let touched: std::collections::HashSet<String> = rows.iter().map(|(_, r)| r.chain()).collect();
                for chain in touched {
                    save_head(c, &chain, &heads[&chain])?;
                }
                Ok(sealed.len())
            })
            .await
    }

    async fn audit_heads(&self) -> Result<HashMap<String, ChainHead>, StoreError> {
        self.pool.read(heads).await
    }

    async fn audit_chains_stored(&self) -> Result<Vec<String>, StoreError> {
        self.pool
            .read(|c| {
                let mut stmt = c
                    .prepare_cached("SELECT DISTINCT chain FROM audit_events WHERE seq IS NOT NULL")
                    .map_err(db_err)?;
                let rows = stmt.query_map([], |r| r.get(0)).map_err(db_err)?;
                rows.collect::<Result<Vec<String>, _>>().map_err(db_err)
            })
            .await
    }

    async fn audit_chain(&self, chain: &str, after_seq: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let chain = chain.to_owned();
        self.pool
            .read(move |c| {
                let sql = format!(
                    "SELECT {EVENT_COLUMNS} FROM audit_events WHERE chain = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
                );
                events(c, &sql, &[&chain, &(after_seq as i64), &(limit as i64)])
            })
            .await
    }

    async fn unsealed_audit(&self) -> Result<u64, StoreError> {
        self.pool
            .read(|c| {
                c.query_row("SELECT COUNT(*) FROM audit_events WHERE seq IS NULL", [], |r| r.get::<_, i64>(0))
                    .map(|n| n as u64)
                    .map_err(db_err)
            })
            .await
    }

    async fn audit_events(&self, q: AuditQuery) -> Result<Vec<StoredEvent>, StoreError> {
        self.pool
            .read(move |c| {
                let mut sql = format!("SELECT {EVENT_COLUMNS} FROM audit_events WHERE 1 = 1");
                let mut p: Vec<Box<dyn ToSql>> = Vec::new();
                let mut add = |cond: &str, v: Box<dyn ToSql>| {
                    p.push(v);
                    sql.push_str(&format!(" AND {cond} ?{}", p.len()));
                };
                if let Some(t) = q.tenant {
                    add("tenant_id =", Box::new(t.as_bytes().to_vec()));
                }
                if let Some(r) = q.request_id {
                    add("request_id =", Box::new(r.as_bytes().to_vec()));
                }
                if let Some(from) = q.from {
                    add("at >=", Box::new(ms(from)));
                }
                if let Some(to) = q.to {
                    add("at <", Box::new(ms(to)));
                }
                if let Some(id) = q.before_id {
                    add("id <", Box::new(id));
                }
                if let Some(id) = q.after_id {
                    add("id >", Box::new(id));
                }
                if !q.kinds.is_empty() {
                    let names: Vec<String> = q.kinds.iter().map(|k| format!("'{}'", k.as_str())).collect();
                    // Kind names are the domain's constants, never the caller's text.
                    sql.push_str(&format!(" AND kind IN ({})", names.join(", ")));
                }
                sql.push_str(if q.oldest_first { " ORDER BY id" } else { " ORDER BY id DESC" });
                p.push(Box::new(q.limit as i64));
                sql.push_str(&format!(" LIMIT ?{}", p.len()));
                let mut stmt = c.prepare(&sql).map_err(db_err)?;
                let rows = stmt
                    .query_map(params_from_iter(p.iter()), raw)
                    .map_err(db_err)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(db_err)?;
                rows.into_iter().map(event).collect()
            })
            .await
    }

    async fn purge_audit(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        self.pool
            .write(move |c| {
                let before = ms(before);
                let mut gone = 0;
                for (chain, mut head) in heads(c)? {
                    // The newest event of the old prefix: every one up to it is older than `before`.
                    let last: Option<(i64, Vec<u8>)> = c
                        .query_row(
                            "SELECT seq, hash FROM audit_events WHERE chain = ?1 AND seq IS NOT NULL AND at < ?2 \
                             AND seq < COALESCE((SELECT MIN(seq) FROM audit_events \
                                                 WHERE chain = ?1 AND seq IS NOT NULL AND at >= ?2), ?3) \
                             ORDER BY seq DESC LIMIT 1",
                            params![chain, before, head.seq as i64 + 1],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )
                        .map(Some)
                        .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
                        .map_err(db_err)?;
                    let Some((seq, hash)) = last else { continue };
                    gone += c
                        .execute("DELETE FROM audit_events WHERE chain = ?1 AND seq <= ?2", params![chain, seq])
                        .map_err(db_err)?;
                    (head.anchor_seq, head.anchor_hash) = (seq as u64, hash_from(&hash)?);
                    save_head(c, &chain, &head)?;
                }
                // Per tenant, along the (tenant_id, at) index: no index on `at` alone to keep up.
                gone += c
                    .execute(
                        "DELETE FROM request_steps WHERE tenant_id IN (SELECT id FROM tenants) AND at < ?1",
                        [before],
                    )
                    .map_err(db_err)?;
                Ok(gone)
            })
            .await
    }

    async fn step_counts(
        &self,
        tenant: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket_seconds: u32,
    ) -> Result<Vec<StepCount>, StoreError> {
        let width = i64::from(bucket_seconds.max(1)) * 1000;
        self.pool
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT (at / ?4) * ?4 AS bucket, step, detail, COUNT(*) FROM request_steps \
                         WHERE tenant_id = ?1 AND at >= ?2 AND at < ?3 \
                         GROUP BY bucket, step, detail ORDER BY bucket, step, detail",
                    )
                    .map_err(db_err)?;
                let rows = stmt
                    .query_map(params![tenant.as_bytes(), ms(from), ms(to), width], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, Option<String>>(2)?,
                            r.get::<_, i64>(3)?,
                        ))
                    })
                    .map_err(db_err)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(db_err)?;
                let mut out: Vec<StepCount> = rows
                    .into_iter()
                    .map(|(bucket, step, detail, n)| {
                        Ok((from_ms(bucket).map_err(db_err)?, step_from(&step)?, detail, n as u64))
                    })
                    .collect::<Result<_, StoreError>>()?;
                // By the domain's step order, not the names' alphabet.
                out.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
                Ok(out)
            })
            .await
    }
}
