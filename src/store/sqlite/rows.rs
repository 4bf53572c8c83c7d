//! Mapping between SQLite rows and domain types.

use chrono::{DateTime, Utc};
use rusqlite::{Row, params};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::pool::Writer;

use crate::domain::delivery::Delivery;
use crate::domain::phone::PhoneNumber;
use crate::domain::request::AuthRequest;
use crate::domain::status::{CallStatus, FailureReason, Locale, Mode, Status};
use crate::domain::tenant::{Tenant, TenantPolicy};
use crate::store::{Job, JobKind, StoreError};

pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_ms(v: i64) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(v).ok_or_else(|| corrupt("timestamp out of range"))
}

fn corrupt(what: &str) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(StoreError::Corrupt(what.to_owned())))
}

// The three below read the column where SQLite holds it, without a copy.

fn uuid(row: &Row<'_>, col: usize) -> rusqlite::Result<Uuid> {
    let bytes = row.get_ref(col)?.as_blob().map_err(|_| corrupt("uuid not a blob"))?;
    Uuid::from_slice(bytes).map_err(|_| corrupt("bad uuid"))
}

fn parsed<T>(row: &Row<'_>, col: usize, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    parsed_opt(row, col, parse)?.ok_or_else(|| corrupt("enum value missing"))
}

fn parsed_opt<T>(row: &Row<'_>, col: usize, parse: fn(&str) -> Option<T>) -> rusqlite::Result<Option<T>> {
    let text = row.get_ref(col)?.as_str_or_null().map_err(|_| corrupt("enum value not text"))?;
    text.map(|t| parse(t).ok_or_else(|| corrupt("unknown enum value"))).transpose()
}

/// Reads a row selected with `request_columns!()`, by position (no name lookups).
pub fn request_from_row(row: &Row<'_>) -> rusqlite::Result<AuthRequest> {
    Ok(AuthRequest {
        id: uuid(row, 0)?,
        tenant_id: uuid(row, 1)?,
        external_id: row.get(2)?,
        fingerprint: row.get(3)?,
        mode: parsed(row, 4, Mode::parse)?,
        phone_number: PhoneNumber::from_stored(row.get(5)?),
        code_hash: row.get(6)?,
        code_salt: row.get(7)?,
        code_length: row.get(8)?,
        user_id: row.get(9)?,
        locale: parsed(row, 10, Locale::parse)?,
        max_attempts: row.get(11)?,
        attempts: row.get(12)?,
        no_input_count: row.get(13)?,
        callback_url: row.get(14)?,
        status: parsed(row, 15, Status::parse)?,
        failure_reason: parsed_opt(row, 16, FailureReason::parse)?,
        call_sid: row.get(17)?,
        call_status: parsed_opt(row, 18, CallStatus::parse)?,
        created_at: from_ms(row.get(19)?)?,
        updated_at: from_ms(row.get(20)?)?,
        expires_at: from_ms(row.get(21)?)?,
        verified_at: row.get::<_, Option<i64>>(22)?.map(from_ms).transpose()?,
        inbound_number: row.get::<_, Option<String>>(23)?.map(PhoneNumber::from_stored),
        key_id: row.get(24)?,
        delivery: Delivery::from_stored(row.get_ref(25)?.as_str_or_null().map_err(|_| corrupt("delivery not text"))?)
            .ok_or_else(|| corrupt("delivery"))?,
    })
}

/// With `update_request` and the purge, the only statements that change
/// `auth_requests` (the writer's `Recent` relies on it).
pub fn insert_request(conn: &Writer<'_>, r: &AuthRequest) -> rusqlite::Result<usize> {
    let sql = "INSERT INTO auth_requests (id, tenant_id, external_id, fingerprint, mode, phone_number, \
         code_hash, code_salt, code_length, user_id, locale, max_attempts, attempts, no_input_count, \
         callback_url, status, failure_reason, call_sid, call_status, created_at, updated_at, \
         expires_at, verified_at, terminal, inbound_number, key_id, delivery) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
         ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)";
    let p = params![
        r.id.as_bytes(),
        r.tenant_id.as_bytes(),
        r.external_id,
        r.fingerprint,
        r.mode.as_str(),
        r.phone_number.as_str(),
        r.code_hash,
        r.code_salt,
        r.code_length,
        r.user_id,
        r.locale.as_str(),
        r.max_attempts,
        r.attempts,
        r.no_input_count,
        r.callback_url,
        r.status.as_str(),
        r.failure_reason.map(FailureReason::as_str),
        r.call_sid,
        r.call_status.map(CallStatus::as_str),
        ms(r.created_at),
        ms(r.updated_at),
        ms(r.expires_at),
        r.verified_at.map(ms),
        r.status.is_terminal(),
        r.inbound_number.as_ref().map(PhoneNumber::as_str),
        r.key_id,
        r.delivery.to_stored(),
    ];
    conn.with(sql, |stmt| stmt.execute(p))
}

/// Writes `r`'s changes since `before`: the fields a transition may change.
/// An update that leaves its call sid and its end alone assigns neither, and
/// so leaves every index alone (migration 12): the other changing columns
/// are in none.
pub fn update_request(conn: &Writer<'_>, before: &AuthRequest, r: &AuthRequest) -> rusqlite::Result<usize> {
    // Four texts, by what the update must assign besides the columns that
    // change on every write: `call_sid` and `terminal` only when they change
    // (an index names them; `call_sid` through the generated
    // `inbound_call_sid`, migration 14), `delivery` only when it changed
    // (its JSON is the one column worth the comparison). The numbers of the
    // parameters are the same in all four; one left out is bound and not
    // read.
    macro_rules! set {
        ($rest:literal) => {
            concat!(
                "UPDATE auth_requests SET attempts = ?2, no_input_count = ?3, status = ?4, failure_reason = ?5, \
                 call_status = ?6, updated_at = ?7, verified_at = ?8",
                $rest
            )
        };
    }
    const TEXTS: [[&str; 2]; 2] = [
        [set!(" WHERE id = ?1"), set!(", call_sid = ?10, terminal = ?11 WHERE id = ?1")],
        [set!(", delivery = ?9 WHERE id = ?1"), set!(", delivery = ?9, call_sid = ?10, terminal = ?11 WHERE id = ?1")],
    ];
    let indexed = before.call_sid != r.call_sid || before.status.is_terminal() != r.status.is_terminal();
    let delivery_changed = before.delivery != r.delivery;
    let terminal = r.status.is_terminal();
    let (reason, call) = (r.failure_reason.map(FailureReason::as_str), r.call_status.map(CallStatus::as_str));
    let delivery = if delivery_changed { r.delivery.to_stored() } else { None };
    let (updated, verified) = (ms(r.updated_at), r.verified_at.map(ms));
    let all: [&dyn rusqlite::ToSql; 11] = [
        &r.id.as_bytes().as_slice(),
        &r.attempts,
        &r.no_input_count,
        &r.status.as_str(),
        &reason,
        &call,
        &updated,
        &verified,
        &delivery,
        &r.call_sid,
        &terminal,
    ];
    conn.with(TEXTS[usize::from(delivery_changed)][usize::from(indexed)], |stmt| {
        let bound = stmt.parameter_count();
        stmt.execute(&all[..bound])
    })
}

pub fn tenant_from_row(row: &Row<'_>) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        id: uuid(row, 0)?,
        name: row.get(1)?,
        key_id: row.get(2)?,
        key_hash: row.get(3)?,
        callback_secret: SecretString::from(row.get::<_, String>(4)?),
        previous_callback_secret: row.get::<_, Option<String>>(5)?.map(SecretString::from),
        previous_until: row.get::<_, Option<i64>>(6)?.map(from_ms).transpose()?,
        created_at: from_ms(row.get(7)?)?,
        policy: TenantPolicy::from_json(row.get_ref(8)?.as_str().map_err(|_| corrupt("tenant policy not text"))?)
            .ok_or_else(|| corrupt("tenant policy"))?,
    })
}

pub fn tenant_params(t: &Tenant) -> [Box<dyn rusqlite::ToSql + '_>; 9] {
    [
        Box::new(t.id.as_bytes().as_slice()),
        Box::new(t.name.as_str()),
        Box::new(t.key_id.as_str()),
        Box::new(t.key_hash.as_slice()),
        Box::new(t.callback_secret.expose_secret()),
        Box::new(t.previous_callback_secret.as_ref().map(|s| s.expose_secret())),
        Box::new(t.previous_until.map(ms)),
        Box::new(ms(t.created_at)),
        Box::new(t.policy.to_json()),
    ]
}

/// Reads `id, kind, request_id, payload, attempts, created_at, lease_owner`, by position.
pub fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    Ok(Job {
        id: row.get(0)?,
        kind: parsed(row, 1, JobKind::parse)?,
        request_id: uuid(row, 2)?,
        payload: row.get(3)?,
        attempts: row.get(4)?,
        created_at: from_ms(row.get(5)?)?,
        token: uuid(row, 6)?,
    })
}
