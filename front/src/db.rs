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

use crate::schema::MIGRATIONS;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
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
    #[error("cannot start checkpoints of database {path}: {reason}")]
    Checkpoints { path: PathBuf, reason: String },
    #[error("cannot make database {path} private: {source}")]
    Private {
        path: PathBuf,
        #[source]
        source: one_wal::private_files::PrivateFileError,
    },
}

/// The transaction of the [`Db::atomic`] running on this thread, and whose database it is.
#[derive(Clone, Copy)]
struct Scope<'a> {
    db: usize,
    tx: &'a Transaction<'a>,
}

scoped_thread_local!(static SCOPE: for<'a> Scope<'a>);

/// A shared handle to the one SQLite connection.
///
/// Calls are short and serialised by a mutex; callers on the async runtime run them inside
/// `spawn_blocking`, except the outbox sender's reads through [`Db::committed`], whose
/// connection is the sender's alone and never waits for the writer.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    /// A read-only connection for [`Db::committed`]: reads that need only committed data and
    /// must not queue behind the writer (WAL readers never wait for it).
    reader: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
    /// Checkpoints the WAL on its own thread, so that no API call waits for a checkpoint's
    /// fsync while it holds the connection; stops with the last handle.
    _checkpointer: Arc<Checkpointer>,
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
        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|reader| {
            reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            reader.busy_timeout(Duration::from_secs(5))?;
            Ok(reader)
        })
        .map_err(|source| DbError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
            reader: Arc::new(Mutex::new(reader)),
            path: Arc::new(path.to_path_buf()),
            _checkpointer: Arc::new(checkpointer),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction open (it is rolled back on
        // drop), so the connection is still usable.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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

    /// Runs `f` with the connection, for reads (inside [`Db::atomic`], in its transaction).
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        if self.in_scope() {
            return SCOPE.with(|scope| f(scope.tx));
        }
        let conn = self.lock();
        f(&conn)
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
            // Already inside one: it is the transaction.
            let value = body();
            SCOPE.with(|scope| finish(scope.tx, &value))?;
            return Ok(value);
        }
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let scope = Scope {
            db: self.id(),
            tx: &tx,
        };
        let value = SCOPE.set(scope, body);
        finish(&tx, &value)?;
        tx.commit()?;
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
