//! The PostgreSQL backend's auth requests: registering, reading, deciding, purging.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::retry::Fail;
use super::rows::{job_from_row, job_from_row_at, request_from_row};
use super::{JOB_COLUMNS, JobArrays, PgStore, SELECT_BY_EXTERNAL_ID, SELECT_REQUEST, millis_f64, numbered};
use super::{batch, reads};
use tokio_postgres::types::ToSql;

use crate::clock::to_millis;
use crate::domain::phone::PhoneNumber;
use crate::domain::request::AuthRequest;
use crate::domain::status::{CallStatus, FailureReason};
use crate::store::{Applied, Decide, Inserted, Job, Lease, Limits, NewJob, PENDING_INBOUND, RequestStore, StoreError};

/// The newest inbound request of a call (migration 13: only inbound
/// requests are found by their call sid).
pub(super) const BY_INBOUND_CALL_SID: &str = concat!(
    "SELECT ",
    request_columns!(),
    " FROM auth_requests WHERE inbound_call_sid = $1 ORDER BY created_at DESC LIMIT 1"
);

/// Every registration of a batch in one statement, as column arrays (`$1`–`$26`
/// in `request_columns!()` order, then `terminal` and the `request.registered`
/// audit data), and their jobs (`$29`–`$34`, each naming its request; `$35`
/// the lease). A conflict on any unique key skips that request (and its jobs,
/// event and step). Answers, per request inserted, its id and each job it
/// inserted already leased (one row with NULLs when there are none).
const INSERT_REQUESTS: &str = concat!(
    "WITH new AS (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bytea[], $5::text[], $6::text[], \
       $7::bytea[], $8::bytea[], $9::int2[], $10::text[], $11::text[], $12::int2[], $13::int2[], $14::int2[], \
       $15::text[], $16::text[], $17::text[], $18::text[], $19::text[], $20::timestamptz[], $21::timestamptz[], \
       $22::timestamptz[], $23::timestamptz[], $24::text[], $25::text[], $26::text[], $27::bool[], $28::text[]) \
       WITH ORDINALITY AS n(",
    request_columns!(),
    ", terminal, registered, ord)), \
     req AS (INSERT INTO auth_requests (",
    request_columns!(),
    ", terminal) SELECT ",
    request_columns!(),
    ", terminal FROM new ORDER BY ord ON CONFLICT DO NOTHING RETURNING id, tenant_id, created_at), \
     aud AS (INSERT INTO audit_events (chain, kind, tenant_id, request_id, at, data) \
       SELECT req.tenant_id::text, 'request.registered', req.tenant_id, req.id, req.created_at, new.registered \
       FROM req JOIN new ON new.id = req.id ORDER BY new.ord), \
     stp AS (INSERT INTO request_steps (request_id, tenant_id, step, at) \
       SELECT id, tenant_id, 'registered', created_at FROM req), \
     job AS (INSERT INTO jobs (kind, request_id, payload, run_at, created_at, lease_owner, lease_until, attempts) \
       SELECT j.k, req.id, j.p, now() + j.d * interval '1 millisecond', now(), \
              CASE WHEN j.c THEN j.t END, \
              CASE WHEN j.c THEN now() + $35::float8 * interval '1 millisecond' END, \
              CASE WHEN j.c THEN 1 ELSE 0 END \
       FROM req JOIN unnest($29::uuid[], $30::text[], $31::text[], $32::float8[], $33::bool[], $34::uuid[]) \
            WITH ORDINALITY AS j(r, k, p, d, c, t, ord) ON j.r = req.id \
       ORDER BY j.ord \
       RETURNING id, kind, request_id, payload, attempts - 1 AS attempts, created_at, lease_owner) \
     SELECT req.id, job.id, job.kind, job.request_id, job.payload, job.attempts, job.created_at, job.lease_owner \
     FROM req LEFT JOIN job ON job.request_id = req.id AND job.lease_owner IS NOT NULL"
);

/// The registrations of a batch as the column arrays of `INSERT_REQUESTS`.
pub(super) struct NewRequests<'a> {
    requests: Vec<&'a AuthRequest>,
    /// Per request, the claim token of its jobs inserted already leased.
    tokens: Vec<Uuid>,
    ids: Vec<Uuid>,
    tenants: Vec<Uuid>,
    external: Vec<Option<&'a str>>,
    fingerprints: Vec<&'a [u8]>,
    modes: Vec<&'static str>,
    phones: Vec<&'a str>,
    code_hashes: Vec<&'a [u8]>,
    code_salts: Vec<Option<&'a [u8]>>,
    code_lengths: Vec<i16>,
    users: Vec<Option<&'a str>>,
    locales: Vec<&'static str>,
    max_attempts: Vec<i16>,
    attempts: Vec<i16>,
    no_inputs: Vec<i16>,
    callbacks: Vec<Option<&'a str>>,
    statuses: Vec<&'static str>,
    reasons: Vec<Option<&'static str>>,
    sids: Vec<Option<&'a str>>,
    calls: Vec<Option<&'static str>>,
    created: Vec<DateTime<Utc>>,
    updated: Vec<DateTime<Utc>>,
    expires: Vec<DateTime<Utc>>,
    verified: Vec<Option<DateTime<Utc>>>,
    inbound: Vec<Option<&'a str>>,
    key_ids: Vec<Option<&'a str>>,
    deliveries: Vec<Option<String>>,
    terminal: Vec<bool>,
    registered: Vec<String>,
    job_requests: Vec<Uuid>,
    jobs: JobArrays,
    job_tokens: Vec<Uuid>,
    lease_ms: f64,
}

impl<'a> NewRequests<'a> {
    /// `each` holds every request with its jobs and the claim token of those jobs.
    pub(super) fn new(each: &[(&'a AuthRequest, &'a [NewJob], Uuid)], lease: Duration) -> Self {
        let all_jobs: Vec<NewJob> = each.iter().flat_map(|(_, jobs, _)| jobs.iter().cloned()).collect();
        let mut n = Self {
            requests: each.iter().map(|(r, _, _)| *r).collect(),
            tokens: each.iter().map(|(_, _, token)| *token).collect(),
            ids: Vec::with_capacity(each.len()),
            tenants: Vec::with_capacity(each.len()),
            external: Vec::with_capacity(each.len()),
            fingerprints: Vec::with_capacity(each.len()),
            modes: Vec::with_capacity(each.len()),
            phones: Vec::with_capacity(each.len()),
            code_hashes: Vec::with_capacity(each.len()),
            code_salts: Vec::with_capacity(each.len()),
            code_lengths: Vec::with_capacity(each.len()),
            users: Vec::with_capacity(each.len()),
            locales: Vec::with_capacity(each.len()),
            max_attempts: Vec::with_capacity(each.len()),
            attempts: Vec::with_capacity(each.len()),
            no_inputs: Vec::with_capacity(each.len()),
            callbacks: Vec::with_capacity(each.len()),
            statuses: Vec::with_capacity(each.len()),
            reasons: Vec::with_capacity(each.len()),
            sids: Vec::with_capacity(each.len()),
            calls: Vec::with_capacity(each.len()),
            created: Vec::with_capacity(each.len()),
            updated: Vec::with_capacity(each.len()),
            expires: Vec::with_capacity(each.len()),
            verified: Vec::with_capacity(each.len()),
            inbound: Vec::with_capacity(each.len()),
            key_ids: Vec::with_capacity(each.len()),
            deliveries: Vec::with_capacity(each.len()),
            terminal: Vec::with_capacity(each.len()),
            registered: Vec::with_capacity(each.len()),
            job_requests: each.iter().flat_map(|(r, jobs, _)| jobs.iter().map(|_| r.id)).collect(),
            jobs: JobArrays::new(&all_jobs),
            job_tokens: each.iter().flat_map(|(_, jobs, token)| jobs.iter().map(|_| *token)).collect(),
            lease_ms: millis_f64(lease),
        };
        for (r, _, _) in each {
            n.ids.push(r.id);
            n.tenants.push(r.tenant_id);
            n.external.push(r.external_id.as_deref());
            n.fingerprints.push(&r.fingerprint);
            n.modes.push(r.mode.as_str());
            n.phones.push(r.phone_number.as_str());
            n.code_hashes.push(&r.code_hash);
            n.code_salts.push(r.code_salt.as_deref());
            n.code_lengths.push(r.code_length.into());
            n.users.push(r.user_id.as_deref());
            n.locales.push(r.locale.as_str());
            n.max_attempts.push(r.max_attempts.into());
            n.attempts.push(r.attempts.into());
            n.no_inputs.push(r.no_input_count.into());
            n.callbacks.push(r.callback_url.as_deref());
            n.statuses.push(r.status.as_str());
            n.reasons.push(r.failure_reason.map(FailureReason::as_str));
            n.sids.push(r.call_sid.as_deref());
            n.calls.push(r.call_status.map(CallStatus::as_str));
            n.created.push(to_millis(r.created_at));
            n.updated.push(to_millis(r.updated_at));
            n.expires.push(to_millis(r.expires_at));
            n.verified.push(r.verified_at.map(to_millis));
            n.inbound.push(r.inbound_number.as_ref().map(PhoneNumber::as_str));
            n.key_ids.push(r.key_id.as_deref());
            n.deliveries.push(r.delivery.to_stored());
            n.terminal.push(r.status.is_terminal());
            n.registered.push(crate::domain::audit::registered(r).data.to_string());
        }
        n
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 35] {
        let j = &self.jobs;
        [
            &self.ids,
            &self.tenants,
            &self.external,
            &self.fingerprints,
            &self.modes,
            &self.phones,
            &self.code_hashes,
            &self.code_salts,
            &self.code_lengths,
            &self.users,
            &self.locales,
            &self.max_attempts,
            &self.attempts,
            &self.no_inputs,
            &self.callbacks,
            &self.statuses,
            &self.reasons,
            &self.sids,
            &self.calls,
            &self.created,
            &self.updated,
            &self.expires,
            &self.verified,
            &self.inbound,
            &self.key_ids,
            &self.deliveries,
            &self.terminal,
            &self.registered,
            &self.job_requests,
            &j.kinds,
            &j.payloads,
            &j.delays,
            &j.claims,
            &self.job_tokens,
            &self.lease_ms,
        ]
    }

    /// Inserts every request and its jobs in one statement; answers each in
    /// the order given. A request whose unique key was taken is then looked
    /// into on its own (`NewRequest::after_conflict`).
    pub(super) async fn insert(&self, c: &impl GenericClient) -> Result<Vec<Inserted>, Fail> {
        let stmt = c.prepare_cached(INSERT_REQUESTS).await?;
        let mut claimed: HashMap<Uuid, Vec<Job>> = HashMap::with_capacity(self.ids.len());
        for row in c.query(&stmt, &self.params()).await? {
            let jobs = claimed.entry(row.try_get(0)?).or_default();
            if row.try_get::<_, Option<i64>>(1)?.is_some() {
                jobs.push(job_from_row_at(&row, 1)?);
            }
        }
        let mut answers = Vec::with_capacity(self.requests.len());
        for (r, token) in self.requests.iter().zip(&self.tokens) {
            answers.push(match claimed.remove(&r.id) {
                Some(mut claimed) => {
                    claimed.sort_unstable_by_key(|j| j.id);
                    Inserted::Created { claimed, budget_use: Vec::new() }
                }
                None => after_conflict(c, r, *token).await?,
            });
        }
        Ok(answers)
    }
}

/// Why `r` was not inserted: our own earlier attempt committed it (its answer
/// lost with its connection: answered as created, with the jobs it leased
/// under `token`), or the tenant has a request with the same external_id.
async fn after_conflict(c: &impl GenericClient, r: &AuthRequest, token: Uuid) -> Result<Inserted, Fail> {
    let stmt = c.prepare_cached(SELECT_REQUEST).await?;
    if c.query_opt(&stmt, &[&r.id]).await?.is_some() {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE request_id = $1 AND lease_owner = $2");
        let rows = c.query(&sql, &[&r.id, &token]).await?;
        let claimed = rows.iter().map(job_from_row).collect::<Result<_, _>>()?;
        return Ok(Inserted::Created { claimed, budget_use: Vec::new() });
    }
    let existing = match &r.external_id {
        Some(ext) => by_external_id(c, r.tenant_id, ext).await?,
        None => None,
    };
    match existing {
        Some(existing) => Ok(Inserted::Existing(Box::new(existing))),
        None => Err(Fail::Retry("the conflicting request disappeared; trying again".into())),
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
        request: Arc<AuthRequest>,
        jobs: Vec<NewJob>,
        limits: Limits,
    ) -> Result<Inserted, StoreError> {
        self.write(|reply| batch::Op::Insert { request, jobs, limits, reply }).await
    }

    async fn request(&self, id: Uuid) -> Result<Option<AuthRequest>, StoreError> {
        self.read(|reply| reads::Read::Request { id, reply }).await
    }

    async fn request_by_external_id(&self, tenant: Uuid, external_id: &str) -> Result<Option<AuthRequest>, StoreError> {
        retrying!(&self.db, "operation", |c, _tries| by_external_id(&*c, tenant, external_id).await)
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

    async fn inbound_request_by_call_sid(&self, call_sid: &str) -> Result<Option<AuthRequest>, StoreError> {
        retrying!(&self.db, "operation", |c, _tries| {
            let stmt = c.prepare_cached(BY_INBOUND_CALL_SID).await?;
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
            // expires_at leads to the rows along auth_requests_ended (migration 11).
            let n: i64 = c
                .query_one(
                    "WITH gone AS (DELETE FROM auth_requests WHERE id IN (SELECT id FROM auth_requests \
                     WHERE terminal AND expires_at < $1 AND updated_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING id), \
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
