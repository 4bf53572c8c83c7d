//! The calling tenant's audit events: newest first, filtered, a page at a time.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::SecondsFormat;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::Authenticated;
use super::input::time;
use crate::domain::audit::Kind;
use crate::error::{AppError, ErrorBody};
use crate::state::AppState;
use crate::store::{AuditQuery, StoredEvent, Verdict};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 200;

/// One audit event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEvent {
    /// Its place in insertion order (unique); also the paging cursor.
    pub id: i64,
    /// `tenant.created`, `tenant.key_rotated`, `tenant.settings_changed`,
    /// `request.registered`, `request.verified`, `request.failed`,
    /// `request.canceled`, `request.expired`, `refusals`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The auth request it concerns, if any.
    pub request_id: Option<Uuid>,
    pub at: String,
    /// Facts of the event (a failure's `reason`, a refusal's `counts`, …);
    /// never a code, a key or a full phone number.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// Linked into the tenant's hash chain yet (within about a second of being written).
    pub sealed: bool,
}

/// A page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEvents {
    pub events: Vec<AuditEvent>,
    /// The `before` of the next (older) page; null on the last page.
    pub next: Option<String>,
}

/// The filters of `GET /v1/audit-events` (all optional).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query string, parsed by hand (`type` may repeat)
pub struct AuditFilters {
    /// Event types; repeatable, or comma-separated (`request.failed,request.expired`).
    #[param(rename = "type")]
    kind: Option<String>,
    /// Events at or after this time (RFC 3339).
    from: Option<String>,
    /// Events before this time (RFC 3339).
    to: Option<String>,
    /// Only events of this auth request.
    request_id: Option<Uuid>,
    /// The cursor: the `next` of the previous page.
    before: Option<String>,
    /// Events per page, 1 to 200 (default 50).
    limit: Option<u32>,
}

/// The query string as an audit query; a 422 names the first bad field.
fn parse(query: &str) -> Result<AuditQuery, AppError> {
    let mut q = AuditQuery { limit: DEFAULT_LIMIT, ..AuditQuery::default() };
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "type" => {
                for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    let kind = Kind::parse(name)
                        .filter(|k| *k != Kind::ServerStarted)
                        .ok_or_else(|| AppError::invalid("type", format!("unknown event type {name:?}")))?;
                    q.kinds.push(kind);
                }
            }
            "from" => q.from = Some(time("from", &value)?),
            "to" => q.to = Some(time("to", &value)?),
            "request_id" => {
                q.request_id =
                    Some(Uuid::parse_str(&value).map_err(|_| AppError::invalid("request_id", "not a request id"))?);
            }
            "before" => {
                let id = value.parse::<i64>().ok().filter(|n| *n > 0);
                q.before_id = Some(id.ok_or_else(|| AppError::invalid("before", "not a cursor of this API"))?);
            }
            "limit" => {
                let n = value.parse::<usize>().ok().filter(|n| (1..=MAX_LIMIT).contains(n));
                q.limit = n.ok_or_else(|| AppError::invalid("limit", format!("a number from 1 to {MAX_LIMIT}")))?;
            }
            other => return Err(AppError::invalid(other.to_owned(), "not a filter of this list")),
        }
    }
    if let (Some(from), Some(to)) = (q.from, q.to)
        && from > to
    {
        return Err(AppError::invalid("to", "before `from`"));
    }
    Ok(q)
}

fn view(e: StoredEvent) -> AuditEvent {
    AuditEvent {
        id: e.id,
        kind: e.record.kind.as_str(),
        request_id: e.record.request_id,
        at: e.record.at.to_rfc3339_opts(SecondsFormat::Millis, true),
        data: e.record.data,
        sealed: e.seq.is_some(),
    }
}

/// List the tenant's audit events, newest first.
///
/// What happened to the tenant and its auth requests: registered, verified,
/// failed (with its reason), canceled, expired; its key rotated and its
/// settings changed; and the refusals counted per minute (bad request
/// signatures, rate limits, budgets). Every event is linked into the
/// tenant's hash chain, which `ivr-auth audit verify` checks.
#[utoipa::path(
    get,
    path = "/v1/audit-events",
    tag = "audit",
    params(AuditFilters),
    responses(
        (status = 200, description = "A page of events, newest first", body = AuditEvents),
        (status = 401, description = "Missing or invalid API key (or, for a tenant that signs its requests, signature)", body = ErrorBody),
        (status = 422, description = "A filter is malformed; `field` names it", body = ErrorBody),
        (status = 429, description = "Rate limited: the API key's request rate; see Retry-After", body = ErrorBody),
        (status = 503, description = "The database is unreachable for a moment; see Retry-After", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(tenant): Authenticated,
) -> Result<HttpResponse, AppError> {
    let query = parse(req.query_string())?;
    let page = state.service.audit_page(&tenant, query).await?;
    let body =
        AuditEvents { events: page.events.into_iter().map(view).collect(), next: page.next.map(|id| id.to_string()) };
    Ok(HttpResponse::Ok().json(body))
}

/// What checking the tenant's chain found.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChainCheck {
    /// The chain checked: the tenant's id.
    pub chain: String,
    /// Every sealed event links to the one before it and the head is the last one.
    pub intact: bool,
    /// Sealed events checked (0 when the chain is broken).
    pub checked: u64,
    /// Where it breaks, when it does.
    pub first_broken: Option<BrokenLink>,
}

/// The first event whose link does not hold.
#[derive(Debug, Serialize, ToSchema)]
pub struct BrokenLink {
    /// Its place in the chain.
    pub seq: u64,
    /// Its event id, when the event is there (not when it was removed).
    pub id: Option<i64>,
    #[serde(rename = "type")]
    pub kind: Option<&'static str>,
    pub problem: &'static str,
}

/// Check the tenant's audit chain.
///
/// Links what is stored so far, then recomputes the tenant's hash chain
/// from its anchor (its last purged event) to its head: any event altered,
/// removed or inserted is found, and the first broken one named. The same
/// check as `ivr-auth audit verify`, for one tenant.
#[utoipa::path(
    get,
    path = "/v1/audit-events/verify",
    tag = "audit",
    operation_id = "verify_audit_chain",
    responses(
        (status = 200, description = "The check's result (a broken chain is a 200 too, with `intact: false`)", body = ChainCheck),
        (status = 401, description = "Missing or invalid API key (or, for a tenant that signs its requests, signature)", body = ErrorBody),
        (status = 429, description = "Rate limited: the API key's request rate; see Retry-After", body = ErrorBody),
        (status = 503, description = "The database is unreachable for a moment; see Retry-After", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn verify(
    state: web::Data<AppState>,
    Authenticated(tenant): Authenticated,
) -> Result<HttpResponse, AppError> {
    let verdict = state.service.verify_tenant_audit(&tenant).await?;
    let chain = crate::domain::audit::chain_of(Some(tenant.id));
    let body = match verdict {
        Verdict::Intact { events, .. } => ChainCheck { chain, intact: true, checked: events, first_broken: None },
        Verdict::Broken { seq, id, kind, why, .. } => ChainCheck {
            chain,
            intact: false,
            checked: 0,
            first_broken: Some(BrokenLink { seq, id, kind: kind.map(Kind::as_str), problem: why }),
        },
    };
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_a_bad_one_is_named() {
        let q = parse("type=request.failed,request.expired&type=refusals&limit=10&before=42").unwrap();
        assert_eq!(q.kinds, vec![Kind::RequestFailed, Kind::RequestExpired, Kind::Refusals]);
        assert_eq!((q.limit, q.before_id), (10, Some(42)));
        for (query, field) in [
            ("type=nope", "type"),
            ("type=server.started", "type"),
            ("limit=0", "limit"),
            ("limit=201", "limit"),
            ("from=yesterday", "from"),
            ("request_id=1", "request_id"),
            ("before=x", "before"),
            ("colour=red", "colour"),
            ("from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
        ] {
            match parse(query) {
                Err(AppError::Invalid { field: f, .. }) => assert_eq!(f, field, "{query}"),
                other => panic!("{query}: {other:?}"),
            }
        }
    }
}
