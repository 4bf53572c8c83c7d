//! SQLite connections: one writer thread that commits queued writes in
//! groups, a few reader threads for reads that scan, and a connection of
//! its own on each thread that makes point reads (`Pool::read_here`).
//!
//! A write is a closure sent to the writer thread; the writer drains whatever
//! has queued up, runs each closure inside one transaction, and commits once,
//! so a burst of N requests costs one fsync instead of N. Every caller is
//! answered only after that commit is durable.

use std::cell::RefCell;
use std::ops::Deref;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::thread;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use rusqlite::{Connection, Statement};
use tokio::sync::oneshot;

use crate::store::{StoreError, WriteCounters};

/// Largest group the writer commits at once; bounds the latency of the first write in a group.
const MAX_GROUP: usize = 1024;
/// Reader threads; reads are short point lookups.
const READERS: usize = 3;

type WriteOp = Box<dyn WriteTask>;
type ReadOp = Box<dyn FnOnce(&Connection) + Send>;

/// Handles to the writer and reader threads. Dropping it lets them finish
/// the queued work and exit.
pub struct Pool {
    /// Tells this pool's connections in `HERE` from other pools'.
    id: u64,
    path: PathBuf,
    writer: Sender<WriteOp>,
    readers: Sender<ReadOp>,
    /// Dropped with the pool, which tells the checkpointer to stop.
    _checkpointer: Sender<()>,
}

/// The id of the next pool opened in this process.
static NEXT_POOL: AtomicU64 = AtomicU64::new(0);

/// Pools a thread keeps a point-read connection for; the oldest is closed
/// when a thread reads from one more (only tests open many pools).
const HERE_MAX: usize = 4;

thread_local! {
    /// This thread's own read-only connections, by pool id (`Pool::read_here`).
    static HERE: RefCell<Vec<(u64, Connection)>> = const { RefCell::new(Vec::new()) };
}

/// How often the checkpointer copies the WAL back into the database. Often
/// enough that little is left to copy when the writer starts the WAL over
/// (`Restart`), which holds the writes queued meanwhile; on an idle database
/// a checkpoint finds nothing to do.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// WAL frames (one page each) past which the writer starts the log over:
/// 64 MiB of 4 KiB pages, `journal_size_limit` (see `Restart`).
const RESTART_FRAMES: i32 = 16_384;
/// How long a restart waits for the checkpointer or a reader before giving up
/// until the WAL has grown by `RESTART_RETRY_FRAMES` more.
const RESTART_WAIT: std::time::Duration = std::time::Duration::from_millis(20);
const RESTART_RETRY_FRAMES: i32 = 2_048;
/// The writer's busy timeout otherwise.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A queued write: run inside the group's transaction (again, if the group is
/// rolled back because of another write), then answered after the commit.
trait WriteTask: Send {
    /// Runs the write and keeps its result; says whether it succeeded.
    fn run(&mut self, conn: &Writer<'_>) -> bool;
    /// Answers the caller: its result if the commit held, else the commit's error.
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
    /// Answers the caller without running (the transaction could not start).
    fn abort(self: Box<Self>, error: StoreError);
}

struct Task<F, R> {
    f: F,
    result: Option<Result<R, StoreError>>,
    reply: oneshot::Sender<Result<R, StoreError>>,
}

impl<F, R> WriteTask for Task<F, R>
where
    R: Send + 'static,
    F: FnMut(&Writer<'_>) -> Result<R, StoreError> + Send + 'static,
{
    fn run(&mut self, conn: &Writer<'_>) -> bool {
        let result = catch_unwind(AssertUnwindSafe(|| (self.f)(conn)))
            .unwrap_or_else(|_| Err(StoreError::Corrupt("write panicked".into())));
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let result = self.result.unwrap_or_else(|| Err(StoreError::Corrupt("write never ran".into())));
        let _ = self.reply.send(commit.and(result));
    }

    fn abort(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

pub(crate) fn db_err(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Database(Box::new(e))
}

/// The writer's connection, with the statements its writes run kept
/// prepared and found by the address and length of their text (`with`),
/// which is a `&'static str`: comparing two numbers. `prepare_cached` hashes
/// the text, copies it into a new key and clears the bindings on every use:
/// about 1,300 instructions a statement, and a lifecycle runs some 33 on the
/// writer. The same text at two places in the code may be two copies, at two
/// addresses: then it is prepared twice, which costs only the memory of one
/// more statement. Everything else of `Connection` is reached through `Deref`.
pub(crate) struct Writer<'c> {
    conn: &'c Connection,
    prepared: RefCell<Vec<Prepared<'c>>>,
}

/// A statement's key (its text's address and length) and, unless a write is
/// running it, the statement.
type Prepared<'c> = ((usize, usize), Option<Statement<'c>>);

impl Deref for Writer<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl<'c> Writer<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Self {
        Self { conn, prepared: RefCell::new(Vec::new()) }
    }

    /// Runs `f` on the statement of `sql`, prepared on its first use. A
    /// statement resets itself after each run (rusqlite's `execute` and the
    /// drop of its `Rows`), and every run binds all its parameters.
    pub(crate) fn with<T>(
        &self,
        sql: &'static str,
        f: impl FnOnce(&mut Statement<'c>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let key = (sql.as_ptr() as usize, sql.len());
        let kept = self.prepared.borrow_mut().iter_mut().find(|(k, _)| *k == key).and_then(|(_, s)| s.take());
        let mut stmt = match kept {
            Some(stmt) => stmt,
            None => self.conn.prepare_with_flags(sql, rusqlite::PrepFlags::SQLITE_PREPARE_PERSISTENT)?,
        };
        let result = f(&mut stmt);
        let mut prepared = self.prepared.borrow_mut();
        match prepared.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot @ None)) => *slot = Some(stmt),
            // Run twice at once (a write within a write): one copy is enough.
            Some(_) => {}
            None => prepared.push((key, Some(stmt))),
        }
        result
    }
}

/// Opens a connection with the pragmas every connection needs.
/// Page cache per connection, in KiB: the writer touches the most pages.
const WRITER_CACHE_KIB: i64 = 8192;
const READER_CACHE_KIB: i64 = 4096;

/// Puts the file in WAL mode. Connections opening a new file at the same
/// moment (servers and `tenant` commands starting together) race for it, and
/// SQLite answers the losers "database is locked" at once, without its busy
/// timeout: they try again for up to 10 s, by when the winner has switched.
fn switch_to_wal(conn: &Connection) -> Result<(), StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(())) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && std::time::Instant::now() < deadline =>
            {
                thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other.map_err(db_err),
        }
    }
}

pub(super) fn connect(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(db_err)?;
    // Every statement the store runs stays compiled (the default keeps 16).
    conn.set_prepared_statement_cache_capacity(64);
    // A plan never depends on the values bound to it. Without this, SQLite
    // marks a parameter it compared with a partial index's condition while
    // planning, and compiles the statement again whenever another value is
    // bound to it: the per-number limit queries were compiled anew for every
    // registration (issue 18).
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).map_err(db_err)?;
    // The busy timeout comes first: switching a new file to WAL takes a lock
    // that another process opening it at the same moment must wait for.
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;
    switch_to_wal(&conn)?;
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;",
    )
    .map_err(db_err)?;
    let cache = if read_only { READER_CACHE_KIB } else { WRITER_CACHE_KIB };
    conn.execute_batch(&format!("PRAGMA cache_size = -{cache};")).map_err(db_err)?;
    if read_only {
        conn.execute_batch("PRAGMA query_only = ON;").map_err(db_err)?;
    }
    Ok(conn)
}

impl Pool {
    /// Opens the writer (running `init` on it first, e.g. migrations) and the readers.
    pub fn open(
        path: &Path,
        init: impl FnOnce(&mut Connection) -> Result<(), StoreError>,
        counters: Arc<WriteCounters>,
    ) -> Result<Self, StoreError> {
        let mut writer_conn = connect(path, false)?;
        init(&mut writer_conn)?;
        // Checkpoints run on their own thread, not inside some unlucky commit
        // whose callers would all wait for the copy (a latency tail).
        // A WAL left large by a crash or a bulk load is folded back in and cut
        // down once at start; afterwards the writer keeps it to 64 MiB (`Restart`).
        writer_conn
            .execute_batch(
                "PRAGMA wal_autocheckpoint = 0;
                 PRAGMA journal_size_limit = 67108864;
                 PRAGMA wal_checkpoint(TRUNCATE);",
            )
            .map_err(db_err)?;
        // Set after the pragmas above: `wal_autocheckpoint` replaces the hook.
        let frames = count_frames(&mut writer_conn)?;
        let checkpoint_conn = connect(path, false)?;
        let (ctx, crx) = crossbeam_channel::bounded::<()>(0);
        thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = crx.recv_timeout(CHECKPOINT_EVERY) {
                    if let Err(e) = checkpoint_conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                    }
                }
            })
            .map_err(db_err)?;
        let (wtx, wrx) = crossbeam_channel::unbounded::<WriteOp>();
        thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(&writer_conn, &wrx, &counters, &frames))
            .map_err(db_err)?;
        let (rtx, rrx) = crossbeam_channel::unbounded::<ReadOp>();
        for n in 0..READERS {
            let conn = connect(path, true)?;
            let rx = rrx.clone();
            thread::Builder::new()
                .name(format!("sqlite-reader-{n}"))
                .spawn(move || {
                    while let Ok(op) = rx.recv() {
                        op(&conn);
                    }
                })
                .map_err(db_err)?;
        }
        let id = NEXT_POOL.fetch_add(1, Ordering::Relaxed);
        Ok(Self { id, path: path.to_owned(), writer: wtx, readers: rtx, _checkpointer: ctx })
    }

    /// Runs `f` on the writer inside the next group commit; answers after the commit.
    /// If `f` fails, only its own changes are undone: `f` may run again, after
    /// the group is rolled back for another write's failure, so it must
    /// depend only on what it captured and on the database.
    pub async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnMut(&Writer<'_>) -> Result<R, StoreError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let op: WriteOp = Box::new(Task { f, result: None, reply });
        self.writer.send(op).map_err(|_| StoreError::closed())?;
        rx.await.map_err(|_| StoreError::closed())?
    }

    /// Runs a point read (one row found through an index) on the calling
    /// thread, on a read-only connection of its own, opened on its first read.
    /// A read in WAL mode never waits for the writer, and a point read takes
    /// microseconds: less than handing it to a reader thread and being woken
    /// with its answer (two thread switches and a system call or two). Reads
    /// that scan go through `read`.
    pub fn read_here<R>(&self, f: impl FnOnce(&Connection) -> Result<R, StoreError>) -> Result<R, StoreError> {
        HERE.with(|here| {
            let mut here = here.borrow_mut();
            let at = match here.iter().position(|(id, _)| *id == self.id) {
                Some(at) => at,
                None => {
                    if here.len() == HERE_MAX {
                        here.remove(0);
                    }
                    here.push((self.id, connect(&self.path, true)?));
                    here.len() - 1
                }
            };
            catch_unwind(AssertUnwindSafe(|| f(&here[at].1)))
                .unwrap_or_else(|_| Err(StoreError::Corrupt("read panicked".into())))
        })
    }

    /// Runs `f` on one of the reader connections.
    pub async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let op: ReadOp = Box::new(move |conn| {
            let result = catch_unwind(AssertUnwindSafe(|| f(conn)))
                .unwrap_or_else(|_| Err(StoreError::Corrupt("read panicked".into())));
            let _ = tx.send(result);
        });
        self.readers.send(op).map_err(|_| StoreError::closed())?;
        rx.await.map_err(|_| StoreError::closed())?
    }
}

fn write_loop(conn: &Connection, rx: &Receiver<WriteOp>, counters: &WriteCounters, frames: &AtomicI32) {
    let conn = Writer::new(conn);
    let mut group: Vec<WriteOp> = Vec::with_capacity(MAX_GROUP);
    let mut restart = Restart::default();
    while let Ok(first) = rx.recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(op) => group.push(op),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        commit_group(&conn, &mut group, counters);
        restart.after_commit(&conn, frames.load(Ordering::Relaxed));
    }
}

/// The frames in the WAL after `conn`'s last commit, kept up to date by SQLite.
fn count_frames(conn: &mut Connection) -> Result<Arc<AtomicI32>, StoreError> {
    let frames = Arc::new(AtomicI32::new(0));
    let seen = frames.clone();
    conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, n: std::ffi::c_int| {
        seen.store(n, Ordering::Relaxed);
        Ok(())
    }))
    .map_err(db_err)?;
    Ok(frames)
}

/// Keeps the WAL bounded under sustained writes.
///
/// The checkpointer's PASSIVE checkpoints copy the WAL back into the database
/// without stopping anyone, but SQLite starts the log over only when a write
/// begins with every frame copied, which never happens while writes keep
/// coming: the WAL then grows without bound (some 80 MB/s at full load). So
/// once it holds `RESTART_FRAMES`, the writer itself, between two groups,
/// copies what is left and waits for readers to leave the log
/// (`wal_checkpoint(RESTART)`); the next write starts it over, cut down to
/// `journal_size_limit`. The writer needs no lock for that (it is the only
/// writer), so only the writes queued meanwhile wait, for the copy of what
/// the last PASSIVE left and one fsync. If a reader or the checkpointer holds
/// on for longer than `RESTART_WAIT`, the writer goes back to its queue and
/// tries again `RESTART_RETRY_FRAMES` later.
struct Restart {
    /// The frames past which to restart.
    bound: i32,
    /// The frames at which to try next.
    at: i32,
}

impl Default for Restart {
    fn default() -> Self {
        Self::new(RESTART_FRAMES)
    }
}

impl Restart {
    fn new(bound: i32) -> Self {
        Self { bound, at: bound }
    }

    fn after_commit(&mut self, conn: &Connection, frames: i32) {
        if frames < self.at {
            return;
        }
        let restarted = conn
            .busy_timeout(RESTART_WAIT)
            .and_then(|()| conn.wal_checkpoint_v2(None::<&str>, rusqlite::wal::CheckpointMode::RESTART))
            .map(|_| ());
        if let Err(e) = conn.busy_timeout(BUSY_TIMEOUT) {
            tracing::error!(error = %e, "sqlite writer could not set its busy timeout back");
        }
        self.at = match restarted {
            Ok(()) => self.bound,
            Err(e) => {
                tracing::debug!(error = %e, frames, "WAL restart put off");
                frames.saturating_add(RESTART_RETRY_FRAMES)
            }
        };
    }
}

/// One transaction, one commit, for the whole group.
///
/// Writes run one after the other without savepoints (a savepoint makes
/// SQLite copy every page a write touches: about a tenth of a lifecycle's
/// instructions). A write that fails without changing a row is simply
/// answered with its error. One that fails after changing rows, or whose
/// failure ended the transaction, cannot be undone alone: the group is rolled
/// back, that write answered with its error, and the others run again in a
/// fresh transaction. Failures after a change are rare (a broken database, a
/// constraint a write did not check first), so the group almost always
/// commits on its first pass.
fn commit_group(conn: &Writer<'_>, group: &mut Vec<WriteOp>, counters: &WriteCounters) {
    let commit = loop {
        if let Err(e) = run(conn, "BEGIN IMMEDIATE") {
            let msg = e.to_string();
            tracing::error!(error = %msg, "sqlite could not begin a transaction");
            for op in group.drain(..) {
                op.abort(StoreError::Database(msg.clone().into()));
            }
            return;
        }
        let changes_before = conn.total_changes();
        // Each write counts itself (`WriteCounters::wrote`); a pass that is
        // rolled back takes its counts back, so a write run again counts once.
        let writes_before = counters.read().0;
        let spoiled = group.iter_mut().position(|op| {
            let changes = conn.total_changes();
            !op.run(conn) && (conn.total_changes() != changes || conn.is_autocommit())
        });
        let Some(at) = spoiled else {
            let commit = run(conn, "COMMIT").map(|_| ()).map_err(|e| e.to_string());
            if commit.is_err() {
                let _ = run(conn, "ROLLBACK");
                counters.rewind(writes_before);
            } else if conn.total_changes() > changes_before {
                counters.committed();
            }
            break commit;
        };
        if !conn.is_autocommit() {
            let _ = run(conn, "ROLLBACK");
        }
        counters.rewind(writes_before);
        tracing::warn!("a write failed after changing rows: the others of its group run again");
        // Nothing of it was kept: its own error is its answer.
        group.remove(at).finish(Ok(()));
    };
    for op in group.drain(..) {
        op.finish(commit.clone().map_err(|m| StoreError::Database(m.into())));
    }
}

/// Runs a transaction-control statement, kept prepared (parsed once, not
/// once per group).
fn run(conn: &Writer<'_>, sql: &'static str) -> rusqlite::Result<usize> {
    conn.with(sql, |stmt| stmt.execute([]))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    type Answer = oneshot::Receiver<Result<(), StoreError>>;

    /// A write that inserts `n`, then fails as `fail` says; counts its runs,
    /// and counts itself a write when it succeeds, as the store's writes do.
    fn insert(n: i64, fail: Fail, runs: &Arc<AtomicUsize>, counters: &Arc<WriteCounters>) -> (WriteOp, Answer) {
        let (reply, rx) = oneshot::channel();
        let (runs, counters) = (runs.clone(), counters.clone());
        let f = move |c: &Writer<'_>| {
            runs.fetch_add(1, Ordering::Relaxed);
            if fail == Fail::Before {
                return Err(StoreError::Corrupt("refused before writing".into()));
            }
            c.execute("INSERT INTO t (n) VALUES (?1)", [n]).map_err(db_err)?;
            match fail {
                Fail::After => Err(StoreError::Corrupt("refused after writing".into())),
                Fail::Panic => panic!("a write panicked after writing"),
                Fail::Before | Fail::Never => {
                    counters.wrote();
                    Ok(())
                }
            }
        };
        (Box::new(Task { f, result: None, reply }), rx)
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Fail {
        Never,
        Before,
        After,
        Panic,
    }

    fn kept(conn: &Connection) -> Vec<i64> {
        let mut stmt = conn.prepare("SELECT n FROM t ORDER BY n").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    }

    fn conn() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (n INTEGER NOT NULL)").unwrap();
        conn
    }

    #[test]
    fn a_write_that_fails_after_changing_rows_leaves_nothing_and_the_rest_of_its_group_commits() {
        for fail in [Fail::After, Fail::Panic] {
            let conn = conn();
            let runs = Arc::new(AtomicUsize::new(0));
            let counters = Arc::new(WriteCounters::default());
            let (a, mut ra) = insert(1, Fail::Never, &runs, &counters);
            let (b, mut rb) = insert(2, fail, &runs, &counters);
            let (c, mut rc) = insert(3, Fail::Never, &runs, &counters);
            commit_group(&Writer::new(&conn), &mut vec![a, b, c], &counters);
            assert_eq!(kept(&conn), [1, 3]);
            assert!(ra.try_recv().unwrap().is_ok());
            assert!(rb.try_recv().unwrap().is_err());
            assert!(rc.try_recv().unwrap().is_ok());
            // The first ran again after the rollback, the last once; one
            // commit in all, of two writes (the first is not counted twice).
            assert_eq!(runs.load(Ordering::Relaxed), 4);
            assert_eq!(counters.read(), (2, 1));
            assert!(conn.is_autocommit());
        }
    }

    #[test]
    fn the_writer_keeps_a_statement_prepared_and_runs_it_again_after_a_failure() {
        // A `static`, so that every use below is the one address (the uses
        // of a `const` text may each have its own copy).
        static INSERT: &str = "INSERT INTO t (n) VALUES (?1)";
        let conn = conn();
        let w = Writer::new(&conn);
        for n in 1..=3 {
            w.with(INSERT, |s| s.execute([n])).unwrap();
        }
        // The same text again while it runs: a second statement, not a panic.
        w.with(INSERT, |s| {
            s.execute([4])?;
            w.with(INSERT, |inner| inner.execute([5]))
        })
        .unwrap();
        // A run that fails (the column is NOT NULL) leaves it reset and usable.
        assert!(w.with(INSERT, |s| s.execute([rusqlite::types::Null])).is_err());
        w.with(INSERT, |s| s.execute([6])).unwrap();
        assert_eq!(kept(&conn), [1, 2, 3, 4, 5, 6]);
        assert_eq!(w.prepared.borrow().len(), 1, "one statement kept for one text");
        assert!(w.prepared.borrow()[0].1.is_some(), "and it is back in its place");
    }

    #[test]
    fn a_write_that_fails_before_changing_anything_costs_the_others_nothing() {
        let conn = conn();
        let runs = Arc::new(AtomicUsize::new(0));
        let counters = Arc::new(WriteCounters::default());
        let (a, mut ra) = insert(1, Fail::Never, &runs, &counters);
        let (b, mut rb) = insert(2, Fail::Before, &runs, &counters);
        let (c, mut rc) = insert(3, Fail::Never, &runs, &counters);
        commit_group(&Writer::new(&conn), &mut vec![a, b, c], &counters);
        assert_eq!(kept(&conn), [1, 3]);
        assert!(ra.try_recv().unwrap().is_ok());
        assert!(rb.try_recv().unwrap().is_err());
        assert!(rc.try_recv().unwrap().is_ok());
        assert_eq!(runs.load(Ordering::Relaxed), 3);
        assert_eq!(counters.read(), (2, 1));
    }

    /// A writer connection on a new file as the pool opens it, with table `t`;
    /// the WAL's frame count as its hook last saw it.
    fn writer(dir: &tempfile::TempDir) -> (Connection, Arc<AtomicI32>) {
        let mut conn = connect(&dir.path().join("wal.db"), false).unwrap();
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (n INTEGER, pad BLOB)").unwrap();
        let frames = count_frames(&mut conn).unwrap();
        (conn, frames)
    }

    /// Commits `n` rows of 2 KiB, one transaction each; the most frames the WAL held.
    fn commit_rows(conn: &Connection, frames: &AtomicI32, restart: &mut Restart, n: i64) -> i32 {
        let mut most = 0;
        for i in 0..n {
            conn.execute("INSERT INTO t (n, pad) VALUES (?1, zeroblob(2048))", [i]).unwrap();
            let now = frames.load(Ordering::Relaxed);
            most = most.max(now);
            restart.after_commit(conn, now);
        }
        most
    }

    #[test]
    fn the_writer_starts_the_wal_over_once_it_holds_enough_frames() {
        let dir = tempfile::tempdir().unwrap();
        let (conn, frames) = writer(&dir);
        // Another connection reading now and then, as the point reads do.
        let reader = connect(&dir.path().join("wal.db"), true).unwrap();
        let mut restart = Restart::new(40);
        for _ in 0..4 {
            let most = commit_rows(&conn, &frames, &mut restart, 100);
            assert!(most < 60, "the WAL outgrew its bound: {most} frames, next try at {}", restart.at);
            assert_eq!(reader.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)).unwrap() % 100, 0);
        }
        assert_eq!(restart.at, 40);
        // Unbounded, the same writes pile up.
        let mut never = Restart::new(i32::MAX);
        assert!(commit_rows(&conn, &frames, &mut never, 100) > 150);
    }

    #[test]
    fn a_reader_in_the_wal_puts_the_restart_off_without_holding_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let (conn, frames) = writer(&dir);
        let mut restart = Restart::new(40);
        commit_rows(&conn, &frames, &mut restart, 10);
        // A long read: its snapshot is in the WAL until it ends.
        let reader = connect(&dir.path().join("wal.db"), true).unwrap();
        reader.execute_batch("BEGIN; SELECT count(*) FROM t;").unwrap();
        let most = commit_rows(&conn, &frames, &mut restart, 100);
        assert!(most > 100, "restarted under a reader");
        assert!(restart.at > 40, "not put off: {}", restart.at);
        // Once the reader is gone, the next try starts the log over.
        reader.execute_batch("COMMIT").unwrap();
        restart.at = 40;
        commit_rows(&conn, &frames, &mut restart, 2);
        assert!(commit_rows(&conn, &frames, &mut restart, 1) < 10, "not started over after the reader left");
    }

    /// Opens a pool on a new file with table `t`, and writes `n` into it.
    async fn pool_holding(dir: &tempfile::TempDir, name: String, n: i64) -> Pool {
        let init = |c: &mut Connection| c.execute_batch("CREATE TABLE t (n INTEGER)").map_err(db_err);
        let pool = Pool::open(&dir.path().join(name), init, Arc::default()).unwrap();
        pool.write(move |c| c.execute("INSERT INTO t (n) VALUES (?1)", [n]).map_err(db_err)).await.unwrap();
        pool
    }

    fn here(pool: &Pool) -> Vec<i64> {
        pool.read_here(|c| Ok(kept(c))).unwrap()
    }

    #[tokio::test]
    async fn a_point_read_on_the_calling_thread_sees_each_commit_of_its_own_pool() {
        let dir = tempfile::tempdir().unwrap();
        let pools: Vec<Pool> =
            futures_util::future::join_all((0..HERE_MAX as i64 + 2).map(|n| pool_holding(&dir, format!("{n}.db"), n)))
                .await;
        // More pools than a thread keeps connections for, each read twice.
        for _ in 0..2 {
            for (n, pool) in pools.iter().enumerate() {
                assert_eq!(here(pool), [n as i64], "pool {n}");
            }
        }
        // A write answered is seen by the next point read on this thread.
        pools[0].write(|c| c.execute("INSERT INTO t (n) VALUES (7)", []).map_err(db_err)).await.unwrap();
        assert_eq!(here(&pools[0]), [0, 7]);
        assert_eq!(here(&pools[1]), [1]);
    }
}
