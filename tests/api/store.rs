//! The store's contract, run against every backend: each test runs its body
//! on SQLite and then on PostgreSQL, each on a fresh database.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use ivr_auth::domain::phone::PhoneNumber;
use ivr_auth::domain::registration::Registration;
use ivr_auth::domain::request::{AuthRequest, Sealed};
use ivr_auth::domain::status::{Mode, Status};
use ivr_auth::domain::tenant::Tenant;
use ivr_auth::store::{
    Decide, Inserted, JobKind, Lease, LimitScope, Limits, NewJob, NumberLimit, OpenOptions, Role, Store, StoreError,
    Update,
};
use uuid::Uuid;

use crate::db::{Backend, TestDb};

/// Runs `body` once per backend, each with a fresh database.
macro_rules! on_every_backend {
    (|$db:ident| $body:block) => {
        for backend in Backend::ALL {
            let $db = TestDb::new(backend).await;
            eprintln!("-- {backend:?}");
            $body
        }
    };
}

async fn tenant(store: &dyn Store, name: &str) -> Tenant {
    let (t, _key) = Tenant::create(name.into(), Utc::now());
    store.create_tenant(t.clone()).await.unwrap();
    t
}

fn request(tenant: &Tenant, phone: &str, external_id: Option<&str>, at: DateTime<Utc>) -> AuthRequest {
    let mut reg = Registration::with_defaults(PhoneNumber::from_stored(phone.into()));
    reg.mode = Mode::Inbound;
    reg.external_id = external_id.map(str::to_owned);
    let sealed = Sealed {
        key_id: Some("0a1b2c3d".into()),
        code_hash: vec![1; 32],
        code_salt: Some(vec![2; 16]),
        fingerprint: vec![3; 32],
    };
    AuthRequest::new(Uuid::now_v7(), tenant.id, &reg, sealed, at)
}

fn now_ms() -> DateTime<Utc> {
    ivr_auth::clock::to_millis(Utc::now())
}

fn job(kind: JobKind, request: Uuid) -> NewJob {
    NewJob::now(kind, request, String::new())
}

/// A decision that writes `next` alone: no job, no side rows.
fn only(next: AuthRequest) -> Option<Update> {
    Some(Update {
        request: next,
        jobs: Vec::new(),
        audit: Vec::new(),
        steps: Vec::new(),
        usage: Vec::new(),
        timeline: Vec::new(),
    })
}

/// A decision that counts one more no-input, whatever the state.
fn one_more_no_input() -> Decide {
    Arc::new(|r: &AuthRequest| {
        let mut next = r.clone();
        next.no_input_count = r.no_input_count.saturating_add(1);
        only(next)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn inserts_read_back_and_external_ids_are_idempotent_per_tenant() {
    on_every_backend!(|db| {
        let store = db.store().await;
        let (a, b) = (tenant(&*store, "a").await, tenant(&*store, "b").await);
        assert!(matches!(
            store.create_tenant(Tenant::create("a".into(), Utc::now()).0).await,
            Err(StoreError::Conflict(_))
        ));
        let first = request(&a, "+819012345678", Some("order-1"), now_ms());
        assert!(matches!(
            store.insert_request(first.clone().into(), vec![], Limits::default()).await.unwrap(),
            Inserted::Created { .. }
        ));
        assert_eq!(store.request(first.id).await.unwrap().unwrap(), first, "read back exactly");
        // The same external_id again: the stored request, nothing written.
        let again = request(&a, "+819012345678", Some("order-1"), now_ms());
        match store
            .insert_request(again.clone().into(), vec![job(JobKind::PlaceCall, again.id)], Limits::default())
            .await
            .unwrap()
        {
            Inserted::Existing(existing) => assert_eq!(existing.id, first.id),
            other => panic!("{other:?}"),
        }
        assert!(store.request(again.id).await.unwrap().is_none());
        assert!(store.job_backlog().await.unwrap().is_empty(), "no job of the refused insert");
        // Another tenant may use it.
        let theirs = request(&b, "+819012345678", Some("order-1"), now_ms());
        assert!(matches!(
            store.insert_request(theirs.into(), vec![], Limits::default()).await.unwrap(),
            Inserted::Created { .. }
        ));
        assert_eq!(store.count_requests(a.id).await.unwrap(), 1);
        assert_eq!(store.count_requests(b.id).await.unwrap(), 1);
        assert_eq!(store.tenant_by_key_id(&a.key_id).await.unwrap().unwrap().id, a.id);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn the_number_limit_counts_stored_requests_and_a_replay_is_never_limited() {
    on_every_backend!(|db| {
        let store = db.store().await;
        let (t, other) = (tenant(&*store, "t").await, tenant(&*store, "other").await);
        let limit = Some(NumberLimit { per_tenant: 2, overall: 3, window: chrono::Duration::minutes(10) });
        let start = now_ms();
        for (n, ext) in ["x1", "x2"].iter().enumerate() {
            let r = request(&t, "+819011112222", Some(ext), start + chrono::Duration::seconds(n as i64));
            assert!(matches!(
                store.insert_request(r.into(), vec![], Limits::number(limit)).await.unwrap(),
                Inserted::Created { .. }
            ));
        }
        let third = request(&t, "+819011112222", None, start + chrono::Duration::seconds(60));
        match store.insert_request(third.into(), vec![], Limits::number(limit)).await.unwrap() {
            // The older of the two frees its slot 10 minutes after it was made.
            Inserted::Limited { retry_after, scope } => {
                assert_eq!((retry_after, scope), (Duration::from_secs(540), LimitScope::Tenant));
            }
            other => panic!("{other:?}"),
        }
        let replay = request(&t, "+819011112222", Some("x1"), start + chrono::Duration::seconds(61));
        assert!(matches!(
            store.insert_request(replay.into(), vec![], Limits::number(limit)).await.unwrap(),
            Inserted::Existing(_)
        ));
        // Another tenant has its own limit, under the ceiling of all tenants together.
        let theirs = request(&other, "+819011112222", None, start + chrono::Duration::seconds(62));
        assert!(matches!(
            store.insert_request(theirs.into(), vec![], Limits::number(limit)).await.unwrap(),
            Inserted::Created { .. }
        ));
        let more = request(&other, "+819011112222", None, start + chrono::Duration::seconds(63));
        match store.insert_request(more.into(), vec![], Limits::number(limit)).await.unwrap() {
            Inserted::Limited { scope, .. } => assert_eq!(scope, LimitScope::Server),
            other => panic!("{other:?}"),
        }
        let other_number = request(&t, "+819033334444", None, start);
        assert!(matches!(
            store.insert_request(other_number.into(), vec![], Limits::number(limit)).await.unwrap(),
            Inserted::Created { .. }
        ));
        let later = request(&t, "+819011112222", None, start + chrono::Duration::minutes(11));
        assert!(matches!(
            store.insert_request(later.into(), vec![], Limits::number(limit)).await.unwrap(),
            Inserted::Created { .. }
        ));
        assert_eq!(
            store.request_by_external_id(t.id, "x2").await.unwrap().map(|r| r.external_id),
            Some(Some("x2".into()))
        );
        assert!(store.request_by_external_id(other.id, "x2").await.unwrap().is_none(), "per tenant");
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_updates_of_one_request_lose_nothing() {
    on_every_backend!(|db| {
        let store = db.store_with(OpenOptions { max_connections: 6, ..OpenOptions::new(Role::Cli) }).await;
        let t = tenant(&*store, "t").await;
        let r = request(&t, "+819012345678", None, now_ms());
        store.insert_request(r.clone().into(), vec![], Limits::default()).await.unwrap();
        let tasks: Vec<_> = (0..40)
            .map(|_| {
                let (store, id) = (store.clone(), r.id);
                tokio::spawn(async move { store.update_request(id, one_more_no_input(), None).await.unwrap() })
            })
            .collect();
        for t in tasks {
            let applied = t.await.unwrap().unwrap();
            let after = applied.after.unwrap();
            assert_eq!(after.no_input_count, applied.before.no_input_count + 1, "decided on what it replaced");
        }
        assert_eq!(store.request(r.id).await.unwrap().unwrap().no_input_count, 40);
        // A decision of "nothing" writes nothing; an unknown id is None.
        let (writes, _) = store.counters().read();
        let none: Decide = Arc::new(|_| None);
        assert!(store.update_request(r.id, none.clone(), None).await.unwrap().unwrap().after.is_none());
        assert_eq!(store.counters().read().0, writes);
        assert!(store.update_request(Uuid::now_v7(), none, None).await.unwrap().is_none());
    });
}

/// Only inbound requests are found by their call sid: the status callback set
/// on an inbound number is the one webhook that names no request, and an
/// outbound call's webhooks carry the request id (migrations: SQLite 14,
/// PostgreSQL 13). An outbound request still keeps its call sid.
#[tokio::test(flavor = "multi_thread")]
async fn only_inbound_requests_are_found_by_their_call_sid() {
    on_every_backend!(|db| {
        let store = db.store().await;
        let t = tenant(&*store, "t").await;
        let inbound = request(&t, "+819012345678", None, now_ms());
        let mut outbound = request(&t, "+819012345679", None, now_ms());
        outbound.mode = Mode::Outbound;
        for (r, sid) in [(&inbound, "CA-inbound"), (&outbound, "CA-outbound")] {
            store.insert_request(r.clone().into(), vec![], Limits::default()).await.unwrap();
            let called: Decide = Arc::new(move |r: &AuthRequest| {
                let mut next = r.clone();
                next.call_sid = Some(sid.into());
                only(next)
            });
            store.update_request(r.id, called, None).await.unwrap();
        }
        let found = store.inbound_request_by_call_sid("CA-inbound").await.unwrap();
        assert_eq!(found.map(|r| r.id), Some(inbound.id));
        assert!(store.inbound_request_by_call_sid("CA-outbound").await.unwrap().is_none());
        assert!(store.inbound_request_by_call_sid("CA-unknown").await.unwrap().is_none());
        let stored = store.request(outbound.id).await.unwrap().unwrap();
        assert_eq!(stored.call_sid.as_deref(), Some("CA-outbound"));
    });
}

/// Inserts `n` requests with one due job each; returns the request ids.
async fn with_due_jobs(store: &dyn Store, n: usize) -> Vec<Uuid> {
    let t = tenant(store, &format!("jobs-{}", Uuid::now_v7().simple())).await;
    let mut ids = Vec::new();
    for _ in 0..n {
        let r = request(&t, "+819012345678", None, now_ms());
        store.insert_request(r.clone().into(), vec![job(JobKind::Callback, r.id)], Limits::default()).await.unwrap();
        ids.push(r.id);
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn two_stores_on_one_database_never_claim_the_same_job() {
    on_every_backend!(|db| {
        let one = db.store().await;
        let two = db.store().await;
        let ids = with_due_jobs(&*one, 120).await;
        let claim_all = |store: Arc<dyn Store>| {
            tokio::spawn(async move {
                let mut mine = Vec::new();
                for _ in 0..100 {
                    let got = store.claim_jobs(7).await.unwrap();
                    if got.is_empty() {
                        return mine;
                    }
                    mine.extend(got);
                }
                panic!("claims never ran dry: leased jobs are handed out again");
            })
        };
        let (a, b) = (claim_all(one.clone()), claim_all(two.clone()));
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        let ids_a: HashSet<i64> = a.iter().map(|j| j.id).collect();
        let ids_b: HashSet<i64> = b.iter().map(|j| j.id).collect();
        assert!(ids_a.is_disjoint(&ids_b), "a job was claimed twice");
        assert_eq!(ids_a.len() + ids_b.len(), ids.len(), "every job was claimed");
        let requests: HashSet<Uuid> = a.iter().chain(&b).map(|j| j.request_id).collect();
        assert_eq!(requests, ids.into_iter().collect());
        // Only the holder may finish its job.
        let (holder, other, job) = if a.is_empty() { (&two, &one, &b[0]) } else { (&one, &two, &a[0]) };
        let forged = Lease { job: job.id, token: Uuid::now_v7() };
        assert!(matches!(other.finish_job(forged).await, Err(StoreError::LeaseLost)));
        holder.finish_job(job.lease()).await.unwrap();
        assert!(matches!(holder.finish_job(job.lease()).await, Err(StoreError::LeaseLost)), "finished once");
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn leases_end_on_the_database_clock_and_renewal_keeps_them() {
    on_every_backend!(|db| {
        let short = OpenOptions { lease: Duration::from_millis(600), ..OpenOptions::new(Role::Cli) };
        let (one, two) = (db.store_with(short).await, db.store_with(short).await);
        with_due_jobs(&*one, 2).await;
        let mine = one.claim_jobs(10).await.unwrap();
        assert_eq!(mine.len(), 2);
        assert!(two.claim_jobs(10).await.unwrap().is_empty(), "leased");
        let next = one.next_job_in().await.unwrap().unwrap();
        assert!(next > Duration::from_millis(300) && next <= Duration::from_millis(600), "{next:?}");
        // Keep the first alive; let the second run out.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(one.renew_leases(vec![mine[0].lease()]).await.unwrap(), 1);
        tokio::time::sleep(Duration::from_millis(400)).await;
        let taken = two.claim_jobs(10).await.unwrap();
        assert_eq!(taken.iter().map(|j| j.id).collect::<Vec<_>>(), [mine[1].id], "the lapsed one only");
        assert_eq!(taken[0].attempts, 1, "the second claim is the second attempt");
        // The old holder can do nothing with it any more; the new one can.
        assert!(matches!(one.retry_job(mine[1].lease(), Duration::ZERO, "x").await, Err(StoreError::LeaseLost)));
        assert!(matches!(one.bury_job(mine[1].lease(), "x").await, Err(StoreError::LeaseLost)));
        assert_eq!(one.renew_leases(vec![mine[1].lease()]).await.unwrap(), 0);
        one.finish_job(mine[0].lease()).await.unwrap();
        two.retry_job(taken[0].lease(), Duration::from_millis(300), "provider down").await.unwrap();
        assert!(two.claim_jobs(10).await.unwrap().is_empty(), "not due yet");
        tokio::time::sleep(Duration::from_millis(400)).await;
        let again = two.claim_jobs(10).await.unwrap();
        assert_eq!(again.len(), 1);
        two.bury_job(again[0].lease(), "gave up").await.unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(two.claim_jobs(10).await.unwrap().is_empty(), "a buried job never runs again");
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jobs_last_transition_needs_its_lease() {
    on_every_backend!(|db| {
        let short = OpenOptions { lease: Duration::from_millis(300), ..OpenOptions::new(Role::Cli) };
        let (one, two) = (db.store_with(short).await, db.store_with(short).await);
        let id = with_due_jobs(&*one, 1).await[0];
        let stale = one.claim_jobs(1).await.unwrap().remove(0);
        tokio::time::sleep(Duration::from_millis(400)).await;
        let current = two.claim_jobs(1).await.unwrap().remove(0);
        let result = one.update_request(id, one_more_no_input(), Some(stale.lease())).await;
        assert!(matches!(result, Err(StoreError::LeaseLost)), "{result:?}");
        assert_eq!(one.request(id).await.unwrap().unwrap().no_input_count, 0, "nothing written");
        let applied = two.update_request(id, one_more_no_input(), Some(current.lease())).await.unwrap().unwrap();
        assert_eq!(applied.after.unwrap().no_input_count, 1);
        assert!(two.job_backlog().await.unwrap().is_empty(), "the job went with its last transition");
        // With nothing to change, the job still goes.
        let id = with_due_jobs(&*one, 1).await[0];
        let job = one.claim_jobs(1).await.unwrap().remove(0);
        let none: Decide = Arc::new(|_| None);
        assert!(one.update_request(id, none, Some(job.lease())).await.unwrap().unwrap().after.is_none());
        assert!(one.job_backlog().await.unwrap().is_empty());
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_inserted_claimed_are_the_inserters_and_new_jobs_wait_their_delay() {
    on_every_backend!(|db| {
        let store = db.store().await;
        let other = db.store().await;
        let t = tenant(&*store, "t").await;
        let r = request(&t, "+819012345678", None, now_ms());
        let claimed = NewJob { claim: true, ..job(JobKind::PlaceCall, r.id) };
        let later = NewJob { delay: Duration::from_millis(400), ..job(JobKind::FinalizeCall, r.id) };
        let Inserted::Created { claimed, .. } =
            store.insert_request(r.clone().into(), vec![claimed, later], Limits::default()).await.unwrap()
        else {
            panic!("not created")
        };
        assert_eq!(claimed.len(), 1);
        assert_eq!((claimed[0].kind, claimed[0].request_id, claimed[0].attempts), (JobKind::PlaceCall, r.id, 0));
        assert!(other.claim_jobs(10).await.unwrap().is_empty(), "one is leased, one is not due");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let due = other.claim_jobs(10).await.unwrap();
        assert_eq!(due.iter().map(|j| j.kind).collect::<Vec<_>>(), [JobKind::FinalizeCall]);
        store.finish_job(claimed[0].lease()).await.unwrap();
    });
}

/// Registrations that arrive together share a commit (and on PostgreSQL one
/// statement); each is answered as if it had come alone: its own claimed job,
/// and a taken external_id answered with the request that took it.
#[tokio::test(flavor = "multi_thread")]
async fn registrations_arriving_together_are_each_answered_as_if_alone() {
    on_every_backend!(|db| {
        let store = db.store().await;
        let t = tenant(&*store, "t").await;
        let requests: Vec<AuthRequest> = (0..60)
            .map(|n| {
                let ext = (n >= 20).then(|| format!("order-{}", n % 20));
                request(&t, &format!("+8190{:08}", n), ext.as_deref(), now_ms())
            })
            .collect();
        let inserts = requests.iter().map(|r| {
            let place = NewJob { claim: true, ..job(JobKind::PlaceCall, r.id) };
            let later = NewJob { delay: Duration::from_secs(3600), ..job(JobKind::FinalizeCall, r.id) };
            store.insert_request(r.clone().into(), vec![place, later], Limits::default())
        });
        let answers = futures_util::future::join_all(inserts).await;
        let mut created = HashSet::new();
        let mut existing = Vec::new();
        let mut job_ids = HashSet::new();
        for (r, answer) in requests.iter().zip(answers) {
            match answer.unwrap() {
                Inserted::Created { claimed, .. } => {
                    assert_eq!(claimed.len(), 1, "its one claimed job");
                    assert_eq!((claimed[0].kind, claimed[0].request_id), (JobKind::PlaceCall, r.id));
                    assert!(job_ids.insert(claimed[0].id), "a job answered twice");
                    assert_eq!(store.request(r.id).await.unwrap().as_ref(), Some(r), "read back exactly");
                    created.insert(r.id);
                }
                Inserted::Existing(stored) => {
                    assert_eq!(stored.external_id, r.external_id);
                    assert!(store.request(r.id).await.unwrap().is_none(), "the refused one is not stored");
                    existing.push(stored.id);
                }
                other => panic!("{other:?}"),
            }
        }
        // 20 without an external_id, and 20 external_ids each asked for twice.
        assert_eq!((created.len(), existing.len()), (40, 20));
        assert!(existing.iter().all(|id| created.contains(id)), "answered with the request that took the id");
        assert_eq!(store.count_requests(t.id).await.unwrap(), 40);
        let mut backlog = store.job_backlog().await.unwrap();
        backlog.sort_by_key(|(kind, _)| kind.as_str());
        assert_eq!(backlog, [(JobKind::FinalizeCall, 40), (JobKind::PlaceCall, 40)]);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn expiry_listing_and_purge_see_only_what_they_should() {
    on_every_backend!(|db| {
        let store = db.store().await;
        let t = tenant(&*store, "t").await;
        let long_ago = now_ms() - chrono::Duration::days(40);
        let mut old_done = request(&t, "+819012345678", None, long_ago);
        old_done.status = Status::Verified;
        old_done.verified_at = Some(long_ago);
        let old_open = request(&t, "+819012345678", None, long_ago);
        let fresh = request(&t, "+819012345678", None, now_ms());
        // Ended long ago but not yet expired: kept until both are past the cut-off.
        let mut ended_early = request(&t, "+819012345678", None, long_ago);
        ended_early.status = Status::Failed;
        ended_early.expires_at = now_ms() + chrono::Duration::hours(1);
        for r in [&old_done, &old_open, &fresh, &ended_early] {
            store.insert_request(r.clone().into(), vec![], Limits::default()).await.unwrap();
        }
        assert_eq!(store.overdue_requests(now_ms(), 10).await.unwrap(), [old_open.id], "open and past expiry");
        let cutoff = now_ms() - chrono::Duration::days(30);
        assert_eq!(store.purge_finished(cutoff, 10).await.unwrap(), 1);
        assert!(store.request(old_done.id).await.unwrap().is_none());
        // Gone for a transition too (SQLite's writer had kept the row it stored).
        assert!(store.update_request(old_done.id, one_more_no_input(), None).await.unwrap().is_none(), "purged");
        assert!(store.request(old_open.id).await.unwrap().is_some(), "not finished: kept");
        assert!(store.request(ended_early.id).await.unwrap().is_some(), "not expired: kept");
        assert_eq!(store.purge_finished(cutoff, 10).await.unwrap(), 0);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn times_are_kept_to_the_millisecond() {
    on_every_backend!(|db| {
        let store = db.store().await;
        let t = tenant(&*store, "t").await;
        let precise = Utc.timestamp_opt(1_790_000_000, 123_456_789).unwrap();
        let r = request(&t, "+819012345678", None, precise);
        store.insert_request(r.clone().into(), vec![], Limits::default()).await.unwrap();
        let back = store.request(r.id).await.unwrap().unwrap();
        assert_eq!(back.created_at, Utc.timestamp_opt(1_790_000_000, 123_000_000).unwrap());
        assert_eq!(back.expires_at - back.created_at, chrono::Duration::seconds(300));
        // Stored without a number: the server's number's.
        let ours = PhoneNumber::from_stored("+81312345678".into());
        let found = store.pending_inbound(&r.phone_number, &ours, true, back.created_at, 5).await.unwrap();
        assert_eq!(found.iter().map(|f| f.id).collect::<Vec<_>>(), [r.id], "found while not expired at that instant");
        let at_expiry = store.pending_inbound(&r.phone_number, &ours, true, back.expires_at, 5).await.unwrap();
        assert!(at_expiry.is_empty(), "expired at its expires_at");
        let elsewhere = store.pending_inbound(&r.phone_number, &ours, false, back.created_at, 5).await.unwrap();
        assert!(elsewhere.is_empty(), "not a request of another number");
        let mut own = request(&t, "+819012345678", None, precise);
        own.inbound_number = Some(PhoneNumber::from_stored("+81355556666".into()));
        store.insert_request(own.clone().into(), vec![], Limits::default()).await.unwrap();
        let theirs = PhoneNumber::from_stored("+81355556666".into());
        let found = store.pending_inbound(&r.phone_number, &theirs, false, back.created_at, 5).await.unwrap();
        assert_eq!(found.iter().map(|f| f.id).collect::<Vec<_>>(), [own.id], "only the requests of the number called");
        assert_eq!(store.request(own.id).await.unwrap().unwrap().inbound_number, own.inbound_number);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn servers_count_each_other_and_new_jobs_wake_other_servers() {
    on_every_backend!(|db| {
        let server = OpenOptions::new(Role::Server);
        let one = db.store_with(server).await;
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(one.heartbeat(a).await.unwrap(), 1);
        match db.backend {
            // The file's lock admits one server.
            Backend::Sqlite => assert!(one.job_signal().is_none()),
            Backend::Postgres => {
                let two = db.store_with(server).await;
                assert_eq!(two.heartbeat(b).await.unwrap(), 2);
                two.leave(b).await.unwrap();
                assert_eq!(one.heartbeat(a).await.unwrap(), 1);
                // A due job added through one store wakes the other's runner.
                let signal = two.job_signal().unwrap();
                // It wakes once after its LISTEN (for jobs added while it was deaf):
                // wait for that wake, which also says the listener is connected.
                tokio::time::timeout(Duration::from_secs(10), signal.notified())
                    .await
                    .expect("the listener wakes the runner once connected");
                // Nothing else may wake it now: a wake left over would let the
                // check below pass without NOTIFY.
                let stale = tokio::time::timeout(Duration::from_millis(200), signal.notified()).await;
                assert!(stale.is_err(), "woken with no job added");
                let woken = signal.notified();
                with_due_jobs(&*one, 1).await;
                tokio::time::timeout(Duration::from_secs(2), woken).await.expect("woken by NOTIFY");
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn servers_starting_together_create_the_schema_once() {
    on_every_backend!(|db| {
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let url = db.url.clone();
                tokio::spawn(async move {
                    let url = ivr_auth::config::parse_database_url(&url).unwrap();
                    ivr_auth::store::open(&url, OpenOptions::new(Role::Cli)).await
                })
            })
            .collect();
        for o in opens {
            let store = o.await.unwrap().unwrap_or_else(|e| panic!("a concurrent start failed: {e}"));
            store.ping().await.unwrap();
        }
        // And the schema works: a tenant and a request go in.
        let store = db.store().await;
        let t = tenant(&*store, "t").await;
        store
            .insert_request(request(&t, "+819012345678", None, now_ms()).into(), vec![], Limits::default())
            .await
            .unwrap();
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_over_tls_when_the_url_asks() {
    let db = TestDb::new(Backend::Postgres).await;
    let name = format!("ivrt-tls-{}", Uuid::now_v7().simple());
    let tls_url = format!("{}&sslmode=require&application_name={name}", db.url);
    let store =
        ivr_auth::store::open(&ivr_auth::config::parse_database_url(&tls_url).unwrap(), OpenOptions::new(Role::Cli))
            .await
            .unwrap();
    store.ping().await.unwrap();
    let admin_url =
        std::env::var("IVR_AUTH_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let (admin, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let row = admin
        .query_one(
            "SELECT count(*), bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = $1",
            &[&name],
        )
        .await
        .unwrap();
    let (n, all_tls): (i64, Option<bool>) = (row.get(0), row.get(1));
    assert!(n >= 1 && all_tls == Some(true), "{n} connections, TLS: {all_tls:?}");
    // verify-full checks the certificate: this server's self-signed one is refused.
    let strict = format!("{}&sslmode=verify-full", db.url);
    let refused =
        ivr_auth::store::open(&ivr_auth::config::parse_database_url(&strict).unwrap(), OpenOptions::new(Role::Cli))
            .await;
    assert!(refused.is_err(), "an unverifiable certificate was accepted");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_used_token_is_refused_by_every_server_until_its_time_has_passed() {
    on_every_backend!(|db| {
        let (store, other) = (db.store().await, db.store().await);
        let now = now_ms();
        let until = now + chrono::Duration::seconds(301);
        let token = [7u8; 32];
        assert!(!other.used(token, now).await.unwrap(), "not used yet");
        assert!(store.first_use(token, until, now).await.unwrap());
        assert!(other.used(token, now).await.unwrap(), "used, as another server sees it");
        assert!(other.used(token, until).await.unwrap(), "used, at its last moment");
        let past = until + chrono::Duration::milliseconds(1);
        assert!(!other.used(token, past).await.unwrap(), "forgotten once its time has passed");
        assert!(!store.first_use(token, until, now).await.unwrap(), "a replay to the same server");
        assert!(!other.first_use(token, until, now).await.unwrap(), "a replay to another server");
        assert!(!other.first_use(token, until, until).await.unwrap(), "still remembered at its last moment");
        assert!(other.first_use([8u8; 32], until, now).await.unwrap(), "another token");
        // Once its time has passed it may be forgotten, and is.
        let later = until + chrono::Duration::milliseconds(1);
        assert!(store.purge_memory(later).await.unwrap() >= 2);
        assert!(store.first_use(token, later + chrono::Duration::seconds(301), later).await.unwrap());
        // A store opened anew (a restart) remembers what the old one spent.
        drop(store);
        assert!(!db.store().await.first_use(token, later, later).await.unwrap());
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_budget_holds_under_a_burst_from_two_servers() {
    use ivr_auth::domain::budget::{Budget, CallBudget};
    on_every_backend!(|db| {
        let (store, other) = (db.store().await, db.store().await);
        let t = tenant(&*store, "t").await;
        let budget = CallBudget { budget: Budget::PerMinute, max: 5 };
        let start = now_ms();
        let inserts = (0..30).map(|n| {
            let store = if n % 2 == 0 { store.clone() } else { other.clone() };
            let mut r = request(&t, &format!("+8190{:08}", 40_000_000 + n), None, start);
            r.mode = Mode::Outbound;
            tokio::spawn(async move {
                let limits = Limits { number: None, budgets: vec![budget] };
                store.insert_request(r.into(), vec![], limits).await.unwrap()
            })
        });
        let mut created = 0;
        for done in futures_util::future::join_all(inserts).await {
            match done.unwrap() {
                Inserted::Created { budget_use, .. } => {
                    created += 1;
                    assert!(budget_use.iter().all(|(b, n)| *b == Budget::PerMinute && (1..=5).contains(n)));
                }
                Inserted::Limited { retry_after, scope } => {
                    assert_eq!(scope, LimitScope::Budget(Budget::PerMinute));
                    assert!(retry_after <= Duration::from_secs(60) && retry_after > Duration::from_secs(55));
                }
                Inserted::Existing(_) => panic!("no external ids here"),
            }
        }
        assert_eq!(created, 5, "30 at once against a budget of 5");
        // Inbound requests place no call and are not counted.
        let inbound = request(&t, "+819040009999", None, start);
        let limits = Limits { number: None, budgets: vec![] };
        assert!(matches!(
            store.insert_request(inbound.into(), vec![], limits).await.unwrap(),
            Inserted::Created { .. }
        ));
        // A minute later the budget has room again.
        let mut later = request(&t, "+819040009998", None, start + chrono::Duration::seconds(61));
        later.mode = Mode::Outbound;
        let limits = Limits { number: None, budgets: vec![budget] };
        assert!(matches!(store.insert_request(later.into(), vec![], limits).await.unwrap(), Inserted::Created { .. }));
    });
}

fn record(tenant: Option<Uuid>, at: DateTime<Utc>, n: u32) -> ivr_auth::domain::audit::Record {
    ivr_auth::domain::audit::Record {
        kind: ivr_auth::domain::audit::Kind::Refusals,
        tenant_id: tenant,
        request_id: None,
        at,
        data: serde_json::json!({ "counts": { "signature": n } }),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_events_are_sealed_per_chain_verified_and_purged_from_the_oldest() {
    use ivr_auth::store::audit::verify;
    use ivr_auth::store::{AuditQuery, Verdict};
    on_every_backend!(|db| {
        let store = db.store().await;
        let t = Uuid::now_v7();
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let at = |m: i64| t0 + chrono::Duration::minutes(m);
        let records: Vec<_> =
            (0..5).map(|m| record(Some(t), at(m), m as u32)).chain([record(None, at(0), 9)]).collect();
        store.append_audit(records).await.unwrap();
        assert_eq!(store.unsealed_audit().await.unwrap(), 6);
        assert_eq!(store.seal_audit(4).await.unwrap(), 4, "the oldest first, as many as asked");
        assert_eq!(store.seal_audit(100).await.unwrap(), 2);
        assert_eq!(store.seal_audit(100).await.unwrap(), 0);
        let heads = store.audit_heads().await.unwrap();
        assert_eq!((heads[&t.to_string()].seq, heads["server"].seq), (5, 1), "one chain per tenant and the server's");
        assert_eq!(verify(&*store).await.unwrap(), Verdict::Intact { chains: 2, events: 6, unsealed: 0 });

        // Purged up to minute 2: the anchor moves to seq 2, the rest verifies from it.
        assert_eq!(store.purge_audit(at(2)).await.unwrap(), 3);
        let chain = store.audit_chain(&t.to_string(), 0, 100).await.unwrap();
        assert_eq!(chain.iter().map(|e| e.seq.unwrap()).collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!(store.audit_heads().await.unwrap()[&t.to_string()].anchor_seq, 2);
        store.append_audit(vec![record(Some(t), at(6), 6)]).await.unwrap();
        assert!(
            matches!(verify(&*store).await.unwrap(), Verdict::Intact { unsealed: 1, .. }),
            "unsealed is not broken"
        );
        store.seal_audit(100).await.unwrap();
        // The server chain stays, empty, at its anchor.
        assert_eq!(verify(&*store).await.unwrap(), Verdict::Intact { chains: 2, events: 4, unsealed: 0 });

        let newest =
            store.audit_events(AuditQuery { tenant: Some(t), limit: 2, ..AuditQuery::default() }).await.unwrap();
        assert_eq!(newest.iter().map(|e| e.seq.unwrap()).collect::<Vec<_>>(), [6, 5], "newest first");
        let older = AuditQuery { tenant: Some(t), limit: 10, before_id: Some(newest[1].id), ..AuditQuery::default() };
        assert_eq!(store.audit_events(older).await.unwrap().len(), 2);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn funnel_steps_are_written_with_their_changes_and_counted_per_period() {
    use ivr_auth::domain::funnel::{Reached, Step};
    on_every_backend!(|db| {
        let store = db.store().await;
        let a = tenant(&*store, "a").await;
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut ids = Vec::new();
        for (n, minute) in [0, 10, 70].into_iter().enumerate() {
            let r = request(&a, &format!("+8190123456{n:02}"), None, t0 + chrono::Duration::minutes(minute));
            ids.push(r.id);
            store.insert_request(r.into(), vec![], Limits::default()).await.unwrap();
        }
        let answered = |at: DateTime<Utc>| -> Decide {
            Arc::new(move |r: &AuthRequest| {
                let step = Reached { request_id: r.id, tenant_id: r.tenant_id, step: Step::Answered, detail: None, at };
                Some(Update {
                    request: r.clone(),
                    jobs: Vec::new(),
                    audit: Vec::new(),
                    steps: vec![step],
                    usage: Vec::new(),
                    timeline: Vec::new(),
                })
            })
        };
        store.update_request(ids[0], answered(t0 + chrono::Duration::minutes(1)), None).await.unwrap();
        let counts = store.step_counts(a.id, t0, t0 + chrono::Duration::hours(3), 3600).await.unwrap();
        let hour = |h: i64| t0 + chrono::Duration::hours(h);
        assert_eq!(
            counts,
            vec![
                (hour(0), Step::Registered, None, 2),
                (hour(0), Step::Answered, None, 1),
                (hour(1), Step::Registered, None, 1)
            ]
        );
        let other = store.step_counts(Uuid::now_v7(), t0, hour(3), 3600).await.unwrap();
        assert!(other.is_empty(), "another tenant's steps are not counted");
        let registered =
            store.audit_events(ivr_auth::store::AuditQuery { tenant: Some(a.id), limit: 10, ..Default::default() });
        assert_eq!(registered.await.unwrap().len(), 3, "each insert wrote its request.registered");
        // The purge takes the steps before its time, per tenant, and keeps the later ones.
        store.purge_audit(t0 + chrono::Duration::minutes(30)).await.unwrap();
        let counts = store.step_counts(a.id, t0, hour(3), 3600).await.unwrap();
        assert_eq!(counts, vec![(hour(1), Step::Registered, None, 1)]);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_is_summed_per_month_account_and_country_counted_once_and_purged_by_age() {
    use ivr_auth::domain::usage::{Kind, Used};
    use ivr_auth::store::UsageRow;
    on_every_backend!(|db| {
        let store = db.store().await;
        let (a, b) = (tenant(&*store, "a").await, tenant(&*store, "b").await);
        let dec = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 0).unwrap();
        let jan = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        let write = |t: &Tenant, at: DateTime<Utc>, uses: Vec<(Kind, &'static str, &'static str, u64)>| {
            let r = request(t, "+819012345678", None, at);
            let id = r.id;
            let (store, r2) = (store.clone(), r.clone());
            async move {
                store.insert_request(r2.into(), vec![], Limits::default()).await.unwrap();
                let used: Vec<Used> = uses
                    .into_iter()
                    .map(|(kind, account, country, amount)| Used {
                        tenant_id: r.tenant_id,
                        request_id: id,
                        at,
                        kind,
                        account: account.into(),
                        country: country.into(),
                        amount,
                    })
                    .collect();
                let decide: Decide = Arc::new(move |r: &AuthRequest| {
                    Some(Update {
                        request: r.clone(),
                        jobs: Vec::new(),
                        audit: Vec::new(),
                        steps: Vec::new(),
                        usage: used.clone(),
                        timeline: Vec::new(),
                    })
                });
                // Twice: a repeated report of a call's end counts its seconds once.
                store.update_request(id, decide.clone(), None).await.unwrap();
                store.update_request(id, decide, None).await.unwrap();
            }
        };
        write(&a, dec, vec![(Kind::CallPlaced, "tokyo", "JP", 1), (Kind::CallSeconds, "tokyo", "JP", 30)]).await;
        write(&a, dec, vec![(Kind::Sms, "sms", "US", 1)]).await;
        write(&a, jan, vec![(Kind::CallTaken, "inbound", "JP", 1)]).await;
        write(&b, dec, vec![(Kind::CallSeconds, "osaka", "JP", 5)]).await;

        let row = |account: &str, country: &str, p, t, s, m| UsageRow {
            account: account.into(),
            country: country.into(),
            calls_placed: p,
            calls_taken: t,
            call_seconds: s,
            sms: m,
        };
        let december = store.usage_month(a.id, Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(), jan).await.unwrap();
        // Placed twice (a call placement is not deduplicated here), seconds once.
        assert_eq!(december, vec![row("sms", "US", 0, 0, 0, 2), row("tokyo", "JP", 2, 0, 30, 0)]);
        let all = store.usage_month_all(Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(), jan).await.unwrap();
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "a", "b"]);
        assert_eq!(all[2].1, row("osaka", "JP", 0, 0, 5, 0));

        assert_eq!(store.purge_usage(jan).await.unwrap(), 6, "December's rows");
        assert!(
            store.usage_month_all(Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(), jan).await.unwrap().is_empty()
        );
        let january = store.usage_month(a.id, jan, Utc.with_ymd_and_hms(2027, 2, 1, 0, 0, 0).unwrap()).await.unwrap();
        assert_eq!(january, vec![row("inbound", "JP", 0, 2, 0, 0)], "written twice too");
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_change_and_its_audit_event_are_one_commit() {
    use ivr_auth::domain::audit::{Kind, Record};
    use ivr_auth::store::AuditQuery;
    on_every_backend!(|db| {
        let store = db.store().await;
        let event = |t: &Tenant, kind: Kind| {
            vec![Record { kind, tenant_id: Some(t.id), request_id: None, at: Utc::now(), data: serde_json::json!({}) }]
        };
        let count = |t: Uuid| {
            let store = store.clone();
            async move {
                let q = AuditQuery { tenant: Some(t), limit: 100, ..AuditQuery::default() };
                store.audit_events(q).await.unwrap().iter().map(|e| e.record.kind.as_str()).collect::<Vec<_>>()
            }
        };
        let (t, _) = Tenant::create("acme".into(), Utc::now());
        store.create_tenant_recorded(t.clone(), event(&t, Kind::TenantCreated)).await.unwrap();
        assert_eq!(count(t.id).await, ["tenant.created"]);
        // A change that is not made writes no event.
        let (twin, _) = Tenant::create("acme".into(), Utc::now());
        let taken = store.create_tenant_recorded(twin.clone(), event(&twin, Kind::TenantCreated)).await;
        assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
        assert_eq!(count(twin.id).await, Vec::<&str>::new());
        let (ghost, _) = Tenant::create("ghost".into(), Utc::now());
        let policy = ghost.policy.clone();
        assert!(
            !store.set_tenant_policy_recorded("ghost", &policy, event(&ghost, Kind::SettingsChanged)).await.unwrap()
        );
        assert!(
            !store.update_tenant_credentials_recorded(ghost.clone(), event(&ghost, Kind::KeyRotated)).await.unwrap()
        );
        assert_eq!(count(ghost.id).await, Vec::<&str>::new());
        // A change that is made writes its event.
        assert!(store.set_tenant_policy_recorded("acme", &t.policy, event(&t, Kind::SettingsChanged)).await.unwrap());
        assert!(store.update_tenant_credentials_recorded(t.clone(), event(&t, Kind::KeyRotated)).await.unwrap());
        assert_eq!(count(t.id).await, ["tenant.key_rotated", "tenant.settings_changed", "tenant.created"]);
    });
}

/// A batch's writes go to PostgreSQL together. When one of them meets a
/// conflict (40001), PostgreSQL refuses every statement after it with 25P02;
/// the batch must see the conflict, not the refusals, and run again.
#[tokio::test(flavor = "multi_thread")]
async fn a_conflict_in_one_write_of_a_batch_runs_the_batch_again() {
    use ivr_auth::domain::funnel::{Reached, Step};
    use ivr_auth::domain::timeline::Entry;
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.store().await;
    let t = tenant(&*store, "a").await;
    let r = request(&t, "+819012345678", None, now_ms());
    let id = r.id;
    store.insert_request(r.into(), vec![], Limits::default()).await.unwrap();
    // The first update of a request fails with a serialization failure; a
    // sequence counts the tries (it is not rolled back with them).
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(
            "CREATE SEQUENCE update_tries; \
             CREATE FUNCTION conflict_once() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               IF nextval('update_tries') = 1 THEN RAISE EXCEPTION 'a test conflict' USING ERRCODE = '40001'; END IF; \
               RETURN NEW; END $$; \
             CREATE TRIGGER conflict_once BEFORE UPDATE ON auth_requests FOR EACH ROW EXECUTE FUNCTION conflict_once();",
        )
        .await
        .unwrap();
    let answered: Decide = Arc::new(|r: &AuthRequest| {
        let at = now_ms();
        let mut after = r.clone();
        after.updated_at = at;
        Some(Update {
            request: after,
            jobs: Vec::new(),
            audit: Vec::new(),
            // Written after the request's update: refused once it fails.
            steps: vec![Reached { request_id: r.id, tenant_id: r.tenant_id, step: Step::Answered, detail: None, at }],
            usage: Vec::new(),
            timeline: vec![Entry {
                request_id: r.id,
                tenant_id: r.tenant_id,
                at,
                kind: "call_connected".into(),
                detail: ivr_auth::domain::timeline::Detail::stored("{}".into()),
            }],
        })
    });
    let applied = store.update_request(id, answered, None).await.expect("the batch ran again after its conflict");
    assert!(applied.is_some_and(|a| a.after.is_some()), "the update was applied");
    let tries: i64 = client.query_one("SELECT last_value FROM update_tries", &[]).await.unwrap().get(0);
    assert_eq!(tries, 2, "one refused try, one that went through");
    let steps: i64 =
        client.query_one("SELECT count(*) FROM request_steps WHERE step = 'answered'", &[]).await.unwrap().get(0);
    assert_eq!(steps, 1, "the step written once");
}

/// Registrations of one number arriving together on two servers are counted
/// against each other, whichever batch or server takes them: as many are
/// stored as the limits allow; a replay is answered with the request it
/// repeats, before any limit, also when both arrive together.
#[tokio::test(flavor = "multi_thread")]
async fn a_number_limit_holds_under_a_burst_from_two_servers() {
    const PHONE: &str = "+819055556666";
    on_every_backend!(|db| {
        let stores = [db.store().await, db.store().await];
        let tenants = [tenant(&*stores[0], "a").await, tenant(&*stores[0], "b").await];
        let limit = Some(NumberLimit { per_tenant: 3, overall: 5, window: chrono::Duration::minutes(10) });
        let start = now_ms();
        let burst = |requests: Vec<AuthRequest>| {
            let inserts = requests.into_iter().enumerate().map(|(n, r)| {
                let store = stores[n % 2].clone();
                tokio::spawn(
                    async move { (r.clone(), store.insert_request(r.into(), vec![], Limits::number(limit)).await) },
                )
            });
            futures_util::future::join_all(inserts)
        };
        let first: Vec<AuthRequest> =
            (0..40).map(|n| request(&tenants[n / 3 % 2], PHONE, Some(&format!("order-{n}")), start)).collect();
        let mut stored = Vec::new();
        for done in burst(first).await {
            match done.unwrap() {
                (r, Ok(Inserted::Created { .. })) => stored.push(r),
                (_, Ok(Inserted::Limited { retry_after, scope })) => {
                    assert!(matches!(scope, LimitScope::Tenant | LimitScope::Server), "{scope:?}");
                    assert_eq!(retry_after, Duration::from_secs(600));
                }
                (_, other) => panic!("{other:?}"),
            }
        }
        let per_tenant = tenants.each_ref().map(|t| stored.iter().filter(|r| r.tenant_id == t.id).count());
        assert_eq!(stored.len(), 5, "40 at once against a limit of 5 (each tenant's: {per_tenant:?})");
        assert!(per_tenant.iter().all(|n| *n <= 3), "each tenant within its 3: {per_tenant:?}");
        for (t, n) in tenants.iter().zip(per_tenant) {
            assert_eq!(stores[1].count_requests(t.id).await.unwrap(), n as u64, "stored as answered");
        }

        let tenant_of = |r: &AuthRequest| tenants.iter().find(|t| t.id == r.tenant_id).unwrap();
        // Replays of the stored ones, among new ones: each replay answered
        // with its request, every new one refused.
        let later = start + chrono::Duration::seconds(1);
        let mut second: Vec<AuthRequest> =
            stored.iter().map(|s| request(tenant_of(s), PHONE, s.external_id.as_deref(), later)).collect();
        second.extend((0..10).map(|n| request(&tenants[n % 2], PHONE, Some(&format!("new-{n}")), later)));
        for done in burst(second).await {
            match done.unwrap() {
                (r, Ok(Inserted::Existing(existing))) => {
                    assert!(stored.iter().any(|s| s.id == existing.id && s.external_id == r.external_id));
                }
                (r, Ok(Inserted::Limited { .. })) => assert!(r.external_id.unwrap().starts_with("new-")),
                (_, other) => panic!("{other:?}"),
            }
        }

        // Another number, one registration allowed: one external id asked for
        // twice at once (on one server, so in one batch) is stored once, and
        // the second is answered with it, not refused by the limit it filled.
        let one =
            Limits::number(Some(NumberLimit { per_tenant: 1, overall: 1, window: chrono::Duration::minutes(10) }));
        let twice = request(&tenants[0], "+819055557777", Some("twice"), later);
        let again = request(&tenants[0], "+819055557777", Some("twice"), later);
        let (first, second) = tokio::join!(
            stores[0].insert_request(twice.into(), vec![], one.clone()),
            stores[0].insert_request(again.into(), vec![], one)
        );
        let answers = [first.unwrap(), second.unwrap()];
        let created = answers.iter().filter(|a| matches!(a, Inserted::Created { .. })).count();
        let existing = answers.iter().filter(|a| matches!(a, Inserted::Existing(_))).count();
        assert_eq!((created, existing), (1, 1), "{answers:?}");
        assert_eq!(stores[0].count_requests(tenants[0].id).await.unwrap(), per_tenant[0] as u64 + 1);
    });
}

/// Our sessions force generic plans, each made once per connection, often on
/// a new database whose tables are nearly empty. A lookup by key must still
/// find its rows in an index then, not read a table, or all the rows an index
/// holds, per lookup: every index scan of `auth_requests` in the plan of each
/// keyed lookup has an index condition on the key's first column.
#[tokio::test(flavor = "multi_thread")]
async fn keyed_lookups_use_an_index_on_a_new_database() {
    use ivr_auth::store::postgres::{SESSION_OPTIONS, keyed_lookups};
    let db = TestDb::new(Backend::Postgres).await;
    let _migrated = db.store().await;
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    for setting in SESSION_OPTIONS.split("-c ").map(str::trim).filter(|s| !s.is_empty()) {
        let (name, value) = setting.split_once('=').unwrap();
        client.batch_execute(&format!("SET {name} = '{value}'")).await.unwrap();
    }
    // "Bitmap Index Scan on auth_requests_pkey", "Index Only Scan Backward using auth_requests_… on …".
    let index_scan = |line: &str| {
        line.contains("Scan") && (line.contains(" using auth_requests") || line.contains("Scan on auth_requests_"))
    };
    for (what, sql, key) in keyed_lookups() {
        client.batch_execute(&format!("PREPARE keyed AS {sql}")).await.unwrap();
        let params: i32 = client
            .query_one("SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = 'keyed'", &[])
            .await
            .unwrap()
            .get(0);
        let nulls = vec!["NULL"; params as usize].join(", ");
        let plan: Vec<String> = client
            .query(&format!("EXPLAIN EXECUTE keyed({nulls})"), &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<_, String>(0))
            .collect();
        client.batch_execute("DEALLOCATE keyed").await.unwrap();
        let plan_text = plan.join("\n");
        assert!(!plan_text.contains("Seq Scan on auth_requests"), "{what}:\n{plan_text}");
        let scans: Vec<usize> = (0..plan.len()).filter(|&i| index_scan(&plan[i])).collect();
        assert!(!scans.is_empty(), "{what}: no index scan in\n{plan_text}");
        for i in scans {
            // The lines under the scan, up to the next node.
            let mut detail = plan[i + 1..].iter().take_while(|l| !l.contains("->"));
            let keyed = detail.any(|l| l.contains("Index Cond: (") && l.contains(&format!("({key} = ")));
            assert!(keyed, "{what}: a scan without an index condition on {key} in\n{plan_text}");
        }
    }
}

/// Advisory locks belong to the database, not to a schema: a deployment in
/// another schema of the same database (or a test beside this one) that is
/// sealing its audit log must not make this one skip its turn.
#[tokio::test(flavor = "multi_thread")]
async fn a_sealer_in_another_schema_does_not_stop_this_ones() {
    let (ours, theirs) = (TestDb::new(Backend::Postgres).await, TestDb::new(Backend::Postgres).await);
    let store = ours.store().await;
    let _their_schema = theirs.store().await;
    store.append_audit(vec![record(None, now_ms(), 1)]).await.unwrap();
    // The other deployment's sealer, inside its transaction.
    let (mut client, conn) = tokio_postgres::connect(&theirs.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let tx = client.transaction().await.unwrap();
    let held: bool = tx.query_one(ivr_auth::store::postgres::AUDIT_SEALER_LOCK, &[]).await.unwrap().get(0);
    assert!(held, "the other schema's sealer has its lock");
    assert_eq!(store.seal_audit(10).await.unwrap(), 1, "this schema's events are sealed meanwhile");
    tx.rollback().await.unwrap();
}

/// A counted registration's batch commits, but the answer is lost with its
/// connection: the batch runs again on another connection, finds the
/// registration stored under its id, and answers it as created. It is not
/// counted against its own number's limit a second time (which, at a limit
/// of one, would refuse what is stored), and it is stored once.
#[tokio::test(flavor = "multi_thread")]
async fn a_counted_registration_whose_commit_answer_was_lost_is_answered_as_created() {
    use ivr_auth::config::parse_database_url;
    let db = TestDb::new(Backend::Postgres).await;
    let proxy = crate::proxy::Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    // Unencrypted, so that the proxy sees the COMMIT go by.
    let sep = if db.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}sslmode=disable", proxy.through(&db.url));
    let store = ivr_auth::store::open(&parse_database_url(&url).unwrap(), OpenOptions::new(Role::Cli)).await.unwrap();
    let t = tenant(&*store, "t").await;
    let limit = Some(NumberLimit { per_tenant: 1, overall: 1, window: chrono::Duration::minutes(10) });
    let first = request(&t, "+819011112222", None, now_ms());
    let id = first.id;
    proxy.lose_next_commit_answer();
    let answer = store.insert_request(first.into(), vec![], Limits::number(limit)).await.unwrap();
    assert!(proxy.commit_answer_lost(), "the commit went by and its answer was lost");
    assert!(matches!(answer, Inserted::Created { .. }), "{answer:?}");
    assert_eq!(store.request(id).await.unwrap().map(|r| r.id), Some(id));
    // Stored once: the number's one slot is taken.
    let second = request(&t, "+819011112222", None, now_ms());
    let refused = store.insert_request(second.into(), vec![], Limits::number(limit)).await.unwrap();
    assert!(matches!(refused, Inserted::Limited { .. }), "{refused:?}");
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let n: i64 = client
        .query_one("SELECT count(*) FROM auth_requests WHERE phone_number = '+819011112222'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}
