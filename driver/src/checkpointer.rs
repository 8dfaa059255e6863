//! Checkpoints of the SQLite journal, on their own thread and connection.
//!
//! A checkpoint copies the WAL into the database file and, in `normal` mode, is where SQLite
//! fsyncs. Left to the committing connection, it would stop the journal writer for as long as
//! the disk takes to absorb tens of megabytes. Here the writer's connection never checkpoints;
//! this thread runs passive checkpoints (they copy what is committed without blocking the writer)
//! a few times a second. Under sustained load the WAL cannot wrap around while the writer keeps
//! appending, so once it passes [`RESTART_BYTES`] a restarting checkpoint briefly holds the
//! writer back to bring it back to its start.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use tracing::{debug, warn};

use crate::config::SyncMode;
use crate::journal::JournalError;

/// How often the WAL is checkpointed.
const INTERVAL: Duration = Duration::from_millis(250);
/// WAL size above which a checkpoint makes the writer wait until the WAL can start over.
pub const RESTART_BYTES: i64 = 256 * 1024 * 1024;

/// The running checkpoint thread; stopped and joined on drop.
pub struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the journal at `path` on a connection made by `open`.
    pub fn start(
        path: &Path,
        sync: SyncMode,
        open: fn(&Path, SyncMode) -> Result<Connection, JournalError>,
    ) -> Result<Checkpointer, JournalError> {
        let conn = open(path, sync)?;
        let page_size: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(|e| JournalError::new("start checkpoints", e))?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("checkpointer".into())
            .spawn(move || run(&conn, page_size, &signal))
            .map_err(|e| JournalError::new("start checkpoints", e))?;
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
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

fn run(conn: &Connection, page_size: i64, stop: &(Mutex<bool>, Condvar)) {
    let (flag, wake) = stop;
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
            Ok((log, done)) if log.saturating_mul(page_size) > RESTART_BYTES => {
                debug!(
                    wal_frames = log,
                    checkpointed = done,
                    "WAL too long, restarting it"
                );
                if let Err(e) = checkpoint(conn, "RESTART") {
                    warn!(error = %e, "restarting checkpoint failed");
                }
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "checkpoint failed"),
        }
    }
}

/// Runs one checkpoint; returns the WAL's frame count and how many of them are checkpointed.
fn checkpoint(conn: &Connection, mode: &str) -> Result<(i64, i64), rusqlite::Error> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    })
}
