//! The HEM's crash-safety state in SQLite: the last fully processed event sequence (watermark),
//! accepted executions (pending or started) and results not yet acknowledged by the driver.
//!
//! One thread owns the connection and commits whatever requests are waiting in one transaction
//! (group commit), so the per-execution writes cost little under load. The file is in WAL mode
//! with [`Durability::Normal`]: a committed transaction survives a crash of the HEM (kill -9);
//! after a crash of the whole machine the last transactions may be lost. The fsyncs run on the
//! checkpoint thread ([`one_wal`]), never inside a commit that executions wait for. Which
//! accepted executions have started is kept beside the file, in the start marks of
//! [`crate::start_log`], which the writer keeps in step with its commits.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use one_wal::{Checkpointer, Durability};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use tokio::sync::{oneshot, watch};

use crate::execution::{Execution, Plan, Target};
use crate::start_log::{self, StartLog};
use crate::uids::UidKey;

/// Requests committed together at most; bounds the latency a large burst adds to one commit.
const MAX_BATCH: usize = 1024;

/// How long a finished result waits in memory for its ACK before it is written to the outbox.
/// Most ACKs come back within milliseconds; a result acknowledged meanwhile never touches the
/// file (its body, several kilobytes, was most of what the state DB wrote per execution).
pub const ACK_GRACE: Duration = Duration::from_millis(100);

/// A result body waiting for the driver's ACK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    pub uid: String,
    pub hook_id: i64,
    /// The whole request frame, `<rc> <hook_id> <base64 body>`; shared, not copied, by the
    /// state DB's hold and the result sender.
    pub frame: Arc<str>,
}

/// What the previous run left behind.
#[derive(Debug)]
pub struct Recovery {
    /// Identifies this state DB in execution uids.
    pub instance: String,
    /// The secret execution uids are tagged with; it never leaves the state DB.
    pub uid_key: UidKey,
    /// Incremented at every start; makes uids unique when the driver sends no sequence numbers.
    pub boot: u64,
    /// The last event sequence fully processed; `None` on a first start.
    pub watermark: Option<u64>,
    /// Accepted, never started: they run now.
    pub pending: Vec<Execution>,
    /// Started, never finished: reported as interrupted instead of being run twice.
    pub interrupted: Vec<Execution>,
    /// Results sent (or about to be) but never acknowledged: sent again.
    pub outbox: Vec<OutboxEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateDbError {
    #[error("cannot open state DB {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("state DB {path}: {source}")]
    Private {
        path: PathBuf,
        source: one_wal::private_files::PrivateFileError,
    },
    #[error("state DB {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("state DB write failed: {0}")]
    Write(String),
    #[error("the state DB is closed")]
    Closed,
    #[error(transparent)]
    StartLog(#[from] start_log::StartLogError),
}

type Reply = oneshot::Sender<Result<(), String>>;

/// Told, on the writer's thread, the uids of executions whose result (or acknowledgement) a
/// commit has just made durable; must not block.
pub type Settled = Box<dyn Fn(Vec<String>) + Send>;

enum Request {
    Accept {
        execs: Vec<Execution>,
        watermark: Option<u64>,
        /// Acceptances are numbered in queue order; see [`Shared::accepts_done`].
        number: u64,
    },
    Started {
        uid: String,
        reply: Reply,
    },
    /// The writer's own: a held result whose ACK did not come in time, written to the outbox
    /// (results reach the writer beside its queue, see [`Beside`]).
    Finished {
        entry: OutboxEntry,
    },
    Acked {
        uid: String,
    },
    /// The writer's own: a result acknowledged while it was held; its execution is forgotten
    /// without ever being written to the outbox.
    Forget {
        uid: String,
    },
    OnSettled(Settled),
    /// Finished results or acknowledgements are waiting in [`Shared::beside`].
    Wake,
    Stop,
}

/// A handle to the state DB writer; cheap to clone.
#[derive(Clone, Debug)]
pub struct StateDb {
    tx: mpsc::Sender<Request>,
    shared: Arc<Shared>,
}

/// What the handles share with the writer.
#[derive(Debug)]
struct Shared {
    /// Acceptances queued so far. The lock is held while one is queued, so the writer receives
    /// them in number order.
    accepts_queued: Mutex<u64>,
    /// The highest acceptance number whose commit the writer has finished (the writer holds
    /// the sender: a writer that is gone ends every wait).
    accepts_done: watch::Receiver<u64>,
    /// The start marks; the writer forgets those of executions its commits took out.
    marks: Mutex<StartLog>,
    /// Finished results and acknowledged uids, taken by the writer whenever it wakes up.
    beside: Mutex<Beside>,
    /// How long a finished result is held for its ACK.
    grace: Duration,
}

/// Finished results and acknowledgements on their way to the writer, beside its queue. Neither
/// needs a commit soon: a finished result is held in memory for its ACK for [`ACK_GRACE`]
/// anyway, and an acknowledgement is a clean-up that may wait (see [`Cleanups`]). So they do not
/// wake the writer each: it takes them whenever it wakes up anyway, and one is woken only when
/// it would otherwise sleep past the moment a finished result is due (or, for an
/// acknowledgement, when it sleeps without any deadline). Both lists are taken under one lock,
/// and a result is queued before it is sent, so an acknowledgement always comes with its result
/// or after it.
#[derive(Debug)]
struct Beside {
    finished: Vec<(OutboxEntry, Instant)>,
    acks: Vec<String>,
    writer: WriterSleep,
}

/// What the writer said about its next wake-up when it last found nothing beside its queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriterSleep {
    /// It is working, or already woken: it looks at the lists before it sleeps again.
    Awake,
    /// It sleeps until a request comes, or this moment.
    Until(Instant),
    /// It sleeps until a request comes.
    Forever,
}

impl WriterSleep {
    /// Whether a writer in this state would sleep past `due`.
    fn sleeps_past(self, due: Instant) -> bool {
        match self {
            WriterSleep::Awake => false,
            WriterSleep::Until(at) => at > due,
            WriterSleep::Forever => true,
        }
    }
}

/// Owns the writer thread; dropping it (or calling [`StateDbThread::stop`]) ends the thread
/// after the requests already queued are committed.
#[derive(Debug)]
pub struct StateDbThread {
    tx: mpsc::Sender<Request>,
    handle: Option<JoinHandle<()>>,
    /// Checkpoints the WAL off the writer's thread; dropped after the writer has stopped.
    _checkpointer: Checkpointer,
}

impl StateDb {
    /// Opens (or creates) the state DB, reads what the previous run left, and starts the writer.
    pub fn open(path: &Path) -> Result<(StateDb, StateDbThread, Recovery), StateDbError> {
        StateDb::open_with(path, ACK_GRACE)
    }

    /// [`StateDb::open`] with another time finished results are held for their ACK.
    pub fn open_with(
        path: &Path,
        ack_grace: Duration,
    ) -> Result<(StateDb, StateDbThread, Recovery), StateDbError> {
        // Results hold hook output and arguments, VM templates with their passwords among them.
        let private = |source| StateDbError::Private {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            one_wal::private_files::create_dir_all(dir).map_err(private)?;
        }
        one_wal::private_files::prepare_database(path)
            .map_err(private)?
            .log();
        let conn = Connection::open(path).map_err(|source| StateDbError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let sql = |source| StateDbError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        prepare(&conn).map_err(sql)?;
        let marks_path = start_log::path_for(path);
        let marks = start_log::read_marks(&marks_path)?;
        let recovery = recover(&conn, &marks).map_err(sql)?;
        // Only the marks of executions the state DB still holds matter from now on.
        let live = recovery
            .interrupted
            .iter()
            .filter(|e| marks.contains(&e.uid))
            .map(|e| e.uid.clone())
            .collect();
        let marks = StartLog::open(&marks_path, live)?;
        let checkpointer = Checkpointer::open(path, "hem-state-ckpt", Durability::Normal)
            .map_err(|e| StateDbError::Write(format!("cannot start checkpoints: {e}")))?;
        let (tx, rx) = mpsc::channel();
        let (done_tx, accepts_done) = watch::channel(0);
        let shared = Arc::new(Shared {
            accepts_queued: Mutex::new(0),
            accepts_done,
            marks: Mutex::new(marks),
            beside: Mutex::new(Beside {
                finished: Vec::new(),
                acks: Vec::new(),
                writer: WriterSleep::Awake,
            }),
            grace: ack_grace,
        });
        let db_path = path.to_path_buf();
        let writer_shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name("hem-state-db".into())
            .spawn(move || {
                writer(conn, rx, db_path, ack_grace, (&writer_shared, done_tx));
            })
            .map_err(|e| StateDbError::Write(format!("cannot start the writer thread: {e}")))?;
        Ok((
            StateDb {
                tx: tx.clone(),
                shared,
            },
            StateDbThread {
                tx,
                handle: Some(handle),
                _checkpointer: checkpointer,
            },
            recovery,
        ))
    }

    /// Records accepted executions and the new watermark in one transaction, without waiting
    /// for the commit. The executions may be handed to the scheduler at once: an execution's
    /// start is recorded through the same queue ([`StateDb::started`] waits for that commit),
    /// so its acceptance is always committed first, and a crash before the commit loses the
    /// watermark with the executions, which the replay from the journal then accepts again.
    pub fn accept(
        &self,
        execs: Vec<Execution>,
        watermark: Option<u64>,
    ) -> Result<(), StateDbError> {
        let mut queued = self
            .shared
            .accepts_queued
            .lock()
            .map_err(|_| StateDbError::Closed)?;
        *queued += 1;
        self.send(Request::Accept {
            execs,
            watermark,
            number: *queued,
        })
    }

    /// Moves the watermark without waiting for the commit (events that matched no hook).
    pub fn set_watermark(&self, watermark: u64) -> Result<(), StateDbError> {
        self.accept(Vec::new(), Some(watermark))
    }

    /// Marks an execution started; call before the process is spawned, so that a crash can
    /// never make it run twice. The mark is a line appended to the start-mark file
    /// ([`start_log`]), written once every acceptance queued so far is committed: a mark never
    /// precedes its execution's row, whose acceptance a restart would otherwise repeat under
    /// another uid. Under load that commit is long done and the mark costs one `write`, with no
    /// hand-off to the writer thread. Should the file refuse the line, the mark is committed to
    /// the state DB instead.
    pub async fn started(&self, uid: &str) -> Result<(), StateDbError> {
        let queued = *self
            .shared
            .accepts_queued
            .lock()
            .map_err(|_| StateDbError::Closed)?;
        let mut done = self.shared.accepts_done.clone();
        if *done.borrow_and_update() < queued {
            done.wait_for(|d| *d >= queued)
                .await
                .map_err(|_| StateDbError::Closed)?;
        }
        let marked = match self.shared.marks.lock() {
            Ok(mut marks) => marks.mark(uid),
            Err(_) => return Err(StateDbError::Closed),
        };
        if let Err(e) = marked {
            tracing::warn!(error = %e, %uid, "cannot append a start mark; committing it to the state DB");
            let uid = uid.to_string();
            return committed(self.request(|reply| Request::Started { uid, reply })?.await);
        }
        Ok(())
    }

    /// Replaces the execution by its result in the outbox, in one transaction, without waiting
    /// for the commit: the result may be sent meanwhile. The writer holds the result for
    /// [`ACK_GRACE`] first; when its ACK arrives within that time the outbox is not written at
    /// all. Should the HEM die before the result is committed, the restart reports the
    /// execution as interrupted under the same uid, which the driver and the front-end drop as
    /// a duplicate if the result did arrive.
    pub fn finished(&self, entry: OutboxEntry) -> Result<(), StateDbError> {
        let mut beside = self
            .shared
            .beside
            .lock()
            .map_err(|_| StateDbError::Closed)?;
        beside.finished.push((entry, Instant::now()));
        if beside
            .writer
            .sleeps_past(Instant::now() + self.shared.grace)
        {
            beside.writer = WriterSleep::Awake;
            self.send(Request::Wake)?;
        }
        Ok(())
    }

    /// Calls `settled` after every commit that took executions out of the state DB (their
    /// result is in the outbox, or was acknowledged), with their uids.
    pub fn on_settled(&self, settled: Settled) -> Result<(), StateDbError> {
        self.send(Request::OnSettled(settled))
    }

    /// Forgets an acknowledged result (not waited for: losing it only means a resend that the
    /// driver drops as a duplicate).
    pub fn acked(&self, uid: &str) {
        let Ok(mut beside) = self.shared.beside.lock() else {
            return;
        };
        beside.acks.push(uid.to_string());
        if beside.writer == WriterSleep::Forever {
            beside.writer = WriterSleep::Awake;
            let _ = self.send(Request::Wake);
        }
    }

    fn send(&self, req: Request) -> Result<(), StateDbError> {
        self.tx.send(req).map_err(|_| StateDbError::Closed)
    }

    /// Sends a request that waits for its commit; the receiver gets the commit's outcome.
    fn request(
        &self,
        build: impl FnOnce(Reply) -> Request,
    ) -> Result<oneshot::Receiver<Result<(), String>>, StateDbError> {
        let (reply, rx) = oneshot::channel();
        self.send(build(reply))?;
        Ok(rx)
    }
}

impl StateDbThread {
    /// Commits what is queued and ends the writer thread.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        let _ = self.tx.send(Request::Stop);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for StateDbThread {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// The outcome of a commit as the writer reported it; no report means the writer is gone.
fn committed(
    reply: Result<Result<(), String>, oneshot::error::RecvError>,
) -> Result<(), StateDbError> {
    match reply {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(StateDbError::Write(e)),
        Err(_) => Err(StateDbError::Closed),
    }
}

const SCHEMA_VERSION: i64 = 2;

fn prepare(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // Every commit writes each page it touched to the WAL, and most commits here touch a few
    // pages to change a small row: small pages keep those writes small. Takes effect when the
    // file is created; an existing file keeps its page size.
    conn.pragma_update(None, "page_size", 1024)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // The commits that executions wait for never include an fsync: checkpoints are the
    // checkpointer's, and so is the sync that guards a WAL starting over (see `one_wal`).
    one_wal::prepare_writer(conn, Durability::Normal)?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version < 1 {
        conn.execute_batch(
            "BEGIN;
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS executions (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 uid TEXT NOT NULL UNIQUE,
                 seq INTEGER NOT NULL,
                 hook_id INTEGER NOT NULL,
                 lane TEXT NOT NULL,
                 resource TEXT NOT NULL,
                 event_key TEXT NOT NULL,
                 command TEXT NOT NULL,
                 arguments TEXT NOT NULL,
                 stdin INTEGER NOT NULL,
                 timeout_secs INTEGER,
                 target TEXT NOT NULL,
                 target_value TEXT,
                 report_host TEXT,
                 retry INTEGER NOT NULL,
                 started INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE IF NOT EXISTS outbox (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 uid TEXT NOT NULL UNIQUE,
                 hook_id INTEGER NOT NULL,
                 frame TEXT NOT NULL);
             PRAGMA user_version = 1;
             COMMIT;",
        )?;
    }
    if version < 2 {
        // Version 2 marks started executions in a table of their own: setting a flag in the
        // executions row rewrote the whole row (its arguments included) for every execution.
        conn.execute_batch(
            "BEGIN;
             CREATE TABLE IF NOT EXISTS started (uid TEXT PRIMARY KEY) WITHOUT ROWID;
             INSERT OR IGNORE INTO started (uid) SELECT uid FROM executions WHERE started = 1;
             PRAGMA user_version = 2;
             COMMIT;",
        )?;
    }
    if version > SCHEMA_VERSION {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "schema version {version} is newer than this HEM understands ({SCHEMA_VERSION})"
        )));
    }
    Ok(())
}

/// What the state DB holds after a restart; `marks` are the uids of the start-mark file.
fn recover(conn: &Connection, marks: &HashSet<String>) -> rusqlite::Result<Recovery> {
    let meta = |key: &str| -> rusqlite::Result<Option<String>> {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
    };
    let instance = match meta("instance")? {
        Some(i) => i,
        None => {
            let i = new_instance_id();
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('instance', ?1)",
                [&i],
            )?;
            i
        }
    };
    // The secret execution uids are tagged with (crate::uids). A state DB from before it
    // existed, or with a damaged one, gets a new key: uids of this start differ either way.
    let uid_key = match meta("uid_key")?.as_deref().and_then(UidKey::from_hex) {
        Some(key) => key,
        None => {
            let key = UidKey::generate();
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('uid_key', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [key.to_hex()],
            )?;
            key
        }
    };
    let boot = meta("boot")?
        .and_then(|b| b.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('boot', ?1)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [boot.to_string()],
    )?;
    let watermark = meta("watermark")?.and_then(|w| w.parse::<u64>().ok());

    let mut pending = Vec::new();
    let mut interrupted = Vec::new();
    let mut stmt = conn.prepare(
        "SELECT uid, seq, hook_id, lane, resource, event_key, command, arguments, stdin,
                timeout_secs, target, target_value, report_host, retry,
                uid IN (SELECT uid FROM started)
         FROM executions ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        let target_kind: String = r.get(10)?;
        let target_value: Option<String> = r.get(11)?;
        let target = match target_kind.as_str() {
            "local" => Target::Local,
            "remote" => Target::Remote {
                host: target_value.unwrap_or_default(),
            },
            _ => Target::Refused {
                reason: target_value.unwrap_or_default(),
            },
        };
        let exec = Execution {
            uid: r.get(0)?,
            seq: r.get::<_, i64>(1)? as u64,
            hook_id: r.get(2)?,
            lane: r.get(3)?,
            resource: r.get(4)?,
            event_key: r.get(5)?,
            plan: Plan {
                command: r.get(6)?,
                arguments: r.get(7)?,
                stdin: r.get(8)?,
                timeout_secs: r.get::<_, Option<i64>>(9)?.map(|t| t as u64),
                target,
                report_host: r.get(12)?,
                retry: r.get(13)?,
            },
        };
        Ok((exec, r.get::<_, bool>(14)?))
    })?;
    for row in rows {
        let (exec, started) = row?;
        // Marks committed to the table come from the fallback, or from an earlier version.
        if started || marks.contains(&exec.uid) {
            interrupted.push(exec);
        } else {
            pending.push(exec);
        }
    }
    let mut stmt = conn.prepare("SELECT uid, hook_id, frame FROM outbox ORDER BY id")?;
    let outbox = stmt
        .query_map([], |r| {
            Ok(OutboxEntry {
                uid: r.get(0)?,
                hook_id: r.get(1)?,
                frame: r.get::<_, String>(2)?.into(),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Recovery {
        instance,
        uid_key,
        boot,
        watermark,
        pending,
        interrupted,
        outbox,
    })
}

/// A short id that tells this state DB's executions from those of any other HEM.
fn new_instance_id() -> String {
    let mut h = Sha256::new();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    h.update(now.as_nanos().to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    let stack_addr = &h as *const _ as usize;
    h.update(stack_addr.to_le_bytes());
    hex::encode(&h.finalize()[..6])
}

/// Finished results waiting for their ACK, oldest first.
struct Held {
    grace: Duration,
    entries: HashMap<String, OutboxEntry>,
    deadlines: VecDeque<(Instant, String)>,
}

impl Held {
    fn new(grace: Duration) -> Held {
        Held {
            grace,
            entries: HashMap::new(),
            deadlines: VecDeque::new(),
        }
    }

    /// Holds a result that finished at `at`.
    fn hold(&mut self, entry: OutboxEntry, at: Instant) {
        self.deadlines
            .push_back((at + self.grace, entry.uid.clone()));
        self.entries.insert(entry.uid.clone(), entry);
    }

    /// Whether `uid` was held (and is not any more).
    fn release(&mut self, uid: &str) -> bool {
        self.entries.remove(uid).is_some()
    }

    /// When the oldest held result is due, if any is held.
    fn next_deadline(&mut self) -> Option<Instant> {
        // Released results leave their deadline behind; skip those.
        while let Some((_, uid)) = self.deadlines.front() {
            if self.entries.contains_key(uid) {
                break;
            }
            self.deadlines.pop_front();
        }
        self.deadlines.front().map(|(at, _)| *at)
    }

    /// The results due by `now` (all of them with `None`), to be written to the outbox.
    fn due(&mut self, now: Option<Instant>) -> Vec<Request> {
        let mut out = Vec::new();
        while let Some((at, _)) = self.deadlines.front() {
            if now.is_some_and(|now| *at > now) {
                break;
            }
            if let Some((_, uid)) = self.deadlines.pop_front()
                && let Some(entry) = self.entries.remove(&uid)
            {
                out.push(Request::Finished { entry });
            }
        }
        out
    }
}

/// Clean-ups waiting for a commit to ride along with.
///
/// Forgetting an execution whose result was acknowledged (and deleting an acknowledged result
/// from the outbox) protects nothing: should the HEM die first, the restart reports the execution
/// again under the same EXECUTION_UID, and the driver drops it as a duplicate. So these requests
/// do not get a transaction of their own while work keeps coming: they wait up to
/// [`CLEANUP_DELAY`] for the next commit that happens anyway (an acceptance or a start mark).
/// Under a steady flow of hooks that is one commit per execution less.
#[derive(Default)]
struct Cleanups {
    requests: Vec<Request>,
    since: Option<Instant>,
}

/// Longest time a clean-up waits for a commit to ride along with.
const CLEANUP_DELAY: Duration = Duration::from_millis(200);

impl Cleanups {
    fn deadline(&self) -> Option<Instant> {
        self.since.map(|s| s + CLEANUP_DELAY)
    }

    /// Takes `batch` when it holds only clean-ups that may still wait; otherwise puts the waiting
    /// ones in front of it (they were queued first).
    fn settle(&mut self, batch: &mut Vec<Request>, stop: bool) {
        let only_cleanups = batch
            .iter()
            .all(|r| matches!(r, Request::Forget { .. } | Request::Acked { .. }));
        let due = self.since.is_some_and(|s| s.elapsed() >= CLEANUP_DELAY);
        let room = self.requests.len() + batch.len() < MAX_BATCH;
        if only_cleanups && !due && !stop && room {
            if !batch.is_empty() {
                self.since.get_or_insert_with(Instant::now);
            }
            self.requests.append(batch);
        } else {
            batch.splice(0..0, self.requests.drain(..));
            self.since = None;
        }
    }
}

fn writer(
    mut conn: Connection,
    rx: mpsc::Receiver<Request>,
    path: PathBuf,
    grace: Duration,
    (shared, accepts_done): (&Shared, watch::Sender<u64>),
) {
    let mut held = Held::new(grace);
    let mut settled: Option<Settled> = None;
    let mut cleanups = Cleanups::default();
    let mut stop = false;
    while !stop {
        let deadline = held
            .next_deadline()
            .into_iter()
            .chain(cleanups.deadline())
            .min();
        let first = if beside_or_sleep(shared, deadline) {
            match rx.try_recv() {
                Ok(req) => Some(req),
                Err(mpsc::TryRecvError::Empty) => None,
                Err(mpsc::TryRecvError::Disconnected) => {
                    stop = true;
                    None
                }
            }
        } else {
            match deadline {
                None => rx.recv().ok(),
                Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(req) => Some(req),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        stop = true;
                        None
                    }
                },
            }
        };
        let (mut finished, mut acks) = take_beside(shared);
        if first.is_none()
            && finished.is_empty()
            && acks.is_empty()
            && held.next_deadline().is_none()
            && cleanups.deadline().is_none()
        {
            // Every sender is gone and nothing is held.
            break;
        }
        let mut incoming: Vec<Request> = first.into_iter().collect();
        while !incoming.is_empty() && incoming.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(req) => incoming.push(req),
                Err(_) => break,
            }
        }
        if let Some(pos) = incoming.iter().position(|r| matches!(r, Request::Stop)) {
            stop = true;
            incoming.truncate(pos);
            // Requests queued after Stop come from still-running callers; commit them too.
            while let Ok(req) = rx.try_recv() {
                if !matches!(req, Request::Stop) {
                    incoming.push(req);
                }
            }
            let (more_finished, more_acks) = take_beside(shared);
            finished.extend(more_finished);
            acks.extend(more_acks);
        }
        // A result is queued before it is sent, so before its ACK, and both lists were taken
        // together: an ACK always finds its result held here or already in the outbox.
        for (entry, at) in finished {
            held.hold(entry, at);
        }
        let mut batch = Vec::with_capacity(incoming.len() + acks.len());
        for req in incoming {
            match req {
                Request::OnSettled(f) => settled = Some(f),
                Request::Wake => {}
                other => batch.push(other),
            }
        }
        for uid in acks {
            if held.release(&uid) {
                batch.push(Request::Forget { uid });
            } else {
                // Its result was written to the outbox (or never held here).
                batch.push(Request::Acked { uid });
            }
        }
        batch.extend(held.due((!stop).then(Instant::now)));
        cleanups.settle(&mut batch, stop);
        if batch.is_empty() {
            continue;
        }
        let accepted = batch
            .iter()
            .filter_map(|r| match r {
                Request::Accept { number, .. } => Some(*number),
                _ => None,
            })
            .max();
        let outcome = commit(&mut conn, &batch);
        match outcome {
            Ok(()) => {
                notify_settled(shared, settled.as_ref(), &batch);
                reply_all(batch, Ok(()));
            }
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "state DB group commit failed; retrying requests one by one");
                // Commit each request on its own so that one bad request fails alone.
                for req in batch {
                    let result = commit(&mut conn, std::slice::from_ref(&req));
                    match &result {
                        Ok(()) => {
                            notify_settled(shared, settled.as_ref(), std::slice::from_ref(&req))
                        }
                        Err(e) => {
                            tracing::error!(error = %e, path = %path.display(), "state DB write failed")
                        }
                    }
                    reply_all(vec![req], result.map_err(|e| e.to_string()));
                }
            }
        }
        // Done, committed or failed: a start mark after a failed acceptance names no row.
        if let Some(number) = accepted {
            accepts_done.send_if_modified(|done| {
                let newer = number > *done;
                *done = (*done).max(number);
                newer
            });
        }
    }
    tracing::debug!(path = %path.display(), "state DB writer stopped");
}

/// Whether finished results or acknowledgements are waiting beside the queue; when none are,
/// records that the writer is about to sleep until `deadline` (`None`: until a request comes),
/// so that what is queued beside meanwhile wakes it when it must.
fn beside_or_sleep(shared: &Shared, deadline: Option<Instant>) -> bool {
    let Ok(mut beside) = shared.beside.lock() else {
        return false;
    };
    let waiting = !beside.finished.is_empty() || !beside.acks.is_empty();
    beside.writer = match (waiting, deadline) {
        (true, _) => WriterSleep::Awake,
        (false, Some(at)) => WriterSleep::Until(at),
        (false, None) => WriterSleep::Forever,
    };
    waiting
}

/// Takes the finished results and acknowledgements waiting beside the queue.
fn take_beside(shared: &Shared) -> (Vec<(OutboxEntry, Instant)>, Vec<String>) {
    match shared.beside.lock() {
        Ok(mut beside) => {
            beside.writer = WriterSleep::Awake;
            (
                std::mem::take(&mut beside.finished),
                std::mem::take(&mut beside.acks),
            )
        }
        Err(_) => (Vec::new(), Vec::new()),
    }
}

/// Tells the start marks and `settled` which executions the committed `batch` took out of the
/// state DB.
fn notify_settled(shared: &Shared, settled: Option<&Settled>, batch: &[Request]) {
    let uids: Vec<String> = batch
        .iter()
        .filter_map(|r| match r {
            Request::Finished { entry } => Some(entry.uid.clone()),
            Request::Forget { uid } => Some(uid.clone()),
            _ => None,
        })
        .collect();
    if uids.is_empty() {
        return;
    }
    if let Ok(mut marks) = shared.marks.lock() {
        marks.settled(&uids);
    }
    if let Some(settled) = settled {
        settled(uids);
    }
}

fn reply_all(batch: Vec<Request>, result: Result<(), String>) {
    for req in batch {
        let reply = match req {
            Request::Started { reply, .. } => Some(reply),
            Request::Accept { .. }
            | Request::Finished { .. }
            | Request::Acked { .. }
            | Request::Forget { .. }
            | Request::OnSettled(_)
            | Request::Wake
            | Request::Stop => None,
        };
        if let Some(reply) = reply {
            let _ = reply.send(result.clone());
        }
    }
}

fn commit(conn: &mut Connection, batch: &[Request]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut watermark: Option<u64> = None;
    for req in batch {
        match req {
            Request::Accept {
                execs,
                watermark: w,
                ..
            } => {
                let mut stmt = tx.prepare_cached(
                    "INSERT OR IGNORE INTO executions (uid, seq, hook_id, lane, resource, event_key,
                        command, arguments, stdin, timeout_secs, target, target_value, report_host,
                        retry, started)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 0)",
                )?;
                for e in execs {
                    let (kind, value) = match &e.plan.target {
                        Target::Local => ("local", None),
                        Target::Remote { host } => ("remote", Some(host.as_str())),
                        Target::Refused { reason } => ("refused", Some(reason.as_str())),
                    };
                    stmt.execute(params![
                        e.uid,
                        e.seq as i64,
                        e.hook_id,
                        e.lane,
                        e.resource,
                        e.event_key,
                        e.plan.command,
                        e.plan.arguments,
                        e.plan.stdin,
                        e.plan.timeout_secs.map(|t| t as i64),
                        kind,
                        value,
                        e.plan.report_host,
                        e.plan.retry,
                    ])?;
                }
                if let Some(w) = w {
                    watermark = Some(watermark.map_or(*w, |cur| cur.max(*w)));
                }
            }
            Request::Started { uid, .. } => {
                tx.prepare_cached("INSERT OR IGNORE INTO started (uid) VALUES (?1)")?
                    .execute([uid])?;
            }
            Request::Finished { entry } => {
                forget(&tx, &entry.uid)?;
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO outbox (uid, hook_id, frame) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![entry.uid, entry.hook_id, &*entry.frame])?;
            }
            Request::Forget { uid } => forget(&tx, uid)?,
            Request::Acked { uid } => {
                tx.prepare_cached("DELETE FROM outbox WHERE uid = ?1")?
                    .execute([uid])?;
            }
            Request::OnSettled(_) | Request::Wake | Request::Stop => {}
        }
    }
    if let Some(w) = watermark {
        tx.prepare_cached(
            "INSERT INTO meta (key, value) VALUES ('watermark', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        )?
        .execute([w.to_string()])?;
    }
    tx.commit()
}

/// Removes an execution that has its result.
fn forget(tx: &rusqlite::Transaction<'_>, uid: &str) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM executions WHERE uid = ?1")?
        .execute([uid])?;
    tx.prepare_cached("DELETE FROM started WHERE uid = ?1")?
        .execute([uid])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_result_wakes_only_a_writer_that_would_sleep_past_its_hold() {
        let now = Instant::now();
        let due = now + ACK_GRACE;
        assert!(WriterSleep::Forever.sleeps_past(due));
        assert!(WriterSleep::Until(due + Duration::from_millis(1)).sleeps_past(due));
        assert!(!WriterSleep::Until(due).sleeps_past(due));
        assert!(!WriterSleep::Until(now).sleeps_past(due));
        // A writer at work looks at the lists before it sleeps again.
        assert!(!WriterSleep::Awake.sleeps_past(due));
    }

    #[test]
    fn held_results_are_due_by_when_they_finished() {
        let mut held = Held::new(Duration::from_millis(100));
        let t0 = Instant::now();
        held.hold(entry("a"), t0);
        held.hold(entry("b"), t0 + Duration::from_millis(50));
        assert_eq!(held.next_deadline(), Some(t0 + Duration::from_millis(100)));
        let due = held.due(Some(t0 + Duration::from_millis(120)));
        assert!(matches!(&due[..], [Request::Finished { entry }] if entry.uid == "a"));
        assert!(held.release("b"));
        assert_eq!(held.next_deadline(), None);
    }

    fn entry(uid: &str) -> OutboxEntry {
        OutboxEntry {
            uid: uid.into(),
            hook_id: 1,
            frame: "0 1 eA==".into(),
        }
    }
}
