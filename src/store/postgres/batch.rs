//! Group commit for PostgreSQL: the writes of one server that queue up
//! together share one transaction, as the SQLite writer's do.
//!
//! A batch locks its rows (requests, then the jobs it finishes, each in id
//! order, so that the batches of several servers never deadlock), runs every
//! decision in arrival order against the locked state (two events for one
//! request see each other), sends all its writes pipelined (the audit events
//! and funnel steps of its changes among them) and commits once.
//! A batch that fails on a lost connection, a serialization failure or a
//! deadlock runs again from the start (decisions are re-runnable); a commit
//! whose answer was lost with its connection is recognised by the batch id it
//! wrote into every row it changed, or by its inserted rows.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Utc};

use deadpool_postgres::Transaction;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio_postgres::Statement;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::audit::{ADD_EVENTS, ADD_STEPS, EventArrays, StepArrays};
use super::limited::{Arriving, COUNT_CALLS, Decided, Seen};
use super::lookup::{ADD_TIMELINE, TimelineArrays};
use super::queue;
use super::requests::NewRequests;
use super::rows::request_from_row;
use super::usage::{ADD_USAGE, UsageArrays};
use super::{Db, Fail, JobArrays};
use crate::clock::to_millis;
use crate::domain::audit::Record;
use crate::domain::budget::Budget;
use crate::domain::funnel::Reached;
use crate::domain::request::AuthRequest;
use crate::domain::timeline::Entry;
use crate::domain::usage::Used;
use crate::store::{Applied, Decide, Inserted, Lease, Limits, NewJob, StoreError};

/// Writes in one batch at most.
const MAX_BATCH: usize = 256;
/// Batches in flight at once (a connection each): one fills while another commits.
const WRITERS: usize = 2;

/// A queued write and where its answer goes.
#[allow(clippy::large_enum_variant)] // short-lived, one per write in flight
pub(super) enum Op {
    Insert {
        request: Arc<AuthRequest>,
        jobs: Vec<NewJob>,
        /// Counted in the batch (`limited`).
        limits: Limits,
        reply: oneshot::Sender<Result<Inserted, StoreError>>,
    },
    Update {
        id: Uuid,
        decide: Decide,
        finishing: Option<Lease>,
        reply: oneshot::Sender<Result<Option<Applied>, StoreError>>,
    },
}

/// What an op's answer will be once its batch commits.
#[allow(clippy::large_enum_variant)] // short-lived, one per write in flight
enum Outcome {
    Inserted(Inserted),
    Updated(Option<Applied>),
    LeaseLost,
}

impl Outcome {
    fn wrote(&self) -> bool {
        matches!(self, Self::Inserted(Inserted::Created { .. }) | Self::Updated(Some(Applied { after: Some(_), .. })))
    }
}

/// The writers' queues. Registrations that are counted (a per-number limit,
/// call budgets) have a writer of their own: a batch of them holds its
/// numbers' and tenants' locks until it commits, and a second writer with
/// counted registrations of the same tenant would only wait for it, holding
/// its connection and the rows of every other write it carries. So the
/// counted registrations of a server queue up behind one another and are
/// counted together, and every other write commits beside them.
pub(super) struct Writers {
    counted: mpsc::UnboundedSender<Op>,
    rest: mpsc::UnboundedSender<Op>,
}

impl Writers {
    /// Queues `op` for its writer; `Err` once the writers have stopped.
    pub(super) fn send(&self, op: Op) -> Result<(), StoreError> {
        let queue = match &op {
            Op::Insert { limits, .. } if !limits.is_empty() => &self.counted,
            _ => &self.rest,
        };
        queue.send(op).map_err(|_| StoreError::closed())
    }
}

/// Starts the writers; they stop when the returned queues are dropped.
pub(super) fn spawn(db: Arc<Db>) -> (Writers, Vec<AbortHandle>) {
    let writer = |db: Arc<Db>, batch| async move { run(&db, batch).await };
    let (counted, mut tasks) = queue::spawn(db.clone(), 1, MAX_BATCH, writer);
    let (rest, others) = queue::spawn(db, WRITERS, MAX_BATCH, writer);
    tasks.extend(others);
    (Writers { counted, rest }, tasks)
}

/// Runs a batch until it commits or its time runs out, then answers every op.
async fn run(db: &Db, batch: Vec<Op>) {
    let batch_id = Uuid::now_v7();
    // Claim tokens of inserted jobs stay the same across attempts, so that a
    // retry finds the jobs its lost commit leased.
    let tokens: Vec<Uuid> = batch.iter().map(|_| Uuid::now_v7()).collect();
    let mut decided = None;
    let result =
        retrying!(db, "batch", |conn, tries| attempt(conn, db, &batch, batch_id, &tokens, tries, &mut decided).await);
    match result {
        Ok(outcomes) => {
            // A write changed something, or finished its job.
            let finished = |op: &Op| matches!(op, Op::Update { finishing: Some(_), .. });
            let wrote = outcomes
                .iter()
                .zip(&batch)
                .filter(|(o, op)| o.wrote() || (finished(op) && !matches!(o, Outcome::LeaseLost)))
                .count();
            for _ in 0..wrote {
                db.counters.wrote();
            }
            if wrote > 0 {
                db.counters.committed();
            }
            for (op, outcome) in batch.into_iter().zip(outcomes) {
                answer(op, Ok(outcome));
            }
        }
        Err(e) => {
            let unavailable = matches!(e, StoreError::Unavailable(_));
            let why = e.to_string();
            for op in batch {
                let e = if unavailable {
                    StoreError::Unavailable(why.clone().into())
                } else {
                    StoreError::Database(why.clone().into())
                };
                answer(op, Err(e));
            }
        }
    }
}

fn answer(op: Op, outcome: Result<Outcome, StoreError>) {
    let mismatch = || StoreError::Corrupt("a batch decided the wrong kind of write".into());
    match op {
        Op::Insert { reply, .. } => {
            let _ = reply.send(match outcome {
                Ok(Outcome::Inserted(i)) => Ok(i),
                Ok(_) => Err(mismatch()),
                Err(e) => Err(e),
            });
        }
        Op::Update { reply, .. } => {
            let _ = reply.send(match outcome {
                Ok(Outcome::Updated(u)) => Ok(u),
                Ok(Outcome::LeaseLost) => Err(StoreError::LeaseLost),
                Ok(Outcome::Inserted(_)) => Err(mismatch()),
                Err(e) => Err(e),
            });
        }
    }
}

pub(super) const LOCK_REQUESTS: &str =
    concat!("SELECT ", request_columns!(), ", last_op FROM auth_requests WHERE id = ANY($1) ORDER BY id FOR UPDATE");
const LOCK_JOBS: &str = "SELECT id, lease_owner FROM jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE";
/// Every changed request of a batch in one statement.
const WRITE_REQUESTS: &str = "UPDATE auth_requests AS a SET attempts = u.attempts, no_input_count = u.no_input, \
     status = u.status, failure_reason = u.reason, call_sid = u.sid, call_status = u.call, updated_at = u.updated, \
     verified_at = u.verified, terminal = u.terminal, delivery = u.delivery, version = a.version + 1, \
     last_op = $11 \
     FROM unnest($1::uuid[], $2::int2[], $3::int2[], $4::text[], $5::text[], $6::text[], $7::text[], \
                 $8::timestamptz[], $9::timestamptz[], $10::bool[], $12::text[]) \
          AS u(id, attempts, no_input, status, reason, sid, call, updated, verified, terminal, delivery) \
     WHERE a.id = u.id";
const ADD_JOBS: &str = "INSERT INTO jobs (kind, request_id, payload, run_at, created_at, attempts) \
     SELECT k, r, p, now() + d * interval '1 millisecond', now(), 0 \
     FROM unnest($1::text[], $2::uuid[], $3::text[], $4::float8[]) AS j(k, r, p, d)";
const DROP_JOBS: &str = "DELETE FROM jobs WHERE id = ANY($1)";

/// Every change of a batch but its registrations in one statement: the
/// requests' updates, the jobs added and dropped, the audit events, funnel
/// steps, usage and timeline entries, each a data-modifying `WITH` of its own
/// (PostgreSQL runs each once, whether or not its array is empty). As seven
/// statements, each cost PostgreSQL its own bind, executor start and end.
pub(super) static WRITE_CHANGES: LazyLock<String> = LazyLock::new(|| {
    let parts = [WRITE_REQUESTS, ADD_JOBS, DROP_JOBS, ADD_EVENTS, ADD_STEPS, ADD_USAGE, ADD_TIMELINE];
    let mut sql = String::from("WITH ");
    let mut before = 0;
    for (n, part) in parts.into_iter().enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("w{n} AS ({})", shifted(part, before)));
        before += parameters(part);
    }
    sql.push_str(" SELECT 1");
    sql
});

/// How many parameters (`$1` to `$n`) `sql` takes.
fn parameters(sql: &str) -> usize {
    sql.split('$').skip(1).filter_map(|rest| number_at(rest).map(|(n, _)| n)).max().unwrap_or(0)
}

/// The number at the start of `s`, and how many bytes it takes.
fn number_at(s: &str) -> Option<(usize, usize)> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    Some((s[..digits].parse().ok()?, digits))
}

/// `sql` with each parameter `$k` renumbered `$(k + by)`.
fn shifted(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut parts = sql.split('$');
    out.push_str(parts.next().unwrap_or_default());
    for rest in parts {
        out.push('$');
        match number_at(rest) {
            Some((n, digits)) => {
                out.push_str(&(n + by).to_string());
                out.push_str(&rest[digits..]);
            }
            None => out.push_str(rest),
        }
    }
    out
}

/// One attempt of a batch: lock, decide, write, commit.
async fn attempt(
    conn: &mut deadpool_postgres::Object,
    db: &Db,
    batch: &[Op],
    batch_id: Uuid,
    tokens: &[Uuid],
    tries: u32,
    decided: &mut Option<Vec<Outcome>>,
) -> Result<Vec<Outcome>, Fail> {
    let tx = conn.transaction().await?;
    let arriving = Arriving::new(
        batch
            .iter()
            .filter_map(
                |op| if let Op::Insert { request, limits, .. } = op { Some((&**request, limits)) } else { None },
            )
            .collect(),
    );
    let mut locked = lock(&tx, batch, batch_id, &arriving).await?;
    if locked.committed_before && tries > 1 {
        // The previous attempt committed; only its answer was lost.
        if let Some(outcomes) = decided.take() {
            return Ok(outcomes);
        }
    }
    let mut calls = HashMap::new();
    let registrations = arriving.decide(&tx, &locked.registrations, &mut calls).await?;
    let mut decisions = decide(batch, &mut locked, registrations);
    decisions.calls = calls;
    let inserted = write(&tx, db, batch, tokens, batch_id, &locked, &decisions).await?;
    for (n, mut result) in inserted {
        if let (Inserted::Created { budget_use, .. }, Some(used)) = (&mut result, decisions.budget_use.remove(&n)) {
            *budget_use = used;
        }
        decisions.outcomes[n] = Some(Outcome::Inserted(result));
    }
    let outcomes: Vec<Outcome> = (decisions.outcomes.into_iter())
        .map(|o| o.ok_or_else(|| Fail::Stop(StoreError::Corrupt("a write of the batch was not decided".into()))))
        .collect::<Result<_, _>>()?;
    *decided = Some(outcomes.iter().map(Outcome::copy).collect());
    tx.commit().await?;
    Ok(outcomes)
}

/// What a batch's decisions read, locked: the requests (and whether each
/// changed), the leases of the jobs it finishes, and what its registrations
/// under limits are counted against.
struct Locked {
    current: HashMap<Uuid, (AuthRequest, bool)>,
    leases: HashMap<i64, Option<Uuid>>,
    registrations: Seen,
    /// A request carries this batch's id: an earlier attempt committed.
    committed_before: bool,
}

/// Locks the rows the batch's decisions read, requests then jobs, each in id
/// order, then the numbers and tenants of its limited registrations (`limited`).
async fn lock(tx: &Transaction<'_>, batch: &[Op], batch_id: Uuid, arriving: &Arriving<'_>) -> Result<Locked, Fail> {
    let mut ids: Vec<Uuid> =
        batch.iter().filter_map(|op| if let Op::Update { id, .. } = op { Some(*id) } else { None }).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut job_ids: Vec<i64> = batch
        .iter()
        .filter_map(|op| if let Op::Update { finishing: Some(l), .. } = op { Some(l.job) } else { None })
        .collect();
    job_ids.sort_unstable();
    job_ids.dedup();
    // Every lock goes out together, in this order (PostgreSQL runs them in
    // the order sent): one round trip. Each is prepared before any is sent,
    // so that a statement not yet prepared on this connection cannot let
    // another overtake it.
    let requests_lock = prepared(tx, !ids.is_empty(), LOCK_REQUESTS).await?;
    let jobs_lock = prepared(tx, !job_ids.is_empty(), LOCK_JOBS).await?;
    let counting = arriving.prepare(tx).await?;
    let (requests, jobs, registrations) =
        tokio::join!(locking(tx, requests_lock, &ids), locking(tx, jobs_lock, &job_ids), arriving.read(tx, counting));
    let (requests, jobs, registrations) = match (requests, jobs, registrations) {
        (Ok(requests), Ok(jobs), Ok(registrations)) => (requests, jobs, registrations),
        (requests, jobs, registrations) => {
            let failures = [requests.err(), jobs.err(), registrations.err()];
            return Err(Fail::cause(failures.into_iter().flatten()).unwrap_or_else(corrupt));
        }
    };
    let mut locked = Locked { current: HashMap::new(), leases: HashMap::new(), registrations, committed_before: false };
    for row in requests {
        locked.committed_before |= row.get::<_, Option<Uuid>>(26) == Some(batch_id);
        let r = request_from_row(&row)?;
        locked.current.insert(r.id, (r, false));
    }
    for row in jobs {
        locked.leases.insert(row.get(0), row.get(1));
    }
    Ok(locked)
}

/// `sql` prepared on this connection (once, then from its cache), when `wanted`.
async fn prepared(tx: &Transaction<'_>, wanted: bool, sql: &str) -> Result<Option<Statement>, Fail> {
    Ok(if wanted { Some(tx.prepare_cached(sql).await?) } else { None })
}

/// The rows `lock` locks for `ids` (none without a statement).
async fn locking<T: ToSql + Sync>(
    tx: &Transaction<'_>,
    lock: Option<Statement>,
    ids: &T,
) -> Result<Vec<tokio_postgres::Row>, Fail> {
    match lock {
        Some(lock) => Ok(tx.query(&lock, &[ids]).await?),
        None => Ok(Vec::new()),
    }
}

/// Runs one write of a batch, when it has a statement (anything to write).
async fn writing(tx: &Transaction<'_>, write: Option<Statement>, params: &[&(dyn ToSql + Sync)]) -> Result<(), Fail> {
    if let Some(write) = write {
        tx.execute(&write, params).await?;
    }
    Ok(())
}

fn corrupt() -> Fail {
    Fail::Stop(StoreError::Corrupt("a statement failed without a cause".into()))
}

/// The decisions of a batch's writes (`None` for the inserts to write, decided when written).
struct Decisions {
    outcomes: Vec<Option<Outcome>>,
    new_jobs: Vec<NewJob>,
    finished: Vec<i64>,
    audit: Vec<Record>,
    steps: Vec<Reached>,
    usage: Vec<Used>,
    timeline: Vec<Entry>,
    /// Calls counted per tenant, budget and bucket.
    calls: HashMap<(Uuid, Budget, i64), i64>,
    /// Per registration to insert (by its place), its call budgets' use.
    budget_use: HashMap<usize, Vec<(Budget, u64)>>,
}

/// Runs every update's decision, in arrival order, on the locked state, and
/// takes the registrations' (`limited`), in the same order.
fn decide(batch: &[Op], locked: &mut Locked, registrations: Vec<Decided>) -> Decisions {
    let mut registrations = registrations.into_iter();
    let mut d = Decisions {
        outcomes: Vec::with_capacity(batch.len()),
        new_jobs: Vec::new(),
        finished: Vec::new(),
        audit: Vec::new(),
        steps: Vec::new(),
        usage: Vec::new(),
        timeline: Vec::new(),
        calls: HashMap::new(),
        budget_use: HashMap::new(),
    };
    for op in batch {
        let Op::Update { id, decide, finishing, .. } = op else {
            match registrations.next() {
                Some(Decided::Answered(inserted)) => d.outcomes.push(Some(Outcome::Inserted(inserted))),
                Some(Decided::Insert(used)) => {
                    if !used.is_empty() {
                        d.budget_use.insert(d.outcomes.len(), used);
                    }
                    d.outcomes.push(None);
                }
                None => d.outcomes.push(None),
            }
            continue;
        };
        if let Some(lease) = finishing {
            let holds = locked.leases.get(&lease.job).copied().flatten() == Some(lease.token);
            if !holds || d.finished.contains(&lease.job) {
                d.outcomes.push(Some(Outcome::LeaseLost));
                continue;
            }
            d.finished.push(lease.job);
        }
        let Some((state, dirty)) = locked.current.get_mut(id) else {
            d.outcomes.push(Some(Outcome::Updated(None)));
            continue;
        };
        let before = state.clone();
        match decide(&before) {
            None => d.outcomes.push(Some(Outcome::Updated(Some(Applied { before, after: None })))),
            Some(update) => {
                *state = update.request.clone();
                *dirty = true;
                d.new_jobs.extend(update.jobs);
                d.audit.extend(update.audit);
                d.steps.extend(update.steps);
                d.usage.extend(update.usage);
                d.timeline.extend(update.timeline);
                d.outcomes.push(Some(Outcome::Updated(Some(Applied { before, after: Some(update.request) }))));
            }
        }
    }
    d
}

/// Writes a batch, pipelined: every statement is sent before the first
/// answer is read. Answers each insert's result by its place in the batch.
async fn write(
    tx: &Transaction<'_>,
    db: &Db,
    batch: &[Op],
    tokens: &[Uuid],
    batch_id: Uuid,
    locked: &Locked,
    d: &Decisions,
) -> Result<Vec<(usize, Inserted)>, Fail> {
    let changed = Changed::of(locked.current.values().filter(|(_, d)| *d).map(|(r, _)| r));
    let arrays = JobArrays::new(&d.new_jobs);
    let request_ids: Vec<Uuid> = d.new_jobs.iter().map(|j| j.request_id).collect();
    let (events, steps, usage) = (EventArrays::new(&d.audit), StepArrays::new(&d.steps), UsageArrays::new(&d.usage));
    let timeline = TimelineArrays::new(&d.timeline);
    // The registrations not refused already.
    let to_insert = |n: usize, op: &Op| matches!(op, Op::Insert { .. }) && d.outcomes[n].is_none();
    let each: Vec<_> = batch
        .iter()
        .zip(tokens)
        .enumerate()
        .filter_map(|(n, (op, token))| match op {
            Op::Insert { request, jobs, .. } if to_insert(n, op) => Some((&**request, jobs.as_slice(), *token)),
            _ => None,
        })
        .collect();
    let registering = NewRequests::new(&each, db.lease);
    let inserts = async {
        if each.is_empty() {
            return Ok(Vec::new());
        }
        let places = batch.iter().enumerate().filter(|(n, op)| to_insert(*n, op)).map(|(n, _)| n);
        Ok::<_, Fail>(places.zip(registering.insert(tx).await?).collect())
    };
    // The changes, the counted calls and the registrations' insert, all
    // sent, in this order, before the first answer is read: one round trip
    // for the lot. Each is prepared first (once per connection), so that none
    // waits for its preparation while the others go ahead of it.
    let some_change = !(changed.ids.is_empty()
        && d.new_jobs.is_empty()
        && d.finished.is_empty()
        && events.is_empty()
        && steps.is_empty()
        && usage.is_empty()
        && timeline.is_empty());
    let changing = prepared(tx, some_change, &WRITE_CHANGES).await?;
    let calling = prepared(tx, !d.calls.is_empty(), COUNT_CALLS).await?;
    let (call_tenants, call_budgets, call_buckets, call_counts) = calls_params(&d.calls);
    let calls: [&(dyn ToSql + Sync); 4] = [&call_tenants, &call_budgets, &call_buckets, &call_counts];
    let jobs: [&(dyn ToSql + Sync); 4] = [&arrays.kinds, &request_ids, &arrays.payloads, &arrays.delays];
    let finished: [&(dyn ToSql + Sync); 1] = [&d.finished];
    let (changes, records, reached, used, told) =
        (changed.params(&batch_id), events.params(), steps.params(), usage.params(), timeline.params());
    let all: Vec<&(dyn ToSql + Sync)> = [&changes[..], &jobs, &finished, &records, &reached, &used, &told].concat();
    let (changed, called, inserted) = tokio::join!(writing(tx, changing, &all), writing(tx, calling, &calls), inserts);
    let written = [changed, called];
    match inserted {
        Ok(inserted) if written.iter().all(Result::is_ok) => Ok(inserted),
        inserted => {
            let failures = written.into_iter().filter_map(Result::err).chain(inserted.err());
            Err(Fail::cause(failures).unwrap_or_else(corrupt))
        }
    }
}

/// The calls a batch counts as the column arrays of `COUNT_CALLS`.
fn calls_params(calls: &HashMap<(Uuid, Budget, i64), i64>) -> (Vec<Uuid>, Vec<i16>, Vec<i64>, Vec<i64>) {
    let mut rows: Vec<_> = calls.iter().map(|((t, b, bucket), n)| (*t, b.id(), *bucket, *n)).collect();
    // In key order, as every batch takes the rows' locks.
    rows.sort_unstable();
    let mut arrays = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (t, b, bucket, n) in rows {
        arrays.0.push(t);
        arrays.1.push(b);
        arrays.2.push(bucket);
        arrays.3.push(n);
    }
    arrays
}

/// The changed requests of a batch as the column arrays of `WRITE_REQUESTS`.
struct Changed {
    ids: Vec<Uuid>,
    attempts: Vec<i16>,
    no_input: Vec<i16>,
    status: Vec<&'static str>,
    reason: Vec<Option<&'static str>>,
    sid: Vec<Option<String>>,
    call: Vec<Option<&'static str>>,
    updated: Vec<DateTime<Utc>>,
    verified: Vec<Option<DateTime<Utc>>>,
    terminal: Vec<bool>,
    delivery: Vec<Option<String>>,
}

impl Changed {
    fn of<'a>(requests: impl Iterator<Item = &'a AuthRequest>) -> Self {
        let mut c = Self {
            ids: Vec::new(),
            attempts: Vec::new(),
            no_input: Vec::new(),
            status: Vec::new(),
            reason: Vec::new(),
            sid: Vec::new(),
            call: Vec::new(),
            updated: Vec::new(),
            verified: Vec::new(),
            terminal: Vec::new(),
            delivery: Vec::new(),
        };
        for r in requests {
            c.ids.push(r.id);
            c.attempts.push(r.attempts.into());
            c.no_input.push(r.no_input_count.into());
            c.status.push(r.status.as_str());
            c.reason.push(r.failure_reason.map(|f| f.as_str()));
            c.sid.push(r.call_sid.clone());
            c.call.push(r.call_status.map(|s| s.as_str()));
            c.updated.push(to_millis(r.updated_at));
            c.verified.push(r.verified_at.map(to_millis));
            c.terminal.push(r.status.is_terminal());
            c.delivery.push(r.delivery.to_stored());
        }
        c
    }

    fn params<'a>(&'a self, batch_id: &'a Uuid) -> [&'a (dyn ToSql + Sync); 12] {
        [
            &self.ids,
            &self.attempts,
            &self.no_input,
            &self.status,
            &self.reason,
            &self.sid,
            &self.call,
            &self.updated,
            &self.verified,
            &self.terminal,
            batch_id,
            &self.delivery,
        ]
    }
}

impl Outcome {
    /// A copy kept in case the commit's answer is lost.
    fn copy(&self) -> Self {
        match self {
            Self::Inserted(i) => Self::Inserted(i.clone()),
            Self::Updated(u) => Self::Updated(u.clone()),
            Self::LeaseLost => Self::LeaseLost,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_counted_and_renumbered_past_those_before() {
        let sql = "UPDATE t SET a = $2, b = $11 FROM unnest($1::uuid[], $10::text[]) WHERE c = '$x'";
        assert_eq!(parameters(sql), 11);
        assert_eq!(shifted(sql, 7), "UPDATE t SET a = $9, b = $18 FROM unnest($8::uuid[], $17::text[]) WHERE c = '$x'");
        assert_eq!(shifted("SELECT 1", 3), "SELECT 1");
        // Each part's parameters follow the previous parts' in the one statement.
        let parts = [WRITE_REQUESTS, ADD_JOBS, DROP_JOBS, ADD_EVENTS, ADD_STEPS, ADD_USAGE, ADD_TIMELINE];
        let total: usize = parts.iter().map(|p| parameters(p)).sum();
        assert_eq!(parameters(&WRITE_CHANGES), total);
        assert_eq!(total, 12 + 4 + 1 + 6 + 5 + 7 + 4);
    }
}
