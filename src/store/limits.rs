//! The limits a registration is counted against, and the order it is
//! checked and stored in, written once for every backend.
//!
//! A backend answers a few queries ([`Registrations`]) inside the transaction
//! that stores the request; [`register`] decides with them: a reused external
//! id first, then the per-number limit (the tenant's, then the server's),
//! then the call budgets, then the insert and the budgets' counts.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::to_millis;
use crate::domain::budget::{Budget, CallBudget};
use crate::domain::request::AuthRequest;
use crate::store::Inserted;

/// Registrations for one phone number within `window`: at most `per_tenant`
/// by one tenant, and at most `overall` by all tenants together (0: no such limit).
#[derive(Debug, Clone, Copy)]
pub struct NumberLimit {
    pub per_tenant: u32,
    pub overall: u32,
    pub window: chrono::Duration,
}

/// Which limit a registration met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    /// The registering tenant's own registrations for the number.
    Tenant,
    /// Every tenant's registrations for the number (the server-wide ceiling).
    Server,
    /// The tenant's outbound calls within a call budget's window.
    Budget(Budget),
}

/// The limits a registration is counted against, in the transaction that
/// stores it, so that they hold under any burst and across servers.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Registrations of the phone number.
    pub number: Option<NumberLimit>,
    /// The tenant's call budgets (outbound requests only; empty: none).
    pub budgets: Vec<CallBudget>,
}

impl Limits {
    /// Only a per-number limit.
    pub fn number(limit: Option<NumberLimit>) -> Self {
        Self { number: limit, budgets: Vec::new() }
    }

    /// Nothing to count the registration against.
    pub(crate) fn is_empty(&self) -> bool {
        self.number.is_none() && self.budgets.is_empty()
    }
}

/// The `offset + 1`-th newest of some registrations created after `since`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Nth {
    pub since: DateTime<Utc>,
    pub offset: i64,
}

impl Nth {
    /// The `n`-th newest (1: the newest) within `window` before `now`.
    fn within(window: chrono::Duration, now: DateTime<Utc>, n: u32) -> Self {
        Self { since: to_millis(now - window), offset: i64::from(n) - 1 }
    }
}

/// The `nth` newest of `times` within its window (after `nth.since`).
pub(crate) fn nth_newest(times: impl Iterator<Item = DateTime<Utc>>, nth: Nth) -> Option<DateTime<Utc>> {
    let mut times: Vec<_> = times.filter(|t| *t > nth.since).collect();
    times.sort_unstable_by(|a, b| b.cmp(a));
    times.get(usize::try_from(nth.offset).ok()?).copied()
}

/// The queries [`register`] asks of a backend about the request it is
/// storing, all inside the transaction that stores it. SQLite answers them
/// at once on its writer thread (its futures never wait); PostgreSQL over its
/// connection. Each has its statement below, with `?N` parameters.
pub(crate) trait Registrations {
    type Error;
    /// The tenant's request with this external id, if there is one.
    async fn same_external_id(&mut self, external_id: &str) -> Result<Option<AuthRequest>, Self::Error>;
    /// When the `nth` newest registration of the number was created: the
    /// tenant's (`NUMBER_NTH_NEWEST_BY_TENANT`) or anybody's (`NUMBER_NTH_NEWEST`).
    async fn nth_newest_for_number(&mut self, by_tenant: bool, nth: Nth) -> Result<Option<DateTime<Utc>>, Self::Error>;
    /// The sum of the tenant's counts in `budget`'s buckets from `first_bucket`
    /// on, at least the calls within its window (`BUDGET_SUM`).
    async fn budget_upper_bound(&mut self, budget: Budget, first_bucket: i64) -> Result<u64, Self::Error>;
    /// When the tenant's `nth` newest outbound request was created (`OUTBOUND_NTH_NEWEST`).
    async fn nth_newest_outbound(&mut self, nth: Nth) -> Result<Option<DateTime<Utc>>, Self::Error>;
    /// Stores the request and its jobs.
    async fn insert(&mut self) -> Result<Inserted, Self::Error>;
    /// Counts one call in the tenant's `bucket` of `budget` (`COUNT_CALL`).
    async fn count_call(&mut self, budget: Budget, bucket: i64) -> Result<(), Self::Error>;
}

/// Parameters: phone number, since, offset.
pub(crate) const NUMBER_NTH_NEWEST: &str = "SELECT created_at FROM auth_requests \
     WHERE phone_number = ?1 AND created_at > ?2 ORDER BY created_at DESC LIMIT 1 OFFSET ?3";
/// Parameters: phone number, since, offset, tenant.
///
/// Along the number's `(phone_number, created_at)` index, on both backends:
/// the tenant's condition is written `IS TRUE` so that no planner can take
/// the tenant's `(tenant_id, created_at)` index for it. Without statistics
/// (SQLite always here; PostgreSQL on a new database, where a connection's
/// generic plan, made once, then stays) both rated the tenant's index as high
/// as the number's and took it: each registration then read every
/// registration its tenant had made in the window (with the default limits
/// at the bench's rate, 2.3–2.4 ms of server CPU per lifecycle on SQLite
/// instead of about 0.5).
pub(crate) const NUMBER_NTH_NEWEST_BY_TENANT: &str = "SELECT created_at FROM auth_requests \
     WHERE phone_number = ?1 AND created_at > ?2 AND (tenant_id = ?4) IS TRUE \
     ORDER BY created_at DESC LIMIT 1 OFFSET ?3";
/// Parameters: tenant, budget id, first bucket.
pub(crate) const BUDGET_SUM: &str = "SELECT CAST(coalesce(sum(calls), 0) AS bigint) FROM call_counts \
     WHERE tenant_id = ?1 AND budget = ?2 AND bucket >= ?3";
/// Parameters: tenant, since, offset.
pub(crate) const OUTBOUND_NTH_NEWEST: &str = "SELECT created_at FROM auth_requests \
     WHERE tenant_id = ?1 AND mode = 'outbound' AND created_at > ?2 ORDER BY created_at DESC LIMIT 1 OFFSET ?3";
/// Parameters: tenant, budget id, bucket.
pub(crate) const COUNT_CALL: &str = "INSERT INTO call_counts (tenant_id, budget, bucket, calls) VALUES (?1, ?2, ?3, 1) \
     ON CONFLICT (tenant_id, budget, bucket) DO UPDATE SET calls = call_counts.calls + 1";

/// Registers `r` under `limits` with the backend's queries `q`; see
/// `RequestStore::insert_request` for what each answer means.
pub(crate) async fn register<R: Registrations>(
    q: &mut R,
    r: &AuthRequest,
    limits: &Limits,
) -> Result<Inserted, R::Error> {
    if let Some(external_id) = &r.external_id
        && let Some(existing) = q.same_external_id(external_id).await?
    {
        return Ok(Inserted::Existing(Box::new(existing)));
    }
    if let Some(limit) = limits.number
        && let Some((retry_after, scope)) = number_limited(q, r, limit).await?
    {
        return Ok(Inserted::Limited { retry_after, scope });
    }
    let budget_use = match budgets_room(q, r, &limits.budgets).await? {
        Ok(used) => used,
        Err((retry_after, scope)) => return Ok(Inserted::Limited { retry_after, scope }),
    };
    let mut inserted = q.insert().await?;
    if let Inserted::Created { budget_use: used, .. } = &mut inserted {
        for b in &limits.budgets {
            q.count_call(b.budget, b.budget.bucket(r.created_at)).await?;
        }
        *used = budget_use;
    }
    Ok(inserted)
}

/// When `limit` is reached for the request's number: which limit, and how
/// long until a slot frees up. The tenant's own limit is looked at first.
async fn number_limited<R: Registrations>(
    q: &mut R,
    r: &AuthRequest,
    limit: NumberLimit,
) -> Result<Option<(Duration, LimitScope)>, R::Error> {
    for (max, scope) in [(limit.per_tenant, LimitScope::Tenant), (limit.overall, LimitScope::Server)] {
        if max == 0 {
            continue;
        }
        // The max-th newest registration in the window: while there is one, the number is at its limit.
        if let Some(nth_newest) =
            q.nth_newest_for_number(scope == LimitScope::Tenant, Nth::within(limit.window, r.created_at, max)).await?
        {
            return Ok(Some((frees_after(nth_newest, limit.window, r.created_at), scope)));
        }
    }
    Ok(None)
}

/// Each call budget's use with request `r` (its bucket sum, with the
/// request), or, when one is spent, how long until it has room and which it is.
async fn budgets_room<R: Registrations>(
    q: &mut R,
    r: &AuthRequest,
    budgets: &[CallBudget],
) -> Result<Result<Vec<(Budget, u64)>, (Duration, LimitScope)>, R::Error> {
    let mut used = Vec::with_capacity(budgets.len());
    for b in budgets {
        let upper = q.budget_upper_bound(b.budget, b.budget.first_bucket(r.created_at)).await?;
        // The exact answer is read only near the limit.
        let window = b.budget.window();
        if upper >= u64::from(b.max)
            && let Some(nth_newest) = q.nth_newest_outbound(Nth::within(window, r.created_at, b.max)).await?
        {
            return Ok(Err((frees_after(nth_newest, window, r.created_at), LimitScope::Budget(b.budget))));
        }
        used.push((b.budget, upper + 1));
    }
    Ok(Ok(used))
}

/// How long after `now` the registration made at `oldest` leaves a `window`
/// (at least a millisecond: the caller is at its limit now).
fn frees_after(oldest: DateTime<Utc>, window: chrono::Duration, now: DateTime<Utc>) -> Duration {
    (oldest + window - now).to_std().unwrap_or_default().max(Duration::from_millis(1))
}

#[cfg(test)]
mod tests;
