//! Prometheus metrics (`prometheus-client`, the official OpenMetrics client).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use uuid::Uuid;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    /// One of the methods HTTP defines, or `other` (`method_label`).
    pub method: &'static str,
    pub status: u16,
}

/// The label of a request's method: one of the methods HTTP defines, or
/// `other`, so that requests with made-up methods cannot add a series each.
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method as M;
    [M::GET, M::POST, M::PUT, M::DELETE, M::HEAD, M::OPTIONS, M::PATCH, M::CONNECT, M::TRACE]
        .iter()
        .find(|known| *known == method)
        .map_or("other", M::as_str)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub kind: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountLabel {
    pub account: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabel {
    pub tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantReason {
    pub tenant: String,
    pub reason: &'static str,
}

type Hist = Family<RouteLabel, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

/// Refusals counted in memory since the last flush, per chain (a tenant,
/// or the server when no tenant is known) and kind: a refusal costs a lock
/// and an addition, never a write. the service's `flush_refusals` writes them as
/// one `refusals` event per chain.
#[derive(Default)]
pub struct Refusals(Mutex<HashMap<Option<Uuid>, BTreeMap<&'static str, u64>>>);

impl Refusals {
    /// Counts one refusal of `kind` (`signature`, `rate_limit`, a budget's name…).
    pub fn count(&self, tenant: Option<Uuid>, kind: &'static str) {
        let mut counts = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *counts.entry(tenant).or_default().entry(kind).or_default() += 1;
    }

    /// The counts so far, leaving none.
    #[allow(clippy::type_complexity)]
    pub fn take(&self) -> HashMap<Option<Uuid>, BTreeMap<&'static str, u64>> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Counts taken but not written, for the next flush.
    #[allow(clippy::type_complexity)]
    pub fn put_back(&self, taken: HashMap<Option<Uuid>, BTreeMap<&'static str, u64>>) {
        let mut counts = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (chain, kinds) in taken {
            for (kind, n) in kinds {
                *counts.entry(chain).or_default().entry(kind).or_default() += n;
            }
        }
    }
}

/// All metrics of the process, registered once.
pub struct Metrics {
    registry: Registry,
    /// Refusals since their last flush into the audit trail (not exported to Prometheus).
    pub refusals: Refusals,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Hist,
    pub registered: Family<KindLabel, Counter>,
    pub transitions: Family<KindLabel, Counter>,
    pub signature_rejections: Counter,
    pub jobs: Family<JobLabels, Counter>,
    pub job_backlog: Family<KindLabel, Gauge>,
    /// Webhooks answered with "hold on" because the database was unreachable.
    pub webhook_holds: Counter,
    /// Write transactions and durable commits of the store since start (both only grow).
    pub store_writes: Gauge,
    pub store_commits: Gauge,
    /// Servers alive on this database, this one included.
    pub servers: Gauge,
    /// Outbound calls registered, per tenant (what its call budgets count).
    pub tenant_calls: Family<TenantLabel, Counter>,
    /// Registrations a tenant's policy refused, by tenant and reason.
    pub tenant_refusals: Family<TenantReason, Counter>,
    /// How long each call waited for its account's start slot (its queue wait).
    pub call_queue_wait: Family<AccountLabel, Histogram, fn() -> Histogram>,
    /// Calls queued ahead of the last one that asked, per account (all nodes together).
    pub call_queue_depth: Family<AccountLabel, Gauge>,
    /// Call requests a provider account failed (5xx, unreachable, 429, refused account).
    pub account_failures: Family<AccountLabel, Counter>,
    /// Our own SIP trunk's engine.
    pub sip: SipMetrics,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: &'static str,
}

/// What the SIP engine counts (`IVR_AUTH_PROVIDER=sip`).
#[derive(Clone, Default)]
pub struct SipMetrics {
    /// Requests from peers not allowed (INVITEs answered 403; scanners'
    /// OPTIONS and REGISTER), by method: counted, nothing else done.
    pub refused: Family<MethodLabel, Counter>,
    /// Calls taken (inbound) and placed (outbound).
    pub calls: Family<DirectionLabel, Counter>,
    /// Calls up on this node now.
    pub active_calls: Gauge,
    /// INVITEs answered busy because this node holds its most calls.
    pub over_capacity: Counter,
    /// Prompts played as silence because their audio file was missing.
    pub missing_audio: Counter,
    /// Keys heard, by how they came (rfc4733, info, inband).
    pub digits: Family<SourceLabel, Counter>,
    /// The interval between a call's RTP packets as sent, over the last
    /// minute: 50th and 99th percentile and the most (seconds; 0.020 is right).
    pub rtp_send_interval: Family<QuantileLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// RTP packets dropped: from a source other than the one the call latched on.
    pub rtp_foreign_packets: Gauge,
    /// RTP ports free in IVR_AUTH_RTP_PORTS.
    pub rtp_free_ports: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QuantileLabel {
    pub quantile: &'static str,
}

impl SipMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "sip_refused_requests",
            "SIP requests from peers not allowed, by method",
            self.refused.clone(),
        );
        registry.register("sip_calls", "SIP calls taken and placed, by direction", self.calls.clone());
        registry.register("sip_active_calls", "SIP calls up on this node", self.active_calls.clone());
        registry.register(
            "sip_over_capacity",
            "SIP INVITEs refused because the node was full",
            self.over_capacity.clone(),
        );
        registry.register(
            "sip_missing_audio",
            "Prompts played as silence for want of their audio file",
            self.missing_audio.clone(),
        );
        registry.register("sip_digits", "Keys heard on SIP calls, by how they came", self.digits.clone());
        registry.register(
            "rtp_send_interval_seconds",
            "Interval between sent RTP packets over the last minute, by quantile (0.5, 0.99, max)",
            self.rtp_send_interval.clone(),
        );
        registry.register(
            "rtp_foreign_packets",
            "RTP packets dropped for coming from another source than the call's",
            self.rtp_foreign_packets.clone(),
        );
        registry.register("rtp_free_ports", "RTP ports free in IVR_AUTH_RTP_PORTS", self.rtp_free_ports.clone());
    }
}

fn queue_wait_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 14))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ivr_auth");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", http_requests.clone());
        let http_duration: Hist = Family::new_with_constructor(latency_histogram);
        registry.register("http_request_duration_seconds", "HTTP request latency", http_duration.clone());
        let registered = Family::<KindLabel, Counter>::default();
        registry.register("auth_requests_registered", "Auth requests registered, by mode", registered.clone());
        let transitions = Family::<KindLabel, Counter>::default();
        registry.register("auth_request_transitions", "Status changes, by new status", transitions.clone());
        let signature_rejections = Counter::default();
        registry.register(
            "webhook_signature_rejections",
            "Webhooks refused for a missing or wrong signature",
            signature_rejections.clone(),
        );
        let jobs = Family::<JobLabels, Counter>::default();
        registry.register("jobs", "Durable jobs run, by kind and outcome", jobs.clone());
        let job_backlog = Family::<KindLabel, Gauge>::default();
        registry.register("job_backlog", "Jobs waiting, by kind", job_backlog.clone());
        let webhook_holds = Counter::default();
        registry.register(
            "webhook_holds",
            "Webhooks that kept the caller on the line while the database was unreachable",
            webhook_holds.clone(),
        );
        let store_writes = Gauge::default();
        registry.register(
            "store_writes",
            "Write transactions of the store since start (grows only)",
            store_writes.clone(),
        );
        let store_commits = Gauge::default();
        registry.register(
            "store_commits",
            "Durable commits of the store since start (grows only; SQLite groups writes into fewer commits)",
            store_commits.clone(),
        );
        let servers = Gauge::default();
        registry.register("servers", "Servers alive on this database, this one included", servers.clone());
        let tenant_calls = Family::<TenantLabel, Counter>::default();
        registry.register("tenant_calls", "Outbound calls registered, by tenant", tenant_calls.clone());
        let tenant_refusals = Family::<TenantReason, Counter>::default();
        registry.register(
            "tenant_refusals",
            "Registrations refused by a tenant's policy (destination, call budgets), by tenant and reason",
            tenant_refusals.clone(),
        );
        let call_queue_wait: Family<AccountLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(queue_wait_histogram);
        registry.register(
            "call_queue_wait_seconds",
            "Time from asking for a call's start slot to the slot, per provider account",
            call_queue_wait.clone(),
        );
        let call_queue_depth = Family::<AccountLabel, Gauge>::default();
        registry.register(
            "call_queue_depth",
            "Calls waiting for a start slot of the account, as the last reservation saw it (all servers)",
            call_queue_depth.clone(),
        );
        let account_failures = Family::<AccountLabel, Counter>::default();
        registry.register(
            "provider_account_failures",
            "Call requests a provider account failed, after which it was skipped for a while",
            account_failures.clone(),
        );
        let sip = SipMetrics::default();
        sip.register(&mut registry);
        Self {
            registry,
            refusals: Refusals::default(),
            sip,
            call_queue_wait,
            call_queue_depth,
            account_failures,
            tenant_calls,
            tenant_refusals,
            webhook_holds,
            store_writes,
            store_commits,
            servers,
            http_requests,
            http_duration,
            registered,
            transitions,
            signature_rejections,
            jobs,
            job_backlog,
        }
    }
}

impl Metrics {
    /// The metrics in the text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Counts a registration `tenant`'s policy refused, for `reason`.
    pub fn refused(&self, tenant_id: Uuid, tenant: &str, reason: &'static str) {
        self.refusals.count(Some(tenant_id), reason);
        self.tenant_refusals.get_or_create(&TenantReason { tenant: tenant.to_owned(), reason }).inc();
    }

    /// A call of `account` got a start slot `wait` from now, behind calls
    /// spaced `interval` apart.
    pub fn call_queue_wait(&self, account: &str, wait: std::time::Duration, interval: std::time::Duration) {
        let label = AccountLabel { account: account.to_owned() };
        self.call_queue_wait.get_or_create(&label).observe(wait.as_secs_f64());
        let ahead = if interval.is_zero() { 0 } else { (wait.as_micros() / interval.as_micros()) as i64 };
        self.call_queue_depth.get_or_create(&label).set(ahead);
    }

    /// Counts a failure of provider account `account`.
    pub fn account_failed(&self, account: &str) {
        self.account_failures.get_or_create(&AccountLabel { account: account.to_owned() }).inc();
    }

    /// Counts a job outcome.
    pub fn job(&self, kind: &'static str, outcome: &'static str) {
        self.jobs.get_or_create(&JobLabels { kind, outcome }).inc();
    }
}
