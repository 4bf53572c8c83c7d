//! The requests the SQLite writer stored last, as it stored them.
//!
//! A transition reads its request on the writer, decides, and writes the row
//! back. The row it reads is nearly always one the writer itself wrote a
//! moment ago (the registration, the call placed, the digits), and reading it
//! again costs a B-tree search and the decoding of every column, three or four
//! times per lifecycle. So the writer keeps the rows it wrote, and a
//! transition takes its row from here when nothing else can have changed it
//! since. The rows kept are all dropped
//!
//! - when a transaction of the writer's connection is rolled back (SQLite's
//!   rollback hook): what they say may have been undone;
//! - when another connection has committed (`PRAGMA data_version` moved): a
//!   command or another process on the same file. Only another transaction
//!   of the writer's can follow such a commit (none can commit while the
//!   writer holds the write lock), so this is asked once per transaction, at
//!   its first `take` (SQLite's commit hook says when one ended);
//! - when the writer changes requests otherwise than through `rows::insert_request`
//!   and `rows::update_request` followed by `keep` (the purge calls `forget_all`).
//!   SQLite's update hook would say so by itself, but it is not called for a
//!   table `WITHOUT ROWID`, which `auth_requests` is.
//!
//! In debug builds, which the tests run, every row taken from here is
//! compared with the stored one, and a difference is an error.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;
use uuid::Uuid;

use super::pool::{Writer, db_err};
use crate::domain::request::AuthRequest;
use crate::store::StoreError;

/// Rows kept at most; all are dropped when one more would pass it. A request
/// is kept from its registration to its last write, so this holds the
/// requests in flight many times over.
const CAPACITY: usize = 8192;

/// The writer's last-written requests (see the module's comment).
#[derive(Default)]
pub(super) struct Recent {
    /// Rollbacks on the writer's connection (counted by its hook) and `forget_all` calls.
    dropped: Arc<AtomicU64>,
    /// Transactions the writer's connection committed (counted by its hook).
    commits: Arc<AtomicU64>,
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    rows: HashMap<Uuid, AuthRequest>,
    /// The value of `dropped` when the rows were kept.
    dropped: u64,
    /// `PRAGMA data_version` when the rows were kept.
    data_version: i64,
    /// The value of `commits` when `data_version` was last found unchanged:
    /// while it holds, the writer is still in that transaction.
    checked: u64,
}

fn data_version(conn: &Writer<'_>) -> Result<i64, StoreError> {
    conn.with("PRAGMA data_version", |s| s.query_row([], |r| r.get(0))).map_err(db_err)
}

impl Recent {
    /// Installs the hooks that count rollbacks and commits on `conn`, the writer's connection.
    pub(super) fn watch(&self, conn: &mut Connection) -> Result<(), StoreError> {
        let dropped = self.dropped.clone();
        conn.rollback_hook(Some(move || {
            dropped.fetch_add(1, Ordering::Relaxed);
        }))
        .map_err(db_err)?;
        let commits = self.commits.clone();
        conn.commit_hook(Some(move || {
            commits.fetch_add(1, Ordering::Relaxed);
            false // let the commit go on
        }))
        .map_err(db_err)
    }

    /// Drops every row kept: the writer changed requests some other way.
    pub(super) fn forget_all(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    fn kept(&self) -> MutexGuard<'_, Kept> {
        // A write that panicked may have left it half done: start again.
        self.kept.lock().unwrap_or_else(|poisoned| {
            let mut kept = poisoned.into_inner();
            kept.rows.clear();
            kept
        })
    }

    /// Request `id` as stored, if the writer stored it last and kept it; it
    /// is no longer kept afterwards. Runs inside the writer's transaction.
    pub(super) fn take(&self, conn: &Writer<'_>, id: Uuid) -> Result<Option<AuthRequest>, StoreError> {
        let mut kept = self.kept();
        if kept.rows.is_empty() {
            return Ok(None);
        }
        let commits = self.commits.load(Ordering::Relaxed);
        let changed = kept.dropped != self.dropped.load(Ordering::Relaxed)
            || (kept.checked != commits && kept.data_version != data_version(conn)?);
        if changed {
            kept.rows.clear();
            return Ok(None);
        }
        kept.checked = commits;
        let row = kept.rows.remove(&id);
        drop(kept);
        #[cfg(debug_assertions)]
        if let Some(row) = &row
            && super::select_request(conn, id).map_err(db_err)?.as_ref() != Some(row)
        {
            return Err(StoreError::Corrupt(format!("the writer kept request {id} otherwise than it is stored")));
        }
        Ok(row)
    }

    /// Keeps `row`, just stored by `rows::insert_request` or `rows::update_request`.
    pub(super) fn keep(&self, conn: &Writer<'_>, row: AuthRequest) -> Result<(), StoreError> {
        let mut kept = self.kept();
        let dropped = self.dropped.load(Ordering::Relaxed);
        if kept.rows.is_empty() || kept.dropped != dropped || kept.rows.len() >= CAPACITY {
            kept.rows.clear();
            kept.dropped = dropped;
            kept.data_version = data_version(conn)?;
            kept.checked = self.commits.load(Ordering::Relaxed);
        }
        kept.rows.insert(row.id, row);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use rusqlite::Connection;

    use super::Recent;
    use crate::domain::request::AuthRequest;
    use crate::domain::tenant::Tenant;
    use crate::store::sqlite::pool::Writer;
    use crate::store::sqlite::{migrated, pool, rows, tenants};

    /// A migrated database with one tenant, its writer connection watched by `recent`.
    fn fresh(recent: &Recent) -> (tempfile::TempDir, Connection, std::path::PathBuf) {
        let (dir, mut conn, path) = migrated();
        recent.watch(&mut conn).unwrap();
        (dir, conn, path)
    }

    /// Stores a new request of a new tenant in its own transaction, keeps it, and returns it.
    fn stored(recent: &Recent, conn: &Writer<'_>) -> AuthRequest {
        let (tenant, _) = Tenant::create(format!("t{}", uuid::Uuid::now_v7()), Utc::now());
        let mut request = crate::domain::request::tests::sample(crate::clock::to_millis(Utc::now()));
        request.tenant_id = tenant.id;
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        tenants::insert_tenant(conn, &tenant).unwrap();
        rows::insert_request(conn, &request).unwrap();
        recent.keep(conn, request.clone()).unwrap();
        conn.execute_batch("COMMIT").unwrap();
        request
    }

    /// Runs `f` inside a write transaction of `conn`, as the writer runs its writes.
    fn writing<R>(conn: &Writer<'_>, f: impl FnOnce() -> R) -> R {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let r = f();
        conn.execute_batch("COMMIT").unwrap();
        r
    }

    #[test]
    fn a_row_the_writer_stored_is_taken_once_as_stored() {
        let recent = Recent::default();
        let (_dir, raw, _) = fresh(&recent);
        let conn = Writer::new(&raw);
        let request = stored(&recent, &conn);
        assert_eq!(writing(&conn, || recent.take(&conn, request.id)).unwrap(), Some(request.clone()));
        assert_eq!(writing(&conn, || recent.take(&conn, request.id)).unwrap(), None, "taken twice");
    }

    #[test]
    fn a_rolled_back_write_is_not_kept() {
        let recent = Recent::default();
        let (_dir, raw, _) = fresh(&recent);
        let conn = Writer::new(&raw);
        let request = stored(&recent, &conn);
        let mut changed = request.clone();
        changed.attempts += 1;
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        rows::update_request(&conn, &request, &changed).unwrap();
        recent.keep(&conn, changed).unwrap();
        conn.execute_batch("ROLLBACK").unwrap();
        assert_eq!(writing(&conn, || recent.take(&conn, request.id)).unwrap(), None);
    }

    #[test]
    fn a_commit_of_another_connection_drops_what_is_kept() {
        let recent = Recent::default();
        let (_dir, raw, path) = fresh(&recent);
        let conn = Writer::new(&raw);
        let request = stored(&recent, &conn);
        let other = pool::connect(&path, false).unwrap();
        other.execute("UPDATE auth_requests SET attempts = 2 WHERE id = ?1", [request.id.as_bytes()]).unwrap();
        assert_eq!(writing(&conn, || recent.take(&conn, request.id)).unwrap(), None);
    }

    #[test]
    fn a_commit_of_another_connection_between_two_transactions_drops_what_is_kept() {
        let recent = Recent::default();
        let (_dir, raw, path) = fresh(&recent);
        let conn = Writer::new(&raw);
        let (first, second) = (stored(&recent, &conn), stored(&recent, &conn));
        assert_eq!(writing(&conn, || recent.take(&conn, first.id)).unwrap(), Some(first));
        let other = pool::connect(&path, false).unwrap();
        other.execute("UPDATE auth_requests SET attempts = 2 WHERE id = ?1", [second.id.as_bytes()]).unwrap();
        assert_eq!(writing(&conn, || recent.take(&conn, second.id)).unwrap(), None);
    }

    #[test]
    fn forgetting_drops_what_is_kept() {
        let recent = Recent::default();
        let (_dir, raw, _) = fresh(&recent);
        let conn = Writer::new(&raw);
        let request = stored(&recent, &conn);
        recent.forget_all();
        assert_eq!(writing(&conn, || recent.take(&conn, request.id)).unwrap(), None);
    }
}
