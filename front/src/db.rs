//! The SQLite store: one connection in WAL mode and the ordered list of schema migrations.
//!
//! Every table of the front-end is created by one entry of [`MIGRATIONS`]; the schema version is
//! SQLite's `user_version`, so a restarted front-end applies only the entries it has not seen.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};

/// Hooks, hook log, id counters, users and groups.
const CORE_SCHEMA: &str = "
CREATE TABLE pool_control (
    tablename TEXT PRIMARY KEY,
    last_oid  INTEGER NOT NULL
);
CREATE TABLE hook_pool (
    oid  INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    type INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE hook_log (
    hkid      INTEGER NOT NULL,
    exeid     INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    rc        INTEGER NOT NULL,
    body      TEXT NOT NULL,
    exec_uid  TEXT,
    PRIMARY KEY (hkid, exeid)
) WITHOUT ROWID;
CREATE INDEX hook_log_timestamp ON hook_log (timestamp);
CREATE UNIQUE INDEX hook_log_exec_uid ON hook_log (hkid, exec_uid) WHERE exec_uid IS NOT NULL;
CREATE TABLE group_pool (
    oid  INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
INSERT INTO group_pool (oid, name) VALUES (0, 'oneadmin'), (1, 'users');
INSERT INTO pool_control (tablename, last_oid) VALUES ('group_pool', 99);
CREATE TABLE user_pool (
    oid         INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    gid         INTEGER NOT NULL,
    password    TEXT NOT NULL,
    auth_driver TEXT NOT NULL,
    enabled     INTEGER NOT NULL,
    template    TEXT NOT NULL
);
";

/// The ordered schema migrations; entry `i` moves the database to version `i + 1`.
/// Entries are never edited once released, only appended.
pub const MIGRATIONS: [&str; 3] = [CORE_SCHEMA, crate::cloud::SCHEMA, crate::events::SCHEMA];

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
}

/// A shared handle to the one SQLite connection.
///
/// Calls are short and serialised by a mutex; callers on the async runtime run them inside
/// `spawn_blocking`.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish()
    }
}

impl Db {
    /// Opens (creating if needed) the database file, switches it to WAL and migrates it.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        let mut conn = Connection::open(path).map_err(|source| DbError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let configure = |conn: &Connection| -> rusqlite::Result<()> {
            conn.busy_timeout(Duration::from_secs(5))?;
            let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                tracing::warn!(path = %path.display(), mode = %mode, "database is not in WAL mode");
            }
            conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")?;
            Ok(())
        };
        configure(&conn).map_err(|source| DbError::Configure {
            path: path.to_path_buf(),
            source,
        })?;
        migrate(&mut conn, path)?;
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
            path: Arc::new(path.to_path_buf()),
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

    /// Runs `f` inside one IMMEDIATE transaction, committed when `f` returns `Ok`.
    pub fn write<T, E: From<rusqlite::Error>>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Runs `f` with the connection, for reads.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        let conn = self.lock();
        f(&conn)
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
