//! The calling tenant's usage for its bill: one month, per provider account
//! and destination country. Counts only.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::Authenticated;
use crate::domain::usage::Month;
use crate::error::{AppError, ErrorBody};
use crate::state::AppState;
use crate::store::UsageRow;

/// A month's usage on one provider account in one country.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageLine {
    /// The provider account the calls and messages went through; `inbound`
    /// for calls the users placed to an inbound number.
    pub account: String,
    /// The phone number's country (`JP`); `+881`-style for non-geographic
    /// codes; `??` when the number says none.
    pub country: String,
    pub calls_placed: u64,
    pub calls_taken: u64,
    /// Seconds the calls were up, as the provider (or the SIP engine) reported them.
    pub call_seconds: u64,
    pub sms: u64,
}

/// The sums of a month's lines.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct UsageTotals {
    pub calls_placed: u64,
    pub calls_taken: u64,
    pub call_seconds: u64,
    pub sms: u64,
}

/// A month's usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    /// `YYYY-MM` (UTC).
    pub month: String,
    /// By account, then country.
    pub rows: Vec<UsageLine>,
    pub totals: UsageTotals,
}

/// The query of `GET /v1/usage`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query string, parsed by hand
pub struct UsageQuery {
    /// The month, `YYYY-MM` (UTC); default: the current month.
    month: Option<String>,
}

/// The month asked for; a 422 names a bad one or an unknown parameter.
fn parse(query: &str, now: Month) -> Result<Month, AppError> {
    let mut month = now;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "month" => {
                month = Month::parse(&value).ok_or_else(|| AppError::invalid("month", "a month, like 2026-12"))?
            }
            other => return Err(AppError::invalid(other.to_owned(), "not a parameter of this report")),
        }
    }
    Ok(month)
}

/// The report of a month's rows.
pub fn report(month: Month, rows: Vec<UsageRow>) -> Usage {
    let mut totals = UsageTotals::default();
    let rows = rows
        .into_iter()
        .map(|r| {
            totals.calls_placed += r.calls_placed;
            totals.calls_taken += r.calls_taken;
            totals.call_seconds += r.call_seconds;
            totals.sms += r.sms;
            UsageLine {
                account: r.account,
                country: r.country,
                calls_placed: r.calls_placed,
                calls_taken: r.calls_taken,
                call_seconds: r.call_seconds,
                sms: r.sms,
            }
        })
        .collect();
    Usage { month: month.to_string(), rows, totals }
}

/// The tenant's usage in a month.
///
/// Calls placed and taken, the seconds they were up (from the providers'
/// status callbacks, or measured by the SIP engine) and text messages, per
/// provider account and destination country. Counts only: prices are the
/// providers'. Kept 400 days.
#[utoipa::path(
    get,
    path = "/v1/usage",
    // Not `get` (the handler's name): that operation id is `GET /v1/auth-requests/{id}`'s,
    // which the registration's links name.
    operation_id = "get_usage",
    tag = "usage",
    params(UsageQuery),
    responses(
        (status = 200, description = "The month's usage", body = Usage),
        (status = 401, description = "Missing or invalid API key (or, for a tenant that signs its requests, signature)", body = ErrorBody),
        (status = 422, description = "The month is malformed; `field` names it", body = ErrorBody),
        (status = 429, description = "Rate limited: the API key's request rate; see Retry-After", body = ErrorBody),
        (status = 503, description = "The database is unreachable for a moment; see Retry-After", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(tenant): Authenticated,
) -> Result<HttpResponse, AppError> {
    let month = parse(req.query_string(), Month::of(state.service.now()))?;
    let rows = state.service.usage_month(&tenant, month).await?;
    Ok(HttpResponse::Ok().json(report(month, rows)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_month_defaults_to_now_and_a_bad_one_is_named() {
        let now = Month::parse("2026-12").unwrap();
        assert_eq!(parse("", now).unwrap(), now);
        assert_eq!(parse("month=2027-01", now).unwrap().to_string(), "2027-01");
        for (query, field) in [("month=2026-13", "month"), ("month=", "month"), ("year=2026", "year")] {
            match parse(query, now) {
                Err(AppError::Invalid { field: f, .. }) => assert_eq!(f, field, "{query}"),
                other => panic!("{query}: {other:?}"),
            }
        }
    }
}
