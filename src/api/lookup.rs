//! Looking into single requests: a search of the tenant's requests, and one request's timeline.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::Authenticated;
use super::input::time;
use crate::domain::request::AuthRequest;
use crate::domain::status::Status;
use crate::domain::view::RequestView;
use crate::error::{AppError, ErrorBody};
use crate::state::AppState;
use crate::store::stats::RequestSearch;

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;
/// The longest external id or user id a search takes (registration's own limit).
const MAX_ID_LEN: usize = 128;

/// A page of requests.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequestPage {
    /// Newest first.
    pub requests: Vec<RequestView>,
    /// The `before` of the next (older) page; null on the last page.
    pub next: Option<String>,
}

/// The filters of `GET /v1/auth-requests` (all optional; together they all apply).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query string, parsed by hand (a bad field is named)
pub struct SearchFilters {
    /// The site's own id of the request, exactly.
    external_id: Option<String>,
    /// The site's user id, exactly.
    user_id: Option<String>,
    /// The phone number's last digits: 1 to 4 digits.
    phone_last4: Option<String>,
    /// The status as the result API shows it (`expired` includes requests
    /// past `expires_at` that no job has ended yet).
    status: Option<Status>,
    /// Created at or after this time (RFC 3339).
    from: Option<String>,
    /// Created before this time (RFC 3339).
    to: Option<String>,
    /// The cursor: the `next` of the previous page.
    before: Option<String>,
    /// Requests per page, 1 to 100 (default 20).
    limit: Option<u32>,
}

fn id_text(field: &str, raw: &str) -> Result<String, AppError> {
    if raw.is_empty() || raw.len() > MAX_ID_LEN || raw.chars().any(char::is_control) {
        return Err(AppError::invalid(field, format!("1 to {MAX_ID_LEN} characters, none a control character")));
    }
    Ok(raw.to_owned())
}

/// The cursor of the page after `r`: its creation time (ms) and id.
fn cursor(r: &AuthRequest) -> String {
    format!("{}.{}", r.created_at.timestamp_millis(), r.id)
}

fn parse_cursor(raw: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let (ms, id) = raw.split_once('.')?;
    Some((DateTime::from_timestamp_millis(ms.parse().ok()?)?, Uuid::parse_str(id).ok()?))
}

/// The query string as a search of `tenant`'s requests; a 422 names the first bad field.
fn parse(tenant: Uuid, now: DateTime<Utc>, query: &str) -> Result<RequestSearch, AppError> {
    let mut q = RequestSearch { tenant, now, limit: DEFAULT_LIMIT, ..RequestSearch::default() };
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "external_id" => q.external_id = Some(id_text("external_id", &value)?),
            "user_id" => q.user_id = Some(id_text("user_id", &value)?),
            "phone_last4" => {
                let ok = (1..=4).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit());
                if !ok {
                    return Err(AppError::invalid("phone_last4", "1 to 4 digits"));
                }
                q.phone_last4 = Some(value.into_owned());
            }
            "status" => {
                let status = Status::parse(&value).ok_or_else(|| {
                    AppError::invalid(
                        "status",
                        "one of pending, calling, in_progress, verified, failed, expired, canceled",
                    )
                })?;
                q.status = Some(status);
            }
            "from" => q.from = Some(time("from", &value)?),
            "to" => q.to = Some(time("to", &value)?),
            "before" => {
                q.after =
                    Some(parse_cursor(&value).ok_or_else(|| AppError::invalid("before", "not a cursor of this API"))?);
            }
            "limit" => {
                let n = value.parse::<usize>().ok().filter(|n| (1..=MAX_LIMIT).contains(n));
                q.limit = n.ok_or_else(|| AppError::invalid("limit", format!("a number from 1 to {MAX_LIMIT}")))?;
            }
            "tenant" => {} // an operator's console session names its tenant so (`api::session`)
            other => return Err(AppError::invalid(other.to_owned(), "not a filter of this search")),
        }
    }
    if let (Some(from), Some(to)) = (q.from, q.to)
        && from > to
    {
        return Err(AppError::invalid("to", "before `from`"));
    }
    Ok(q)
}

/// Search the tenant's auth requests, newest first.
///
/// By the site's external id or user id, the last digits of the phone
/// number, the status and the time of registration; a page at a time. For
/// one request by its id, `GET /v1/auth-requests/{id}`.
#[utoipa::path(
    get,
    path = "/v1/auth-requests",
    tag = "auth requests",
    operation_id = "search",
    params(SearchFilters),
    responses(
        (status = 200, description = "A page of requests, newest first", body = RequestPage),
        (status = 401, description = "Missing or invalid API key (or, for a tenant that signs its requests, signature)", body = ErrorBody),
        (status = 422, description = "A filter is malformed; `field` names it", body = ErrorBody),
        (status = 429, description = "Rate limited: the API key's request rate; see Retry-After", body = ErrorBody),
        (status = 503, description = "The database is unreachable for a moment; see Retry-After", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn search(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(tenant): Authenticated,
) -> Result<HttpResponse, AppError> {
    let mut query = parse(tenant.id, state.service.now(), req.query_string())?;
    let limit = query.limit;
    query.limit += 1;
    let mut found = state.service.search_requests(query).await?;
    let more = found.len() > limit;
    found.truncate(limit);
    let next = if more { found.last().map(cursor) } else { None };
    let (now, inbound) = (state.service.now(), state.service.inbound_number.as_ref());
    let requests = found.iter().map(|r| RequestView::at(r, inbound, now)).collect();
    Ok(HttpResponse::Ok().json(RequestPage { requests, next }))
}

/// One thing that happened to a request.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEntry {
    pub at: String,
    /// `registered`, the event a webhook, the site or the clock brought
    /// (`call_placed`, `call_connected`, `keys_pressed`, `no_input`,
    /// `call_status`, `code_checked`, `sms_sent`, `canceled`, `expired`, …),
    /// or `callback` (a delivery attempt of the result callback).
    pub kind: String,
    /// Its facts: `status` after it, the funnel steps it `reached`, the
    /// `prompt` the call said next, key counts (`keys`, never the digits),
    /// `call_status` and `seconds`, a callback's `attempt`, `outcome` and
    /// `http_status`.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// A request's timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct Timeline {
    pub request_id: String,
    /// Oldest first.
    pub entries: Vec<TimelineEntry>,
}

/// One auth request's timeline.
///
/// Every change to the request, oldest first: its registration, each
/// webhook of its call and what the call said next, the keys counted (never
/// shown), the site's checks and cancel, the expiry, and each delivery
/// attempt of its result callback.
#[utoipa::path(
    get,
    path = "/v1/auth-requests/{id}/timeline",
    tag = "auth requests",
    operation_id = "timeline",
    params(("id" = uuid::Uuid, Path, description = "The id from registration")),
    responses(
        (status = 200, description = "The timeline", body = Timeline),
        (status = 401, description = "Missing or invalid API key (or, for a tenant that signs its requests, signature)", body = ErrorBody),
        (status = 404, description = "No such request for this tenant (or not an id)", body = ErrorBody),
        (status = 429, description = "Rate limited: the API key's request rate; see Retry-After", body = ErrorBody),
        (status = 503, description = "The database is unreachable for a moment; see Retry-After", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn timeline(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let (r, entries) = state.service.timeline(&tenant, super::requests::parse_id(&id)?).await?;
    let stamp = |at: DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Millis, true);
    let registered = TimelineEntry {
        at: stamp(r.created_at),
        kind: "registered".into(),
        detail: json!({"mode": r.mode.as_str(), "channel": r.delivery.channel.as_str(), "status": "pending"}),
    };
    let mut shown = vec![registered];
    for e in entries {
        let detail = crate::store::audit::json_from(e.detail.as_str(), "a timeline entry's detail")?;
        shown.push(TimelineEntry { at: stamp(e.at), kind: e.kind.into_owned(), detail });
    }
    let body = Timeline { request_id: r.id.to_string(), entries: shown };
    Ok(HttpResponse::Ok().json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_a_bad_one_is_named() {
        let t = Uuid::now_v7();
        let q = parse(t, Utc::now(), "external_id=ord-1&phone_last4=5678&status=failed&limit=5").unwrap();
        assert_eq!(q.external_id.as_deref(), Some("ord-1"));
        assert_eq!(q.phone_last4.as_deref(), Some("5678"));
        assert_eq!(q.status, Some(Status::Failed));
        assert_eq!(q.limit, 5);
        for (query, field) in [
            ("phone_last4=12345", "phone_last4"),
            ("phone_last4=12a", "phone_last4"),
            ("status=done", "status"),
            ("limit=0", "limit"),
            ("limit=101", "limit"),
            ("before=nope", "before"),
            ("from=yesterday", "from"),
            ("colour=red", "colour"),
            ("user_id=", "user_id"),
        ] {
            match parse(t, Utc::now(), query) {
                Err(AppError::Invalid { field: f, .. }) => assert_eq!(f, field, "{query}"),
                other => panic!("{query}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_cursor_reads_back() {
        let id = Uuid::now_v7();
        let (at, back) = parse_cursor(&format!("1767225600123.{id}")).unwrap();
        assert_eq!(back, id);
        assert_eq!(at.timestamp_millis(), 1_767_225_600_123);
    }
}
