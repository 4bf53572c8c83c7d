//! Durable jobs: the outbox rows that survive restarts (call placement, result callbacks, …).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::store::StoreError;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// Ask the provider to call the registered number.
    PlaceCall,
    /// POST the result to the site's `callback_url`.
    Callback,
    /// Hang up a provider call whose request has ended.
    EndCall,
    /// Fail a request whose call ended without a result (after a grace period).
    FinalizeCall,
    /// Send the code as a text message (the `sms` channel, or a voice request's fallback).
    SendSms,
}

impl JobKind {
    pub const ALL: [JobKind; 5] = [Self::PlaceCall, Self::Callback, Self::EndCall, Self::FinalizeCall, Self::SendSms];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PlaceCall => "place_call",
            Self::Callback => "callback",
            Self::EndCall => "end_call",
            Self::FinalizeCall => "finalize_call",
            Self::SendSms => "send_sms",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A job to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub kind: JobKind,
    pub request_id: Uuid,
    /// Kind-specific data (e.g. the callback body, the call sid).
    pub payload: String,
    /// Due this long after the commit, on the database's clock.
    pub delay: Duration,
    /// Inserted already leased to the inserting process, which runs it at
    /// once: no separate claim, and no other runner takes it unless the lease ends.
    pub claim: bool,
}

impl NewJob {
    /// A job due now, for any runner.
    pub fn now(kind: JobKind, request_id: Uuid, payload: String) -> Self {
        Self { kind, request_id, payload, delay: Duration::ZERO, claim: false }
    }
}

/// The right to finish one job: its id and the token of the claim that leased it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    pub job: i64,
    pub token: Uuid,
}

/// A stored job, leased to this process by `claim_jobs` (or at insert).
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub kind: JobKind,
    pub request_id: Uuid,
    pub payload: String,
    /// Attempts before this one.
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    /// The claim that leased it to us: every later write of the job names it.
    pub token: Uuid,
}

impl Job {
    pub fn lease(&self) -> Lease {
        Lease { job: self.id, token: self.token }
    }
}

/// The durable outbox. Leases are handed out by the database, so several
/// servers on one database never run the same job at once, and a job whose
/// runner died is taken over when its lease ends.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Leases up to `limit` due jobs to the caller, for the store's lease time
    /// counted on the database's clock.
    async fn claim_jobs(&self, limit: usize) -> Result<Vec<Job>, StoreError>;
    /// Extends the leases that are still the caller's; returns how many were.
    async fn renew_leases(&self, leases: Vec<Lease>) -> Result<usize, StoreError>;
    /// Removes a job that is done (`LeaseLost` if the lease is not the caller's any more).
    async fn finish_job(&self, lease: Lease) -> Result<(), StoreError>;
    /// Schedules another attempt of a job `delay` from now and gives up the lease.
    async fn retry_job(&self, lease: Lease, delay: Duration, error: &str) -> Result<(), StoreError>;
    /// Schedules a job that waits (a queued call) to run at `at`, a time the
    /// caller fixed (not "now plus a delay" when the write runs: a write that
    /// waits behind others would make it late), and gives up the lease.
    async fn wait_job_until(&self, lease: Lease, at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Keeps a job that gave up for the operator to see, and stops running it.
    async fn bury_job(&self, lease: Lease, error: &str) -> Result<(), StoreError>;
    /// How long until the next job is due or its lease ends, if there is one.
    async fn next_job_in(&self) -> Result<Option<Duration>, StoreError>;
    /// Number of jobs waiting, by kind, for metrics.
    async fn job_backlog(&self) -> Result<Vec<(JobKind, i64)>, StoreError>;
    /// Notified when another process adds a job that is due now (`None`:
    /// this backend has no such signal, or no other process can add jobs).
    fn job_signal(&self) -> Option<Arc<Notify>>;
}
