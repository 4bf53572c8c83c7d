//! One retry loop for every PostgreSQL operation: a lost connection, a
//! serialization failure or a deadlock runs the attempt again, on a fresh
//! connection where the old one is lost, until the operation's time budget
//! is spent; only then is the database "unavailable".

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{Object, PoolError};
use tokio::time::Instant;
use tokio::time::error::Elapsed;

use super::Db;
use super::connect::{self, Said};
use crate::store::StoreError;

/// Why one attempt of an operation failed.
pub(super) enum Fail {
    /// Worth another attempt; the connection is fine (a serialization
    /// failure, a deadlock, no free connection yet).
    Retry(Box<dyn std::error::Error + Send + Sync>),
    /// Worth another attempt on a fresh connection: this one is lost or stuck.
    Lost(Box<dyn std::error::Error + Send + Sync>),
    /// Final.
    Stop(StoreError),
}

impl Fail {
    /// A statement refused only because an earlier one of its transaction
    /// failed (25P02, "current transaction is aborted").
    fn after_another(&self) -> bool {
        let Self::Stop(StoreError::Database(e)) = self else { return false };
        e.downcast_ref::<Said>().and_then(|said| said.0.code()).is_some_and(|c| c.code() == "25P02")
    }

    /// Of the failures of statements sent together in one transaction, the
    /// one that failed it: every statement after it is refused with 25P02,
    /// which says nothing, and the answers need not be looked at in the order
    /// the statements ran.
    pub(super) fn cause(failures: impl IntoIterator<Item = Self>) -> Option<Self> {
        let mut refused = None;
        for fail in failures {
            if !fail.after_another() {
                return Some(fail);
            }
            refused.get_or_insert(fail);
        }
        refused
    }

    /// Whether another attempt may help, and why this one failed.
    pub(super) fn transient(self) -> Result<Box<dyn std::error::Error + Send + Sync>, StoreError> {
        match self {
            Self::Retry(why) | Self::Lost(why) => Ok(why),
            Self::Stop(e) => Err(e),
        }
    }
}

/// A conflict between transactions: the statement may simply run again.
fn is_conflict(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| matches!(c.code(), "40001" | "40P01"))
}

/// Whether `e` is about the connection or a transient conflict rather than
/// about the statement: a lost or refused connection, a terminated backend, a
/// server starting or stopping, a read-only standby (a failover under way), a
/// serialization failure or a deadlock.
fn is_transient(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(state) = e.code() {
        return connect::transient_sqlstate(state.code());
    }
    // No SQLSTATE: the network. A refused, reset or timed-out connection is
    // worth another try; a certificate that does not verify is not.
    let io = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>());
    io.is_some_and(|io| {
        use std::io::ErrorKind::*;
        matches!(
            io.kind(),
            ConnectionRefused
                | ConnectionReset
                | ConnectionAborted
                | BrokenPipe
                | TimedOut
                | UnexpectedEof
                | NotConnected
                | AddrNotAvailable
                | HostUnreachable
                | NetworkUnreachable
                | Interrupted
        )
    })
}

/// A database error as a store error: transient ones mean "unavailable".
pub(super) fn db(e: tokio_postgres::Error) -> StoreError {
    if is_transient(&e) { StoreError::Unavailable(Box::new(Said(e))) } else { StoreError::Database(Box::new(Said(e))) }
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.code().is_some_and(|c| c.code() == "23505") {
            return Self::Stop(StoreError::Conflict("a row with this key exists"));
        }
        if is_conflict(&e) {
            Self::Retry(Box::new(Said(e)))
        } else if is_transient(&e) {
            Self::Lost(Box::new(Said(e)))
        } else {
            Self::Stop(StoreError::Database(Box::new(Said(e))))
        }
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Self::Stop(e)
    }
}

/// Runs `$body` with `$client` (a `&mut` pooled connection) and `$tries`
/// (1 for the first attempt), again on a fresh connection after a transient
/// failure, within the store's time budget; `$what` names the operation in
/// the debug log. A macro rather than a function taking a closure: the body
/// borrows the connection and its caller's locals across `.await`s, which an
/// async closure can do but not yet in a future that must be `Send` (rustc
/// reports "implementation of `Send` is not general enough").
macro_rules! retrying {
    ($db:expr, $what:literal, |$client:ident, $tries:ident| $body:expr) => {{
        let db: &$crate::store::postgres::Db = $db;
        let mut retry = db.retry();
        loop {
            let $tries = retry.next_try();
            let outcome = match db.connection(retry.deadline).await {
                Err(fail) => Err(fail),
                Ok(mut conn) => {
                    let work = $crate::store::postgres::retry::attempt(async {
                        let $client = &mut conn;
                        $body
                    });
                    let outcome = tokio::time::timeout_at(retry.deadline, work).await;
                    $crate::store::postgres::retry::settle(conn, outcome)
                }
            };
            if let Some(done) = retry.after(outcome, $what).await {
                break done;
            }
        }
    }};
}

/// Fixes the error type of an attempt's future.
pub(super) fn attempt<T, F: Future<Output = Result<T, Fail>>>(f: F) -> F {
    f
}

/// An attempt's result (`Err` if it ran out of time); a connection that was
/// lost or did not answer in time leaves the pool instead of being reused.
pub(super) fn settle<T>(conn: Object, outcome: Result<Result<T, Fail>, Elapsed>) -> Result<T, Fail> {
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(fail)) => {
            if matches!(fail, Fail::Lost(_)) {
                drop(Object::take(conn));
            }
            Err(fail)
        }
        Err(_) => {
            drop(Object::take(conn));
            Err(Fail::Lost("the database did not answer in time".into()))
        }
    }
}

/// The attempts of one operation: its deadline and how many have run.
pub(super) struct Retry {
    pub(super) deadline: Instant,
    tries: u32,
}

impl Retry {
    /// Counts the next attempt and answers its number (1 for the first).
    pub(super) fn next_try(&mut self) -> u32 {
        self.tries += 1;
        self.tries
    }

    /// The operation's answer after an attempt, or `None` after a pause
    /// when another attempt may help and there is time for it.
    pub(super) async fn after<T>(&self, outcome: Result<T, Fail>, what: &str) -> Option<Result<T, StoreError>> {
        match outcome.map_err(Fail::transient) {
            Ok(value) => Some(Ok(value)),
            Err(Err(e)) => Some(Err(e)),
            Err(Ok(why)) => {
                let pause = Duration::from_millis(20u64 << self.tries.min(4));
                if Instant::now() + pause >= self.deadline {
                    return Some(Err(StoreError::Unavailable(why)));
                }
                tracing::debug!(error = %why, attempt = self.tries, "database {what} will be retried");
                tokio::time::sleep(pause).await;
                None
            }
        }
    }
}

impl Db {
    /// The attempts of an operation that starts now, within the store's time budget.
    pub(super) fn retry(&self) -> Retry {
        Retry { deadline: Instant::now() + self.budget, tries: 0 }
    }

    pub(super) async fn connection(&self, deadline: Instant) -> Result<Object, Fail> {
        match tokio::time::timeout_at(deadline, self.pool.get()).await {
            Ok(Ok(conn)) => Ok(conn),
            // Opening a connection failed: a server stopping, starting, not
            // yet promoted, or gone is worth another try on a fresh one.
            Ok(Err(PoolError::Backend(e))) if connect::worth_reconnecting(&e) => Err(Fail::Lost(Box::new(Said(e)))),
            Ok(Err(PoolError::Backend(e))) => Err(e.into()),
            Ok(Err(PoolError::Closed)) => Err(Fail::Stop(StoreError::closed())),
            Ok(Err(e)) => Err(Fail::Retry(Box::new(e))),
            Err(_) => Err(Fail::Retry("no database connection in time".into())),
        }
    }
}
