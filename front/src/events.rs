//! The event bus: the one path for every HOOK_MESSAGE and RETRY to the driver.
//!
//! Every event is first written to a durable outbox table: a STATE event inside the transaction
//! that changes the object ([`EventBus::enqueue_state`]), an API event inside the transaction of
//! the call ([`EventBus::enqueue_api`]), a retry inside the transaction of `one.hook.retry`
//! ([`EventBus::retry`], a transaction of its own elsewhere). The driver link runs
//! [`EventBus::deliver`], which writes the outbox in sequence order as MAD lines to the driver's
//! stdin, with the outbox sequence number in the id word (`EXECUTE  <seq> <b64>`). So events
//! produced while the driver is down (or not configured) wait on disk and go out, in order, when
//! it is back.
//!
//! Delivery acknowledgement ([`one_proto::mad`]): a driver that journals what it reads answers
//! `JOURNALED SUCCESS <seq> -` once everything up to that line is journaled. The outbox keeps
//! every event until such a line covers it (deleted in batches: one delete for every 1,024
//! acknowledged events or 100 ms, whichever comes first), and a new driver session starts again from the oldest event kept, so lines that sat in
//! the pipe of a driver that died are sent again (the driver drops the ones it had journaled).
//! A driver that never acknowledges (the reference `one_hm`) is recognised when no `JOURNALED`
//! line arrives within the acknowledgement timeout ([`DEFAULT_ACK_TIMEOUT`], oned.conf
//! `EVENT_OUTBOX = [ ACK_TIMEOUT = s ]`) of the first line written to it: from then on events are
//! deleted once written, as the reference oned does, and a warning says that events in the pipe
//! can be lost with this driver. What was learnt carries over to the next session, and a
//! `JOURNALED` line switches back at any time.
//!
//! The same sender writes the result acknowledgements of the driver link (`STORED  <id> -`).
//!
//! Committers write to the pipe too, so that a committed event does not wait for the sender's
//! task to be scheduled: once the sender has caught up with the outbox in a session whose driver
//! acknowledges, it hands the pipe over ([`Direct`]), and [`EventBus::notify`], called by every
//! committer after its commit, then writes the committed events after the shared cursor itself,
//! without waiting (the pipe is non-blocking). What does not fit in the pipe, a full batch, or a
//! failed write takes the pipe back for the sender, which writes the unwritten bytes first. The
//! pipe has one writer at a time: whoever holds the [`Direct`] lock while the pipe is handed
//! over, the sender otherwise; both read and advance one cursor, so every committed event goes
//! out once per session, in outbox order.
//!
//! The outbox is bounded: when it holds more than its limit, the oldest events are dropped (down
//! to 90% of the limit, so the error log is not repeated for every new event) with an error
//! log.

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use one_proto::encoding::b64_encode;
use one_proto::event::{ApiEvent, HookMessage, StateEvent};
use one_proto::mad::{oned_execute_line_with_id, oned_retry_line_with_id, stored_line};
use one_proto::retry::RetryMessage;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, watch};
// Tokio's clock, so that tests can pause it.
use tokio::time::Instant;

use crate::db::{Cached, Db};

/// How many events the outbox keeps when the configuration does not say.
pub const DEFAULT_OUTBOX_LIMIT: u64 = 100_000;

/// How many events one delivery batch reads and writes.
const BATCH: usize = 128;

/// How often the sender looks at the outbox even when nobody told it about a new event (a
/// safety net; every writer notifies it).
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Acknowledged events deleted together at most.
const SETTLE_EVERY: i64 = 1024;
/// Longest time acknowledged events wait for their delete (after the first of a session).
const SETTLE_PERIOD: Duration = Duration::from_millis(100);
/// After a `STORED` line is written, how long the sender waits before it wakes up for the
/// next one alone: a newer one goes out meanwhile with the next events written, so that
/// a stream of stored results does not wake the sender once per result batch.
const STORED_PERIOD: Duration = Duration::from_millis(20);

/// How long a driver has to acknowledge the first lines written to it before it is taken for
/// one that never does, when the configuration does not say.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(5);

const KIND_EXECUTE: i64 = 0;
const KIND_RETRY: i64 = 1;

/// Errors of writing to or delivering from the outbox.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("event outbox database error: {0}")]
    Store(#[from] rusqlite::Error),
    #[error("cannot write events to the driver: {0}")]
    Write(#[source] std::io::Error),
}

/// What an outbox entry becomes on the driver's stdin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// `EXECUTE  <seq> <b64 HOOK_MESSAGE>`.
    Execute,
    /// `RETRY  <seq> <b64 RETRY message>`.
    Retry,
}

/// What the sender knows about the driver's delivery acknowledgements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckMode {
    /// Nothing yet: events are kept until acknowledged, for at most the acknowledgement timeout.
    Unknown,
    /// The driver acknowledges: events are kept until acknowledged.
    Acking,
    /// The driver does not acknowledge: events are deleted once written.
    NonAcking,
}

impl AckMode {
    fn from_u8(v: u8) -> AckMode {
        match v {
            1 => AckMode::Acking,
            2 => AckMode::NonAcking,
            _ => AckMode::Unknown,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            AckMode::Unknown => 0,
            AckMode::Acking => 1,
            AckMode::NonAcking => 2,
        }
    }
}

/// What the driver link tells the sender during one driver session.
#[derive(Debug)]
pub struct SessionAcks {
    /// The highest event id the driver acknowledged with `JOURNALED SUCCESS <id> -` (0: none).
    pub journaled: watch::Receiver<u64>,
    /// The highest driver result id up to which results are stored in the hook log (0: none),
    /// to be written to the driver as `STORED  <id> -`.
    pub stored: watch::Receiver<u64>,
}

/// One event waiting in the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    pub seq: i64,
    pub kind: EntryKind,
    /// Strict base64 of the message.
    pub payload: String,
}

impl OutboxEntry {
    /// Appends the MAD line and its LF to `buf`.
    fn write_line(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(self.line().as_bytes());
        buf.push(b'\n');
    }

    /// The MAD line, without LF, with the sequence number as event id.
    pub fn line(&self) -> String {
        let id = u64::try_from(self.seq).unwrap_or(0);
        match self.kind {
            EntryKind::Execute => oned_execute_line_with_id(id, &self.payload),
            EntryKind::Retry => oned_retry_line_with_id(id, &self.payload),
        }
    }
}

/// The handle every producer and the sender share.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    /// Wakes the sender; a permit is stored when it is busy, so no wake-up is lost.
    notify: Notify,
    /// Set by [`EventBus::notify`]: events were committed since the sender last read the
    /// outbox.
    committed: AtomicBool,
    limit: AtomicU64,
    /// [`AckMode`] as learnt from the drivers so far.
    ack_mode: AtomicU8,
    /// The acknowledgement timeout in milliseconds.
    ack_timeout_ms: AtomicU64,
    /// The driver's pipe as shared between the sender and the committers.
    direct: Mutex<Direct>,
}

/// The current driver session's pipe, for the committers' writes (see the module
/// documentation). Lock order: the writer's connection, this lock, the read-only connection
/// (which the committers read through while they hold it); never backwards.
#[derive(Default)]
struct Direct {
    /// The session's pipe (a duplicate of the sender's descriptor, non-blocking), for as long
    /// as the session lasts.
    pipe: Option<File>,
    /// Committers may write to the pipe: the sender has caught up and handed it over.
    handed: bool,
    /// The newest event id written to this session's pipe (or held in `backlog`).
    cursor: i64,
    /// The bytes a committer could not write without waiting; the sender writes them before
    /// anything else when it takes the pipe back.
    backlog: Vec<u8>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("limit", &self.inner.limit.load(Ordering::Relaxed))
            .finish()
    }
}

impl EventBus {
    /// A bus over the outbox of `db`, with the default limit.
    pub fn new(db: Db) -> EventBus {
        EventBus {
            inner: Arc::new(Inner {
                db,
                notify: Notify::new(),
                committed: AtomicBool::new(false),
                limit: AtomicU64::new(DEFAULT_OUTBOX_LIMIT),
                ack_mode: AtomicU8::new(AckMode::Unknown.to_u8()),
                ack_timeout_ms: AtomicU64::new(millis(DEFAULT_ACK_TIMEOUT)),
                direct: Mutex::default(),
            }),
        }
    }

    /// Sets how many events the outbox keeps at most (at least 1).
    pub fn set_limit(&self, limit: u64) {
        self.inner.limit.store(limit.max(1), Ordering::Relaxed);
    }

    /// The current limit.
    pub fn limit(&self) -> u64 {
        self.inner.limit.load(Ordering::Relaxed)
    }

    /// Sets how long a driver has to acknowledge the first events written to it before events
    /// are deleted once written (at least 1 ms).
    pub fn set_ack_timeout(&self, timeout: Duration) {
        self.inner
            .ack_timeout_ms
            .store(millis(timeout).max(1), Ordering::Relaxed);
    }

    /// The acknowledgement timeout.
    pub fn ack_timeout(&self) -> Duration {
        Duration::from_millis(self.inner.ack_timeout_ms.load(Ordering::Relaxed))
    }

    /// What the sender has learnt about the driver's acknowledgements.
    pub fn ack_mode(&self) -> AckMode {
        AckMode::from_u8(self.inner.ack_mode.load(Ordering::Relaxed))
    }

    fn set_ack_mode(&self, mode: AckMode) -> AckMode {
        AckMode::from_u8(self.inner.ack_mode.swap(mode.to_u8(), Ordering::Relaxed))
    }

    /// Writes the API event of a call inside the caller's transaction (the call's own, see
    /// [`Db::atomic`]). Call [`EventBus::notify`] after the commit.
    pub fn enqueue_api(&self, tx: &Transaction<'_>, event: &ApiEvent) -> rusqlite::Result<()> {
        let payload = b64_encode(HookMessage::Api(event.clone()).to_xml().as_bytes());
        insert(tx, KIND_EXECUTE, &payload, self.limit()).map(|_| ())
    }

    /// Records the API event of a call, in its own transaction, and wakes the sender.
    pub fn emit_api(&self, event: &ApiEvent) -> Result<(), EventError> {
        let payload = b64_encode(HookMessage::Api(event.clone()).to_xml().as_bytes());
        let limit = self.limit();
        self.inner
            .db
            .write(|tx| insert(tx, KIND_EXECUTE, &payload, limit).map(|_| ()))?;
        self.notify();
        Ok(())
    }

    /// Records a RETRY request, in its own transaction, and wakes the sender.
    pub fn retry(&self, message: &RetryMessage) -> Result<(), EventError> {
        let payload = b64_encode(message.to_xml().as_bytes());
        let limit = self.limit();
        self.inner
            .db
            .write(|tx| insert(tx, KIND_RETRY, &payload, limit).map(|_| ()))?;
        self.notify();
        Ok(())
    }

    /// Writes a STATE event inside the caller's transaction, so that it exists exactly when the
    /// state change does. Call [`EventBus::notify`] after the commit.
    pub fn enqueue_state(&self, tx: &Transaction<'_>, event: &StateEvent) -> rusqlite::Result<()> {
        let payload = b64_encode(HookMessage::State(event.clone()).to_xml().as_bytes());
        insert(tx, KIND_EXECUTE, &payload, self.limit()).map(|_| ())
    }

    /// Call it after committing a transaction that enqueued events: writes them to the driver
    /// when the sender has handed the pipe over, else wakes the sender. Never waits for the
    /// driver.
    pub fn notify(&self) {
        let mut direct = self.direct();
        if direct.handed && self.write_committed(&mut direct) {
            return;
        }
        // Under the lock, so that the sender, which looks at it before it hands the pipe
        // over, cannot miss it.
        self.inner.committed.store(true, Ordering::Release);
        drop(direct);
        self.inner.notify.notify_one();
    }

    fn direct(&self) -> MutexGuard<'_, Direct> {
        // Every change under the lock leaves the state whole, so a poisoned one is usable.
        self.inner
            .direct
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes the committed events after the cursor to the handed-over pipe, without waiting.
    /// Returns false, with the pipe taken back for the sender, when anything is left for it: a
    /// full batch (there may be more), bytes the pipe did not take (in the backlog), an error.
    fn write_committed(&self, direct: &mut Direct) -> bool {
        let batch = match self.fetch(direct.cursor, BATCH) {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the event outbox; the sender takes over");
                direct.handed = false;
                return false;
            }
        };
        let Some(last) = batch.last().map(|e| e.seq) else {
            return true;
        };
        let mut buf = Vec::with_capacity(batch.len() * 512);
        for entry in &batch {
            entry.write_line(&mut buf);
        }
        let Some(pipe) = direct.pipe.as_ref() else {
            direct.handed = false;
            return false;
        };
        let written = write_nonblocking(pipe, &buf);
        direct.cursor = last;
        if written < buf.len() || batch.len() >= BATCH {
            direct.backlog.extend_from_slice(&buf[written..]);
            direct.handed = false;
            return false;
        }
        true
    }

    /// How many events wait in the outbox.
    pub fn pending(&self) -> rusqlite::Result<u64> {
        self.inner.db.read(count)
    }

    /// Up to `max` events with a sequence number above `after`, oldest first.
    pub fn fetch(&self, after: i64, max: usize) -> rusqlite::Result<Vec<OutboxEntry>> {
        self.inner.db.committed(|c| fetch(c, after, max))
    }

    /// Deletes every event up to and including `seq`.
    pub fn remove_through(&self, seq: i64) -> rusqlite::Result<usize> {
        self.inner
            .db
            .write(|tx| tx.run("DELETE FROM event_outbox WHERE seq <= ?1", [seq]))
    }

    /// Writes the outbox to `out` as MAD lines, in order from the oldest event kept, until
    /// `stop` turns true (checked between batches) or writing fails; in between, the result
    /// acknowledgements of `acks.stored`. Events are deleted as `acks.journaled` covers them, or
    /// once written when the driver does not acknowledge (see the module documentation).
    ///
    /// `direct` is a duplicate of `out`'s descriptor: with it, the sender hands the pipe over
    /// to the committers whenever it has caught up and the driver acknowledges (see the module
    /// documentation).
    ///
    /// Returns what was written when stopped (for [`EventBus::finish_session`]); an error when
    /// the writer failed (the driver went away), in which case the events not yet deleted stay
    /// in the outbox.
    pub async fn deliver<W: AsyncWrite + Unpin>(
        &self,
        out: &mut W,
        direct: Option<OwnedFd>,
        mut acks: SessionAcks,
        mut stop: watch::Receiver<bool>,
    ) -> Result<Written, EventError> {
        let mut session = Session::default();
        let direct = direct.and_then(|fd| match nonblocking(fd) {
            Ok(pipe) => Some(pipe),
            Err(e) => {
                tracing::warn!(error = %e, "cannot make the driver's pipe non-blocking; only the sender writes to it");
                None
            }
        });
        let can_hand_over = direct.is_some();
        // Whatever ends the session (a stop, an error, the task aborted), the committers no
        // longer write to its pipe.
        let _session_end = SessionEnd::start(self, direct);
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        // A session starts from the oldest event kept; after that the outbox is read again only
        // when a producer said it committed events, when the last batch was full, or at the
        // safety-net poll, so that an acknowledgement or a `STORED` line wakes the sender
        // without a read of the database.
        let mut fetch_due = true;
        let mut fetched = Instant::now();
        loop {
            buf.clear();
            let stopping = *stop.borrow();
            if session.handed {
                // The committers may have written events meanwhile; the pipe comes back when
                // the sender has something to write or stops, or a committer gave it back.
                let mut direct = self.direct();
                session.cursor = direct.cursor;
                let wanted = stopping
                    || fetch_due
                    || *acks.stored.borrow() > session.stored_sent
                    || self.inner.committed.load(Ordering::Acquire);
                if wanted || !direct.handed {
                    direct.handed = false;
                    session.handed = false;
                    buf.append(&mut direct.backlog);
                }
            }
            if stopping {
                // Never leave half a line before the driver link's FINALIZE.
                if !buf.is_empty() {
                    out.write_all(&buf).await.map_err(EventError::Write)?;
                    out.flush().await.map_err(EventError::Write)?;
                }
                return Ok(Written {
                    through: session.cursor,
                    acknowledged: session.acked,
                });
            }
            let stored = *acks.stored.borrow_and_update();
            if stored > session.stored_sent {
                buf.extend_from_slice(stored_line(stored).as_bytes());
                buf.push(b'\n');
                session.stored_sent = stored;
                session.stored_written = Some(Instant::now());
            }
            let mut batch = Vec::new();
            if std::mem::take(&mut fetch_due) | self.inner.committed.swap(false, Ordering::AcqRel) {
                // Read here rather than on the blocking pool, which would cost two thread
                // hand-offs on every event's way to the driver: the read-only connection is used
                // by nobody else while the sender holds the pipe and, in WAL mode, never waits
                // for the writer, and a batch is small enough to read in a fraction of a
                // millisecond.
                batch = self.fetch(session.cursor, BATCH)?;
                fetched = Instant::now();
                fetch_due = batch.len() >= BATCH;
                if fetch_due {
                    // Catching up on a backlog: let the runtime's other tasks in between reads.
                    tokio::task::yield_now().await;
                }
            }
            for entry in &batch {
                entry.write_line(&mut buf);
            }
            if !buf.is_empty() {
                out.write_all(&buf).await.map_err(EventError::Write)?;
                out.flush().await.map_err(EventError::Write)?;
            }
            if let Some(last) = batch.last().map(|e| e.seq) {
                session.cursor = last;
                session.first_write.get_or_insert_with(Instant::now);
                tracing::debug!(
                    count = batch.len(),
                    seq = last,
                    "events written to the driver"
                );
            }
            // New events go out before acknowledged ones are deleted, and the deletes are
            // gathered into one transaction every SETTLE_EVERY events or SETTLE_PERIOD, so that
            // the sender does not add a write to the database per event or per acknowledgement.
            let journaled = *acks.journaled.borrow_and_update();
            let through = self.learn(&mut session, journaled);
            let settle_at = settle_due(&session, through);
            if settle_at.is_some_and(|at| at <= Instant::now()) {
                self.remove(&mut session, through).await;
                session.settled = Some(Instant::now());
            }
            if fetch_due {
                continue;
            }
            if can_hand_over && session.acked && !session.handed {
                let mut direct = self.direct();
                // Events committed since the read go out with the sender's next read.
                if self.inner.committed.load(Ordering::Acquire) {
                    continue;
                }
                direct.cursor = session.cursor;
                direct.handed = true;
                session.handed = true;
            }
            // Wake up for new events, acknowledgements, the acknowledgement deadline, the next
            // gathered delete or stop.
            let now = Instant::now();
            let mut wait = (fetched + POLL_INTERVAL).saturating_duration_since(now);
            if let (false, Some(at), AckMode::Unknown | AckMode::Acking) =
                (session.acked, session.first_write, self.ack_mode())
            {
                wait = wait.min((at + self.ack_timeout()).saturating_duration_since(now));
            }
            if let Some(at) = settle_due(&session, through) {
                wait = wait.min(at.saturating_duration_since(now));
            }
            // Acknowledgements are looked at only once they can lead to something: while the
            // driver's way of acknowledging is unknown, at once; after that, when the next
            // gathered delete may be due. New events wake the sender through `notify` and
            // take the newest acknowledgements with them.
            let journaled_from = if session.acked {
                session.settled.map(|at| at + SETTLE_PERIOD)
            } else {
                None
            };
            let stored_from = session.stored_written.map(|at| at + STORED_PERIOD);
            tokio::select! {
                _ = self.inner.notify.notified() => {}
                _ = next_change_from(journaled_from, &mut acks.journaled) => {}
                _ = next_change_from(stored_from, &mut acks.stored) => {}
                _ = tokio::time::sleep(wait) => fetch_due = fetched.elapsed() >= POLL_INTERVAL,
                _ = stop.changed() => {}
            }
        }
    }

    /// Settles a session that ended with `FINALIZE`, once the driver's output is read to the
    /// end: the last acknowledgements (`journaled`) of a driver that acknowledges are applied;
    /// for one that does not, everything written is deleted if it exited cleanly (it read
    /// every line before `FINALIZE`), so that a restarted front-end does not send it again.
    pub async fn finish_session(&self, written: Written, journaled: u64, clean_exit: bool) {
        let through = if written.acknowledged || journaled > 0 {
            i64::try_from(journaled)
                .unwrap_or(i64::MAX)
                .min(written.through)
        } else if clean_exit {
            written.through
        } else {
            return;
        };
        if through <= 0 {
            return;
        }
        let bus = self.clone();
        match tokio::task::spawn_blocking(move || bus.remove_through(through)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!(seq = through, error = %e, "cannot delete delivered events")
            }
            Err(e) => tracing::error!(seq = through, error = %e, "cannot delete delivered events"),
        }
    }

    /// Learns from what the driver acknowledged so far (`journaled`, 0 for nothing): the
    /// [`AckMode`], and the fall back to deleting on write when the driver stays silent past
    /// the acknowledgement timeout. Returns the newest event that may be deleted.
    fn learn(&self, session: &mut Session, journaled: u64) -> i64 {
        if journaled > 0 && !session.acked {
            session.acked = true;
            if self.set_ack_mode(AckMode::Acking) != AckMode::Acking {
                tracing::info!(
                    "the driver acknowledges events: the outbox keeps them until they are journaled"
                );
            }
        }
        if !session.acked
            && self.ack_mode() != AckMode::NonAcking
            && session
                .first_write
                .is_some_and(|at| at.elapsed() >= self.ack_timeout())
        {
            self.set_ack_mode(AckMode::NonAcking);
            tracing::warn!(
                timeout_ms = u64::try_from(self.ack_timeout().as_millis()).unwrap_or(u64::MAX),
                "the driver does not acknowledge events (no JOURNALED line since the first events were written): \
                 events are deleted once written, and events in the pipe can be lost when this driver dies"
            );
        }
        if self.ack_mode() == AckMode::NonAcking && !session.acked {
            return session.cursor;
        }
        let acked = i64::try_from(journaled).unwrap_or(i64::MAX);
        if acked > session.cursor && !session.warned_ahead {
            session.warned_ahead = true;
            tracing::warn!(
                acknowledged = acked,
                written = session.cursor,
                "the driver acknowledged an event id that was not written to it; ignored beyond what was written"
            );
        }
        acked.min(session.cursor)
    }

    /// Deletes the events up to `through` that this session has not deleted yet.
    async fn remove(&self, session: &mut Session, through: i64) {
        if through <= session.deleted {
            return;
        }
        let bus = self.clone();
        match tokio::task::spawn_blocking(move || bus.remove_through(through)).await {
            Ok(Ok(_)) => session.deleted = through,
            // Tried again at the next gathered delete.
            Ok(Err(e)) => {
                tracing::error!(seq = through, error = %e, "cannot delete delivered events")
            }
            Err(e) => tracing::error!(seq = through, error = %e, "cannot delete delivered events"),
        }
    }
}

/// When the events up to `through` are to be deleted (`None`: nothing to delete): at once the
/// first time in a session or when SETTLE_EVERY of them wait, else SETTLE_PERIOD after the last
/// delete.
fn settle_due(session: &Session, through: i64) -> Option<Instant> {
    let waiting = through - session.deleted;
    if waiting <= 0 {
        return None;
    }
    match session.settled {
        Some(at) if waiting < SETTLE_EVERY => Some(at + SETTLE_PERIOD),
        _ => Some(Instant::now()),
    }
}

/// What a stopped [`EventBus::deliver`] had written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// The newest event id written (0: none).
    pub through: i64,
    /// The driver acknowledged events in this session.
    pub acknowledged: bool,
}

/// The sender's state for one driver session.
#[derive(Debug, Default)]
struct Session {
    /// The newest event written.
    cursor: i64,
    /// The newest event deleted by this session.
    deleted: i64,
    /// A `JOURNALED` line arrived.
    acked: bool,
    /// When the first event was written.
    first_write: Option<Instant>,
    /// The newest `STORED` id written.
    stored_sent: u64,
    /// When the last `STORED` line was written.
    stored_written: Option<Instant>,
    /// When acknowledged events were last deleted.
    settled: Option<Instant>,
    warned_ahead: bool,
    /// The pipe is handed over to the committers.
    handed: bool,
}

/// Gives a session's pipe to the committers' side on creation and takes it away on drop.
struct SessionEnd<'a> {
    bus: &'a EventBus,
}

impl<'a> SessionEnd<'a> {
    fn start(bus: &'a EventBus, pipe: Option<File>) -> SessionEnd<'a> {
        *bus.direct() = Direct {
            pipe,
            ..Direct::default()
        };
        SessionEnd { bus }
    }
}

impl Drop for SessionEnd<'_> {
    fn drop(&mut self) {
        *self.bus.direct() = Direct::default();
    }
}

/// `fd` as a non-blocking file (the flag belongs to the open pipe, shared with the sender's
/// descriptor, which is non-blocking already).
fn nonblocking(fd: OwnedFd) -> nix::Result<File> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GETFL)?);
    fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(File::from(fd))
}

/// Writes as much of `buf` as the pipe takes without waiting; how many bytes it took. An error
/// other than a full pipe ends it too: the sender meets it again on its own write.
fn write_nonblocking(mut pipe: &File, buf: &[u8]) -> usize {
    let mut written = 0;
    while written < buf.len() {
        match pipe.write(&buf[written..]) {
            Ok(0) => break,
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    written
}

/// Resolves when `rx` has a new value; never once its sender is gone (the session is ending,
/// and a closed channel would otherwise wake the sender in a loop).
async fn next_change(rx: &mut watch::Receiver<u64>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// [`next_change`], looking at `rx` only from `from` on (at once when `None`): a change made
/// before then is seen then.
async fn next_change_from(from: Option<Instant>, rx: &mut watch::Receiver<u64>) {
    if let Some(at) = from {
        tokio::time::sleep_until(at).await;
    }
    next_change(rx).await
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Appends one event and keeps the outbox within `limit`; returns its sequence number.
fn insert(tx: &Transaction<'_>, kind: i64, payload: &str, limit: u64) -> rusqlite::Result<i64> {
    tx.run(
        "INSERT INTO event_outbox (kind, payload, created) VALUES (?1, ?2, ?3)",
        params![kind, payload, now_ms()],
    )?;
    let seq = tx.last_insert_rowid();
    trim(tx, seq, limit)?;
    Ok(seq)
}

/// Drops the oldest events when the outbox holds more than `limit`. Sequence numbers are
/// contiguous (assigned under the one writer, deleted only from the oldest end), so the count
/// is the span between the oldest and the newest.
fn trim(tx: &Transaction<'_>, newest: i64, limit: u64) -> rusqlite::Result<()> {
    let oldest: Option<i64> = tx.one("SELECT MIN(seq) FROM event_outbox", [], |r| r.get(0))?;
    let Some(oldest) = oldest else {
        return Ok(());
    };
    let held = u64::try_from(newest - oldest + 1).unwrap_or(0);
    if held <= limit {
        return Ok(());
    }
    let keep = i64::try_from((limit - limit / 10).max(1)).unwrap_or(i64::MAX);
    let cutoff = newest - keep;
    let dropped = tx.run("DELETE FROM event_outbox WHERE seq <= ?1", [cutoff])?;
    tracing::error!(
        dropped,
        limit,
        oldest_kept = cutoff + 1,
        "event outbox over its limit: the oldest events were dropped and will never reach the driver"
    );
    Ok(())
}

fn count(c: &Connection) -> rusqlite::Result<u64> {
    let span: Option<(i64, i64)> = c
        .one("SELECT MIN(seq), MAX(seq) FROM event_outbox", [], |r| {
            Ok(
                match (r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?) {
                    (Some(a), Some(b)) => Some((a, b)),
                    _ => None,
                },
            )
        })
        .optional()?
        .flatten();
    Ok(span.map_or(0, |(a, b)| u64::try_from(b - a + 1).unwrap_or(0)))
}

const FETCH: &str = "SELECT seq, kind, payload FROM event_outbox WHERE seq > ?1 ORDER BY seq";

fn fetch(c: &Connection, after: i64, max: usize) -> rusqlite::Result<Vec<OutboxEntry>> {
    // No `LIMIT ?`: SQLite prepares a statement again at every run when its LIMIT is a bound
    // parameter. Rows come in rowid order as they are read, so taking `max` of them reads no
    // more.
    let mut stmt = c.prepare_cached(FETCH)?;
    let rows = stmt.query_map([after], |r| {
        let kind: i64 = r.get(1)?;
        Ok(OutboxEntry {
            seq: r.get(0)?,
            kind: if kind == KIND_RETRY {
                EntryKind::Retry
            } else {
                EntryKind::Execute
            },
            payload: r.get(2)?,
        })
    })?;
    rows.take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use one_proto::event::ObjectKind;

    fn bus() -> (tempfile::TempDir, EventBus) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("one.db")).unwrap();
        (dir, EventBus::new(db))
    }

    fn state_event(id: i64) -> StateEvent {
        StateEvent {
            object: ObjectKind::Host,
            state: "INIT".into(),
            lcm_state: None,
            resource_id: id,
            service_id: None,
            remote_host: Some(format!("node{id}")),
            body: format!("<HOST><ID>{id}</ID></HOST>"),
        }
    }

    fn decode(entry: &OutboxEntry) -> String {
        String::from_utf8(one_proto::encoding::b64_decode_strict(&entry.payload).unwrap()).unwrap()
    }

    #[test]
    fn events_keep_their_order_and_kind() {
        let (_dir, bus) = bus();
        bus.inner
            .db
            .write(|tx| bus.enqueue_state(tx, &state_event(1)))
            .unwrap();
        bus.retry(&RetryMessage {
            arguments: "a b".into(),
            hook_id: 3,
            remote_host: None,
        })
        .unwrap();
        let entries = bus.fetch(0, 10).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0].line(),
            format!("EXECUTE  {} {}", entries[0].seq, entries[0].payload)
        );
        assert!(decode(&entries[0]).contains("<HOOK_OBJECT>HOST</HOOK_OBJECT>"));
        assert_eq!(
            entries[1].line(),
            format!("RETRY  {} {}", entries[1].seq, entries[1].payload)
        );
        assert!(decode(&entries[1]).contains("<HOOK_ID>3</HOOK_ID>"));
        assert_eq!(bus.pending().unwrap(), 2);
        bus.remove_through(entries[0].seq).unwrap();
        assert_eq!(bus.fetch(0, 10).unwrap(), vec![entries[1].clone()]);
    }

    /// The outbox sender reads a batch for every few events; SQLite prepared that read again
    /// at every run while its LIMIT was a bound parameter.
    #[test]
    fn batches_are_read_in_order_by_one_prepared_statement() {
        let (_dir, bus) = bus();
        for i in 0..7 {
            bus.inner
                .db
                .write(|tx| bus.enqueue_state(tx, &state_event(i)))
                .unwrap();
        }
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let batch = bus.fetch(after, 3).unwrap();
            assert!(batch.len() <= 3, "a batch holds at most what was asked");
            let Some(last) = batch.last() else { break };
            after = last.seq;
            seen.extend(batch);
        }
        assert_eq!(seen.len(), 7);
        assert!(seen.windows(2).all(|w| w[0].seq < w[1].seq));
        assert!(decode(&seen[6]).contains("<RESOURCE_ID>6</RESOURCE_ID>"));
        let reprepared = bus.inner.db.committed(|c| {
            c.prepare_cached(FETCH)
                .unwrap()
                .get_status(rusqlite::StatementStatus::RePrepare)
        });
        assert_eq!(reprepared, 0);
    }

    #[test]
    fn a_rolled_back_state_change_leaves_no_event() {
        let (_dir, bus) = bus();
        let r: Result<(), rusqlite::Error> = bus.inner.db.write(|tx| {
            bus.enqueue_state(tx, &state_event(1))?;
            Err(rusqlite::Error::InvalidQuery)
        });
        assert!(r.is_err());
        assert_eq!(bus.pending().unwrap(), 0);
    }

    #[test]
    fn the_oldest_events_are_dropped_over_the_limit() {
        let (_dir, bus) = bus();
        bus.set_limit(10);
        for i in 0..11 {
            bus.inner
                .db
                .write(|tx| bus.enqueue_state(tx, &state_event(i)))
                .unwrap();
        }
        // The 11th event took the outbox over 10: it was cut down to 9, the newest ones.
        let entries = bus.fetch(0, 100).unwrap();
        assert_eq!(entries.len(), 9);
        assert!(decode(&entries[0]).contains("<RESOURCE_ID>2</RESOURCE_ID>"));
        assert!(decode(&entries[8]).contains("<RESOURCE_ID>10</RESOURCE_ID>"));
        assert_eq!(bus.pending().unwrap(), 9);
    }

    /// A driver session over an in-memory pipe: the sender task, the driver's end of the pipe
    /// and the link's side of the acknowledgements.
    struct Pipe {
        reader: tokio::io::DuplexStream,
        journaled: watch::Sender<u64>,
        stored: watch::Sender<u64>,
        stop: watch::Sender<bool>,
        sender: tokio::task::JoinHandle<Result<Written, EventError>>,
        text: String,
    }

    impl Pipe {
        fn start(bus: &EventBus) -> Pipe {
            let (stop, stop_rx) = watch::channel(false);
            let (journaled, journaled_rx) = watch::channel(0);
            let (stored, stored_rx) = watch::channel(0);
            let (reader, mut writer) = tokio::io::duplex(1 << 20);
            let acks = SessionAcks {
                journaled: journaled_rx,
                stored: stored_rx,
            };
            let bus = bus.clone();
            let sender =
                tokio::spawn(async move { bus.deliver(&mut writer, None, acks, stop_rx).await });
            Pipe {
                reader,
                journaled,
                stored,
                stop,
                sender,
                text: String::new(),
            }
        }

        /// Reads until `n` whole lines arrived in this session; returns them all.
        async fn lines(&mut self, n: usize) -> Vec<String> {
            let mut buf = vec![0u8; 1 << 16];
            while self.text.matches('\n').count() < n {
                let got = tokio::io::AsyncReadExt::read(&mut self.reader, &mut buf)
                    .await
                    .unwrap();
                assert!(got > 0, "the sender closed the pipe");
                self.text
                    .push_str(std::str::from_utf8(&buf[..got]).unwrap());
            }
            self.text.lines().map(str::to_string).collect()
        }

        async fn stop(self) {
            self.stop.send(true).unwrap();
            self.sender.await.unwrap().unwrap();
        }
    }

    fn add_events(bus: &EventBus, ids: std::ops::Range<i64>) {
        for i in ids {
            bus.inner
                .db
                .write(|tx| bus.enqueue_state(tx, &state_event(i)))
                .unwrap();
        }
    }

    async fn wait_pending(bus: &EventBus, n: u64) {
        while bus.pending().unwrap() != n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn events_are_kept_until_journaled_and_sent_again_to_the_next_driver() {
        let (_dir, bus) = bus();
        add_events(&bus, 0..5);
        let expected: Vec<String> = bus
            .fetch(0, 10)
            .unwrap()
            .iter()
            .map(OutboxEntry::line)
            .collect();
        let mut first = Pipe::start(&bus);
        assert_eq!(first.lines(5).await, expected);
        assert_eq!(bus.pending().unwrap(), 5, "nothing is deleted on write");
        // The driver journaled the first three, then died with two lines in its pipe.
        first.journaled.send(3).unwrap();
        wait_pending(&bus, 2).await;
        assert_eq!(bus.ack_mode(), AckMode::Acking);
        first.stop().await;

        let mut second = Pipe::start(&bus);
        assert_eq!(second.lines(2).await, expected[3..]);
        // A later event wakes the sender, with the next id.
        bus.emit_api(&ApiEvent::success(
            "one.vm.deploy",
            vec!["0".into()],
            "0",
            "",
        ))
        .unwrap();
        let lines = second.lines(3).await;
        assert!(lines[2].starts_with("EXECUTE  6 "), "{}", lines[2]);
        second.journaled.send(6).unwrap();
        wait_pending(&bus, 0).await;
        second.stop().await;
    }

    #[tokio::test]
    async fn result_acknowledgements_are_written_between_events() {
        let (_dir, bus) = bus();
        let mut pipe = Pipe::start(&bus);
        pipe.stored.send(7).unwrap();
        assert_eq!(pipe.lines(1).await, ["STORED  7 -"]);
        // Only a newer id is written again.
        pipe.stored.send(7).unwrap();
        add_events(&bus, 0..1);
        bus.notify();
        let lines = pipe.lines(2).await;
        assert!(lines[1].starts_with("EXECUTE  1 "), "{lines:?}");
        pipe.stored.send(9).unwrap();
        assert_eq!(pipe.lines(3).await[2], "STORED  9 -");
        pipe.stop().await;
    }

    /// `STORED` lines that follow each other within the period are gathered into the newest
    /// one, written once the period is over; a newer one goes out at once with the next events.
    #[tokio::test(start_paused = true)]
    async fn stored_acknowledgements_are_gathered_between_events() {
        let (_dir, bus) = bus();
        let mut pipe = Pipe::start(&bus);
        pipe.stored.send(1).unwrap();
        assert_eq!(pipe.lines(1).await, ["STORED  1 -"]);
        let first = Instant::now();
        for id in 2..=5 {
            pipe.stored.send(id).unwrap();
            tokio::task::yield_now().await;
        }
        assert_eq!(pipe.lines(2).await[1], "STORED  5 -", "only the newest");
        assert!(first.elapsed() >= STORED_PERIOD);
        let second = Instant::now();
        pipe.stored.send(6).unwrap();
        add_events(&bus, 0..1);
        bus.notify();
        let lines = pipe.lines(4).await;
        assert_eq!(lines[2], "STORED  6 -");
        assert!(lines[3].starts_with("EXECUTE  1 "), "{lines:?}");
        assert!(
            second.elapsed() < STORED_PERIOD,
            "with the event, not after the period"
        );
        pipe.stop().await;
    }

    /// A driver session that has written `n` new events.
    async fn session_over(bus: &EventBus, n: i64) -> Pipe {
        add_events(bus, 0..n);
        let mut pipe = Pipe::start(bus);
        pipe.lines(usize::try_from(n).unwrap()).await;
        pipe
    }

    /// Times the sender read the outbox so far.
    fn outbox_reads(bus: &EventBus) -> i32 {
        bus.inner.db.committed(|c| {
            c.prepare_cached(FETCH)
                .unwrap()
                .get_status(rusqlite::StatementStatus::Run)
        })
    }

    #[tokio::test(start_paused = true)]
    async fn acknowledgements_wake_the_sender_without_reading_the_outbox() {
        let (_dir, bus) = bus();
        let mut pipe = session_over(&bus, 2).await;
        let reads = outbox_reads(&bus);
        for id in 1..=3 {
            pipe.stored.send(id).unwrap();
            assert_eq!(
                pipe.lines(2 + id as usize).await.last().unwrap(),
                &format!("STORED  {id} -")
            );
        }
        pipe.journaled.send(2).unwrap();
        wait_pending(&bus, 0).await;
        assert_eq!(outbox_reads(&bus), reads, "acknowledgements read nothing");
        // A committed event is read once, and written.
        add_events(&bus, 2..3);
        bus.notify();
        assert!(pipe.lines(6).await[5].starts_with("EXECUTE  3 "));
        assert_eq!(outbox_reads(&bus), reads + 1);
        pipe.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn acknowledged_events_are_deleted_together() {
        let (_dir, bus) = bus();
        let pipe = session_over(&bus, 6).await;
        // The first acknowledgement of a session is applied at once.
        pipe.journaled.send(1).unwrap();
        wait_pending(&bus, 5).await;
        // The next ones wait for the settle period and go in one delete.
        let start = Instant::now();
        pipe.journaled.send(2).unwrap();
        tokio::task::yield_now().await;
        pipe.journaled.send(4).unwrap();
        wait_pending(&bus, 2).await;
        assert!(start.elapsed() >= SETTLE_PERIOD - Duration::from_millis(10));
        pipe.stop().await;
    }

    /// A driver session over a real OS pipe, which the sender can hand over to the committers.
    struct OsPipe {
        reader: tokio::net::unix::pipe::Receiver,
        journaled: watch::Sender<u64>,
        stop: watch::Sender<bool>,
        sender: tokio::task::JoinHandle<Result<Written, EventError>>,
        text: String,
        _stored: watch::Sender<u64>,
    }

    impl OsPipe {
        fn start(bus: &EventBus) -> OsPipe {
            use std::os::fd::AsFd;
            let (stop, stop_rx) = watch::channel(false);
            let (journaled, journaled_rx) = watch::channel(0);
            let (stored, stored_rx) = watch::channel(0);
            let (mut writer, reader) = tokio::net::unix::pipe::pipe().unwrap();
            let direct = writer.as_fd().try_clone_to_owned().unwrap();
            let acks = SessionAcks {
                journaled: journaled_rx,
                stored: stored_rx,
            };
            let bus = bus.clone();
            let sender =
                tokio::spawn(
                    async move { bus.deliver(&mut writer, Some(direct), acks, stop_rx).await },
                );
            OsPipe {
                reader,
                journaled,
                stop,
                sender,
                text: String::new(),
                _stored: stored,
            }
        }

        /// Reads until `n` whole lines arrived in this session; returns their event ids.
        async fn ids(&mut self, n: usize) -> Vec<i64> {
            let mut buf = vec![0u8; 1 << 16];
            while self.text.matches('\n').count() < n {
                let got = tokio::time::timeout(
                    Duration::from_secs(30),
                    tokio::io::AsyncReadExt::read(&mut self.reader, &mut buf),
                )
                .await
                .expect("the lines arrive")
                .unwrap();
                assert!(got > 0, "the sender closed the pipe");
                self.text
                    .push_str(std::str::from_utf8(&buf[..got]).unwrap());
            }
            self.parsed()
        }

        /// Takes what is in the pipe now, without waiting or letting another task run (a read
        /// of the descriptor itself: the runtime has not polled it for readiness yet).
        fn ids_now(&mut self) -> Vec<i64> {
            use std::io::Read;
            use std::os::fd::AsFd;
            let mut file = File::from(self.reader.as_fd().try_clone_to_owned().unwrap());
            let mut buf = vec![0u8; 1 << 16];
            while let Ok(got) = file.read(&mut buf) {
                assert!(got > 0, "the sender closed the pipe");
                self.text
                    .push_str(std::str::from_utf8(&buf[..got]).unwrap());
            }
            self.parsed()
        }

        fn parsed(&self) -> Vec<i64> {
            self.text
                .lines()
                .map(|l| {
                    let mut words = l.split_whitespace();
                    assert_eq!(words.next(), Some("EXECUTE"), "{l}");
                    words.next().unwrap().parse().unwrap()
                })
                .collect()
        }

        /// Acknowledges `id` and waits until the sender has handed the pipe over.
        async fn journal(&self, bus: &EventBus, id: u64) {
            self.journaled.send(id).unwrap();
            for _ in 0..3000 {
                if bus.direct().handed {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("the sender did not hand the pipe over");
        }

        async fn stop(self) {
            self.stop.send(true).unwrap();
            self.sender.await.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn committers_write_to_the_pipe_in_order_and_a_new_session_replays_what_was_not_journaled()
     {
        let (_dir, bus) = bus();
        // Committed while no driver runs: they wait in the outbox.
        add_events(&bus, 0..3);
        bus.notify();
        let mut first = OsPipe::start(&bus);
        assert_eq!(first.ids(3).await, [1, 2, 3]);
        first.journal(&bus, 1).await;
        // The committer writes them itself: they are in the pipe when `notify` returns, while
        // the sender's task (on this thread) has not run.
        add_events(&bus, 3..5);
        bus.notify();
        assert_eq!(first.ids_now(), [1, 2, 3, 4, 5]);
        // A notify with nothing new writes nothing.
        bus.notify();
        assert_eq!(first.ids_now(), [1, 2, 3, 4, 5]);
        first.journaled.send(2).unwrap();
        wait_pending(&bus, 3).await;
        first.stop().await;

        // Committed between two driver sessions.
        add_events(&bus, 5..7);
        bus.notify();
        let mut second = OsPipe::start(&bus);
        assert_eq!(
            second.ids(5).await,
            [3, 4, 5, 6, 7],
            "from the oldest not journaled"
        );
        second.journal(&bus, 7).await;
        add_events(&bus, 7..8);
        bus.notify();
        assert_eq!(second.ids_now(), [3, 4, 5, 6, 7, 8], "once each, in order");
        second.stop().await;
    }

    #[tokio::test]
    async fn a_driver_that_does_not_read_never_stalls_a_committer() {
        let (_dir, bus) = bus();
        add_events(&bus, 0..1);
        let mut pipe = OsPipe::start(&bus);
        assert_eq!(pipe.ids(1).await, [1]);
        pipe.journal(&bus, 1).await;
        // Far more than the pipe holds, committed one by one while nobody reads it; the sender
        // takes the pipe back when it is full and waits on it in its place.
        const EVENTS: i64 = 3000;
        let producer = {
            let bus = bus.clone();
            tokio::task::spawn_blocking(move || {
                for i in 1..EVENTS {
                    add_events(&bus, i..i + 1);
                    bus.notify();
                }
            })
        };
        tokio::time::timeout(Duration::from_secs(60), producer)
            .await
            .expect("committers never wait for the driver")
            .unwrap();
        let expected: Vec<i64> = (1..=EVENTS).collect();
        assert_eq!(
            pipe.ids(EVENTS as usize).await,
            expected,
            "once each, in order"
        );
        pipe.stop().await;
    }

    #[test]
    fn deletes_are_due_at_once_the_first_time_and_when_many_wait() {
        let now = Instant::now();
        let mut session = Session {
            cursor: 5000,
            deleted: 10,
            ..Session::default()
        };
        assert_eq!(settle_due(&session, 10), None, "nothing to delete");
        assert!(settle_due(&session, 11).is_some_and(|at| at <= Instant::now()));
        session.settled = Some(now);
        assert_eq!(settle_due(&session, 11), Some(now + SETTLE_PERIOD));
        assert!(
            settle_due(&session, 10 + SETTLE_EVERY).is_some_and(|at| at <= Instant::now()),
            "a full batch of acknowledged events goes at once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_driver_that_never_acknowledges_gets_delete_on_write() {
        let (_dir, bus) = bus();
        add_events(&bus, 0..3);
        let mut pipe = Pipe::start(&bus);
        pipe.lines(3).await;
        assert_eq!(bus.ack_mode(), AckMode::Unknown);
        assert_eq!(bus.pending().unwrap(), 3);
        // Paused time jumps to the deadline as soon as the sender waits.
        wait_pending(&bus, 0).await;
        assert_eq!(bus.ack_mode(), AckMode::NonAcking);
        add_events(&bus, 3..5);
        bus.notify();
        pipe.lines(5).await;
        wait_pending(&bus, 0).await;
        pipe.stop().await;

        // The next session starts out deleting on write, until a driver acknowledges.
        add_events(&bus, 5..6);
        let mut next = Pipe::start(&bus);
        next.lines(1).await;
        wait_pending(&bus, 0).await;
        next.journaled.send(6).unwrap();
        add_events(&bus, 6..7);
        bus.notify();
        next.lines(2).await;
        while bus.ack_mode() != AckMode::Acking {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(bus.pending().unwrap(), 1, "kept until acknowledged again");
        next.stop().await;
    }
}
