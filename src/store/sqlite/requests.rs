//! The SQLite backend's auth requests: registering, reading, deciding, purging.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use rusqlite::{OptionalExtension, params};
use std::sync::Arc;
use uuid::Uuid;

use super::pool::db_err;
use super::registrations::Registering;
use super::rows;
use super::rows::ms;
use super::{SqliteStore, insert_jobs, leased, select_by_external_id, select_request};
use crate::domain::phone::PhoneNumber;
use crate::domain::request::AuthRequest;
use crate::store::{
    Applied, Decide, Inserted, Lease, Limits, NewJob, PENDING_INBOUND, RequestStore, StoreError, register,
};

/// The newest inbound request of a call (migration 14: only inbound
/// requests are found by their call sid).
pub(super) const BY_INBOUND_CALL_SID: &str = concat!(
    "SELECT ",
    request_columns!(),
    " FROM auth_requests WHERE inbound_call_sid = ?1 ORDER BY created_at DESC LIMIT 1"
);

#[async_trait]
impl RequestStore for SqliteStore {
    async fn insert_request(
        &self,
        request: Arc<AuthRequest>,
        jobs: Vec<NewJob>,
        limits: Limits,
    ) -> Result<Inserted, StoreError> {
        let (counters, lease_ms, recent) = (self.counters.clone(), self.lease_ms, self.recent.clone());
        self.pool
            .write(move |c| {
                // One writer: nothing interleaves between the counts and the insert.
                let mut registering = Registering { conn: c, request: &request, jobs: &jobs, lease_ms };
                let inserted = register(&mut registering, &request, &limits)
                    .now_or_never()
                    .ok_or_else(|| StoreError::Corrupt("a SQLite registration waited".into()))??;
                if matches!(inserted, Inserted::Created { .. }) {
                    recent.keep(c, AuthRequest::clone(&request))?;
                    counters.wrote();
                }
                Ok(inserted)
            })
            .await
    }

    async fn request(&self, id: Uuid) -> Result<Option<AuthRequest>, StoreError> {
        self.pool.read_here(|c| select_request(c, id).map_err(db_err))
    }

    async fn request_by_external_id(&self, tenant: Uuid, external_id: &str) -> Result<Option<AuthRequest>, StoreError> {
        self.pool.read_here(|c| select_by_external_id(c, tenant, external_id).map_err(db_err))
    }

    async fn pending_inbound(
        &self,
        caller: &PhoneNumber,
        called: &PhoneNumber,
        called_is_servers: bool,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AuthRequest>, StoreError> {
        let (caller, called) = (caller.as_str().to_owned(), called.as_str().to_owned());
        self.pool
            .read(move |c| {
                let mut stmt = c.prepare_cached(PENDING_INBOUND).map_err(db_err)?;
                let rows = stmt
                    .query_map(
                        params![caller, ms(now), called, called_is_servers, limit as i64],
                        rows::request_from_row,
                    )
                    .map_err(db_err)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
            })
            .await
    }

    async fn inbound_request_by_call_sid(&self, call_sid: &str) -> Result<Option<AuthRequest>, StoreError> {
        self.pool.read_here(|c| {
            let mut stmt = c.prepare_cached(BY_INBOUND_CALL_SID).map_err(db_err)?;
            stmt.query_row([call_sid], rows::request_from_row).optional().map_err(db_err)
        })
    }

    async fn update_request(
        &self,
        id: Uuid,
        decide: Decide,
        finishing: Option<Lease>,
    ) -> Result<Option<Applied>, StoreError> {
        let (counters, recent) = (self.counters.clone(), self.recent.clone());
        self.pool
            .write(move |c| {
                if let Some(lease) = finishing {
                    leased(c, "DELETE FROM jobs WHERE id = ?1 AND lease_owner = ?2", lease, &[])?;
                    counters.wrote();
                }
                let before = match recent.take(c, id)? {
                    Some(kept) => kept,
                    None => match select_request(c, id).map_err(db_err)? {
                        Some(stored) => stored,
                        None => return Ok(None),
                    },
                };
                let Some(update) = decide(&before) else { return Ok(Some(Applied { before, after: None })) };
                rows::update_request(c, &before, &update.request).map_err(db_err)?;
                insert_jobs(c, &update.jobs, 0)?;
                super::audit::insert_records(c, &update.audit)?;
                super::audit::insert_steps(c, &update.steps)?;
                super::usage::insert_usage(c, &update.usage)?;
                super::lookup::insert_timeline(c, &update.timeline)?;
                recent.keep(c, update.request.clone())?;
                if finishing.is_none() {
                    counters.wrote();
                }
                Ok(Some(Applied { before, after: Some(update.request) }))
            })
            .await
    }

    async fn count_requests(&self, tenant: Uuid) -> Result<u64, StoreError> {
        self.pool
            .read(move |c| {
                c.query_row("SELECT COUNT(*) FROM auth_requests WHERE tenant_id = ?1", [tenant.as_bytes()], |r| {
                    r.get::<_, i64>(0)
                })
                .map(|n| u64::try_from(n).unwrap_or(0))
                .map_err(db_err)
            })
            .await
    }

    async fn overdue_requests(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Uuid>, StoreError> {
        self.pool
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT id FROM auth_requests WHERE terminal = 0 AND expires_at <= ?1 \
                         ORDER BY expires_at LIMIT ?2",
                    )
                    .map_err(db_err)?;
                let ids = stmt.query_map(params![ms(now), limit as i64], |r| r.get::<_, Vec<u8>>(0)).map_err(db_err)?;
                ids.map(|b| b.map_err(db_err).and_then(|b| Uuid::from_slice(&b).map_err(db_err))).collect()
            })
            .await
    }

    async fn purge_finished(&self, before: DateTime<Utc>, limit: usize) -> Result<usize, StoreError> {
        let (counters, recent) = (self.counters.clone(), self.recent.clone());
        self.pool
            .write(move |c| {
                recent.forget_all();
                // Each request goes with its timeline.
                let ids: Vec<Vec<u8>> = c
                    .prepare_cached("SELECT id FROM auth_requests WHERE terminal = 1 AND updated_at < ?1 AND expires_at < ?1 LIMIT ?2")
                    .and_then(|mut s| s.query_map(params![ms(before), limit as i64], |r| r.get(0))?.collect())
                    .map_err(db_err)?;
                let mut events =
                    c.prepare_cached("DELETE FROM request_events WHERE request_id = ?1").map_err(db_err)?;
                let mut requests = c.prepare_cached("DELETE FROM auth_requests WHERE id = ?1").map_err(db_err)?;
                let mut n = 0;
                for id in &ids {
                    events.execute([id]).map_err(db_err)?;
                    n += requests.execute([id]).map_err(db_err)?;
                }
                if n > 0 {
                    counters.wrote();
                }
                Ok(n)
            })
            .await
    }
}
