//! The SQLite backend's request search and timelines.

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter};
use uuid::Uuid;

use super::SqliteStore;
use super::pool::{Writer, db_err};
use super::rows::{self, from_ms, ms};
use crate::domain::request::AuthRequest;
use crate::domain::timeline::{Detail, Entry};
use crate::store::StoreError;
use crate::store::stats::{LookupStore, Param, RequestSearch};

/// Appends timeline entries.
pub(super) fn insert_timeline(c: &Writer<'_>, entries: &[Entry]) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let sql = "INSERT OR IGNORE INTO request_events (request_id, at, kind, detail) VALUES (?1, ?2, ?3, ?4)";
    c.with(sql, |stmt| {
        for e in entries {
            stmt.execute(params![e.request_id.as_bytes(), ms(e.at), e.kind.as_ref(), e.detail.as_str()])?;
        }
        Ok(())
    })
    .map_err(db_err)
}

fn value(p: Param) -> Value {
    match p {
        Param::Text(s) => Value::Text(s),
        Param::Time(t) => Value::Integer(ms(t)),
        Param::Id(id) => Value::Blob(id.as_bytes().to_vec()),
    }
}

#[async_trait]
impl LookupStore for SqliteStore {
    async fn search_requests(&self, search: RequestSearch) -> Result<Vec<AuthRequest>, StoreError> {
        let (clauses, params) = search.clauses();
        let sql = format!(concat!("SELECT ", request_columns!(), " FROM auth_requests{}"), clauses);
        self.pool
            .read(move |c| {
                let mut stmt = c.prepare_cached(&sql).map_err(db_err)?;
                let rows = stmt
                    .query_map(params_from_iter(params.into_iter().map(value)), rows::request_from_row)
                    .map_err(db_err)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
            })
            .await
    }

    async fn timeline(&self, request: Uuid) -> Result<Vec<Entry>, StoreError> {
        self.pool
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached("SELECT at, kind, detail FROM request_events WHERE request_id = ?1 ORDER BY at")
                    .map_err(db_err)?;
                let rows = stmt
                    .query_map([request.as_bytes()], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
                    })
                    .map_err(db_err)?;
                let mut out = Vec::new();
                for row in rows {
                    let (at, kind, detail) = row.map_err(db_err)?;
                    out.push(Entry {
                        request_id: request,
                        // Not needed to show a timeline: the request's own.
                        tenant_id: Uuid::nil(),
                        at: from_ms(at).map_err(db_err)?,
                        kind: kind.into(),
                        detail: Detail::stored(detail),
                    });
                }
                Ok(out)
            })
            .await
    }

    async fn append_timeline(&self, entries: Vec<Entry>) -> Result<(), StoreError> {
        self.pool.write(move |c| insert_timeline(c, &entries)).await
    }
}
