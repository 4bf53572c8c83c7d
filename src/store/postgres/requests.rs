//! The PostgreSQL backend's auth requests: registering, reading, deciding, purging.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::registrations::Registering;
use super::retry::Fail;
use super::rows::{RequestParams, job_from_row, job_from_row_at, request_from_row};
use super::{JOB_COLUMNS, JobArrays, PgStore, SELECT_BY_EXTERNAL_ID, SELECT_REQUEST, millis_f64, numbered};
use super::{batch, reads};
use crate::domain::phone::PhoneNumber;
use crate::domain::request::AuthRequest;
use crate::store::{
    Applied, Decide, Inserted, Lease, Limits, NewJob, PENDING_INBOUND, RequestStore, StoreError, register,
};

/// Inserts a request and its jobs in one statement, with its registration's
/// audit event and funnel step (written only if the request is); a conflict
/// on any unique key inserts nothing. Answers how many requests were inserted (0 or 1) and
/// the jobs inserted already leased (one row with NULLs when there are none).
const INSERT_REQUEST: &str = concat!(
    "WITH req AS (INSERT INTO auth_requests (",
    request_columns!(),
    ", terminal) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
     $19, $20, $21, $22, $23, $24, $25, $26, $27) ON CONFLICT DO NOTHING RETURNING id, tenant_id, created_at), \
     aud AS (INSERT INTO audit_events (chain, kind, tenant_id, request_id, at, data) \
       SELECT tenant_id::text, 'request.registered', tenant_id, id, created_at, $34 FROM req), \
     stp AS (INSERT INTO request_steps (request_id, tenant_id, step, at) \
       SELECT id, tenant_id, 'registered', created_at FROM req), \
     job AS (INSERT INTO jobs (kind, request_id, payload, run_at, created_at, lease_owner, lease_until, attempts) \
       SELECT k, req.id, p, now() + d * interval '1 millisecond', now(), \
              CASE WHEN c THEN $32::uuid END, \
              CASE WHEN c THEN now() + $33::float8 * interval '1 millisecond' END, \
              CASE WHEN c THEN 1 ELSE 0 END \
       FROM req, unnest($28::text[], $29::text[], $30::float8[], $31::bool[]) AS j(k, p, d, c) \
       RETURNING id, kind, request_id, payload, attempts - 1 AS attempts, created_at, lease_owner) \
     SELECT n.inserted, job.id, job.kind, job.request_id, job.payload, job.attempts, job.created_at, job.lease_owner \
     FROM (SELECT count(*) AS inserted FROM req) n \
     LEFT JOIN job ON job.lease_owner IS NOT NULL"
);

/// A request alone (no jobs): a conflict on any unique key inserts nothing.
/// Answers how many requests were inserted (0 or 1).
const INSERT_REQUEST_ALONE: &str = concat!(
    "WITH req AS (INSERT INTO auth_requests (",
    request_columns!(),
    ", terminal) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
     $19, $20, $21, $22, $23, $24, $25, $26, $27) ON CONFLICT DO NOTHING RETURNING id, tenant_id, created_at), \
     aud AS (INSERT INTO audit_events (chain, kind, tenant_id, request_id, at, data) \
       SELECT tenant_id::text, 'request.registered', tenant_id, id, created_at, $28 FROM req), \
     stp AS (INSERT INTO request_steps (request_id, tenant_id, step, at) \
       SELECT id, tenant_id, 'registered', created_at FROM req) \
     SELECT count(*) FROM req"
);

/// A request on its way in, with its jobs, as statement parameters.
pub(super) struct NewRequest<'a> {
    pub(super) request: &'a AuthRequest,
    params: RequestParams<'a>,
    jobs: JobArrays,
    /// The claim token of the jobs inserted already leased.
    token: Uuid,
    lease_ms: f64,
    /// The data of its `request.registered` audit event (JSON text).
    registered: String,
}

impl<'a> NewRequest<'a> {
    pub(super) fn new(request: &'a AuthRequest, jobs: &[NewJob], token: Uuid, lease: Duration) -> Self {
        Self {
            params: RequestParams::new(request),
            jobs: JobArrays::new(jobs),
            token,
            lease_ms: millis_f64(lease),
            registered: crate::domain::audit::registered(request).data.to_string(),
            request,
        }
    }

    /// Inserts the request and its jobs in one statement. When a unique key
    /// is taken, finds out by whom: our own earlier attempt (whose answer was
    /// lost with its connection) or a request with the same external_id.
    pub(super) async fn insert(&self, c: &impl GenericClient) -> Result<Inserted, Fail> {
        let r = self.request;
        let j = &self.jobs;
        if j.kinds.is_empty() {
            let stmt = c.prepare_cached(INSERT_REQUEST_ALONE).await?;
            let mut params = self.params.all().to_vec();
            params.push(&self.registered);
            if c.query_one(&stmt, &params).await?.try_get::<_, i64>(0)? == 1 {
                return Ok(Inserted::Created { claimed: Vec::new(), budget_use: Vec::new() });
            }
        } else {
            let stmt = c.prepare_cached(INSERT_REQUEST).await?;
            let mut params = self.params.all().to_vec();
            params.extend_from_slice(&[
                &j.kinds,
                &j.payloads,
                &j.delays,
                &j.claims,
                &self.token,
                &self.lease_ms,
                &self.registered,
            ]);
            let rows = c.query(&stmt, &params).await?;
            if rows.first().is_some_and(|row| row.get::<_, i64>(0) == 1) {
                let claimed = rows.iter().filter(|row| row.get::<_, Option<i64>>(1).is_some());
                return Ok(Inserted::Created {
                    claimed: claimed.map(|row| job_from_row_at(row, 1)).collect::<Result<_, _>>()?,
                    budget_use: Vec::new(),
                });
            }
        }
        let stmt = c.prepare_cached(SELECT_REQUEST).await?;
        if c.query_opt(&stmt, &[&r.id]).await?.is_some() {
            let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE request_id = $1 AND lease_owner = $2");
            let rows = c.query(&sql, &[&r.id, &self.token]).await?;
            let claimed = rows.iter().map(job_from_row).collect::<Result<_, _>>()?;
            return Ok(Inserted::Created { claimed, budget_use: Vec::new() });
        }
        match self.same_external_id(c).await? {
            Some(existing) => Ok(existing),
            None => Err(Fail::Retry("the conflicting request disappeared; trying again".into())),
        }
    }

    /// The tenant's request with the same external_id, if there is one.
    async fn same_external_id(&self, c: &impl GenericClient) -> Result<Option<Inserted>, Fail> {
        let Some(ext) = &self.request.external_id else { return Ok(None) };
        Ok(by_external_id(c, self.request.tenant_id, ext).await?.map(|r| Inserted::Existing(Box::new(r))))
    }
}

/// The tenant's request with this external_id, if there is one.
pub(super) async fn by_external_id(
    c: &impl GenericClient,
    tenant: Uuid,
    external_id: &str,
) -> Result<Option<AuthRequest>, Fail> {
    let stmt = c.prepare_cached(SELECT_BY_EXTERNAL_ID).await?;
    Ok(c.query_opt(&stmt, &[&tenant, &external_id]).await?.as_ref().map(request_from_row).transpose()?)
}

#[async_trait]
impl RequestStore for PgStore {
    async fn insert_request(
        &self,
        request: AuthRequest,
        jobs: Vec<NewJob>,
        limits: Limits,
    ) -> Result<Inserted, StoreError> {
        if limits.is_empty() {
            return self.write(|reply| batch::Op::Insert { request, jobs, reply }).await;
        }
        let new = NewRequest::new(&request, &jobs, Uuid::now_v7(), self.db.lease);
        let inserted = retrying!(&self.db, "operation", |c, _tries| {
            let tx = c.transaction().await?;
            // One registration per number, and per tenant with budgets, at a
            // time across every server (always in this order: no deadlock).
            if limits.number.is_some() {
                tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 1))", &[&request.phone_number.as_str()])
                    .await?;
            }
            if !limits.budgets.is_empty() {
                tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text, 2))", &[&request.tenant_id])
                    .await?;
            }
            // A retry after a lost connection finds its own earlier commit before counting it.
            let inserted = if tx.query_opt("SELECT 1 FROM auth_requests WHERE id = $1", &[&request.id]).await?.is_none()
            {
                register(&mut Registering { tx: &tx, new: &new }, &request, &limits).await?
            } else {
                new.insert(&tx).await?
            };
            tx.commit().await?;
            Ok(inserted)
        })?;
        if matches!(inserted, Inserted::Created { .. }) {
            self.db.counters.wrote();
            self.db.counters.committed();
        }
        Ok(inserted)
    }

    async fn request(&self, id: Uuid) -> Result<Option<AuthRequest>, StoreError> {
        self.read(|reply| reads::Read::Request { id, reply }).await
    }

    async fn request_by_external_id(&self, tenant: Uuid, external_id: &str) -> Result<Option<AuthRequest>, StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            let stmt = c.prepare_cached(SELECT_BY_EXTERNAL_ID).await?;
            Ok(c.query_opt(&stmt, &[&tenant, &external_id]).await?.as_ref().map(request_from_row).transpose()?)
        })
    }

    async fn pending_inbound(
        &self,
        caller: &PhoneNumber,
        called: &PhoneNumber,
        called_is_servers: bool,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AuthRequest>, StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            let stmt = c.prepare_cached(&numbered(PENDING_INBOUND)).await?;
            let rows = c
                .query(&stmt, &[&caller.as_str(), &now, &called.as_str(), &called_is_servers, &(limit as i64)])
                .await?;
            Ok(rows.iter().map(request_from_row).collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn request_by_call_sid(&self, call_sid: &str) -> Result<Option<AuthRequest>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            request_columns!(),
            " FROM auth_requests WHERE call_sid = $1 ORDER BY created_at DESC LIMIT 1"
        );
        retrying!(&self.db, "operation", |c, _tries| {
            let stmt = c.prepare_cached(SQL).await?;
            Ok(c.query_opt(&stmt, &[&call_sid]).await?.as_ref().map(request_from_row).transpose()?)
        })
    }

    async fn update_request(
        &self,
        id: Uuid,
        decide: Decide,
        finishing: Option<Lease>,
    ) -> Result<Option<Applied>, StoreError> {
        self.write(|reply| batch::Op::Update { id, decide, finishing, reply }).await
    }

    async fn count_requests(&self, tenant: Uuid) -> Result<u64, StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            let n: i64 =
                c.query_one("SELECT count(*) FROM auth_requests WHERE tenant_id = $1", &[&tenant]).await?.get(0);
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    async fn overdue_requests(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Uuid>, StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            let stmt = c
                .prepare_cached(
                    "SELECT id FROM auth_requests WHERE NOT terminal AND expires_at <= $1 \
                     ORDER BY expires_at LIMIT $2",
                )
                .await?;
            let rows = c.query(&stmt, &[&now, &(limit as i64)]).await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    async fn purge_finished(&self, before: DateTime<Utc>, limit: usize) -> Result<usize, StoreError> {
        let counters = &self.db.counters;
        retrying!(&self.db, "operation", |c, _tries| {
            // Servers purging at once skip each other's rows instead of waiting on them.
            let n: i64 = c
                .query_one(
                    "WITH gone AS (DELETE FROM auth_requests WHERE id IN (SELECT id FROM auth_requests \
                     WHERE terminal AND updated_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING id), \
                     timeline AS (DELETE FROM request_events WHERE request_id IN (SELECT id FROM gone)) \
                     SELECT count(*) FROM gone",
                    &[&before, &(limit as i64)],
                )
                .await?
                .try_get(0)?;
            if n > 0 {
                counters.wrote();
                counters.committed();
            }
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }
}
