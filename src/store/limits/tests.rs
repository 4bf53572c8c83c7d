//! The registration order and limits against an in-memory backend.

use std::collections::HashMap;

use chrono::TimeDelta;
use futures_util::FutureExt;
use uuid::Uuid;

use super::*;
use crate::domain::request::tests::sample;
use crate::domain::status::Mode;

/// Stored registrations, call counts and a log of the queries asked.
#[derive(Default)]
struct Memory {
    stored: Vec<AuthRequest>,
    counts: HashMap<(Uuid, Budget, i64), u64>,
    /// The request being registered.
    next: Option<AuthRequest>,
    asked: Vec<&'static str>,
}

impl Registrations for Memory {
    type Error = std::convert::Infallible;

    async fn same_external_id(&mut self, ext: &str) -> Result<Option<AuthRequest>, Self::Error> {
        self.asked.push("external id");
        let tenant = self.request().tenant_id;
        Ok(self.stored.iter().find(|r| r.tenant_id == tenant && r.external_id.as_deref() == Some(ext)).cloned())
    }

    async fn nth_newest_for_number(&mut self, by_tenant: bool, nth: Nth) -> Result<Option<DateTime<Utc>>, Self::Error> {
        self.asked.push(if by_tenant { "tenant's number" } else { "server's number" });
        let r = self.request();
        Ok(self.nth(nth, |s| s.phone_number == r.phone_number && (!by_tenant || s.tenant_id == r.tenant_id)))
    }

    async fn budget_upper_bound(&mut self, budget: Budget, first: i64) -> Result<u64, Self::Error> {
        self.asked.push("budget sum");
        let tenant = self.request().tenant_id;
        Ok(self
            .counts
            .iter()
            .filter(|((t, b, k), _)| *t == tenant && *b == budget && *k >= first)
            .map(|(_, n)| n)
            .sum())
    }

    async fn nth_newest_outbound(&mut self, nth: Nth) -> Result<Option<DateTime<Utc>>, Self::Error> {
        self.asked.push("outbound");
        let tenant = self.request().tenant_id;
        Ok(self.nth(nth, |s| s.tenant_id == tenant && s.mode == Mode::Outbound))
    }

    async fn insert(&mut self) -> Result<Inserted, Self::Error> {
        self.asked.push("insert");
        self.stored.push(self.request());
        Ok(Inserted::Created { claimed: Vec::new(), budget_use: Vec::new() })
    }

    async fn count_call(&mut self, budget: Budget, bucket: i64) -> Result<(), Self::Error> {
        self.asked.push("count");
        *self.counts.entry((self.request().tenant_id, budget, bucket)).or_default() += 1;
        Ok(())
    }
}

impl Memory {
    fn request(&self) -> AuthRequest {
        self.next.clone().expect("a request to register")
    }

    /// When the `nth` newest stored request that `matches` was created.
    fn nth(&self, nth: Nth, matches: impl Fn(&AuthRequest) -> bool) -> Option<DateTime<Utc>> {
        nth_newest(self.stored.iter().filter(|s| matches(s)).map(|s| s.created_at), nth)
    }
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

/// A request of `tenant` for the sample number, made `ago` before `now()`.
fn made(tenant: Uuid, ago: TimeDelta) -> AuthRequest {
    let mut r = sample(now() - ago);
    r.tenant_id = tenant;
    r
}

fn per_number(per_tenant: u32, overall: u32) -> Limits {
    Limits::number(Some(NumberLimit { per_tenant, overall, window: TimeDelta::minutes(10) }))
}

/// Registers `r` in `m` (the in-memory futures never wait).
fn run(m: &mut Memory, r: &AuthRequest, limits: &Limits) -> Inserted {
    m.next = Some(r.clone());
    let Some(Ok(inserted)) = register(m, r, limits).now_or_never() else { panic!("the in-memory backend waited") };
    inserted
}

fn limited(i: &Inserted) -> Option<(Duration, LimitScope)> {
    if let Inserted::Limited { retry_after, scope } = i { Some((*retry_after, *scope)) } else { None }
}

#[test]
fn a_reused_external_id_is_answered_before_any_limit() {
    let tenant = Uuid::now_v7();
    let mut first = made(tenant, TimeDelta::minutes(1));
    first.external_id = Some("order-1".into());
    let mut m = Memory { stored: vec![first], ..Memory::default() };
    let mut again = made(tenant, TimeDelta::zero());
    again.external_id = Some("order-1".into());
    assert!(matches!(run(&mut m, &again, &per_number(1, 1)), Inserted::Existing(_)));
    assert_eq!(m.asked, ["external id"]);
}

#[test]
fn the_tenants_limit_is_looked_at_before_the_servers() {
    let tenant = Uuid::now_v7();
    let mut m = Memory { stored: vec![made(tenant, TimeDelta::minutes(4))], ..Memory::default() };
    let r = made(tenant, TimeDelta::zero());
    assert_eq!(limited(&run(&mut m, &r, &per_number(1, 1))), Some((Duration::from_secs(360), LimitScope::Tenant)));
    assert_eq!(m.asked, ["tenant's number"]);
}

#[test]
fn every_tenant_counts_towards_the_servers_limit() {
    let mut m = Memory {
        stored: vec![made(Uuid::now_v7(), TimeDelta::minutes(9)), made(Uuid::now_v7(), TimeDelta::minutes(2))],
        ..Memory::default()
    };
    let r = made(Uuid::now_v7(), TimeDelta::zero());
    // The second newest frees its slot first; a limit of 0 is no limit.
    assert_eq!(limited(&run(&mut m, &r, &per_number(0, 2))), Some((Duration::from_secs(60), LimitScope::Server)));
    assert_eq!(m.asked, ["server's number"]);
    let mut m = Memory { stored: vec![made(Uuid::now_v7(), TimeDelta::minutes(11))], ..Memory::default() };
    assert!(matches!(run(&mut m, &r, &per_number(1, 1)), Inserted::Created { .. }));
}

#[test]
fn budgets_read_the_calls_only_near_their_limit_and_count_the_stored_request() {
    let tenant = Uuid::now_v7();
    let budgets = Limits { number: None, budgets: vec![CallBudget { budget: Budget::PerMinute, max: 2 }] };
    let mut m = Memory::default();
    let mut r = made(tenant, TimeDelta::seconds(30));
    r.mode = Mode::Outbound;
    let Inserted::Created { budget_use, .. } = run(&mut m, &r, &budgets) else { panic!("not stored") };
    assert_eq!(budget_use, [(Budget::PerMinute, 1)]);
    assert_eq!(m.asked, ["budget sum", "insert", "count"]);

    let mut r = made(tenant, TimeDelta::seconds(20));
    r.mode = Mode::Outbound;
    assert!(matches!(run(&mut m, &r, &budgets), Inserted::Created { .. }));
    m.asked.clear();
    let mut r = made(tenant, TimeDelta::zero());
    r.mode = Mode::Outbound;
    let spent = Some((Duration::from_secs(30), LimitScope::Budget(Budget::PerMinute)));
    assert_eq!(limited(&run(&mut m, &r, &budgets)), spent);
    assert_eq!(m.asked, ["budget sum", "outbound"]);
    assert_eq!(m.counts.values().sum::<u64>(), 2, "a refused request is not counted");
}

#[test]
fn a_request_at_its_window_edge_waits_a_millisecond() {
    let now = now();
    assert_eq!(frees_after(now - TimeDelta::minutes(10), TimeDelta::minutes(10), now), Duration::from_millis(1));
    assert_eq!(frees_after(now - TimeDelta::minutes(1), TimeDelta::minutes(10), now), Duration::from_secs(540));
}
