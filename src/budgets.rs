//! Per-tenant call budgets (`domain::budget`): outbound calls a minute and a day.
//!
//! The store counts and inserts in one transaction that no other
//! registration of the tenant interleaves with, on any server, so a budget
//! holds under any burst. This side remembers, per server, that a budget is
//! spent (so a refused burst does not reach the database) and warns when a
//! tenant nears a limit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use crate::domain::budget::{Budget, CallBudget};
use crate::domain::tenant::Tenant;
use crate::metrics::{Metrics, TenantLabel};

/// A call refused because a budget is spent: which, and when a call is allowed again.
#[derive(Debug, thiserror::Error)]
#[error(
    "phone_number: this tenant's call budget {} is spent: {max} calls in {} ({}); try again later",
    budget.name(),
    budget.period(),
    budget.setting()
)]
pub struct Spent {
    pub budget: Budget,
    pub max: u32,
    /// At least a second.
    pub retry_after: Duration,
}

/// What this server knows of one budget of one tenant.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// Refused without asking the store until then: the budget is spent.
    spent_until: Option<DateTime<Utc>>,
    /// When the 80 % warning was last logged.
    warned_at: Option<DateTime<Utc>>,
}

/// The call budgets of every tenant.
pub struct CallBudgets {
    per_minute: u32,
    per_day: u32,
    seen: Mutex<HashMap<(Uuid, Budget), Seen>>,
}

impl CallBudgets {
    /// Server defaults (0 = no such budget), for tenants without their own.
    pub fn new(per_minute: u32, per_day: u32) -> Self {
        Self { per_minute, per_day, seen: Mutex::default() }
    }

    /// The budgets `tenant` has (a limit of 0 is no budget).
    pub fn of(&self, tenant: &Tenant) -> Vec<CallBudget> {
        Budget::ALL
            .into_iter()
            .map(|budget| {
                let max = match budget {
                    Budget::PerMinute => tenant.policy.calls_per_minute.unwrap_or(self.per_minute),
                    Budget::PerDay => tenant.policy.calls_per_day.unwrap_or(self.per_day),
                };
                CallBudget { budget, max }
            })
            .filter(|b| b.max > 0)
            .collect()
    }

    fn update(&self, key: (Uuid, Budget), f: impl FnOnce(&mut Seen)) -> Seen {
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() > 100_000 {
            seen.clear();
        }
        let entry = seen.entry(key).or_default();
        f(entry);
        *entry
    }

    /// Refuses at once a call of `tenant` at `now` when this server has seen
    /// one of its budgets spent; otherwise the store decides.
    pub fn check(&self, metrics: &Metrics, tenant: &Tenant, now: DateTime<Utc>) -> Result<(), Spent> {
        for b in self.of(tenant) {
            let seen = self.update((tenant.id, b.budget), |_| {});
            if let Some(until) = seen.spent_until.filter(|until| *until > now) {
                return Err(refusal(metrics, tenant, b, until - now));
            }
        }
        Ok(())
    }

    /// The store refused a call of `tenant`: `budget` has room again in `wait`.
    pub fn spent(
        &self,
        metrics: &Metrics,
        tenant: &Tenant,
        budget: Budget,
        wait: Duration,
        now: DateTime<Utc>,
    ) -> Spent {
        let wait = TimeDelta::from_std(wait).unwrap_or(TimeDelta::zero());
        self.update((tenant.id, budget), |s| s.spent_until = Some(now + wait));
        let max = self.of(tenant).iter().find(|b| b.budget == budget).map_or(0, |b| b.max);
        refusal(metrics, tenant, CallBudget { budget, max }, wait)
    }

    /// Counts a call registered for `tenant`, whose budgets are now used as
    /// far as `used` (at most that many calls in each window).
    pub fn placed(&self, metrics: &Metrics, tenant: &Tenant, used: &[(Budget, u64)], now: DateTime<Utc>) {
        metrics.tenant_calls.get_or_create(&TenantLabel { tenant: tenant.name.clone() }).inc();
        for b in self.of(tenant) {
            let Some(&(_, used)) = used.iter().find(|(budget, _)| *budget == b.budget) else { continue };
            if used * 5 < u64::from(b.max) * 4 {
                continue;
            }
            let mut warn = false;
            self.update((tenant.id, b.budget), |s| {
                warn = s.warned_at.is_none_or(|at| now - at >= b.budget.window());
                if warn {
                    s.warned_at = Some(now);
                }
            });
            if warn {
                tracing::warn!(
                    tenant = %tenant.name,
                    budget = b.budget.name(),
                    used,
                    limit = b.max,
                    "a tenant has used 80% of a call budget (a stolen API key? see ivr-auth tenant set)"
                );
            }
        }
    }
}

/// The refusal of a call over a spent budget, counted per tenant.
fn refusal(metrics: &Metrics, tenant: &Tenant, b: CallBudget, wait: TimeDelta) -> Spent {
    metrics.refused(tenant.id, &tenant.name, b.budget.name());
    tracing::warn!(tenant = %tenant.name, budget = b.budget.name(), limit = b.max, "a call budget is spent: call refused");
    Spent { budget: b.budget, max: b.max, retry_after: wait.to_std().unwrap_or_default().max(Duration::from_secs(1)) }
}
