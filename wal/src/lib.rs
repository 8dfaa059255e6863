//! Checkpoints of a SQLite database in WAL mode, on their own thread and connection, and the
//! sync settings of the connection that commits.
//!
//! A checkpoint copies the WAL into the database file and, with `synchronous=NORMAL`, is one of
//! the two places SQLite fsyncs. Left to the committing connection (SQLite's automatic
//! checkpoint every 1,000 pages), it stops that writer, and everyone waiting for its commits,
//! for as long as the disk takes to absorb the copy: tens of milliseconds on a busy disk. With
//! [`Checkpointer`] the writer's connection never checkpoints ([`prepare_writer`]); a thread
//! runs passive checkpoints (they copy what is committed without blocking the writer) a few
//! times a second. Under sustained load the WAL cannot wrap around while the writer keeps
//! appending, so once it passes [`RESTART_BYTES`] a restarting checkpoint briefly holds the
//! writer back to bring it back to its start (after the database file and the WAL were synced
//! without any lock, so that the restart's own syncs have little left to write). It waits at
//! most [`RESTART_BUSY_LIMIT`] for readers still on the old WAL and otherwise tries again next
//! round: a long read (a whole hook log, say) delays the restart, never the writer.
//!
//! The restart size is large on purpose. Restarting every few megabytes keeps commits from
//! appending to a growing file, which makes each commit cheaper on its own, but the syncs it
//! takes several times a second, with three daemons doing it on one disk, cost the whole
//! front-end route more than that saves (BENCHMARKS.md, design measurements). Once the WAL has
//! grown to its size it is written over from its start anyway.
//!
//! The other fsync of `synchronous=NORMAL` is the writer's own: when a checkpoint has copied
//! the whole WAL, the next commit starts the WAL over and fsyncs its new header before going
//! on, 2-20 ms on a shared disk during which every commit queues up. That sync keeps a new WAL
//! generation from reaching the database file before its header is on disk; the checkpointer's
//! connection already guarantees this order, since its checkpoints fsync the WAL before they
//! copy anything. So with [`Durability::Normal`] the writer runs with `synchronous=OFF` (in WAL
//! mode, for a connection that never checkpoints, that header sync is the only difference from
//! `NORMAL`) and the checkpointer with `NORMAL`.
//!
//! A WAL file keeps the largest size it reached: it is written over from its start, never
//! shortened, and the writer's connection leaves it so (no `journal_size_limit`), because
//! freeing tens of megabytes of blocks inside a commit held every commit behind it. Once the
//! writer has committed nothing for [`IDLE_ROUNDS`] rounds and everything is copied, the
//! checkpointer truncates a WAL larger than [`IDLE_WAL_BYTES`] to nothing instead, with a
//! truncating checkpoint: a burst leaves no lasting WAL behind, and an idle daemon holds at
//! most [`IDLE_WAL_BYTES`] of WAL per database.
//!
//! Durability is unchanged: a committed transaction is in the WAL (in the page cache with
//! [`Durability::Normal`], on disk with [`Durability::Full`]) whether or not it was checkpointed
//! yet, and survives a crash of the process either way.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::config::DbConfig;
use tracing::{debug, info, warn};

pub mod private_files;

/// How often the WAL is checkpointed.
pub const INTERVAL: Duration = Duration::from_millis(250);
/// WAL size above which a checkpoint makes the writer wait until the WAL can start over.
pub const RESTART_BYTES: i64 = 256 * 1024 * 1024;
/// The largest WAL file left in place once its writer is idle; a larger one is truncated.
pub const IDLE_WAL_BYTES: u64 = 4 * 1024 * 1024;
/// How many rounds in a row the writer must have committed nothing, with the WAL all copied,
/// before the WAL is truncated: a second, so that the pauses of a bursty load do not count.
pub const IDLE_ROUNDS: u32 = 4;
/// How long a restarting checkpoint, which holds the writer back meanwhile, waits for readers
/// of the old WAL before it gives up until the next round.
pub const RESTART_BUSY_LIMIT: Duration = Duration::from_millis(20);

/// Why the checkpoint thread did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the database or read its page size: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot start the checkpoint thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// How durable a commit is once it returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// No fsync at all: a crash of the machine can lose or corrupt the database.
    Off,
    /// A commit survives a crash of the process; a crash of the machine loses the commits
    /// since the last checkpoint, never the database. fsyncs only in checkpoints.
    Normal,
    /// A commit is on disk when it returns: an fsync of the WAL per commit.
    Full,
}

impl Durability {
    /// The committing connection's `synchronous` level (see the crate's documentation).
    fn writer_pragma(self) -> &'static str {
        match self {
            Durability::Off | Durability::Normal => "OFF",
            Durability::Full => "FULL",
        }
    }

    /// The checkpointing connection's `synchronous` level.
    fn checkpoint_pragma(self) -> &'static str {
        match self {
            Durability::Off => "OFF",
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        }
    }
}

/// How long a committing connection keeps retrying a locked database.
pub const WRITER_BUSY_LIMIT: Duration = Duration::from_secs(10);
/// Its pause between two attempts.
const WRITER_BUSY_PAUSE: Duration = Duration::from_millis(1);

/// Prepares the committing connection of a database that a [`Checkpointer`] looks after: no
/// automatic checkpoints, none when it closes, the sync level of `durability`, and a busy
/// handler that retries every millisecond for up to [`WRITER_BUSY_LIMIT`].
///
/// The restarting checkpoint holds the writer back for as long as its syncs take (tens of
/// milliseconds on a loaded disk once the database file is synced ahead of it). SQLite's own
/// busy timeout sleeps in growing steps of up to 100 ms, so the writer woke up to 100 ms after
/// the lock was free, with every commit queued behind it; retrying each millisecond resumes it
/// at once, and costs nothing while nobody holds the lock.
pub fn prepare_writer(conn: &Connection, durability: Durability) -> rusqlite::Result<()> {
    conn.busy_handler(Some(writer_busy))?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    conn.execute_batch(&format!(
        "PRAGMA wal_autocheckpoint=0; PRAGMA synchronous={};",
        durability.writer_pragma()
    ))
}

/// The writer's busy handler: `attempts` retries so far; `false` gives up (SQLITE_BUSY).
fn writer_busy(attempts: i32) -> bool {
    let limit = WRITER_BUSY_LIMIT.as_millis() / WRITER_BUSY_PAUSE.as_millis();
    let retry = u128::try_from(attempts).is_ok_and(|a| a < limit);
    if retry {
        std::thread::sleep(WRITER_BUSY_PAUSE);
    }
    retry
}

/// Sets the checkpointing connection's sync level (its checkpoints make `durability`'s fsyncs)
/// and how long a restarting checkpoint waits for readers ([`RESTART_BUSY_LIMIT`]).
fn prepare_checkpointer(conn: &Connection, durability: Durability) -> rusqlite::Result<()> {
    conn.busy_timeout(RESTART_BUSY_LIMIT)?;
    conn.execute_batch(&format!(
        "PRAGMA synchronous={};",
        durability.checkpoint_pragma()
    ))
}

/// The running checkpoint thread; stopped and joined on drop.
#[derive(Debug)]
pub struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the database file at `path`, on a connection of its own, on a
    /// thread named `name`, with the fsyncs `durability` needs (the writer's).
    pub fn open(
        path: &std::path::Path,
        name: &str,
        durability: Durability,
    ) -> Result<Checkpointer, StartError> {
        Checkpointer::start(Connection::open(path)?, name, durability)
    }

    /// Starts checkpointing the database `conn` is open on (a connection of its own, not the
    /// writer's) on a thread named `name`, with the fsyncs `durability` needs (the writer's).
    pub fn start(
        conn: Connection,
        name: &str,
        durability: Durability,
    ) -> Result<Checkpointer, StartError> {
        Checkpointer::start_restarting_at(conn, name, durability, RESTART_BYTES)
    }

    /// [`start`](Self::start) with a restart size of `restart_bytes` instead of
    /// [`RESTART_BYTES`].
    fn start_restarting_at(
        conn: Connection,
        name: &str,
        durability: Durability,
        restart_bytes: i64,
    ) -> Result<Checkpointer, StartError> {
        // Read with the connection's usual busy timeout: the short one is for restarts.
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        prepare_checkpointer(&conn, durability)?;
        let files = conn.path().filter(|p| !p.is_empty()).map(|p| Files {
            wal: wal_of(std::path::Path::new(p)),
            // Only a durable database has its files flushed ahead of a restart (see
            // `flush_ahead`).
            flushed: (durability != Durability::Off).then(|| std::path::PathBuf::from(p)),
        });
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || run(&conn, page_size, restart_bytes, files.as_ref(), &signal))?;
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }
}

/// The files of a database on disk, as the checkpoint thread needs them.
#[derive(Debug)]
struct Files {
    /// The WAL, truncated once idle.
    wal: std::path::PathBuf,
    /// The database file, when it is flushed ahead of a restart.
    flushed: Option<std::path::PathBuf>,
}

/// Counts the rounds in which the writer committed nothing and the WAL was all copied.
#[derive(Debug, Default)]
struct Idle {
    last_frames: Option<i64>,
    rounds: u32,
}

impl Idle {
    /// Takes in a passive checkpoint's WAL frame count and copied frame count; true once the
    /// writer has been idle for [`IDLE_ROUNDS`] rounds.
    fn observe(&mut self, frames: i64, copied: i64) -> bool {
        let quiet = frames == copied && self.last_frames == Some(frames);
        self.last_frames = Some(frames);
        self.rounds = if quiet {
            self.rounds.saturating_add(1)
        } else {
            0
        };
        self.rounds >= IDLE_ROUNDS
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (flag, wake) = &*self.stop;
        *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            warn!("checkpoint thread panicked");
        }
    }
}

fn run(
    conn: &Connection,
    page_size: i64,
    restart_bytes: i64,
    files: Option<&Files>,
    stop: &(Mutex<bool>, Condvar),
) {
    let (flag, wake) = stop;
    let mut idle = Idle::default();
    loop {
        {
            let stopped = flag.lock().unwrap_or_else(|p| p.into_inner());
            let (stopped, _) = wake
                .wait_timeout_while(stopped, INTERVAL, |s| !*s)
                .unwrap_or_else(|p| p.into_inner());
            if *stopped {
                return;
            }
        }
        match checkpoint(conn, "PASSIVE") {
            Ok((log, done, _)) if log.saturating_mul(page_size) > restart_bytes => {
                debug!(
                    wal_frames = log,
                    checkpointed = done,
                    "WAL too long, restarting it"
                );
                if let Some(files) = files
                    && let Some(db) = files.flushed.as_deref()
                {
                    flush_ahead(db);
                    flush_ahead(&files.wal);
                }
                match checkpoint(conn, "RESTART") {
                    Ok((_, _, true)) => debug!("readers of the old WAL: restart left for later"),
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "restarting checkpoint failed"),
                }
            }
            Ok((log, done, _)) => {
                if idle.observe(log, done)
                    && let Some(files) = files
                {
                    truncate_if_large(conn, &files.wal);
                }
            }
            Err(e) => warn!(error = %e, "checkpoint failed"),
        }
    }
}

/// Truncates the WAL of an idle writer when it is larger than [`IDLE_WAL_BYTES`].
///
/// The truncating checkpoint holds the writer back while it runs; with the WAL all copied it
/// has only the truncation itself to do (freeing the file's blocks, BENCHMARKS.md, design
/// measurements), and a commit arriving meanwhile waits on its busy handler. That happens at
/// most once per burst, to the first commit after a second without any. It waits at most
/// [`RESTART_BUSY_LIMIT`] for readers of the WAL, and otherwise tries again next round.
fn truncate_if_large(conn: &Connection, wal: &std::path::Path) {
    let Ok(size) = std::fs::metadata(wal).map(|m| m.len()) else {
        return;
    };
    if size <= IDLE_WAL_BYTES {
        return;
    }
    let started = std::time::Instant::now();
    match checkpoint(conn, "TRUNCATE") {
        Ok((_, _, false)) => info!(
            wal = %wal.display(),
            bytes = size,
            took_ms = started.elapsed().as_millis(),
            "idle: WAL truncated"
        ),
        Ok((_, _, true)) => debug!("readers of the WAL: truncation left for later"),
        Err(e) => warn!(error = %e, "truncating checkpoint failed"),
    }
}

/// Writes a file's dirty pages to disk before a restarting checkpoint (the database file, then
/// its WAL).
///
/// SQLite syncs the database file only at the end of a checkpoint that copied the whole WAL.
/// Under a steady flow of commits a passive checkpoint never gets there (frames keep arriving
/// while it copies), so every page they copy stays dirty in the page cache until the kernel's
/// writeback gets to it, and the restarting checkpoint, which does copy everything, then syncs
/// seconds of copies while it holds the writer back (BENCHMARKS.md, design measurements).
/// Likewise the frames committed since the passive checkpoint synced the WAL
/// (the writer itself never syncs at normal durability). Syncing both files first, on this
/// thread and without any SQLite lock, leaves the restart's syncs only the last few pages. A
/// failure here is only logged: the restarting checkpoint syncs both files anyway.
fn flush_ahead(file: &std::path::Path) {
    let synced = std::fs::File::open(file).and_then(|f| f.sync_data());
    if let Err(e) = synced {
        warn!(file = %file.display(), error = %e, "cannot flush the file ahead of a restart");
    }
}

/// The WAL file of the database file `file`.
fn wal_of(file: &std::path::Path) -> std::path::PathBuf {
    let mut wal = file.as_os_str().to_owned();
    wal.push("-wal");
    wal.into()
}

/// Runs one checkpoint; returns the WAL's frame count, how many of them are checkpointed, and
/// whether it gave up waiting for a lock (only modes other than PASSIVE wait).
fn checkpoint(conn: &Connection, mode: &str) -> Result<(i64, i64, bool), rusqlite::Error> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get(1)?, r.get(2)?, r.get::<_, i64>(0)? != 0))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &std::path::Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        conn
    }

    fn db_file_len(path: &std::path::Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    /// A prepared writer that committed `rows` rows of 4,000 bytes, one per transaction.
    fn writer_with_rows(path: &std::path::Path, rows: usize) -> Connection {
        let writer = open(path);
        prepare_writer(&writer, Durability::Normal).unwrap();
        writer
            .execute_batch("CREATE TABLE t (v BLOB NOT NULL);")
            .unwrap();
        for _ in 0..rows {
            writer
                .execute("INSERT INTO t (v) VALUES (zeroblob(4000))", [])
                .unwrap();
        }
        writer
    }

    #[test]
    fn a_writer_waits_for_a_held_lock_and_commits_once_it_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        let writer = writer_with_rows(&path, 1);
        let holder = open(&path);
        holder.execute_batch("BEGIN IMMEDIATE;").unwrap();
        let released = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = released.clone();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            holder.execute_batch("COMMIT;").unwrap();
        });
        writer
            .execute("INSERT INTO t (v) VALUES (zeroblob(10))", [])
            .unwrap();
        assert!(
            released.load(std::sync::atomic::Ordering::SeqCst),
            "committed while the other connection held the lock"
        );
        release.join().unwrap();
        let rows: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2);
    }

    #[test]
    fn a_writer_gives_up_on_a_lock_held_past_the_limit() {
        let limit = WRITER_BUSY_LIMIT.as_millis() / WRITER_BUSY_PAUSE.as_millis();
        assert!(writer_busy(0) && writer_busy(i32::try_from(limit).unwrap() - 1));
        assert!(!writer_busy(i32::try_from(limit).unwrap()));
    }

    #[test]
    fn committed_pages_reach_the_database_file_only_through_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        // Far past SQLite's 1,000-page automatic checkpoint: nothing reaches the file.
        let _writer = writer_with_rows(&path, 2000);
        let before = db_file_len(&path);
        assert!(before < 100_000, "the writer checkpointed: {before} bytes");

        let checkpointer =
            Checkpointer::start(open(&path), "test-ckpt", Durability::Normal).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while db_file_len(&path) < 8_000_000 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(db_file_len(&path) >= 8_000_000, "no checkpoint within 10 s");
        drop(checkpointer);

        let count: i64 = open(&path)
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 2000);
    }

    fn wal_len(path: &std::path::Path) -> u64 {
        std::fs::metadata(wal_of(path))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// Commits `rows` rows of 4,000 bytes, `per_burst` per 50 ms; returns the WAL's largest size
    /// seen and the longest commit.
    fn steady_commits(
        writer: &Connection,
        path: &std::path::Path,
        rows: usize,
        per_burst: usize,
    ) -> (u64, Duration) {
        let (mut largest, mut longest) = (0, Duration::ZERO);
        let start = std::time::Instant::now();
        for i in 0..rows {
            if i % per_burst == 0 {
                largest = largest.max(wal_len(path));
                let due = start + Duration::from_millis(50 * (i / per_burst) as u64);
                std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
            }
            let t = std::time::Instant::now();
            writer
                .execute("INSERT INTO t (v) VALUES (zeroblob(4000))", [])
                .unwrap();
            longest = longest.max(t.elapsed());
        }
        (largest.max(wal_len(path)), longest)
    }

    #[test]
    fn a_long_read_delays_the_restart_but_never_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        let writer = writer_with_rows(&path, 10);
        let restart = 4 * 1024 * 1024;
        let _checkpointer = Checkpointer::start_restarting_at(
            open(&path),
            "test-ckpt",
            Durability::Normal,
            restart,
        )
        .unwrap();
        // A reader on the WAL as it is now, for 2 s.
        let reader = std::thread::spawn({
            let path = path.clone();
            move || {
                let conn = open(&path);
                conn.execute_batch("BEGIN").unwrap();
                let n: i64 = conn
                    .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                    .unwrap();
                std::thread::sleep(Duration::from_secs(2));
                conn.execute_batch("COMMIT").unwrap();
                n
            }
        });
        std::thread::sleep(Duration::from_millis(100));
        // Past the restart size several times over while the reader holds the old WAL.
        let (largest, longest) = steady_commits(&writer, &path, 5_000, 125);
        assert_eq!(reader.join().unwrap(), 10, "the reader saw a later commit");
        assert!(
            largest > restart as u64,
            "the WAL never passed the restart size"
        );
        // A restart that waited for the reader would hold every commit for the 2 s read.
        assert!(
            longest < Duration::from_millis(500),
            "a commit waited {longest:?}"
        );
    }

    #[test]
    fn an_idle_writer_has_its_large_wal_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        let _writer = writer_with_rows(&path, 2000);
        let before = wal_len(&path);
        assert!(before > IDLE_WAL_BYTES, "the WAL has {before} bytes");

        let _checkpointer =
            Checkpointer::start(open(&path), "test-ckpt", Durability::Normal).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while wal_len(&path) > IDLE_WAL_BYTES && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(wal_len(&path) <= IDLE_WAL_BYTES, "{} bytes", wal_len(&path));
        let count: i64 = open(&path)
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 2000);
    }

    #[test]
    fn a_small_wal_of_an_idle_writer_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        let _writer = writer_with_rows(&path, 20);
        let before = wal_len(&path);
        let _checkpointer =
            Checkpointer::start(open(&path), "test-ckpt", Durability::Normal).unwrap();
        std::thread::sleep(INTERVAL * (IDLE_ROUNDS + 4));
        assert_eq!(wal_len(&path), before);
    }

    #[test]
    fn idle_means_rounds_in_a_row_without_commits_and_with_the_wal_copied() {
        let mut idle = Idle::default();
        // Frames still being copied, then new frames: not idle.
        assert!(!idle.observe(10, 5));
        assert!(!idle.observe(10, 10));
        assert!(!idle.observe(12, 12));
        // Unchanged and copied for IDLE_ROUNDS rounds.
        for _ in 1..IDLE_ROUNDS {
            assert!(!idle.observe(12, 12));
        }
        assert!(idle.observe(12, 12));
        // A commit starts the count again.
        assert!(!idle.observe(13, 13));
    }

    #[test]
    fn dropping_it_stops_the_thread_promptly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        let checkpointer =
            Checkpointer::start(open(&path), "test-ckpt", Durability::Normal).unwrap();
        let t0 = std::time::Instant::now();
        drop(checkpointer);
        assert!(t0.elapsed() < Duration::from_secs(5));
    }

    fn synchronous(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn only_the_checkpoints_sync_at_normal_durability() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        for (durability, writer_level, checkpoint_level) in [
            (Durability::Off, 0, 0),
            (Durability::Normal, 0, 1),
            (Durability::Full, 2, 2),
        ] {
            let writer = open(&path);
            prepare_writer(&writer, durability).unwrap();
            assert_eq!(synchronous(&writer), writer_level, "{durability:?}");
            let checkpoints = open(&path);
            prepare_checkpointer(&checkpoints, durability).unwrap();
            assert_eq!(
                synchronous(&checkpoints),
                checkpoint_level,
                "{durability:?}"
            );
            let wal_autocheckpoint: i64 = writer
                .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
                .unwrap();
            assert_eq!(wal_autocheckpoint, 0);
        }
    }

    #[test]
    fn the_writer_does_not_checkpoint_when_it_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        let writer = writer_with_rows(&path, 200);
        // The last connection closes: SQLite would checkpoint into the file (with this
        // connection's sync level) and delete the WAL.
        drop(writer);
        assert!(
            db_file_len(&path) < 100_000,
            "the closing writer checkpointed"
        );
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        assert!(std::path::Path::new(&wal).exists(), "the WAL is gone");
        // Nothing is lost: the next connection reads the WAL.
        let count: i64 = open(&path)
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 200);
    }
}
