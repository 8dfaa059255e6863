//! The SQLite store: one connection in WAL mode and the ordered list of schema migrations.
//!
//! Every table of the front-end is created by one entry of [`MIGRATIONS`]; the schema version is
//! SQLite's `user_version`, so a restarted front-end applies only the entries it has not seen.
//!
//! [`Db::atomic`] makes one transaction of everything a piece of code does with the database
//! on the current thread, plus a final step: the API dispatcher runs a call's handler in it and
//! adds the call's event to the outbox before the commit, so the change and its event exist
//! together or not at all. Inside it, [`Db::write`] becomes a savepoint of that transaction
//! and [`Db::read`] reads through it; the code in between does not change.
//!
//! [`Db::submit`] hands a state-changing call to the writer thread, which commits calls in
//! groups: each call runs in a savepoint of the group's one transaction (a call that fails or
//! panics loses only its savepoint), the group commits once the queue is empty or
//! [`GROUP_LIMIT`] calls ran, and only then is each call answered. So an answered call is
//! committed, and one commit serves every call that arrived while the previous group was
//! running. [`Db::snapshot`] runs read-only work on a connection of its own that sees the last
//! commit and never waits for the writer.

use crate::schema::MIGRATIONS;
use std::cell::RefCell;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use one_wal::{Checkpointer, Durability};
use rusqlite::{Connection, OpenFlags, Params, Row, Transaction, TransactionBehavior};
use scoped_tls_hkt::scoped_thread_local;

/// How many compiled statements the connection keeps: every statement text of the front-end
/// fits, so that no call compiles SQL after the first of its kind.
const STATEMENT_CACHE: usize = 256;

/// Statements through the connection's cache of compiled statements.
///
/// The front-end runs a few dozen fixed statement texts thousands of times per second;
/// compiling one costs more than running it (BENCHMARKS.md, design measurements). Implemented for [`Connection`], and so
/// usable on a [`Transaction`] too.
pub trait Cached {
    /// Runs a statement that returns no rows; the number of rows changed.
    fn run<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;

    /// The first row of a query, mapped by `f`; `QueryReturnedNoRows` when there is none.
    fn one<T, P: Params, F: FnOnce(&Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn run<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn one<T, P: Params, F: FnOnce(&Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// Errors of opening and migrating the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot configure database {path}: {source}")]
    Configure {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database {path} has schema version {found}, newer than this program's {known}")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: usize,
    },
    #[error("cannot apply schema migration {version} to database {path}: {source}")]
    Migrate {
        path: PathBuf,
        version: usize,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot start the writer thread of database {path}: {source}")]
    Writer {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start checkpoints of database {path}: {reason}")]
    Checkpoints { path: PathBuf, reason: String },
    #[error("cannot make database {path} private: {source}")]
    Private {
        path: PathBuf,
        #[source]
        source: one_wal::private_files::PrivateFileError,
    },
}

/// Calls one group commits at most: a bound on how long other writers (the hook log, the
/// simulated cloud's timers) wait for the connection behind a stream of calls.
pub const GROUP_LIMIT: usize = 128;

/// Read-only connections [`Db::snapshot`] keeps between uses.
const SNAPSHOT_READERS_KEPT: usize = 8;

/// Work to run once the transaction it belongs to has committed.
type AfterCommit = RefCell<Vec<Box<dyn FnOnce()>>>;

/// The transaction of the [`Db::atomic`] or of the writer's group running on this thread, whose
/// database it is, and the work to run after its commit.
#[derive(Clone, Copy)]
struct Scope<'a> {
    db: usize,
    tx: &'a Transaction<'a>,
    after: &'a AfterCommit,
}

/// The read-only connection of the [`Db::snapshot`] running on this thread, and whose
/// database it is.
#[derive(Clone, Copy)]
struct Snapshot<'a> {
    db: usize,
    conn: &'a Connection,
}

scoped_thread_local!(static SNAPSHOT: for<'a> Snapshot<'a>);
scoped_thread_local!(static SCOPE: for<'a> Scope<'a>);

/// A shared handle to the one SQLite connection.
///
/// Calls are short and serialised by a mutex; callers on the async runtime run them inside
/// `spawn_blocking`, except the outbox reads through [`Db::committed`], whose connection only
/// the outbox sender and the committers writing events to the driver use (one at a time, see
/// `crate::events`) and which never waits for the writer.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    /// A read-only connection for [`Db::committed`]: reads that need only committed data and
    /// must not queue behind the writer (WAL readers never wait for it).
    reader: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
    /// Read-only connections for [`Db::snapshot`], kept between uses.
    snapshot_readers: Arc<Mutex<Vec<Connection>>>,
    /// The queue of the writer thread that commits calls in groups ([`Db::submit`]); stops with
    /// the last handle.
    writer: Arc<GroupWriter>,
    /// Checkpoints the WAL on its own thread, so that no API call waits for a checkpoint's
    /// fsync while it holds the connection; stops with the last handle.
    _checkpointer: Arc<Checkpointer>,
}

/// Why a call given to [`Db::submit`] has no committed outcome; nothing of it is stored.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("cannot begin the group transaction: {0}")]
    Begin(#[source] rusqlite::Error),
    #[error("cannot commit the group transaction: {0}")]
    Commit(String),
    #[error("the call panicked")]
    Panicked,
    #[error("the database writer has stopped")]
    Stopped,
}

/// One call queued for the writer: its work, and where its outcome goes once its group is
/// over.
trait GroupCall: Send {
    /// Runs the work in the current savepoint; returns false when it panicked.
    fn run(&mut self) -> bool;
    /// Hands on the outcome: the work's value when the group committed, else `error`.
    fn settle(self: Box<Self>, error: Option<GroupError>);
}

struct Queued<R, W, A> {
    work: Option<W>,
    value: Option<R>,
    answer: A,
}

impl<R, W, A> GroupCall for Queued<R, W, A>
where
    R: Send,
    W: FnOnce() -> R + Send,
    A: FnOnce(Result<R, GroupError>) + Send,
{
    fn run(&mut self) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        match std::panic::catch_unwind(AssertUnwindSafe(work)) {
            Ok(value) => {
                self.value = Some(value);
                true
            }
            Err(_) => false,
        }
    }

    fn settle(self: Box<Self>, error: Option<GroupError>) {
        let outcome = match (error, self.value) {
            (Some(e), _) => Err(e),
            (None, Some(value)) => Ok(value),
            (None, None) => Err(GroupError::Panicked),
        };
        (self.answer)(outcome);
    }
}

/// The writer thread and its queue.
struct GroupWriter {
    queue: Mutex<Option<mpsc::Sender<Box<dyn GroupCall>>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for GroupWriter {
    fn drop(&mut self) {
        let queue = self.queue.get_mut().unwrap_or_else(|p| p.into_inner());
        drop(queue.take());
        let thread = self.thread.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(thread) = thread.take() {
            // The last handle can go away on the writer itself, inside a call it runs.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish()
    }
}

impl Db {
    /// Opens (creating if needed) the database file, switches it to WAL and migrates it.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        // It holds password hashes and VM templates with CONTEXT passwords.
        one_wal::private_files::prepare_database(path)
            .map_err(|source| DbError::Private {
                path: path.to_path_buf(),
                source,
            })?
            .log();
        let mut conn = Connection::open(path).map_err(|source| DbError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let configure = |conn: &Connection| -> rusqlite::Result<()> {
            conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            conn.busy_timeout(Duration::from_secs(5))?;
            let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                tracing::warn!(path = %path.display(), mode = %mode, "database is not in WAL mode");
            }
            conn.execute_batch("PRAGMA foreign_keys=ON;")?;
            one_wal::prepare_writer(conn, Durability::Normal)?;
            Ok(())
        };
        configure(&conn).map_err(|source| DbError::Configure {
            path: path.to_path_buf(),
            source,
        })?;
        migrate(&mut conn, path)?;
        let checkpointer =
            Checkpointer::open(path, "db-checkpoints", Durability::Normal).map_err(|e| {
                DbError::Checkpoints {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                }
            })?;
        let reader = open_reader(path).map_err(|source| DbError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let conn = Arc::new(Mutex::new(conn));
        let writer = start_writer(conn.clone()).map_err(|source| DbError::Writer {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Db {
            conn,
            reader: Arc::new(Mutex::new(reader)),
            path: Arc::new(path.to_path_buf()),
            snapshot_readers: Arc::default(),
            writer: Arc::new(writer),
            _checkpointer: Arc::new(checkpointer),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        lock_connection(&self.conn)
    }

    /// Runs `f` inside one IMMEDIATE transaction, committed when `f` returns `Ok`. Inside
    /// [`Db::atomic`] on this thread, `f` runs in a savepoint of its transaction instead, rolled
    /// back when `f` fails.
    pub fn write<T, E: From<rusqlite::Error>>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        if self.in_scope() {
            return SCOPE.with(|scope| savepoint(scope.tx, f));
        }
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Runs `f` with a read-only connection that sees the last committed state, without waiting
    /// for the writer: in WAL mode a reader never waits for a write in progress. It does not see
    /// the uncommitted writes of an enclosing [`Db::atomic`]; use it where committed data is
    /// the point (the outbox sender reads only events whose transaction committed).
    pub fn committed<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        let reader = self
            .reader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&reader)
    }

    /// Runs `f` with the connection, for reads (inside [`Db::atomic`], in its transaction;
    /// inside [`Db::snapshot`], on the snapshot's connection).
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        if self.in_scope() {
            return SCOPE.with(|scope| f(scope.tx));
        }
        if SNAPSHOT.is_set() && SNAPSHOT.with(|snapshot| snapshot.db == self.id()) {
            return SNAPSHOT.with(|snapshot| f(snapshot.conn));
        }
        let conn = self.lock();
        f(&conn)
    }

    /// Runs `body` with every [`Db::read`] of this database on this thread going to a
    /// read-only connection that sees the last commit, so that it never waits for the writer
    /// (a WAL reader does not). For read-only calls: everything they read was committed, and
    /// a call is answered only once committed. [`Db::write`] inside it is not affected.
    pub fn snapshot<T>(&self, body: impl FnOnce() -> T) -> T {
        let kept = self
            .snapshot_readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        let conn = match kept.map_or_else(|| open_reader(&self.path), Ok) {
            Ok(conn) => conn,
            Err(e) => {
                // Reads still work through the writer's connection, only later.
                tracing::warn!(error = %e, "cannot open a snapshot reader; reading through the writer");
                return body();
            }
        };
        let value = SNAPSHOT.set(
            Snapshot {
                db: self.id(),
                conn: &conn,
            },
            body,
        );
        let mut kept = self
            .snapshot_readers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if kept.len() < SNAPSHOT_READERS_KEPT {
            kept.push(conn);
        }
        value
    }

    /// Runs `f` once the transaction this thread is in has committed (at once outside one).
    /// Nothing runs when the transaction fails.
    pub fn after_commit(&self, f: impl FnOnce() + 'static) {
        if self.in_scope() {
            SCOPE.with(|scope| scope.after.borrow_mut().push(Box::new(f)));
        } else {
            f();
        }
    }

    /// Queues `work` for the writer thread, which runs it in a savepoint of its current group
    /// transaction, with every [`Db::read`], [`Db::write`] and [`Db::atomic`] of this database
    /// inside it; `answer` gets what `work` returned once the group has committed, or the
    /// reason why nothing of it is stored. `work` must not wait for another thread that uses
    /// the database.
    pub fn submit<R: Send + 'static>(
        &self,
        work: impl FnOnce() -> R + Send + 'static,
        answer: impl FnOnce(Result<R, GroupError>) + Send + 'static,
    ) {
        let call: Box<dyn GroupCall> = Box::new(Queued {
            work: Some(work),
            value: None,
            answer,
        });
        let queue = self.writer.queue.lock().unwrap_or_else(|p| p.into_inner());
        let refused = match queue.as_ref() {
            Some(queue) => queue.send(call).err().map(|e| e.0),
            None => Some(call),
        };
        drop(queue);
        if let Some(call) = refused {
            call.settle(Some(GroupError::Stopped));
        }
    }

    /// Runs `body`, with every [`Db::write`] and [`Db::read`] of this database on this thread,
    /// and then `finish`, in one IMMEDIATE transaction, and commits it. Returns what `body`
    /// returned; an error (and nothing of it stored) when the transaction could not begin, or
    /// `finish` or the commit failed. Other threads wait for the database meanwhile, so `body`
    /// must not wait for one that uses it.
    pub fn atomic<R>(
        &self,
        body: impl FnOnce() -> R,
        finish: impl FnOnce(&Transaction<'_>, &R) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<R> {
        if self.in_scope() {
            // Already inside one (a group of the writer): a savepoint of it, so that a failing
            // final step takes only this body's writes with it.
            return SCOPE.with(|scope| {
                savepoint(scope.tx, |tx| {
                    let value = body();
                    finish(tx, &value)?;
                    Ok(value)
                })
            });
        }
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let after = AfterCommit::default();
        let scope = Scope {
            db: self.id(),
            tx: &tx,
            after: &after,
        };
        let value = SCOPE.set(scope, body);
        finish(&tx, &value)?;
        tx.commit()?;
        drop(conn);
        for f in after.into_inner() {
            f();
        }
        Ok(value)
    }

    /// Identifies the connection shared by the clones of this handle.
    fn id(&self) -> usize {
        Arc::as_ptr(&self.conn) as usize
    }

    fn in_scope(&self) -> bool {
        SCOPE.is_set() && SCOPE.with(|scope| scope.db == self.id())
    }
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let reader = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    reader.busy_timeout(Duration::from_secs(5))?;
    Ok(reader)
}

fn lock_connection(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding the lock cannot leave a transaction open (it is rolled back on
    // drop), so the connection is still usable.
    conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts the writer thread of [`Db::submit`] on `conn`. Inside a tokio runtime, the thread
/// runs in its context, as the blocking pool's threads do, so calls behave the same on it.
fn start_writer(conn: Arc<Mutex<Connection>>) -> std::io::Result<GroupWriter> {
    let (queue, calls) = mpsc::channel();
    let runtime = tokio::runtime::Handle::try_current().ok();
    let thread = std::thread::Builder::new()
        .name("db-writer".into())
        .spawn(move || {
            let _runtime = runtime.as_ref().map(|r| r.enter());
            run_groups(&conn, &calls);
        })?;
    Ok(GroupWriter {
        queue: Mutex::new(Some(queue)),
        thread: Mutex::new(Some(thread)),
    })
}

/// The writer: one transaction per group of queued calls, each call in a savepoint of it;
/// committed when the queue is empty or [`GROUP_LIMIT`] calls ran, then every call answered.
fn run_groups(conn: &Arc<Mutex<Connection>>, calls: &mpsc::Receiver<Box<dyn GroupCall>>) {
    let id = Arc::as_ptr(conn) as usize;
    while let Ok(first) = calls.recv() {
        let mut group = vec![first];
        let after = AfterCommit::default();
        let mut guard = lock_connection(conn);
        let committed = match guard.transaction_with_behavior(TransactionBehavior::Immediate) {
            Err(e) => Err(GroupError::Begin(e)),
            Ok(tx) => {
                let scope = Scope {
                    db: id,
                    tx: &tx,
                    after: &after,
                };
                SCOPE.set(scope, || {
                    let mut next = 0;
                    while next < group.len() {
                        run_call(&tx, group[next].as_mut());
                        next += 1;
                        if next == group.len()
                            && group.len() < GROUP_LIMIT
                            && let Ok(call) = calls.try_recv()
                        {
                            group.push(call);
                        }
                    }
                });
                tx.commit().map_err(|e| GroupError::Commit(e.to_string()))
            }
        };
        drop(guard);
        match committed {
            Ok(()) => {
                for f in after.into_inner() {
                    survive("work after a commit", f);
                }
                for call in group {
                    survive("answering a call", || call.settle(None));
                }
            }
            Err(e) => {
                let reason = e.to_string();
                tracing::error!(calls = group.len(), error = %reason, "a group of calls is lost: nothing of it is stored");
                for call in group {
                    let error = GroupError::Commit(reason.clone());
                    survive("answering a call", || call.settle(Some(error)));
                }
            }
        }
    }
}

/// Runs `f` on the writer, which must outlive a panic in it: every later call needs it.
fn survive(what: &str, f: impl FnOnce()) {
    if std::panic::catch_unwind(AssertUnwindSafe(f)).is_err() {
        tracing::error!(what, "panicked on the database writer");
    }
}

/// Runs one call in a savepoint of the group's transaction; a call that panics loses its
/// writes and nothing else.
fn run_call(tx: &Transaction<'_>, call: &mut dyn GroupCall) {
    if let Err(e) = tx.run("SAVEPOINT group_call", []) {
        tracing::error!(error = %e, "cannot open a call's savepoint");
        return;
    }
    let kept = if call.run() {
        tx.run("RELEASE group_call", []).map(|_| ())
    } else {
        tx.execute_batch("ROLLBACK TO group_call; RELEASE group_call")
    };
    if let Err(e) = kept {
        // The transaction itself is gone; the group's commit fails and reports it.
        tracing::error!(error = %e, "cannot close a call's savepoint");
    }
}

/// Runs `f` in a savepoint of `tx`: kept when `f` succeeds, rolled back when it fails, as a
/// transaction of its own would be.
fn savepoint<T, E: From<rusqlite::Error>>(
    tx: &Transaction<'_>,
    f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
) -> Result<T, E> {
    tx.run("SAVEPOINT db_write", [])?;
    match f(tx) {
        Ok(value) => {
            tx.run("RELEASE db_write", [])?;
            Ok(value)
        }
        Err(e) => {
            if let Err(rollback) = tx.execute_batch("ROLLBACK TO db_write; RELEASE db_write") {
                // The transaction itself is gone (SQLite ends it on some errors); the commit
                // of the enclosing `atomic` fails and reports it.
                tracing::error!(error = %rollback, "cannot roll back a failed write");
            }
            Err(e)
        }
    }
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), DbError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|source| DbError::Configure {
            path: path.to_path_buf(),
            source,
        })?;
    if version < 0 || version as usize > MIGRATIONS.len() {
        return Err(DbError::TooNew {
            path: path.to_path_buf(),
            found: version,
            known: MIGRATIONS.len(),
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let target = index + 1;
        let apply = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
            tx.execute_batch(sql)?;
            tx.execute_batch(&format!("PRAGMA user_version = {target}"))?;
            tx.commit()
        };
        apply(conn).map_err(|source| DbError::Migrate {
            path: path.to_path_buf(),
            version: target,
            source,
        })?;
        tracing::info!(path = %path.display(), version = target, "applied schema migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("one.db");
        let db = Db::open(&path).unwrap();
        let v: i64 = db
            .read(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        let mode: String = db
            .read(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(mode, "wal");
        db.write(|tx| {
            tx.execute(
                "INSERT INTO hook_pool (oid, name, type, body) VALUES (1, 'a', 2, '<HOOK/>')",
                [],
            )
        })
        .unwrap();
        drop(db);
        let db = Db::open(&path).unwrap();
        let n: i64 = db
            .read(|c| c.query_row("SELECT COUNT(*) FROM hook_pool", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("one.db")).unwrap();
        let r: Result<(), rusqlite::Error> = db.write(|tx| {
            tx.execute(
                "INSERT INTO hook_pool (oid, name, type, body) VALUES (1, 'a', 2, 'x')",
                [],
            )?;
            tx.execute(
                "INSERT INTO hook_pool (oid, name, type, body) VALUES (2, 'a', 2, 'x')",
                [],
            )?;
            Ok(())
        });
        assert!(r.is_err());
        let n: i64 = db
            .read(|c| c.query_row("SELECT COUNT(*) FROM hook_pool", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(n, 0);
    }

    /// The read-only connection sees what is committed, at once, and nothing of a transaction
    /// still open, even on the thread that has it open; a write in progress does not hold it up.
    #[test]
    fn committed_reads_see_only_committed_data() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("one.db")).unwrap();
        db.write(|tx| insert(tx, 1, "a")).unwrap();
        assert_eq!(db.committed(names), ["a"]);
        db.atomic(
            || {
                db.write(|tx| insert(tx, 2, "b")).unwrap();
                assert_eq!(
                    hooks(&db),
                    ["a", "b"],
                    "the transaction reads its own write"
                );
                assert_eq!(db.committed(names), ["a"], "not committed yet");
            },
            |_, _| Ok(()),
        )
        .unwrap();
        assert_eq!(db.committed(names), ["a", "b"]);
    }

    fn hooks(db: &Db) -> Vec<String> {
        db.read(names)
    }

    fn names(c: &Connection) -> Vec<String> {
        let mut stmt = c
            .prepare("SELECT name FROM hook_pool ORDER BY oid")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<Vec<String>, _>>()
            .unwrap()
    }

    fn insert(tx: &Transaction<'_>, oid: i64, name: &str) -> rusqlite::Result<usize> {
        tx.execute(
            "INSERT INTO hook_pool (oid, name, type, body) VALUES (?1, ?2, 2, 'x')",
            rusqlite::params![oid, name],
        )
    }

    #[test]
    fn atomic_commits_the_body_and_the_final_step_together() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("one.db")).unwrap();
        let other = db.clone();
        let value = db
            .atomic(
                || {
                    // Writes and reads through any clone land in the one transaction.
                    other.write(|tx| insert(tx, 1, "a")).unwrap();
                    let failed: rusqlite::Result<()> = other.write(|tx| {
                        insert(tx, 2, "b")?;
                        insert(tx, 3, "a").map(|_| ())
                    });
                    assert!(failed.is_err(), "duplicate name");
                    assert_eq!(
                        hooks(&other),
                        ["a"],
                        "the failed write was rolled back alone"
                    );
                    7
                },
                |tx, value| insert(tx, 10, &format!("event-{value}")).map(|_| ()),
            )
            .unwrap();
        assert_eq!(value, 7);
        assert_eq!(hooks(&db), ["a", "event-7"]);

        // A failing final step takes the body's writes with it.
        let r = db.atomic(
            || other.write(|tx| insert(tx, 4, "c")).unwrap(),
            |tx, _| insert(tx, 5, "a").map(|_| ()),
        );
        assert!(r.is_err());
        assert_eq!(hooks(&db), ["a", "event-7"]);
    }

    #[test]
    fn other_threads_wait_for_the_atomic_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("one.db")).unwrap();
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let worker = {
            let db = db.clone();
            std::thread::spawn(move || {
                db.atomic(
                    || {
                        db.write(|tx| insert(tx, 1, "inside")).unwrap();
                        entered_tx.send(()).unwrap();
                        go_rx.recv().unwrap();
                    },
                    |_, _| Ok(()),
                )
                .unwrap();
            })
        };
        entered_rx.recv().unwrap();
        let reader = {
            let db = db.clone();
            // Blocks until the transaction is over, then sees it whole.
            std::thread::spawn(move || hooks(&db))
        };
        go_tx.send(()).unwrap();
        worker.join().unwrap();
        assert_eq!(reader.join().unwrap(), ["inside"]);
    }

    /// Calls queued while the writer is busy share one group transaction; one whose final step
    /// fails and one that panics lose their own writes and nothing else; every call is answered
    /// only once its group committed.
    #[test]
    fn a_failing_call_in_a_group_leaves_the_others_committed() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("one.db")).unwrap();
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let (answers_tx, answers_rx) = std::sync::mpsc::channel();
        let submit = |name: &'static str, work: Box<dyn FnOnce(&Db) -> bool + Send>| {
            let worker = db.clone();
            let checker = db.clone();
            let answers = answers_tx.clone();
            db.submit(
                move || work(&worker),
                move |outcome: Result<bool, GroupError>| {
                    // Answered after the commit: a separate connection sees the group's rows.
                    let visible = checker.committed(names);
                    answers.send((name, outcome.ok(), visible)).unwrap();
                },
            );
        };
        // The first call holds the writer until every other call is queued behind it.
        submit(
            "first",
            Box::new(move |db| {
                db.write(|tx| insert(tx, 1, "first")).unwrap();
                hold_rx.recv().unwrap();
                true
            }),
        );
        submit(
            "two",
            Box::new(|db| db.write(|tx| insert(tx, 2, "two")).is_ok()),
        );
        submit(
            "failing",
            Box::new(|db| {
                db.atomic(
                    || db.write(|tx| insert(tx, 3, "three")).unwrap(),
                    |tx, _| insert(tx, 4, "first").map(|_| ()),
                )
                .is_ok()
            }),
        );
        submit(
            "panicking",
            Box::new(|db| {
                db.write(|tx| insert(tx, 5, "five")).unwrap();
                panic!("a handler that panics");
            }),
        );
        submit(
            "six",
            Box::new(|db| {
                db.write(|tx| insert(tx, 6, "six")).unwrap();
                // The same transaction as the calls before it, not yet committed.
                hooks(db).contains(&"two".to_string()) && db.committed(names).is_empty()
            }),
        );
        hold_tx.send(()).unwrap();
        let mut answers = Vec::new();
        for _ in 0..5 {
            answers.push(
                answers_rx
                    .recv_timeout(Duration::from_secs(30))
                    .expect("every call is answered"),
            );
        }
        let committed = vec!["first".to_string(), "two".into(), "six".into()];
        assert_eq!(
            answers,
            vec![
                ("first", Some(true), committed.clone()),
                ("two", Some(true), committed.clone()),
                ("failing", Some(false), committed.clone()),
                ("panicking", None, committed.clone()),
                ("six", Some(true), committed.clone()),
            ]
        );
        assert_eq!(hooks(&db), committed);
    }

    /// A snapshot reads the last commit while the writer holds an open group, without waiting
    /// for it.
    #[test]
    fn snapshots_do_not_wait_for_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("one.db")).unwrap();
        db.write(|tx| insert(tx, 1, "a")).unwrap();
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let worker = db.clone();
        db.submit(
            move || {
                worker.write(|tx| insert(tx, 2, "b")).unwrap();
                entered_tx.send(()).unwrap();
                go_rx.recv().unwrap();
            },
            move |outcome| done_tx.send(outcome.is_ok()).unwrap(),
        );
        entered_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(db.snapshot(|| hooks(&db)), ["a"]);
        go_tx.send(()).unwrap();
        assert!(done_rx.recv_timeout(Duration::from_secs(30)).unwrap());
        assert_eq!(db.snapshot(|| hooks(&db)), ["a", "b"]);
    }

    /// Work registered with `after_commit` runs once the transaction committed, and not at all
    /// when it failed.
    #[test]
    fn after_commit_waits_for_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("one.db")).unwrap();
        let seen = std::rc::Rc::new(RefCell::new(Vec::new()));
        let log = seen.clone();
        let reader = db.clone();
        db.atomic(
            || {
                db.write(|tx| insert(tx, 1, "a")).unwrap();
                db.after_commit(move || log.borrow_mut().push(reader.committed(names)));
            },
            |_, _| Ok(()),
        )
        .unwrap();
        assert_eq!(*seen.borrow(), [vec!["a".to_string()]]);
        let log = seen.clone();
        let failed = db.atomic(
            || db.after_commit(move || log.borrow_mut().push(Vec::new())),
            |tx, _| insert(tx, 2, "a").map(|_| ()),
        );
        assert!(failed.is_err());
        assert_eq!(seen.borrow().len(), 1);
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("one.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA user_version = 999").unwrap();
        drop(conn);
        assert!(matches!(Db::open(&path), Err(DbError::TooNew { .. })));
    }
}
