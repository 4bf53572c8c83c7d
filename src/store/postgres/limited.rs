//! Registrations under a per-number limit, in the group commit.
//!
//! A batch locks the numbers of its limited registrations (after its rows, in
//! the order of the locks' keys, so that batches never deadlock) and reads
//! what `store::register` will ask about them, all in the round trip of its
//! other locks. Then it decides each registration, in arrival order, with
//! the rules every backend shares, on what it read and on the batch's own
//! earlier registrations: a registration sees every one that committed before
//! it, as it would in a transaction of its own.
//!
//! The numbers' locks are those a registration with call budgets takes in a
//! transaction of its own (`PgStore::insert_request`), so that both exclude
//! each other.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use futures_util::FutureExt;
use tokio_postgres::Statement;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::Fail;
use super::rows::request_from_row;
use crate::domain::budget::Budget;
use crate::domain::request::AuthRequest;
use crate::store::limits::{Nth, nth_newest};
use crate::store::{Inserted, Limits, NumberLimit, Registrations, StoreError, register};

/// Locks every number given, each once, in the order of its key.
const LOCK_NUMBERS: &str = "SELECT pg_advisory_xact_lock(k) FROM \
     (SELECT DISTINCT hashtextextended(p, 1) AS k FROM unnest($1::text[]) AS p ORDER BY k) AS keys";
/// Which of the ids given are stored: a batch's earlier attempt committed them.
const STORED: &str = "SELECT id FROM auth_requests WHERE id = ANY($1)";
/// The requests stored under the tenants' external ids given.
const SAME_EXTERNAL_IDS: &str = concat!(
    "SELECT ",
    request_columns!(),
    " FROM unnest($1::uuid[], $2::text[]) AS x(tenant, ext) \
     JOIN auth_requests ON tenant_id = x.tenant AND external_id = x.ext"
);
/// Per registration (`ord`, from 1), when the newest registrations of its
/// number within its window were made: its tenant's (`true`, as many as the
/// tenant's limit) and everybody's (`false`, as many as the server's). Along
/// the number's index, as `NUMBER_NTH_NEWEST_BY_TENANT` says why.
const NEWEST: &str = "WITH n AS (SELECT * FROM unnest($1::text[], $2::uuid[], $3::timestamptz[], $4::int8[], \
       $5::int8[]) WITH ORDINALITY AS n(phone, tenant, since, per_tenant, overall, ord)) \
     SELECT n.ord, true, r.created_at FROM n CROSS JOIN LATERAL (SELECT created_at FROM auth_requests \
       WHERE phone_number = n.phone AND created_at > n.since AND (tenant_id = n.tenant) IS TRUE \
       ORDER BY created_at DESC LIMIT n.per_tenant) AS r \
     UNION ALL \
     SELECT n.ord, false, r.created_at FROM n CROSS JOIN LATERAL (SELECT created_at FROM auth_requests \
       WHERE phone_number = n.phone AND created_at > n.since \
       ORDER BY created_at DESC LIMIT n.overall) AS r";

/// A batch's registrations in arrival order, each with its per-number limit.
pub(super) struct Arriving<'a> {
    all: Vec<(&'a AuthRequest, Option<NumberLimit>)>,
    /// Those with a limit.
    limited: Vec<(&'a AuthRequest, NumberLimit)>,
}

impl<'a> Arriving<'a> {
    pub(super) fn new(all: Vec<(&'a AuthRequest, Option<NumberLimit>)>) -> Self {
        let limited = all.iter().filter_map(|(r, limit)| Some((*r, (*limit)?))).collect();
        Self { all, limited }
    }

    /// The statements that lock and read for the limited registrations,
    /// prepared (once per connection), so that all go out in the order sent.
    pub(super) async fn prepare(&self, tx: &Transaction<'_>) -> Result<Option<Asking>, Fail> {
        if self.limited.is_empty() {
            return Ok(None);
        }
        Ok(Some(Asking {
            lock: tx.prepare_cached(LOCK_NUMBERS).await?,
            stored: tx.prepare_cached(STORED).await?,
            external: tx.prepare_cached(SAME_EXTERNAL_IDS).await?,
            newest: tx.prepare_cached(NEWEST).await?,
        }))
    }

    /// Locks the limited registrations' numbers and reads what their
    /// decisions need: every statement is sent before the first answer is read.
    pub(super) async fn read(&self, tx: &Transaction<'_>, asking: Option<Asking>) -> Result<Seen, Fail> {
        let Some(ask) = asking else { return Ok(Seen::default()) };
        let n = self.limited.len();
        let phones: Vec<&str> = self.limited.iter().map(|(r, _)| r.phone_number.as_str()).collect();
        let ids: Vec<Uuid> = self.limited.iter().map(|(r, _)| r.id).collect();
        let (ext_tenants, ext_ids): (Vec<Uuid>, Vec<&str>) =
            self.limited.iter().filter_map(|(r, _)| Some((r.tenant_id, r.external_id.as_deref()?))).unzip();
        let tenants: Vec<Uuid> = self.limited.iter().map(|(r, _)| r.tenant_id).collect();
        let since: Vec<DateTime<Utc>> = self.limited.iter().map(|(r, l)| r.created_at - l.window).collect();
        let per_tenant: Vec<i64> = self.limited.iter().map(|(_, l)| i64::from(l.per_tenant)).collect();
        let overall: Vec<i64> = self.limited.iter().map(|(_, l)| i64::from(l.overall)).collect();
        let (numbers, own): ([&(dyn ToSql + Sync); 1], [&(dyn ToSql + Sync); 1]) = ([&phones], [&ids]);
        let external: [&(dyn ToSql + Sync); 2] = [&ext_tenants, &ext_ids];
        let newest: [&(dyn ToSql + Sync); 5] = [&phones, &tenants, &since, &per_tenant, &overall];
        let (locked, stored, external, newest) = tokio::join!(
            tx.execute(&ask.lock, &numbers),
            tx.query(&ask.stored, &own),
            tx.query(&ask.external, &external),
            tx.query(&ask.newest, &newest),
        );
        let (stored, external, newest) = match (locked, stored, external, newest) {
            (Ok(_), Ok(stored), Ok(external), Ok(newest)) => (stored, external, newest),
            (locked, stored, external, newest) => {
                let failures = [locked.err(), stored.err(), external.err(), newest.err()];
                return Err(Fail::cause(failures.into_iter().flatten().map(Fail::from)).unwrap_or_else(corrupt));
            }
        };
        let mut seen = Seen {
            stored: stored.iter().map(|row| row.get(0)).collect(),
            external: HashMap::with_capacity(external.len()),
            newest: vec![Newest::default(); n],
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
        Ok(seen)
    }

    /// Decides every limited registration in arrival order: per registration,
    /// `Some` answer for each one refused (a limit met, or its external id
    /// taken), `None` for each that is to be inserted (every unlimited one
    /// among them); nothing at all when none is limited.
    pub(super) fn decide(&self, seen: &Seen) -> Result<Vec<Option<Inserted>>, Fail> {
        if self.limited.is_empty() {
            return Ok(Vec::new());
        }
        let mut decided = Vec::with_capacity(self.all.len());
        // The batch's registrations on their way in so far.
        let mut earlier: Vec<&AuthRequest> = Vec::with_capacity(self.all.len());
        let mut place = 0;
        for (r, limit) in &self.all {
            let Some(limit) = limit else {
                decided.push(None);
                earlier.push(r);
                continue;
            };
            let newest = &seen.newest[place];
            place += 1;
            if seen.stored.contains(&r.id) {
                // An earlier attempt committed it (and counted it); the insert answers it.
                decided.push(None);
                continue;
            }
            let same_external_id = |e: &&AuthRequest| {
                e.tenant_id == r.tenant_id && e.external_id.is_some() && e.external_id == r.external_id
            };
            if earlier.iter().any(same_external_id) {
                // The insert finds the external id taken by the earlier one.
                decided.push(None);
                continue;
            }
            let mut q = Counting { request: r, seen, newest, earlier: &earlier, accepted: false };
            let inserted = register(&mut q, r, &Limits::number(Some(*limit)))
                .now_or_never()
                .ok_or_else(|| Fail::Stop(StoreError::Corrupt("a batch's registration waited".into())))??;
            match q.accepted {
                true => {
                    decided.push(None);
                    earlier.push(r);
                }
                false => decided.push(Some(inserted)),
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
}

/// What a batch read about its limited registrations.
#[derive(Default)]
pub(super) struct Seen {
    /// Those already stored.
    stored: HashSet<Uuid>,
    /// The stored requests under their tenants' external ids.
    external: HashMap<(Uuid, String), AuthRequest>,
    /// Per limited registration, the newest registrations of its number.
    newest: Vec<Newest>,
}

/// When the newest registrations of a number within a window were made.
#[derive(Default, Clone)]
struct Newest {
    /// The registering tenant's.
    tenants: Vec<DateTime<Utc>>,
    /// Everybody's.
    everybodys: Vec<DateTime<Utc>>,
}

fn corrupt() -> Fail {
    Fail::Stop(StoreError::Corrupt("a batch's registrations were read wrong".into()))
}

/// `store::register`'s questions about one registration, answered from what
/// the batch read and from the batch's earlier registrations.
struct Counting<'a> {
    request: &'a AuthRequest,
    seen: &'a Seen,
    newest: &'a Newest,
    earlier: &'a [&'a AuthRequest],
    /// It passed every limit: the batch inserts it.
    accepted: bool,
}

impl Counting<'_> {
    fn no_budgets() -> Fail {
        Fail::Stop(StoreError::Corrupt("a registration with call budgets reached the batch".into()))
    }
}

impl Registrations for Counting<'_> {
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

    async fn budget_upper_bound(&mut self, _: Budget, _: i64) -> Result<u64, Fail> {
        Err(Self::no_budgets())
    }

    async fn nth_newest_outbound(&mut self, _: Nth) -> Result<Option<DateTime<Utc>>, Fail> {
        Err(Self::no_budgets())
    }

    async fn insert(&mut self) -> Result<Inserted, Fail> {
        self.accepted = true;
        Ok(Inserted::Created { claimed: Vec::new(), budget_use: Vec::new() })
    }

    async fn count_call(&mut self, _: Budget, _: i64) -> Result<(), Fail> {
        Err(Self::no_budgets())
    }
}
