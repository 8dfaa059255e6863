//! The SQLite event journal: WAL mode, one group commit per batch, sequence numbers that never go
//! back (the head is stored, so trimming every event does not reset it).
//!
//! Schema (version 3, `PRAGMA user_version`):
//!
//! - `events(seq INTEGER PRIMARY KEY, ts INTEGER, keys TEXT, content)`: `ts` in Unix
//!   milliseconds; `keys` the published keys without sequence token, one per line (a backslash or
//!   line break inside a key is escaped as `\\` or `\n`); `content` frame 2: a BLOB holding the
//!   decoded message when frame 2 was canonical base64 (the usual case: a quarter fewer bytes to
//!   write, and readable with `CAST(content AS TEXT)`), else the TEXT exactly as published.
//! - `results(id INTEGER PRIMARY KEY, uid TEXT UNIQUE, hook_id INTEGER, rc INTEGER, body TEXT,
//!   ts INTEGER)`: accepted results; forwarded ones stay as the dedupe window. `body` is stored
//!   as `content` is: the decoded bytes as a BLOB when the frame's body was canonical base64
//!   (a result's body then fits one 4 KiB page where its text took two), else the text.
//!   Version 3 introduced the BLOB form (a version 2 file opens as it is; a version 2 driver
//!   refuses a version 3 file rather than misread its bodies).
//! - `meta(name TEXT PRIMARY KEY, value INTEGER)`: `head` (the newest sequence number, stored
//!   when trimming, so that it survives the removal of every event; otherwise the newest row is
//!   the head) and `forwarded` (every result id up to it was delivered to oned: written, or
//!   acknowledged by a front-end that acknowledges results).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};
use one_proto::encoding::b64_encode;
use one_wal::Checkpointer;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, params};

use crate::config::{Retention, SyncMode};
use crate::journal::{
    Batch, EventLog, EventReader, JournalError, JournalEvent, PendingResult, ReplayPage, Trimmed,
};

const SCHEMA_VERSION: i64 = 3;
const PAGE_SIZE: i64 = 4 * 1024;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq     INTEGER PRIMARY KEY,
    ts      INTEGER NOT NULL,
    source  INTEGER,
    keys    TEXT NOT NULL,
    content NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    id      INTEGER PRIMARY KEY,
    uid     TEXT UNIQUE,
    hook_id INTEGER NOT NULL,
    rc      INTEGER NOT NULL,
    body    TEXT NOT NULL,
    ts      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (name, value) VALUES ('head', 0), ('forwarded', 0);
";

/// The journal writer.
pub struct SqliteJournal {
    conn: Connection,
    /// Held for the life of the writer: a second driver on the same journal would assign the same
    /// sequence numbers.
    _lock: Flock<File>,
    _checkpointer: Checkpointer,
    path: PathBuf,
    head: u64,
    retention: Retention,
    dedupe_window: u64,
}

/// Journal settings.
#[derive(Debug, Clone, Copy)]
pub struct JournalOptions {
    /// What to keep.
    pub retention: Retention,
    /// fsync policy.
    pub sync: SyncMode,
    /// Results remembered for duplicate detection.
    pub dedupe_window: u64,
}

fn err(operation: &'static str) -> impl FnOnce(rusqlite::Error) -> JournalError {
    move |e| JournalError::new(operation, e)
}

fn open_connection(path: &Path) -> Result<Connection, JournalError> {
    let conn = Connection::open(path)
        .map_err(|e| JournalError::new("open", format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(err("configure"))?;
    // Only takes effect when the file is new. A commit appends every page it changed to the WAL,
    // so the page size is what a small commit costs: with hooks flowing at a few hundred per
    // second, most commits carry one event or one result, and 32 KiB pages made the WAL grow by
    // ~100 MB/s; writing it back then blocked the next commits (i_data_sem of the WAL, up to
    // 16 ms) and put a 20-30 ms tail on hook start latency. 4 KiB pages cut that volume eightfold
    // and cost nothing measurable on large group commits (bench section 2).
    conn.execute_batch(&format!("PRAGMA page_size={PAGE_SIZE}"))
        .map_err(err("configure"))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(err("configure"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(JournalError::new(
            "configure",
            format!("{} cannot use WAL (journal_mode is {mode})", path.display()),
        ));
    }
    // No `journal_size_limit`: the WAL file keeps its size when it starts over and is written
    // again from its start (it stays near `one_wal::RESTART_BYTES`). That truncation would
    // happen in the commit that starts the WAL over; freeing tens of megabytes of blocks took
    // 250 ms here, during which no event was published. The checkpoint thread truncates it
    // instead, once the writer is idle (`one_wal::IDLE_WAL_BYTES`).
    conn.execute_batch(
        "PRAGMA cache_size=-32768;
         PRAGMA temp_store=MEMORY;",
    )
    .map_err(err("configure"))?;
    Ok(conn)
}

/// Takes the writer lock, `<journal>.lock` next to the journal (a separate file: closing any
/// descriptor of the database itself would drop SQLite's own locks).
fn lock_journal(path: &Path) -> Result<Flock<File>, JournalError> {
    let lock_path = lock_path_of(path);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(one_wal::private_files::FILE_MODE)
        .open(&lock_path)
        .map_err(|e| {
            JournalError::new("lock", format!("cannot open {}: {e}", lock_path.display()))
        })?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        JournalError::new(
            "lock",
            format!("{} is in use by another one_hm ({errno})", path.display()),
        )
    })
}

/// `<journal>.lock`.
fn lock_path_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Creates the journal file 0600 before SQLite opens it (its WAL and SHM take its mode), and
/// takes group and other permissions away from the files an earlier version left loose.
fn make_private(path: &Path) -> Result<(), one_wal::private_files::PrivateFileError> {
    let mut tightened = one_wal::private_files::prepare_database(path)?;
    tightened
        .0
        .extend(one_wal::private_files::restrict(&lock_path_of(path))?.0);
    tightened.log();
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl SqliteJournal {
    /// Opens (creating if needed) the journal at `path`.
    pub fn open(path: &Path, options: JournalOptions) -> Result<SqliteJournal, JournalError> {
        let lock = lock_journal(path)?;
        // Events carry VM templates, CONTEXT passwords included.
        make_private(path).map_err(|e| JournalError::new("open", e))?;
        let mut conn = open_connection(path)?;
        // Checkpoints are the checkpointer thread's job (`one_wal`).
        one_wal::prepare_writer(&conn, options.sync.durability()).map_err(err("configure"))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err("read schema version"))?;
        if version > SCHEMA_VERSION {
            return Err(JournalError::new(
                "open",
                format!(
                    "{} has schema version {version}, newer than this driver's {SCHEMA_VERSION}",
                    path.display()
                ),
            ));
        }
        let tx = conn.transaction().map_err(err("create schema"))?;
        if version == 1 {
            // Version 1 had no front-end event id.
            tx.execute_batch("ALTER TABLE events ADD COLUMN source INTEGER")
                .map_err(err("migrate schema"))?;
        }
        tx.execute_batch(SCHEMA).map_err(err("create schema"))?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(err("create schema"))?;
        tx.commit().map_err(err("create schema"))?;
        let (stored_head, max_seq): (i64, Option<i64>) = conn
            .query_row(
                "SELECT (SELECT value FROM meta WHERE name = 'head'), (SELECT max(seq) FROM events)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(err("read head"))?;
        let head = to_u64(stored_head.max(max_seq.unwrap_or(0)));
        Ok(SqliteJournal {
            conn,
            _lock: lock,
            _checkpointer: Checkpointer::start(
                open_connection(path)?,
                "checkpointer",
                options.sync.durability(),
            )
            .map_err(|e| JournalError::new("start checkpoints", e))?,
            path: path.to_owned(),
            head,
            retention: options.retention,
            dedupe_window: options.dedupe_window,
        })
    }

    /// One transaction holding the whole batch. BEGIN and COMMIT are cached statements: a
    /// transaction opened through `execute_batch` parses both again at every commit, which is a
    /// visible share of a commit that carries one event or one result. On any error the
    /// transaction is rolled back, so nothing of the batch is durable.
    fn write(&mut self, batch: &mut Batch, first_seq: u64) -> Result<(), rusqlite::Error> {
        self.conn.prepare_cached("BEGIN")?.execute([])?;
        let written = self
            .write_rows(batch, first_seq)
            .and_then(|()| self.conn.prepare_cached("COMMIT")?.execute([]).map(drop));
        if written.is_err()
            && !self.conn.is_autocommit()
            && let Err(e) = self.conn.execute_batch("ROLLBACK")
        {
            tracing::warn!(error = %e, "journal rollback failed");
        }
        written
    }

    /// The batch's rows, inside the transaction [`Self::write`] opened.
    fn write_rows(&self, batch: &mut Batch, first_seq: u64) -> Result<(), rusqlite::Error> {
        let ts = now_ms();
        let tx = &self.conn;
        if !batch.events.is_empty() {
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (seq, ts, source, keys, content) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (event, seq) in batch.events.iter_mut().zip(first_seq..) {
                let content = stored_text(&event.content, event.decoded.as_deref());
                let source = event.source.map(to_i64);
                insert.execute(params![
                    to_i64(seq),
                    ts,
                    source,
                    encode_keys(&event.keys),
                    content
                ])?;
                event.seq = seq;
            }
        }
        if !batch.results.is_empty() {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO results (uid, hook_id, rc, body, ts) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for result in &mut batch.results {
                let changed = insert.execute(params![
                    result.uid,
                    result.hook_id,
                    result.rc,
                    stored_text(&result.body, result.decoded.as_deref()),
                    ts
                ])?;
                result.duplicate = changed == 0;
                result.id = if result.duplicate {
                    0
                } else {
                    to_u64(tx.last_insert_rowid())
                };
            }
        }
        if let Some(forwarded) = batch.forwarded {
            // Clamped to the results stored: an acknowledgement from a front-end is no reason
            // to skip results this journal has not assigned yet.
            tx.prepare_cached(
                "UPDATE meta SET value = max(value, min(?1, (SELECT COALESCE(max(id), 0) FROM results)))
                 WHERE name = 'forwarded'",
            )?
            .execute([to_i64(forwarded)])?;
        }
        Ok(())
    }

    fn trim_events(&mut self, budget: u64, now: i64) -> Result<u64, rusqlite::Error> {
        let oldest: Option<i64> = self
            .conn
            .query_row("SELECT min(seq) FROM events", [], |r| r.get(0))?;
        let Some(oldest) = oldest.map(to_u64) else {
            return Ok(0);
        };
        let mut cutoff = 0u64;
        if let Some(max) = self.retention.max_events {
            cutoff = cutoff.max(self.head.saturating_sub(max));
        }
        if let Some(age) = self.retention.max_age {
            let limit = now.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
            cutoff = cutoff.max(self.last_expired(oldest, limit)?);
        }
        let cutoff = cutoff.min(oldest.saturating_add(budget).saturating_sub(1));
        if cutoff < oldest {
            return Ok(0);
        }
        // The head is stored before the rows that hold it can go, so numbering never restarts.
        let tx = self.conn.transaction()?;
        tx.prepare_cached("UPDATE meta SET value = max(value, ?1) WHERE name = 'head'")?
            .execute([to_i64(self.head)])?;
        let removed = tx
            .prepare_cached("DELETE FROM events WHERE seq <= ?1")?
            .execute([to_i64(cutoff)])?;
        tx.commit()?;
        Ok(removed as u64)
    }

    /// The newest sequence number whose event is older than `limit` (0 if none). Timestamps grow
    /// with the sequence, so the expired events are a prefix: the oldest one is checked first
    /// (the usual answer is "none"), then the boundary is found by bisection, reading one row
    /// per step.
    fn last_expired(&self, oldest: u64, limit: i64) -> Result<u64, rusqlite::Error> {
        let mut ts_at = self
            .conn
            .prepare_cached("SELECT seq, ts FROM events WHERE seq >= ?1 ORDER BY seq LIMIT 1")?;
        let mut first_at = |seq: u64| -> Result<Option<(u64, i64)>, rusqlite::Error> {
            let mut rows = ts_at.query([to_i64(seq)])?;
            match rows.next()? {
                Some(row) => Ok(Some((to_u64(row.get(0)?), row.get(1)?))),
                None => Ok(None),
            }
        };
        match first_at(oldest)? {
            Some((_, ts)) if ts < limit => {}
            _ => return Ok(0),
        }
        // Invariant: the event at or after `lo` is expired; nothing at or after `hi` is.
        let (mut lo, mut hi) = (oldest, self.head + 1);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            match first_at(mid)? {
                Some((seq, ts)) if ts < limit && seq < hi => lo = seq,
                _ => hi = mid,
            }
        }
        Ok(lo)
    }

    fn trim_results(&mut self, budget: u64) -> Result<u64, rusqlite::Error> {
        let (min_id, max_id, forwarded): (Option<i64>, Option<i64>, i64) = self.conn.query_row(
            "SELECT (SELECT min(id) FROM results), (SELECT max(id) FROM results),
                    (SELECT value FROM meta WHERE name = 'forwarded')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let (Some(min_id), Some(max_id)) = (min_id, max_id) else {
            return Ok(0);
        };
        // Unforwarded results are never trimmed; forwarded ones stay while in the window. The
        // newest row always stays, so that ids (rowids) are never handed out again.
        let cutoff = forwarded
            .min(max_id.saturating_sub(to_i64(self.dedupe_window.max(1))))
            .min(min_id.saturating_add(to_i64(budget)).saturating_sub(1));
        if cutoff < min_id {
            return Ok(0);
        }
        let removed = self
            .conn
            .prepare_cached("DELETE FROM results WHERE id <= ?1")?
            .execute([cutoff])?;
        Ok(removed as u64)
    }
}

impl EventLog for SqliteJournal {
    fn commit(&mut self, batch: &mut Batch) -> Result<(), JournalError> {
        if batch.is_empty() {
            return Ok(());
        }
        let first_seq = self.head + 1;
        let written = self.write(batch, first_seq);
        match written {
            Ok(()) => {
                self.head += batch.events.len() as u64;
                Ok(())
            }
            Err(e) => {
                for event in &mut batch.events {
                    event.seq = 0;
                }
                for result in &mut batch.results {
                    result.id = 0;
                    result.duplicate = false;
                }
                Err(JournalError::new("commit", e))
            }
        }
    }

    fn trim(&mut self, budget: u64) -> Result<Trimmed, JournalError> {
        let now = now_ms();
        let events = self.trim_events(budget, now).map_err(err("trim events"))?;
        let results = self.trim_results(budget).map_err(err("trim results"))?;
        Ok(Trimmed { events, results })
    }

    fn pending_results(&mut self) -> Result<Vec<PendingResult>, JournalError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, hook_id, rc, body FROM results
                 WHERE id > (SELECT value FROM meta WHERE name = 'forwarded') ORDER BY id",
            )
            .map_err(err("read pending results"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(PendingResult {
                    id: to_u64(r.get(0)?),
                    hook_id: r.get(1)?,
                    rc: r.get(2)?,
                    body: base64_text(r.get_ref(3)?)?,
                })
            })
            .map_err(err("read pending results"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(err("read pending results"))
    }

    fn head(&self) -> u64 {
        self.head
    }

    fn release_memory(&mut self) {
        // The page cache a burst filled (up to `cache_size`); pages are read back on demand.
        if let Err(e) = self.conn.release_memory() {
            tracing::debug!(error = %e, "journal page cache not released");
        }
    }

    fn reader(&self) -> Result<Box<dyn EventReader>, JournalError> {
        let conn = open_connection(&self.path)?;
        Ok(Box::new(SqliteReader { conn }))
    }

    fn recent_sources(&mut self, limit: usize) -> Result<Vec<(u64, u64)>, JournalError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, source FROM events WHERE source IS NOT NULL ORDER BY seq DESC",
            )
            .map_err(err("read event ids"))?;
        // Rows come newest first as they are read; see `SqliteReader::read` on `LIMIT ?`.
        let rows = stmt
            .query_map([], |r| Ok((to_u64(r.get(0)?), to_u64(r.get(1)?))))
            .map_err(err("read event ids"))?;
        let mut out = rows
            .take(limit)
            .collect::<Result<Vec<_>, _>>()
            .map_err(err("read event ids"))?;
        out.reverse();
        Ok(out)
    }

    fn same_content(&mut self, seq: u64, event: &JournalEvent) -> Result<bool, JournalError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT content FROM events WHERE seq = ?1")
            .map_err(err("read event"))?;
        let mut rows = stmt.query([to_i64(seq)]).map_err(err("read event"))?;
        let Some(row) = rows.next().map_err(err("read event"))? else {
            return Ok(false);
        };
        Ok(match row.get_ref(0).map_err(err("read event"))? {
            ValueRef::Blob(bytes) => match &event.decoded {
                Some(decoded) => decoded.as_slice() == bytes,
                None => b64_encode(bytes) == event.content,
            },
            ValueRef::Text(text) => text == event.content.as_bytes(),
            _ => false,
        })
    }
}

const REPLAY_PAGE: &str = "SELECT seq, keys, content FROM events WHERE seq > ?1 ORDER BY seq";

/// A replay reader on its own connection (WAL readers never block the writer).
pub struct SqliteReader {
    conn: Connection,
}

impl SqliteReader {
    fn read(
        &mut self,
        after: u64,
        max_events: u32,
        max_bytes: usize,
    ) -> Result<ReplayPage, rusqlite::Error> {
        // One read transaction, so the header and the events come from the same snapshot.
        let tx = self.conn.transaction()?;
        let (oldest, head): (Option<i64>, i64) = tx.query_row(
            "SELECT (SELECT min(seq) FROM events),
                    max((SELECT value FROM meta WHERE name = 'head'),
                        coalesce((SELECT max(seq) FROM events), 0))",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let head = to_u64(head);
        let oldest = oldest.map_or(head + 1, to_u64);
        let mut events = Vec::new();
        if max_events > 0 {
            // No `LIMIT ?`: SQLite prepares a statement again at every run when its LIMIT is a
            // bound parameter. Rows come in seq order as they are read, so stopping after
            // `max_events` reads no more.
            let mut stmt = tx.prepare_cached(REPLAY_PAGE)?;
            let mut rows = stmt.query([to_i64(after)])?;
            let mut bytes = 0usize;
            while events.len() < max_events as usize
                && let Some(row) = rows.next()?
            {
                let content = base64_text(row.get_ref(2)?)?;
                let event = JournalEvent::new(decode_keys(row.get_ref(1)?.as_str()?), content);
                let event = JournalEvent {
                    seq: to_u64(row.get(0)?),
                    ..event
                };
                bytes += event.size();
                if bytes > max_bytes && !events.is_empty() {
                    break;
                }
                events.push(event);
            }
        }
        tx.commit()?;
        Ok(ReplayPage {
            oldest,
            head,
            events,
        })
    }
}

impl EventReader for SqliteReader {
    fn read_after(
        &mut self,
        after: u64,
        max_events: u32,
        max_bytes: usize,
    ) -> Result<ReplayPage, JournalError> {
        self.read(after, max_events, max_bytes)
            .map_err(err("replay read"))
    }
}

/// A base64 text as stored: its decoded bytes as a BLOB when it is canonical (`decoded`), else
/// the text itself.
fn stored_text<'a>(text: &'a str, decoded: Option<&'a [u8]>) -> ToSqlOutput<'a> {
    ToSqlOutput::Borrowed(match decoded {
        Some(bytes) => ValueRef::Blob(bytes),
        None => ValueRef::Text(text.as_bytes()),
    })
}

/// The base64 text [`stored_text`] stored.
fn base64_text(value: ValueRef<'_>) -> Result<String, rusqlite::types::FromSqlError> {
    match value {
        ValueRef::Blob(bytes) => Ok(b64_encode(bytes)),
        other => other.as_str().map(str::to_owned),
    }
}

/// Keys one per line; `\` and LF inside a key are escaped so any key round-trips.
fn encode_keys(keys: &[String]) -> String {
    let mut out = String::with_capacity(keys.iter().map(|k| k.len() + 1).sum());
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if key.contains(['\\', '\n']) {
            out.push_str(&key.replace('\\', "\\\\").replace('\n', "\\n"));
        } else {
            out.push_str(key);
        }
    }
    out
}

fn decode_keys(text: &str) -> Vec<String> {
    text.split('\n')
        .map(|line| {
            if !line.contains('\\') {
                return line.to_owned();
            }
            let mut out = String::with_capacity(line.len());
            let mut chars = line.chars();
            while let Some(c) = chars.next() {
                match (c, chars.clone().next()) {
                    ('\\', Some('n')) => {
                        out.push('\n');
                        chars.next();
                    }
                    ('\\', Some('\\')) => {
                        out.push('\\');
                        chars.next();
                    }
                    _ => out.push(c),
                }
            }
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::JournalResult;

    fn options(max_events: Option<u64>) -> JournalOptions {
        JournalOptions {
            retention: Retention {
                max_events,
                max_age: None,
            },
            sync: SyncMode::Normal,
            dedupe_window: 2,
        }
    }

    fn event(n: u32) -> JournalEvent {
        JournalEvent::new(vec![format!("EVENT API c{n} 1")], format!("content-{n}"))
    }

    fn result(uid: Option<&str>) -> JournalResult {
        JournalResult {
            id: 0,
            hook_id: 1,
            rc: 0,
            body: "QUJD".into(),
            decoded: None,
            uid: uid.map(str::to_owned),
            duplicate: false,
        }
    }

    #[test]
    fn a_version_1_journal_gains_the_event_id_column() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.db");
        {
            let conn = Connection::open(&path).expect("create");
            conn.execute_batch(
                "CREATE TABLE events (seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL,
                                      keys TEXT NOT NULL, content NOT NULL);
                 INSERT INTO events VALUES (1, 0, 'EVENT ', 'old');
                 PRAGMA user_version = 1;",
            )
            .expect("version 1");
        }
        let mut j = SqliteJournal::open(&path, options(None)).expect("migrate");
        assert_eq!(j.head(), 1);
        let mut batch = Batch {
            events: vec![JournalEvent {
                source: Some(9),
                ..event(2)
            }],
            ..Batch::default()
        };
        j.commit(&mut batch).expect("commit");
        assert_eq!(j.recent_sources(10).expect("sources"), [(2, 9)]);
    }

    #[test]
    fn a_batch_that_fails_midway_leaves_nothing_and_the_next_one_commits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.db");
        let mut j = SqliteJournal::open(&path, options(None)).expect("open");
        j.commit(&mut Batch {
            events: vec![event(1)],
            ..Batch::default()
        })
        .expect("commit");
        // A row another connection put where the batch's third event goes makes that insert
        // fail after two rows and a result were written in the same transaction.
        let other = Connection::open(&path).expect("second connection");
        other
            .execute_batch("INSERT INTO events (seq, ts, keys, content) VALUES (4, 0, 'X', 'x')")
            .expect("blocker");
        let mut batch = Batch {
            events: (2..5).map(event).collect(),
            results: vec![result(Some("u1"))],
            forwarded: Some(1),
        };
        j.commit(&mut batch)
            .expect_err("the third insert conflicts");
        assert!(
            batch.events.iter().all(|e| e.seq == 0),
            "no number handed out"
        );
        assert!(
            batch.results.iter().all(|r| r.id == 0),
            "no result id handed out"
        );
        assert_eq!(j.head(), 1);
        let counts = |c: &Connection| -> (i64, i64, i64) {
            c.query_row(
                "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM results),
                        (SELECT value FROM meta WHERE name = 'forwarded')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("count")
        };
        assert_eq!(
            counts(&other),
            (2, 0, 0),
            "only the first event and the blocker"
        );
        other
            .execute_batch("DELETE FROM events WHERE seq = 4")
            .expect("unblock");
        j.commit(&mut batch)
            .expect("commit once the conflict is gone");
        let seqs: Vec<u64> = batch.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [2, 3, 4]);
        assert_eq!(batch.results[0].id, 1);
        assert_eq!(counts(&other), (4, 1, 1));
    }

    #[test]
    fn a_journal_has_one_writer_at_a_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.db");
        let first = SqliteJournal::open(&path, options(None)).expect("open");
        let Err(e) = SqliteJournal::open(&path, options(None)) else {
            panic!("second writer admitted");
        };
        assert!(e.to_string().contains("in use by another one_hm"), "{e}");
        drop(first);
        SqliteJournal::open(&path, options(None)).expect("free again");
    }

    #[test]
    fn keys_with_line_breaks_and_backslashes_round_trip() {
        let keys = vec![
            "EVENT API a\nb 1".to_owned(),
            "x\\n\\".to_owned(),
            String::new(),
            "EVENT ".to_owned(),
        ];
        assert_eq!(decode_keys(&encode_keys(&keys)), keys);
    }

    #[test]
    fn sequence_numbers_survive_reopen_and_full_trim() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.db");
        {
            let mut j = SqliteJournal::open(&path, options(Some(2))).expect("open");
            let mut batch = Batch {
                events: (0..5).map(event).collect(),
                ..Batch::default()
            };
            j.commit(&mut batch).expect("commit");
            let seqs: Vec<u64> = batch.events.iter().map(|e| e.seq).collect();
            assert_eq!(seqs, [1, 2, 3, 4, 5]);
            assert_eq!(j.trim(100).expect("trim").events, 3);
            let page = j
                .reader()
                .expect("reader")
                .read_after(0, 10, 1 << 20)
                .expect("read");
            assert_eq!((page.oldest, page.head, page.events.len()), (4, 5, 2));
            assert_eq!(page.events[0].keys, ["EVENT API c3 1"]);
            assert_eq!(page.events[0].content, "content-3");
        }
        let mut j = SqliteJournal::open(&path, options(Some(2))).expect("reopen");
        assert_eq!(j.head(), 5);
        let mut batch = Batch {
            events: vec![event(9)],
            ..Batch::default()
        };
        j.commit(&mut batch).expect("commit");
        assert_eq!(batch.events[0].seq, 6);
    }

    #[test]
    fn duplicate_uids_are_flagged_and_forwarding_is_remembered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.db");
        let mut j = SqliteJournal::open(&path, options(None)).expect("open");
        let mut batch = Batch {
            results: vec![
                result(Some("u1")),
                result(None),
                result(Some("u1")),
                result(None),
            ],
            ..Batch::default()
        };
        j.commit(&mut batch).expect("commit");
        let flags: Vec<(u64, bool)> = batch.results.iter().map(|r| (r.id, r.duplicate)).collect();
        assert_eq!(flags, [(1, false), (2, false), (0, true), (3, false)]);
        assert_eq!(j.pending_results().expect("pending").len(), 3);
        let mut mark = Batch {
            forwarded: Some(2),
            ..Batch::default()
        };
        j.commit(&mut mark).expect("mark");
        drop(j);
        let mut j = SqliteJournal::open(&path, options(None)).expect("reopen");
        let pending = j.pending_results().expect("pending");
        assert_eq!(pending.iter().map(|p| p.id).collect::<Vec<_>>(), [3]);
        // The window keeps the last 2 results; only forwarded ones may go.
        assert_eq!(j.trim(100).expect("trim").results, 1);
        let mut again = Batch {
            results: vec![result(Some("u1"))],
            ..Batch::default()
        };
        j.commit(&mut again).expect("commit");
        assert!(!again.results[0].duplicate, "u1 left the dedupe window");
    }

    /// The storage classes (`typeof`) a one-column query returns, in order.
    fn storage_classes(conn: &Connection, query: &str) -> Vec<String> {
        conn.prepare(query)
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    #[test]
    fn canonical_contents_are_stored_decoded_and_replayed_exactly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut j = SqliteJournal::open(&dir.path().join("j.db"), options(None)).expect("open");
        let xml = b"<HOOK_MESSAGE><HOOK_TYPE>API</HOOK_TYPE></HOOK_MESSAGE>".to_vec();
        let b64 = b64_encode(&xml);
        let mut batch = Batch {
            events: vec![
                JournalEvent::canonical(vec!["EVENT ".into()], b64.clone(), xml.clone()),
                JournalEvent::new(vec!["RETRY".into()], format!("{b64} ")),
            ],
            ..Batch::default()
        };
        j.commit(&mut batch).expect("commit");
        assert_eq!(
            storage_classes(&j.conn, "SELECT typeof(content) FROM events ORDER BY seq"),
            ["blob", "text"]
        );
        let page = j
            .reader()
            .expect("reader")
            .read_after(0, 10, 1 << 20)
            .expect("read");
        assert_eq!(page.events[0].content, b64);
        assert_eq!(page.events[1].content, format!("{b64} "));
    }

    #[test]
    fn canonical_result_bodies_are_stored_decoded_and_forwarded_exactly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.db");
        let xml = b"<EXECUTION_RESULT><CODE>0</CODE></EXECUTION_RESULT>".to_vec();
        let b64 = b64_encode(&xml);
        {
            let mut j = SqliteJournal::open(&path, options(None)).expect("open");
            let mut batch = Batch {
                results: vec![
                    JournalResult::new(1, 0, b64.clone(), xml.clone(), None),
                    // Stray bits in the last group: kept as text.
                    JournalResult::new(2, 1, "QR==".into(), b"A".to_vec(), None),
                ],
                ..Batch::default()
            };
            j.commit(&mut batch).expect("commit");
            assert_eq!(
                storage_classes(&j.conn, "SELECT typeof(body) FROM results ORDER BY id"),
                ["blob", "text"]
            );
        }
        let mut j = SqliteJournal::open(&path, options(None)).expect("reopen");
        let bodies: Vec<String> = j
            .pending_results()
            .expect("pending")
            .into_iter()
            .map(|p| p.body)
            .collect();
        assert_eq!(bodies, [b64, "QR==".to_owned()]);
    }

    #[test]
    fn a_version_2_journal_opens_and_forwards_its_text_bodies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.db");
        {
            let conn = Connection::open(&path).expect("create");
            conn.execute_batch(SCHEMA).expect("schema");
            conn.execute_batch(
                "INSERT INTO results (uid, hook_id, rc, body, ts) VALUES ('u1', 4, 0, 'QUJD', 0);
                 PRAGMA user_version = 2;",
            )
            .expect("version 2");
        }
        let mut j = SqliteJournal::open(&path, options(None)).expect("open");
        let pending = j.pending_results().expect("pending");
        assert_eq!(
            pending,
            [PendingResult {
                id: 1,
                hook_id: 4,
                rc: 0,
                body: "QUJD".into()
            }]
        );
        let mut again = Batch {
            results: vec![result(Some("u1"))],
            ..Batch::default()
        };
        j.commit(&mut again).expect("commit");
        assert!(again.results[0].duplicate, "the old row still dedupes");
        let version: i64 = j
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn age_retention_removes_the_expired_prefix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut j = SqliteJournal::open(
            &dir.path().join("j.db"),
            JournalOptions {
                retention: Retention {
                    max_events: None,
                    max_age: Some(Duration::from_secs(3600)),
                },
                sync: SyncMode::Normal,
                dedupe_window: 10,
            },
        )
        .expect("open");
        let mut batch = Batch {
            events: (0..10).map(event).collect(),
            ..Batch::default()
        };
        j.commit(&mut batch).expect("commit");
        assert_eq!(j.trim(100).expect("trim").events, 0, "nothing expired yet");
        for expired in [6, 7, 9] {
            j.conn
                .execute("UPDATE events SET ts = 0 WHERE seq <= ?1", [expired])
                .expect("age");
            j.trim(100).expect("trim");
            let page = j
                .reader()
                .expect("reader")
                .read_after(0, 100, 1 << 20)
                .expect("read");
            assert_eq!(page.oldest, expired as u64 + 1);
        }
        j.conn.execute("UPDATE events SET ts = 0", []).expect("age");
        assert_eq!(j.trim(100).expect("trim").events, 1);
        let page = j
            .reader()
            .expect("reader")
            .read_after(0, 100, 1 << 20)
            .expect("read");
        assert_eq!((page.oldest, page.head), (11, 10));
    }

    /// A journal holding events 1 to 10, in a temporary directory.
    fn ten_events() -> (tempfile::TempDir, PathBuf, SqliteJournal) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.db");
        let mut j = SqliteJournal::open(&path, options(None)).expect("open");
        let mut batch = Batch {
            events: (0..10).map(event).collect(),
            ..Batch::default()
        };
        j.commit(&mut batch).expect("commit");
        (dir, path, j)
    }

    #[test]
    fn replay_pages_are_bounded_by_count_and_bytes() {
        let (_dir, _, j) = ten_events();
        let mut r = j.reader().expect("reader");
        let page = r.read_after(3, 4, 1 << 20).expect("read");
        let seqs: Vec<u64> = page.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [4, 5, 6, 7]);
        let tiny = r.read_after(0, 10, 1).expect("read");
        assert_eq!(tiny.events.len(), 1, "one event even over the byte bound");
        let header = r.read_after(0, 0, 1 << 20).expect("read");
        assert_eq!(
            (header.oldest, header.head, header.events.len()),
            (1, 10, 0)
        );
        let past = r.read_after(10, 5, 1 << 20).expect("read");
        assert!(past.events.is_empty());
    }

    /// A replay reads page after page with one prepared statement; SQLite prepared it again
    /// at every page while its LIMIT was a bound parameter.
    #[test]
    fn replay_pages_reuse_the_prepared_statement() {
        let (_dir, path, _j) = ten_events();
        let mut r = SqliteReader {
            conn: open_connection(&path).expect("reader"),
        };
        let mut after = 0;
        while let Some(last) = r.read(after, 3, 1 << 20).expect("read").events.last() {
            after = last.seq;
        }
        assert_eq!(after, 10);
        let stmt = r.conn.prepare_cached(REPLAY_PAGE).expect("cached");
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }
}
