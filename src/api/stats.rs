//! The calling tenant's statistics: the funnel per period, how many got
//! through, how long it took, and which numbers fail most.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::Authenticated;
use super::input::time;
use crate::domain::funnel::Step;
use crate::domain::phone::mask;
use crate::error::{AppError, ErrorBody};
use crate::state::AppState;

/// The most periods one answer holds (an hour for 31 days; a day for 400).
const MAX_PERIODS: i64 = 744;
const TOP_FAILING: usize = 10;

/// Counts of one period, or of the whole range.
#[derive(Debug, Default, Clone, Serialize, ToSchema)]
pub struct Counts {
    pub registered: u64,
    pub call_placed: u64,
    pub ringing: u64,
    pub answered: u64,
    pub code_entered: u64,
    pub sms_sent: u64,
    pub verified: u64,
    /// Failures by reason; a call that ended with no code also names the
    /// prompt the caller hung up during (`no_input@greeting`).
    pub failed: BTreeMap<String, u64>,
    pub canceled: u64,
    pub expired: u64,
}

impl Counts {
    fn add(&mut self, step: Step, detail: Option<&str>, n: u64) {
        let slot = match step {
            Step::Registered => &mut self.registered,
            Step::CallPlaced => &mut self.call_placed,
            Step::Ringing => &mut self.ringing,
            Step::Answered => &mut self.answered,
            Step::CodeEntered => &mut self.code_entered,
            Step::SmsSent => &mut self.sms_sent,
            Step::Verified => &mut self.verified,
            Step::Canceled => &mut self.canceled,
            Step::Expired => &mut self.expired,
            Step::Failed => self.failed.entry(detail.unwrap_or("unknown").to_owned()).or_default(),
        };
        *slot += n;
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Period {
    /// The period's start (RFC 3339, UTC).
    pub start: String,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FailingNumber {
    /// Masked: only the last four digits are shown.
    pub number: String,
    pub failures: u64,
}

/// The tenant's statistics over a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    pub from: String,
    pub to: String,
    /// `hour` or `day`.
    pub granularity: &'static str,
    /// Every period of the range, oldest first, zeros included.
    pub periods: Vec<Period>,
    pub totals: Counts,
    /// Verified over registered in the range (null when none registered).
    pub conversion: Option<f64>,
    /// The median time from registration to verification of the requests
    /// verified in the range, in seconds.
    pub median_seconds_to_verify: Option<f64>,
    /// Calls placed in the range (the cost driver; `GET /v1/usage` has the
    /// month's calls and call-seconds per account and country).
    pub calls: u64,
    /// Seconds the calls that ended in the range were up.
    pub call_seconds: u64,
    /// The numbers whose requests failed most in the range.
    pub top_failing_numbers: Vec<FailingNumber>,
}

/// The range of `GET /v1/stats` (all optional: the last 24 hours by hour).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query string, parsed by hand
pub struct StatsRange {
    /// Start (RFC 3339); default: `to` minus 24 hours (hour) or 30 days (day).
    from: Option<String>,
    /// End (RFC 3339, exclusive); default: now.
    to: Option<String>,
    /// `hour` (default; at most 31 days) or `day` (at most 744 days).
    granularity: Option<String>,
}

struct Range {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    hour: bool,
}

fn parse(query: &str, now: DateTime<Utc>) -> Result<Range, AppError> {
    let (mut from, mut to, mut hour) = (None, None, true);
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "from" => from = Some(time("from", &value)?),
            "to" => to = Some(time("to", &value)?),
            "granularity" => {
                hour = match &*value {
                    "hour" => true,
                    "day" => false,
                    _ => return Err(AppError::invalid("granularity", "`hour` or `day`")),
                }
            }
            "tenant" => {} // an operator's console session names the tenant here (`api::session`)
            other => return Err(AppError::invalid(other.to_owned(), "not a parameter of this statistic")),
        }
    }
    let width = if hour { Duration::hours(1) } else { Duration::days(1) };
    let to = to.unwrap_or(now);
    let from = from.unwrap_or(to - if hour { Duration::hours(24) } else { Duration::days(30) });
    if from >= to {
        return Err(AppError::invalid("to", "not after `from`"));
    }
    if (to - from).num_seconds() / width.num_seconds() > MAX_PERIODS {
        let most = if hour { "31 days by hour" } else { "744 days by day" };
        return Err(AppError::invalid("from", format!("the range is too long: at most {most}")));
    }
    Ok(Range { from, to, hour })
}

/// The start of the period `t` falls in (periods start at multiples of the width since the epoch).
fn period_of(t: DateTime<Utc>, width: i64) -> DateTime<Utc> {
    let s = t.timestamp();
    DateTime::from_timestamp(s - s.rem_euclid(width), 0).unwrap_or(t)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The tenant's funnel and outcomes.
///
/// Counts per period of the steps the tenant's requests reached
/// (registered, call placed, ringing, answered, code entered, SMS sent) and
/// how they ended (verified; failed by reason, with the prompt a caller hung
/// up during; canceled; expired); the conversion from registration to
/// verification, the median time to verify, the calls placed and the
/// seconds calls were up, and the ten numbers that failed most (masked).
#[utoipa::path(
    get,
    path = "/v1/stats",
    tag = "audit",
    params(StatsRange),
    responses(
        (status = 200, description = "The statistics of the range", body = Stats),
        (status = 401, description = "Missing or invalid API key (or, for a tenant that signs its requests, signature)", body = ErrorBody),
        (status = 422, description = "A parameter is malformed or the range too long; `field` names it", body = ErrorBody),
        (status = 429, description = "Rate limited: the API key's request rate; see Retry-After", body = ErrorBody),
        (status = 503, description = "The database is unreachable for a moment; see Retry-After", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn stats(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(tenant): Authenticated,
) -> Result<HttpResponse, AppError> {
    let range = parse(req.query_string(), state.service.now())?;
    let width = if range.hour { 3600 } else { 86_400 };
    let store = &state.service.store;
    let counts = store.step_counts(tenant.id, range.from, range.to, width as u32).await?;
    let summary = store.request_summary(tenant.id, range.from, range.to, TOP_FAILING).await?;
    let mut periods: BTreeMap<DateTime<Utc>, Counts> = BTreeMap::new();
    let mut start = period_of(range.from, width);
    while start < range.to {
        periods.insert(start, Counts::default());
        start += Duration::seconds(width);
    }
    let mut totals = Counts::default();
    for (bucket, step, detail, n) in counts {
        periods.entry(bucket).or_default().add(step, detail.as_deref(), n);
        totals.add(step, detail.as_deref(), n);
    }
    let conversion = (totals.registered > 0).then(|| totals.verified as f64 / totals.registered as f64);
    let body = Stats {
        from: rfc3339(range.from),
        to: rfc3339(range.to),
        granularity: if range.hour { "hour" } else { "day" },
        periods: periods.into_iter().map(|(start, counts)| Period { start: rfc3339(start), counts }).collect(),
        calls: totals.call_placed,
        totals,
        conversion,
        median_seconds_to_verify: summary.median_seconds_to_verify,
        call_seconds: summary.call_seconds,
        top_failing_numbers: summary
            .top_failing
            .into_iter()
            .map(|(number, failures)| FailingNumber { number: mask(&number), failures })
            .collect(),
    };
    Ok(HttpResponse::Ok().json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_default_to_a_day_by_hour_and_bad_ones_are_named() {
        let now = time("t", "2026-12-06T10:30:00Z").unwrap();
        let r = parse("", now).unwrap();
        assert_eq!((r.to - r.from, r.hour), (Duration::hours(24), true));
        let r = parse("granularity=day", now).unwrap();
        assert_eq!(r.to - r.from, Duration::days(30));
        for (query, field) in [
            ("granularity=week", "granularity"),
            ("from=yesterday", "from"),
            ("from=2026-12-07T00:00:00Z", "to"),
            ("from=2026-10-01T00:00:00Z", "from"),
            ("colour=red", "colour"),
        ] {
            match parse(query, now) {
                Err(AppError::Invalid { field: f, .. }) => assert_eq!(f, field, "{query}"),
                other => panic!("{query}: {:?}", other.map(|r| r.from)),
            }
        }
    }

    #[test]
    fn periods_start_on_whole_hours_and_days() {
        let t = time("t", "2026-12-06T10:30:15Z").unwrap();
        assert_eq!(rfc3339(period_of(t, 3600)), "2026-12-06T10:00:00Z");
        assert_eq!(rfc3339(period_of(t, 86_400)), "2026-12-06T00:00:00Z");
    }

    #[test]
    fn failures_are_kept_by_reason() {
        let mut c = Counts::default();
        c.add(Step::Failed, Some("no_input@greeting"), 2);
        c.add(Step::Failed, Some("busy"), 1);
        c.add(Step::Verified, None, 5);
        assert_eq!((c.failed["no_input@greeting"], c.failed["busy"], c.verified), (2, 1, 5));
    }
}
