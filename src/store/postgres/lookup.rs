//! The PostgreSQL backend's request search and timelines.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::rows::request_from_row;
use super::{PgStore, numbered};
use crate::clock::to_millis;
use crate::domain::request::AuthRequest;
use crate::domain::timeline::{Detail, Entry};
use crate::store::StoreError;
use crate::store::stats::{LookupStore, Param, RequestSearch};

/// Timeline entries as the column arrays of `ADD_TIMELINE`.
pub(super) struct TimelineArrays {
    request: Vec<Uuid>,
    at: Vec<DateTime<Utc>>,
    kind: Vec<String>,
    detail: Vec<String>,
}

pub(super) const ADD_TIMELINE: &str = "INSERT INTO request_events (request_id, at, kind, detail) \
     SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[])";

impl TimelineArrays {
    pub(super) fn new<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Self {
        let mut a = Self { request: Vec::new(), at: Vec::new(), kind: Vec::new(), detail: Vec::new() };
        for e in entries {
            a.request.push(e.request_id);
            a.at.push(to_millis(e.at));
            a.kind.push(e.kind.to_string());
            a.detail.push(e.detail.as_str().to_owned());
        }
        a
    }

    pub(super) fn is_empty(&self) -> bool {
        self.request.is_empty()
    }

    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 4] {
        [&self.request, &self.at, &self.kind, &self.detail]
    }
}

#[async_trait]
impl LookupStore for PgStore {
    async fn search_requests(&self, search: RequestSearch) -> Result<Vec<AuthRequest>, StoreError> {
        let (clauses, params) = search.clauses();
        let sql = numbered(&format!(concat!("SELECT ", request_columns!(), " FROM auth_requests{}"), clauses));
        retrying!(&self.db, "operation", |c, _tries| {
            let bound: Vec<Box<dyn ToSql + Sync + Send>> = params
                .iter()
                .map(|p| -> Box<dyn ToSql + Sync + Send> {
                    match p {
                        Param::Text(s) => Box::new(s.clone()),
                        Param::Time(t) => Box::new(*t),
                        Param::Id(id) => Box::new(*id),
                    }
                })
                .collect();
            let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|b| b.as_ref() as &(dyn ToSql + Sync)).collect();
            let rows = c.query(&sql, &refs).await?;
            Ok(rows.iter().map(request_from_row).collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn timeline(&self, request: Uuid) -> Result<Vec<Entry>, StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            let rows = c
                .query("SELECT at, kind, detail FROM request_events WHERE request_id = $1 ORDER BY at", &[&request])
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(Entry {
                    request_id: request,
                    // Not needed to show a timeline: the request's own.
                    tenant_id: Uuid::nil(),
                    at: r.try_get(0)?,
                    kind: r.try_get::<_, String>(1)?.into(),
                    detail: Detail::stored(r.try_get::<_, String>(2)?),
                });
            }
            Ok(out)
        })
    }

    async fn append_timeline(&self, entries: Vec<Entry>) -> Result<(), StoreError> {
        let a = TimelineArrays::new(&entries);
        if a.is_empty() {
            return Ok(());
        }
        retrying!(&self.db, "operation", |c, _tries| {
            c.execute(ADD_TIMELINE, &a.params()).await?;
            Ok(())
        })
    }
}
