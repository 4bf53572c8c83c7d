//! The limits a registration is counted against, and the order it is
//! checked and stored in, written once for every backend.
//!
//! A backend answers a few queries ([`Registrations`]) inside the transaction
//! that stores the request; [`register`] decides with them: a reused external
//! id first, then the per-number limit (the tenant's, then the server's),
//! then the call budgets, then the insert and the budgets' counts.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::clock::to_millis;
use crate::domain::budget::{Budget, CallBudget};
use crate::domain::phone::PhoneNumber;
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

    pub(crate) fn is_empty(&self) -> bool {
        self.number.is_none() && self.budgets.is_empty()
    }
}

/// The queries [`register`] asks of a backend, all inside the transaction
/// that stores one request. SQLite answers them at once on its writer thread
/// (its futures never wait); PostgreSQL over its connection.
pub(crate) trait Registrations {
    type Error;
    /// The tenant's request with this external id, if there is one.
    async fn same_external_id(&mut self, tenant: Uuid, external_id: &str) -> Result<Option<AuthRequest>, Self::Error>;
    /// When the `n`-th newest (1: the newest) registration of `number`
    /// created after `since` was created: by `tenant`, or by anyone (`None`).
    async fn nth_newest_for_number(
        &mut self,
        number: &PhoneNumber,
        tenant: Option<Uuid>,
        since: DateTime<Utc>,
        n: u32,
    ) -> Result<Option<DateTime<Utc>>, Self::Error>;
    /// The sum of the tenant's counts in `budget`'s buckets from `first_bucket`
    /// on: at least the calls within the budget's window.
    async fn budget_upper_bound(&mut self, tenant: Uuid, budget: Budget, first_bucket: i64)
    -> Result<u64, Self::Error>;
    /// When the `n`-th newest outbound request of `tenant` created after `since` was created.
    async fn nth_newest_outbound(
        &mut self,
        tenant: Uuid,
        since: DateTime<Utc>,
        n: u32,
    ) -> Result<Option<DateTime<Utc>>, Self::Error>;
    /// Stores the request and its jobs.
    async fn insert(&mut self) -> Result<Inserted, Self::Error>;
    /// Counts one call in the tenant's `bucket` of `budget`.
    async fn count_call(&mut self, tenant: Uuid, budget: Budget, bucket: i64) -> Result<(), Self::Error>;
}

/// Registers `r` under `limits` with the backend's queries `q`; see
/// `RequestStore::insert_request` for what each answer means.
pub(crate) async fn register<R: Registrations>(
    q: &mut R,
    r: &AuthRequest,
    limits: &Limits,
) -> Result<Inserted, R::Error> {
    if let Some(external_id) = &r.external_id
        && let Some(existing) = q.same_external_id(r.tenant_id, external_id).await?
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
            q.count_call(r.tenant_id, b.budget, b.budget.bucket(r.created_at)).await?;
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
    let since = to_millis(r.created_at - limit.window);
    for (max, scope, tenant) in
        [(limit.per_tenant, LimitScope::Tenant, Some(r.tenant_id)), (limit.overall, LimitScope::Server, None)]
    {
        if max == 0 {
            continue;
        }
        // The max-th newest registration in the window: while there is one, the number is at its limit.
        if let Some(nth_newest) = q.nth_newest_for_number(&r.phone_number, tenant, since, max).await? {
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
        let upper = q.budget_upper_bound(r.tenant_id, b.budget, b.budget.first_bucket(r.created_at)).await?;
        // The exact answer is read only near the limit.
        if upper >= u64::from(b.max) {
            let since = to_millis(r.created_at - b.budget.window());
            if let Some(nth_newest) = q.nth_newest_outbound(r.tenant_id, since, b.max).await? {
                return Ok(Err((
                    frees_after(nth_newest, b.budget.window(), r.created_at),
                    LimitScope::Budget(b.budget),
                )));
            }
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
