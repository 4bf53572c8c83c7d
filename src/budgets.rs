//! Per-tenant call budgets: outbound calls a minute and a day. They are not
//! there to shape traffic (the defaults are far above what a site does) but
//! to stop a stolen API key from running up the telephone bill.
//!
//! The budgets count the tenant's stored outbound requests, so they hold
//! across servers and restarts. Counting a day of rows on every registration
//! would cost too much, so each server reads the counts now and then (the
//! minute's every second, the day's every 30 s) and adds its own registrations
//! in between. Near a limit the count is read again, exactly, before a
//! registration is refused; the most a budget can be overrun by is what
//! other servers registered since this one last looked.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use crate::domain::tenant::Tenant;
use crate::metrics::{Metrics, TenantLabel};
use crate::service::ServiceError;
use crate::store::Store;

/// A budget: how many calls in which window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    PerMinute,
    PerDay,
}

impl Budget {
    const ALL: [Budget; 2] = [Budget::PerMinute, Budget::PerDay];

    fn window(self) -> TimeDelta {
        match self {
            Self::PerMinute => TimeDelta::minutes(1),
            Self::PerDay => TimeDelta::days(1),
        }
    }

    /// How old a count read from the store may be.
    fn recount_every(self) -> TimeDelta {
        match self {
            Self::PerMinute => TimeDelta::seconds(1),
            Self::PerDay => TimeDelta::seconds(30),
        }
    }

    /// The name in messages, logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::PerMinute => "calls_per_minute",
            Self::PerDay => "calls_per_day",
        }
    }

    fn setting(self) -> &'static str {
        match self {
            Self::PerMinute => "ivr-auth tenant set --calls-per-minute, default IVR_AUTH_TENANT_CALLS_PER_MINUTE",
            Self::PerDay => "ivr-auth tenant set --calls-per-day, default IVR_AUTH_TENANT_CALLS_PER_DAY",
        }
    }

    fn period(self) -> &'static str {
        match self {
            Self::PerMinute => "minute",
            Self::PerDay => "24 hours",
        }
    }
}

/// One budget's use by one tenant, as this server knows it.
#[derive(Debug, Default, Clone, Copy)]
struct Use {
    /// The count read from the store, and when.
    counted: u64,
    counted_at: Option<DateTime<Utc>>,
    /// Registered by this server since then.
    added: u64,
    /// Refused without asking the store until then: the budget is spent.
    spent_until: Option<DateTime<Utc>>,
    /// When the 80 % warning was last logged.
    warned_at: Option<DateTime<Utc>>,
}

/// The call budgets of every tenant.
pub struct CallBudgets {
    per_minute: u32,
    per_day: u32,
    uses: Mutex<HashMap<(Uuid, u8), Use>>,
}

impl CallBudgets {
    /// Server defaults (0 = no such budget), for tenants without their own.
    pub fn new(per_minute: u32, per_day: u32) -> Self {
        Self { per_minute, per_day, uses: Mutex::default() }
    }

    fn limit(&self, tenant: &Tenant, budget: Budget) -> u32 {
        match budget {
            Budget::PerMinute => tenant.policy.calls_per_minute.unwrap_or(self.per_minute),
            Budget::PerDay => tenant.policy.calls_per_day.unwrap_or(self.per_day),
        }
    }

    fn get(&self, key: (Uuid, u8)) -> Use {
        self.uses.lock().map(|u| u.get(&key).copied().unwrap_or_default()).unwrap_or_default()
    }

    fn put(&self, key: (Uuid, u8), f: impl FnOnce(&mut Use)) {
        if let Ok(mut uses) = self.uses.lock() {
            f(uses.entry(key).or_default());
        }
    }

    /// Whether `tenant` may have one more call placed at `now`: `RateLimited`
    /// naming the budget it has spent, with when a call is allowed again.
    pub async fn check(
        &self,
        store: &dyn Store,
        metrics: &Metrics,
        tenant: &Tenant,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        for budget in Budget::ALL {
            let max = self.limit(tenant, budget);
            if max == 0 {
                continue;
            }
            let key = (tenant.id, budget as u8);
            let mut seen = self.get(key);
            if let Some(until) = seen.spent_until.filter(|until| *until > now) {
                return Err(refusal(metrics, tenant, budget, max, until - now));
            }
            let stale = seen.counted_at.is_none_or(|at| now - at >= budget.recount_every());
            if stale || seen.counted + seen.added >= u64::from(max) {
                // Read again, with when the oldest call that counts leaves the window if it is spent.
                let (count, nth_at) = store.outbound_since(tenant.id, now - budget.window(), max).await?;
                seen = Use { counted: count, counted_at: Some(now), added: 0, spent_until: None, ..seen };
                let spent_until = nth_at.filter(|_| count >= u64::from(max)).map(|oldest| oldest + budget.window());
                self.put(key, |u| *u = Use { spent_until, ..seen });
                if let Some(until) = spent_until {
                    return Err(refusal(metrics, tenant, budget, max, until - now));
                }
            }
            let used = seen.counted + seen.added + 1;
            let warned_lately = seen.warned_at.is_some_and(|at| now - at < budget.window());
            if used * 5 >= u64::from(max) * 4 && !warned_lately {
                tracing::warn!(
                    tenant = %tenant.name,
                    budget = budget.name(),
                    used,
                    limit = max,
                    "a tenant has used 80% of a call budget (a stolen API key? see ivr-auth tenant set)"
                );
                self.put(key, |u| u.warned_at = Some(now));
            }
        }
        Ok(())
    }

    /// Counts a call registered for `tenant`.
    pub fn spent(&self, metrics: &Metrics, tenant: &Tenant) {
        metrics.tenant_calls.get_or_create(&TenantLabel { tenant: tenant.name.clone() }).inc();
        for budget in Budget::ALL {
            self.put((tenant.id, budget as u8), |u| u.added += 1);
        }
    }
}

/// The 429 for a spent budget, counted per tenant.
fn refusal(metrics: &Metrics, tenant: &Tenant, budget: Budget, max: u32, wait: TimeDelta) -> ServiceError {
    metrics.refused(&tenant.name, budget.name());
    tracing::warn!(tenant = %tenant.name, budget = budget.name(), limit = max, "a call budget is spent: call refused");
    ServiceError::RateLimited {
        retry_after: wait.to_std().unwrap_or_default().max(Duration::from_secs(1)),
        message: format!(
            "phone_number: this tenant's call budget {} is spent: {max} calls in {} ({}); try again later",
            budget.name(),
            budget.period(),
            budget.setting()
        ),
    }
}
