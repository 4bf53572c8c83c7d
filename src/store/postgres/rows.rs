//! Mapping between PostgreSQL rows and domain types.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::clock::to_millis;
use crate::domain::delivery::Delivery;
use crate::domain::phone::PhoneNumber;
use crate::domain::request::AuthRequest;
use crate::domain::status::{CallStatus, FailureReason, Locale, Mode, Status};
use crate::domain::tenant::{Tenant, TenantPolicy};
use crate::store::{Job, JobKind, StoreError};

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

fn small(row: &Row, col: usize) -> Result<u8, StoreError> {
    u8::try_from(row.try_get::<_, i16>(col).map_err(super::db)?).map_err(|_| corrupt("small integer out of range"))
}

fn parsed<T>(row: &Row, col: usize, parse: fn(&str) -> Option<T>) -> Result<T, StoreError> {
    let text: &str = row.try_get(col).map_err(super::db)?;
    parse(text).ok_or_else(|| corrupt("unknown enum value"))
}

fn parsed_opt<T>(row: &Row, col: usize, parse: fn(&str) -> Option<T>) -> Result<Option<T>, StoreError> {
    let text: Option<&str> = row.try_get(col).map_err(super::db)?;
    text.map(|t| parse(t).ok_or_else(|| corrupt("unknown enum value"))).transpose()
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, col: usize) -> Result<T, StoreError> {
    row.try_get(col).map_err(super::db)
}

/// Reads a row selected with `request_columns!()`, by position.
pub fn request_from_row(row: &Row) -> Result<AuthRequest, StoreError> {
    Ok(AuthRequest {
        id: get(row, 0)?,
        tenant_id: get(row, 1)?,
        external_id: get(row, 2)?,
        fingerprint: get(row, 3)?,
        mode: parsed(row, 4, Mode::parse)?,
        phone_number: PhoneNumber::from_stored(get(row, 5)?),
        code_hash: get(row, 6)?,
        code_salt: get(row, 7)?,
        code_length: small(row, 8)?,
        user_id: get(row, 9)?,
        locale: parsed(row, 10, Locale::parse)?,
        max_attempts: small(row, 11)?,
        attempts: small(row, 12)?,
        no_input_count: small(row, 13)?,
        callback_url: get(row, 14)?,
        status: parsed(row, 15, Status::parse)?,
        failure_reason: parsed_opt(row, 16, FailureReason::parse)?,
        call_sid: get(row, 17)?,
        call_status: parsed_opt(row, 18, CallStatus::parse)?,
        created_at: get(row, 19)?,
        updated_at: get(row, 20)?,
        expires_at: get(row, 21)?,
        verified_at: get(row, 22)?,
        inbound_number: get::<Option<String>>(row, 23)?.map(PhoneNumber::from_stored),
        key_id: get(row, 24)?,
        delivery: Delivery::from_stored(get::<Option<&str>>(row, 25)?).ok_or_else(|| corrupt("delivery"))?,
    })
}

/// Insert and update parameters of a request, in `request_columns!()` order, then `terminal`.
pub struct RequestParams<'a> {
    r: &'a AuthRequest,
    small: [i16; 4],
    texts: [&'a str; 4],
    optional: [Option<&'static str>; 2],
    times: [DateTime<Utc>; 3],
    verified_at: Option<DateTime<Utc>>,
    inbound_number: Option<&'a str>,
    delivery: Option<String>,
    terminal: bool,
}

impl<'a> RequestParams<'a> {
    pub fn new(r: &'a AuthRequest) -> Self {
        Self {
            r,
            small: [r.code_length.into(), r.max_attempts.into(), r.attempts.into(), r.no_input_count.into()],
            texts: [r.mode.as_str(), r.phone_number.as_str(), r.locale.as_str(), r.status.as_str()],
            optional: [r.failure_reason.map(FailureReason::as_str), r.call_status.map(CallStatus::as_str)],
            times: [to_millis(r.created_at), to_millis(r.updated_at), to_millis(r.expires_at)],
            verified_at: r.verified_at.map(to_millis),
            inbound_number: r.inbound_number.as_ref().map(PhoneNumber::as_str),
            delivery: r.delivery.to_stored(),
            terminal: r.status.is_terminal(),
        }
    }

    /// The 27 parameters of an insert: `request_columns!()`, then `terminal`.
    pub fn all(&self) -> [&(dyn ToSql + Sync); 27] {
        let r = self.r;
        [
            &r.id,
            &r.tenant_id,
            &r.external_id,
            &r.fingerprint,
            &self.texts[0],
            &self.texts[1],
            &r.code_hash,
            &r.code_salt,
            &self.small[0],
            &r.user_id,
            &self.texts[2],
            &self.small[1],
            &self.small[2],
            &self.small[3],
            &r.callback_url,
            &self.texts[3],
            &self.optional[0],
            &r.call_sid,
            &self.optional[1],
            &self.times[0],
            &self.times[1],
            &self.times[2],
            &self.verified_at,
            &self.inbound_number,
            &r.key_id,
            &self.delivery,
            &self.terminal,
        ]
    }
}

/// Reads `tenant_columns!()`, by position.
pub fn tenant_from_row(row: &Row) -> Result<Tenant, StoreError> {
    Ok(Tenant {
        id: get(row, 0)?,
        name: get(row, 1)?,
        key_id: get(row, 2)?,
        key_hash: get(row, 3)?,
        callback_secret: SecretString::from(get::<String>(row, 4)?),
        previous_callback_secret: get::<Option<String>>(row, 5)?.map(SecretString::from),
        previous_until: get(row, 6)?,
        created_at: get(row, 7)?,
        policy: TenantPolicy::from_json(get::<&str>(row, 8)?).ok_or_else(|| corrupt("tenant policy"))?,
    })
}

/// Owned parameters of a tenant, in `tenant_columns!()` order.
pub struct TenantParams {
    secret: String,
    previous: Option<String>,
    previous_until: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    policy: String,
}

impl TenantParams {
    pub fn new(t: &Tenant) -> Self {
        Self {
            secret: t.callback_secret.expose_secret().to_owned(),
            previous: t.previous_callback_secret.as_ref().map(|s| s.expose_secret().to_owned()),
            previous_until: t.previous_until.map(to_millis),
            created_at: to_millis(t.created_at),
            policy: t.policy.to_json(),
        }
    }

    pub fn all<'a>(&'a self, t: &'a Tenant) -> [&'a (dyn ToSql + Sync); 9] {
        [
            &t.id,
            &t.name,
            &t.key_id,
            &t.key_hash,
            &self.secret,
            &self.previous,
            &self.previous_until,
            &self.created_at,
            &self.policy,
        ]
    }
}

/// Reads `id, kind, request_id, payload, attempts, created_at, lease_owner`, by position.
pub fn job_from_row(row: &Row) -> Result<Job, StoreError> {
    job_from_row_at(row, 0)
}

/// The same columns, starting at column `at`.
pub fn job_from_row_at(row: &Row, at: usize) -> Result<Job, StoreError> {
    Ok(Job {
        id: get(row, at)?,
        kind: parsed(row, at + 1, JobKind::parse)?,
        request_id: get(row, at + 2)?,
        payload: get(row, at + 3)?,
        attempts: u32::try_from(get::<i32>(row, at + 4)?).unwrap_or(0),
        created_at: get(row, at + 5)?,
        token: get::<Uuid>(row, at + 6)?,
    })
}
