//! Registrations under limits (a per-number limit, call budgets), in the
//! group commit.
//!
//! A batch locks the numbers of its limited registrations and the tenants of
//! those with call budgets (after its rows, each once, in the order of the
//! locks' keys, so that batches never deadlock) and reads what
//! `store::register` will ask about them, all in the round trip of its other
//! locks. Then it decides each registration, in arrival order, with the rules
//! every backend shares, on what it read and on the batch's own earlier
//! registrations: a registration sees every one that committed before it, as
//! it would in a transaction of its own. Only a budget near its limit asks
//! the database once more (the exact count), inside the batch.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use tokio_postgres::Statement;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::rows::request_from_row;
use super::{Fail, numbered};
use crate::domain::budget::Budget;
use crate::domain::request::AuthRequest;
use crate::domain::status::Mode;
use crate::store::limits::{Nth, OUTBOUND_NTH_NEWEST, nth_newest};
use crate::store::{Inserted, Limits, NumberLimit, Registrations, StoreError, register};

/// Locks every number (`$1`) and tenant (`$2`) given, each once, in the order of its key.
const LOCK_NUMBERS_AND_TENANTS: &str = "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT k FROM \
       (SELECT hashtextextended(p, 1) FROM unnest($1::text[]) AS p \
        UNION ALL SELECT hashtextextended(t::text, 2) FROM unnest($2::uuid[]) AS t) AS l(k) \
     ORDER BY k) AS keys";
/// Each tenant's (`$1`) counts in a budget (`$2`) from a first bucket (`$3`) on.
const BUDGET_SUMS: &str = "SELECT x.tenant, x.budget, x.first, \
       (SELECT coalesce(sum(calls), 0) FROM call_counts \
        WHERE tenant_id = x.tenant AND budget = x.budget AND bucket >= x.first)::bigint \
     FROM unnest($1::uuid[], $2::int2[], $3::int8[]) AS x(tenant, budget, first)";
/// Counts calls in the tenants' budget buckets: per tenant, budget and bucket, how many.
pub(super) const COUNT_CALLS: &str = "INSERT INTO call_counts (tenant_id, budget, bucket, calls) \
     SELECT * FROM unnest($1::uuid[], $2::int2[], $3::int8[], $4::int8[]) \
     ON CONFLICT (tenant_id, budget, bucket) DO UPDATE SET calls = call_counts.calls + EXCLUDED.calls";
/// Which of the ids given are stored: a batch's earlier attempt committed them.
pub(super) const STORED: &str = "SELECT id FROM auth_requests WHERE id = ANY($1)";
/// The requests stored under the tenants' external ids given, each looked up
/// in the external ids' index. (As a plain join, the generic plan made on a
/// new database hashed the ids given and read every request that has an
/// external id, until the table's first `ANALYZE`.)
pub(super) const SAME_EXTERNAL_IDS: &str = concat!(
    "SELECT r.* FROM unnest($1::uuid[], $2::text[]) AS x(tenant, ext) CROSS JOIN LATERAL (SELECT ",
    request_columns!(),
    " FROM auth_requests WHERE tenant_id = x.tenant AND external_id = x.ext LIMIT 1) AS r"
);
/// Per registration (`ord`, from 1), when the newest registrations of its
/// number within its window were made: its tenant's (`true`, as many as the
/// tenant's limit) and everybody's (`false`, as many as the server's). Along
/// the number's index, as `NUMBER_NTH_NEWEST_BY_TENANT` says why.
pub(super) const NEWEST: &str = "WITH n AS (SELECT * FROM unnest($1::text[], $2::uuid[], $3::timestamptz[], $4::int8[], \
       $5::int8[]) WITH ORDINALITY AS n(phone, tenant, since, per_tenant, overall, ord)) \
     SELECT n.ord, true, r.created_at FROM n CROSS JOIN LATERAL (SELECT created_at FROM auth_requests \
       WHERE phone_number = n.phone AND created_at > n.since AND (tenant_id = n.tenant) IS TRUE \
       ORDER BY created_at DESC LIMIT n.per_tenant) AS r \
     UNION ALL \
     SELECT n.ord, false, r.created_at FROM n CROSS JOIN LATERAL (SELECT created_at FROM auth_requests \
       WHERE phone_number = n.phone AND created_at > n.since \
       ORDER BY created_at DESC LIMIT n.overall) AS r";

/// A batch's registrations in arrival order, each with its limits.
pub(super) struct Arriving<'a> {
    all: Vec<(&'a AuthRequest, &'a Limits)>,
    /// Those with a per-number limit.
    limited: Vec<(&'a AuthRequest, NumberLimit)>,
    /// Those with call budgets: each budget, with its first bucket.
    budgeted: Vec<(Uuid, Budget, i64)>,
}

/// What one registration of a batch comes to.
pub(super) enum Decided {
    /// It is inserted; its call budgets' use with it (empty without budgets).
    Insert(Vec<(Budget, u64)>),
    /// It is answered without being inserted (a limit met, its external id taken).
    Answered(Inserted),
}

impl<'a> Arriving<'a> {
    pub(super) fn new(all: Vec<(&'a AuthRequest, &'a Limits)>) -> Self {
        let limited = all.iter().filter_map(|(r, limits)| Some((*r, limits.number?))).collect();
        let mut budgeted: Vec<_> = all
            .iter()
            .flat_map(|(r, limits)| {
                limits.budgets.iter().map(|b| (r.tenant_id, b.budget, b.budget.first_bucket(r.created_at)))
            })
            .collect();
        budgeted.sort_unstable_by_key(|(t, b, first)| (*t, b.id(), *first));
        budgeted.dedup();
        Self { all, limited, budgeted }
    }

    fn counted(&self) -> bool {
        self.all.iter().any(|(_, limits)| !limits.is_empty())
    }

    /// The statements that lock and read for the limited registrations,
    /// prepared (once per connection), so that all go out in the order sent.
    pub(super) async fn prepare(&self, tx: &Transaction<'_>) -> Result<Option<Asking>, Fail> {
        if !self.counted() {
            return Ok(None);
        }
        Ok(Some(Asking {
            lock: tx.prepare_cached(LOCK_NUMBERS_AND_TENANTS).await?,
            stored: tx.prepare_cached(STORED).await?,
            external: tx.prepare_cached(SAME_EXTERNAL_IDS).await?,
            newest: tx.prepare_cached(NEWEST).await?,
            sums: tx.prepare_cached(BUDGET_SUMS).await?,
        }))
    }

    /// Locks the limited registrations' numbers and tenants and reads what
    /// their decisions need: every statement is sent before the first answer is read.
    pub(super) async fn read(&self, tx: &Transaction<'_>, asking: Option<Asking>) -> Result<Seen, Fail> {
        let Some(ask) = asking else { return Ok(Seen::default()) };
        let counted = || self.all.iter().filter(|(_, l)| !l.is_empty()).map(|(r, _)| *r);
        let n = self.limited.len();
        let phones: Vec<&str> = self.limited.iter().map(|(r, _)| r.phone_number.as_str()).collect();
        let mut locked_tenants: Vec<Uuid> = self.budgeted.iter().map(|(t, _, _)| *t).collect();
        locked_tenants.dedup();
        let ids: Vec<Uuid> = counted().map(|r| r.id).collect();
        let (ext_tenants, ext_ids): (Vec<Uuid>, Vec<&str>) =
            counted().filter_map(|r| Some((r.tenant_id, r.external_id.as_deref()?))).unzip();
        let tenants: Vec<Uuid> = self.limited.iter().map(|(r, _)| r.tenant_id).collect();
        let since: Vec<DateTime<Utc>> = self.limited.iter().map(|(r, l)| r.created_at - l.window).collect();
        let per_tenant: Vec<i64> = self.limited.iter().map(|(_, l)| i64::from(l.per_tenant)).collect();
        let overall: Vec<i64> = self.limited.iter().map(|(_, l)| i64::from(l.overall)).collect();
        let budget_tenants: Vec<Uuid> = self.budgeted.iter().map(|(t, _, _)| *t).collect();
        let budgets: Vec<i16> = self.budgeted.iter().map(|(_, b, _)| b.id()).collect();
        let firsts: Vec<i64> = self.budgeted.iter().map(|(_, _, first)| *first).collect();
        let (locks, own): ([&(dyn ToSql + Sync); 2], [&(dyn ToSql + Sync); 1]) = ([&phones, &locked_tenants], [&ids]);
        let external: [&(dyn ToSql + Sync); 2] = [&ext_tenants, &ext_ids];
        let newest: [&(dyn ToSql + Sync); 5] = [&phones, &tenants, &since, &per_tenant, &overall];
        let sums: [&(dyn ToSql + Sync); 3] = [&budget_tenants, &budgets, &firsts];
        let (locked, stored, external, newest, sums) = tokio::join!(
            tx.execute(&ask.lock, &locks),
            tx.query(&ask.stored, &own),
            tx.query(&ask.external, &external),
            tx.query(&ask.newest, &newest),
            tx.query(&ask.sums, &sums),
        );
        let (stored, external, newest, sums) = match (locked, stored, external, newest, sums) {
            (Ok(_), Ok(stored), Ok(external), Ok(newest), Ok(sums)) => (stored, external, newest, sums),
            (locked, stored, external, newest, sums) => {
                let failures = [locked.err(), stored.err(), external.err(), newest.err(), sums.err()];
                return Err(Fail::cause(failures.into_iter().flatten().map(Fail::from)).unwrap_or_else(corrupt));
            }
        };
        let mut seen = Seen {
            stored: stored.iter().map(|row| row.get(0)).collect(),
            external: HashMap::with_capacity(external.len()),
            newest: vec![Newest::default(); n],
            sums: HashMap::with_capacity(sums.len()),
        };
        for row in &external {
            let r = request_from_row(row)?;
            seen.external.insert((r.tenant_id, r.external_id.clone().unwrap_or_default()), r);
        }
        for row in &newest {
            let place = usize::try_from(row.get::<_, i64>(0) - 1).ok().filter(|p| *p < n).ok_or_else(corrupt)?;
            let times = &mut seen.newest[place];
            match row.get::<_, bool>(1) {
                true => times.tenants.push(row.get(2)),
                false => times.everybodys.push(row.get(2)),
            }
        }
        for row in &sums {
            let sum = u64::try_from(row.get::<_, i64>(3)).unwrap_or(0);
            seen.sums.insert((row.get(0), row.get(1), row.get(2)), sum);
        }
        Ok(seen)
    }

    /// Decides every limited registration in arrival order (asking the
    /// database in `tx` only for a budget near its limit): per registration,
    /// whether it is inserted; nothing at all when none is limited. The calls
    /// the inserted ones count go to `calls`, per tenant, budget and bucket.
    pub(super) async fn decide(
        &self,
        tx: &Transaction<'_>,
        seen: &Seen,
        calls: &mut HashMap<(Uuid, Budget, i64), i64>,
    ) -> Result<Vec<Decided>, Fail> {
        if !self.counted() {
            return Ok(Vec::new());
        }
        let mut decided = Vec::with_capacity(self.all.len());
        // The batch's registrations on their way in so far.
        let mut earlier: Vec<&AuthRequest> = Vec::with_capacity(self.all.len());
        let mut place = 0;
        for (r, limits) in &self.all {
            let newest = match limits.number {
                Some(_) => {
                    place += 1;
                    seen.newest.get(place - 1).ok_or_else(corrupt)?
                }
                None => &Newest::NONE,
            };
            if limits.is_empty() {
                decided.push(Decided::Insert(Vec::new()));
                earlier.push(r);
                continue;
            }
            if seen.stored.contains(&r.id) {
                // An earlier attempt committed it (and counted it); the insert answers it.
                decided.push(Decided::Insert(Vec::new()));
                continue;
            }
            let same_external_id = |e: &&AuthRequest| {
                e.tenant_id == r.tenant_id && e.external_id.is_some() && e.external_id == r.external_id
            };
            if earlier.iter().any(same_external_id) {
                // The insert finds the external id taken by the earlier one.
                decided.push(Decided::Insert(Vec::new()));
                continue;
            }
            let mut q =
                Counting { tx, request: r, seen, newest, earlier: &earlier, calls: &mut *calls, accepted: false };
            let inserted = register(&mut q, r, limits).await?;
            match (q.accepted, inserted) {
                (true, Inserted::Created { budget_use, .. }) => {
                    decided.push(Decided::Insert(budget_use));
                    earlier.push(r);
                }
                (_, inserted) => decided.push(Decided::Answered(inserted)),
            }
        }
        Ok(decided)
    }
}

/// The prepared statements of `Arriving::read`.
pub(super) struct Asking {
    lock: Statement,
    stored: Statement,
    external: Statement,
    newest: Statement,
    sums: Statement,
}

/// What a batch read about its limited registrations.
#[derive(Default)]
pub(super) struct Seen {
    /// Those already stored.
    stored: HashSet<Uuid>,
    /// The stored requests under their tenants' external ids.
    external: HashMap<(Uuid, String), AuthRequest>,
    /// Per registration with a per-number limit, the newest registrations of its number.
    newest: Vec<Newest>,
    /// The tenants' counts per budget (its id) from a first bucket on.
    sums: HashMap<(Uuid, i16, i64), u64>,
}

/// When the newest registrations of a number within a window were made.
#[derive(Default, Clone)]
struct Newest {
    /// The registering tenant's.
    tenants: Vec<DateTime<Utc>>,
    /// Everybody's.
    everybodys: Vec<DateTime<Utc>>,
}

impl Newest {
    const NONE: Self = Self { tenants: Vec::new(), everybodys: Vec::new() };
}

fn corrupt() -> Fail {
    Fail::Stop(StoreError::Corrupt("a batch's registrations were read wrong".into()))
}

/// `store::register`'s questions about one registration, answered from what
/// the batch read and from the batch's earlier registrations.
struct Counting<'a, 'tx> {
    tx: &'a Transaction<'tx>,
    request: &'a AuthRequest,
    seen: &'a Seen,
    newest: &'a Newest,
    earlier: &'a [&'a AuthRequest],
    calls: &'a mut HashMap<(Uuid, Budget, i64), i64>,
    /// It passed every limit: the batch inserts it.
    accepted: bool,
}

impl Counting<'_, '_> {
    /// The batch's earlier outbound registrations of this tenant made after `since`.
    fn earlier_outbound(&self, since: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> {
        let tenant = self.request.tenant_id;
        self.earlier
            .iter()
            .filter(move |e| e.tenant_id == tenant && e.mode == Mode::Outbound && e.created_at > since)
            .map(|e| e.created_at)
    }
}

impl Registrations for Counting<'_, '_> {
    type Error = Fail;

    async fn same_external_id(&mut self, external_id: &str) -> Result<Option<AuthRequest>, Fail> {
        Ok(self.seen.external.get(&(self.request.tenant_id, external_id.to_owned())).cloned())
    }

    async fn nth_newest_for_number(&mut self, by_tenant: bool, nth: Nth) -> Result<Option<DateTime<Utc>>, Fail> {
        let r = self.request;
        let stored = if by_tenant { &self.newest.tenants } else { &self.newest.everybodys };
        let ours = self
            .earlier
            .iter()
            .filter(|e| e.phone_number == r.phone_number && (!by_tenant || e.tenant_id == r.tenant_id))
            .map(|e| e.created_at);
        Ok(nth_newest(stored.iter().copied().chain(ours), nth))
    }

    async fn budget_upper_bound(&mut self, budget: Budget, first_bucket: i64) -> Result<u64, Fail> {
        let stored = self.seen.sums.get(&(self.request.tenant_id, budget.id(), first_bucket)).copied().unwrap_or(0);
        let tenant = self.request.tenant_id;
        let ours: i64 = self
            .calls
            .iter()
            .filter(|((t, b, bucket), _)| *t == tenant && *b == budget && *bucket >= first_bucket)
            .map(|(_, n)| n)
            .sum();
        Ok(stored + u64::try_from(ours).unwrap_or(0))
    }

    async fn nth_newest_outbound(&mut self, nth: Nth) -> Result<Option<DateTime<Utc>>, Fail> {
        // The batch's own are the newest: the tenant's lock kept every other
        // registration out since before they were made.
        let mut ours: Vec<DateTime<Utc>> = self.earlier_outbound(nth.since).collect();
        let Ok(offset) = usize::try_from(nth.offset) else { return Ok(None) };
        if offset < ours.len() {
            return Ok(nth_newest(ours.drain(..), nth));
        }
        let offset = i64::try_from(offset - ours.len()).unwrap_or(i64::MAX);
        let stmt = self.tx.prepare_cached(&numbered(OUTBOUND_NTH_NEWEST)).await?;
        let row = self.tx.query_opt(&stmt, &[&self.request.tenant_id, &nth.since, &offset]).await?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn insert(&mut self) -> Result<Inserted, Fail> {
        self.accepted = true;
        Ok(Inserted::Created { claimed: Vec::new(), budget_use: Vec::new() })
    }

    async fn count_call(&mut self, budget: Budget, bucket: i64) -> Result<(), Fail> {
        *self.calls.entry((self.request.tenant_id, budget, bucket)).or_default() += 1;
        Ok(())
    }
}
