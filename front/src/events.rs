//! The event bus: the one path for every HOOK_MESSAGE and RETRY to the driver.
//!
//! Every event is first written to a durable outbox table: a STATE event inside the transaction
//! that changes the object ([`EventBus::enqueue_state`]), an API event or a retry in its own
//! transaction ([`EventBus::emit_api`], [`EventBus::retry`]). The driver link runs
//! [`EventBus::deliver`], which writes the outbox in sequence order as MAD lines to the driver's
//! stdin and deletes what it has written. So events produced while the driver is down (or not
//! configured) wait on disk and go out, in order, when it is back.
//!
//! The outbox is bounded: when it holds more than its limit, the oldest events are dropped (down
//! to 90% of the limit, so the error log is not repeated for every new event) with an error
//! log.
//!
//! Delivery is at most once per written line: an event is deleted once its line is in the pipe,
//! so a driver that dies with unread lines in its stdin buffer loses those (at most one pipe
//! buffer). The driver journals what it reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use one_proto::encoding::b64_encode;
use one_proto::event::{ApiEvent, HookMessage, StateEvent};
use one_proto::mad::{oned_execute_line, oned_retry_line};
use one_proto::retry::RetryMessage;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, watch};

use crate::db::Db;

/// Tables of the event outbox, applied by `db` in its migration list.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS event_outbox (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    kind    INTEGER NOT NULL,
    payload TEXT NOT NULL,
    created INTEGER NOT NULL
);
";

/// How many events the outbox keeps when the configuration does not say.
pub const DEFAULT_OUTBOX_LIMIT: u64 = 100_000;

/// How many events one delivery batch reads and writes.
const BATCH: usize = 1000;

/// How often the sender looks at the outbox even when nobody told it about a new event (a
/// safety net; every writer notifies it).
const POLL_INTERVAL: Duration = Duration::from_secs(1);

const KIND_EXECUTE: i64 = 0;
const KIND_RETRY: i64 = 1;

/// Errors of writing to or delivering from the outbox.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("event outbox database error: {0}")]
    Store(#[from] rusqlite::Error),
    #[error("cannot write events to the driver: {0}")]
    Write(#[source] std::io::Error),
    #[error("event outbox task failed: {0}")]
    Task(String),
}

/// What an outbox entry becomes on the driver's stdin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// `EXECUTE  -1 <b64 HOOK_MESSAGE>`.
    Execute,
    /// `RETRY  -1 <b64 RETRY message>`.
    Retry,
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
    /// The MAD line, without LF.
    pub fn line(&self) -> String {
        match self.kind {
            EntryKind::Execute => oned_execute_line(&self.payload),
            EntryKind::Retry => oned_retry_line(&self.payload),
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
    limit: AtomicU64,
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
                limit: AtomicU64::new(DEFAULT_OUTBOX_LIMIT),
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

    /// Wakes the sender: call it after committing a transaction that enqueued events.
    pub fn notify(&self) {
        self.inner.notify.notify_one();
    }

    /// How many events wait in the outbox.
    pub fn pending(&self) -> rusqlite::Result<u64> {
        self.inner.db.read(count)
    }

    /// Up to `max` events with a sequence number above `after`, oldest first.
    pub fn fetch(&self, after: i64, max: usize) -> rusqlite::Result<Vec<OutboxEntry>> {
        self.inner.db.read(|c| fetch(c, after, max))
    }

    /// Deletes every event up to and including `seq`.
    pub fn remove_through(&self, seq: i64) -> rusqlite::Result<usize> {
        self.inner
            .db
            .write(|tx| tx.execute("DELETE FROM event_outbox WHERE seq <= ?1", [seq]))
    }

    /// Writes the outbox to `out` as MAD lines, in order, until `stop` turns true (checked
    /// between batches) or writing fails. Each batch is deleted once written and flushed.
    ///
    /// Returns `Ok` when stopped; an error when the writer failed (the driver went away), in
    /// which case the events not yet written stay in the outbox.
    pub async fn deliver<W: AsyncWrite + Unpin>(
        &self,
        out: &mut W,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), EventError> {
        let mut cursor = 0i64;
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            let bus = self.clone();
            let batch = tokio::task::spawn_blocking(move || bus.fetch(cursor, BATCH))
                .await
                .map_err(|e| EventError::Task(e.to_string()))??;
            let Some(last) = batch.last().map(|e| e.seq) else {
                tokio::select! {
                    _ = self.inner.notify.notified() => {}
                    _ = tokio::time::sleep(POLL_INTERVAL) => {}
                    _ = stop.changed() => {}
                }
                continue;
            };
            buf.clear();
            for entry in &batch {
                buf.extend_from_slice(entry.line().as_bytes());
                buf.push(b'\n');
            }
            out.write_all(&buf).await.map_err(EventError::Write)?;
            out.flush().await.map_err(EventError::Write)?;
            cursor = last;
            tracing::debug!(
                count = batch.len(),
                seq = last,
                "events written to the driver"
            );
            let bus = self.clone();
            match tokio::task::spawn_blocking(move || bus.remove_through(last)).await {
                Ok(Ok(_)) => {}
                // The cursor keeps this session from writing them twice; a later session may.
                Ok(Err(e)) => {
                    tracing::error!(seq = last, error = %e, "cannot delete delivered events")
                }
                Err(e) => tracing::error!(seq = last, error = %e, "cannot delete delivered events"),
            }
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Appends one event and keeps the outbox within `limit`; returns its sequence number.
fn insert(tx: &Transaction<'_>, kind: i64, payload: &str, limit: u64) -> rusqlite::Result<i64> {
    tx.execute(
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
    let oldest: Option<i64> =
        tx.query_row("SELECT MIN(seq) FROM event_outbox", [], |r| r.get(0))?;
    let Some(oldest) = oldest else {
        return Ok(());
    };
    let held = u64::try_from(newest - oldest + 1).unwrap_or(0);
    if held <= limit {
        return Ok(());
    }
    let keep = i64::try_from((limit - limit / 10).max(1)).unwrap_or(i64::MAX);
    let cutoff = newest - keep;
    let dropped = tx.execute("DELETE FROM event_outbox WHERE seq <= ?1", [cutoff])?;
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
        .query_row("SELECT MIN(seq), MAX(seq) FROM event_outbox", [], |r| {
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

fn fetch(c: &Connection, after: i64, max: usize) -> rusqlite::Result<Vec<OutboxEntry>> {
    let mut stmt = c.prepare_cached(
        "SELECT seq, kind, payload FROM event_outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(
        params![after, i64::try_from(max).unwrap_or(i64::MAX)],
        |r| {
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
        },
    )?;
    rows.collect()
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
        assert!(entries[0].line().starts_with("EXECUTE  -1 "));
        assert!(decode(&entries[0]).contains("<HOOK_OBJECT>HOST</HOOK_OBJECT>"));
        assert!(entries[1].line().starts_with("RETRY  -1 "));
        assert!(decode(&entries[1]).contains("<HOOK_ID>3</HOOK_ID>"));
        assert_eq!(bus.pending().unwrap(), 2);
        bus.remove_through(entries[0].seq).unwrap();
        assert_eq!(bus.fetch(0, 10).unwrap(), vec![entries[1].clone()]);
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

    #[tokio::test]
    async fn deliver_writes_lines_in_order_and_deletes_them() {
        let (_dir, bus) = bus();
        for i in 0..3 {
            bus.inner
                .db
                .write(|tx| bus.enqueue_state(tx, &state_event(i)))
                .unwrap();
        }
        let expected: Vec<String> = bus
            .fetch(0, 10)
            .unwrap()
            .iter()
            .map(OutboxEntry::line)
            .collect();
        let (stop_tx, stop_rx) = watch::channel(false);
        let (mut reader, mut writer) = tokio::io::duplex(1 << 20);
        let sender = {
            let bus = bus.clone();
            tokio::spawn(async move { bus.deliver(&mut writer, stop_rx).await })
        };
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        while got.iter().filter(|b| **b == b'\n').count() < 3 {
            let n = tokio::io::AsyncReadExt::read(&mut reader, &mut buf)
                .await
                .unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8(got).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines, expected);
        // A later event wakes the sender.
        bus.emit_api(&ApiEvent::success(
            "one.vm.deploy",
            vec!["0".into()],
            "0",
            "",
        ))
        .unwrap();
        let n = tokio::io::AsyncReadExt::read(&mut reader, &mut buf)
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("EXECUTE  -1 "));
        stop_tx.send(true).unwrap();
        sender.await.unwrap().unwrap();
        assert_eq!(bus.pending().unwrap(), 0);
    }
}
