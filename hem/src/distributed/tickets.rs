//! Events this HEM holds: delivered by a partition's consumer and not yet acknowledged.
//!
//! An event is acknowledged once every execution it triggered has its record (a result
//! published, or a marker that says another HEM recorded it). Until then it must not be
//! delivered to another HEM, however long its hooks run: the HEM tells JetStream it is still
//! working on it (an in-progress acknowledgement) several times per acknowledgement wait. It
//! also rewrites the start markers of its running executions as often, which is how another
//! HEM that gets the event anyway (this one lost the bus for a while) sees that they still run
//! here, and the ended ones before their time to live runs out. A HEM that stops doing both,
//! because it died, lets JetStream deliver the event to the partition's next holder, which
//! waits while the markers change (its hook supervisor renews those of the local hooks still
//! running, and marks them done as it reports them) and reports what was started under a
//! marker left unchanged as interrupted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind};

use super::markers::{Marker, MarkerError, Markers, State};

/// Attempts at a confirmed acknowledgement before the event is left to be delivered again
/// (its markers then say what was done).
const ACK_ATTEMPTS: u32 = 5;

/// One held event.
pub struct Ticket {
    pub partition: u32,
    pub seq: u64,
    /// The newest delivery (an acknowledgement of any delivery of the event counts).
    message: Mutex<jetstream::Message>,
    state: Mutex<TicketState>,
}

struct TicketState {
    /// Executions still without a record.
    remaining: usize,
    /// The start markers of its executions: key, revision, marker.
    markers: HashMap<String, (u64, Marker)>,
    /// When the ended markers were last written again.
    renewed: Instant,
    /// When the event was last kept from being delivered again (delivery, in-progress ack).
    kept: Instant,
}

impl Ticket {
    fn message(&self) -> Option<jetstream::Message> {
        self.message.lock().ok().map(|m| m.clone())
    }
}

/// The events this HEM holds, and the executions of each.
#[derive(Default)]
pub struct Tickets {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_seq: HashMap<(u32, u64), Arc<Ticket>>,
    by_uid: HashMap<String, Arc<Ticket>>,
    per_partition: HashMap<u32, usize>,
}

impl Tickets {
    /// Whether the event is held; if so, its newest delivery replaces the one kept.
    pub fn redelivered(&self, partition: u32, seq: u64, message: &jetstream::Message) -> bool {
        let Ok(inner) = self.inner.lock() else {
            return false;
        };
        match inner.by_seq.get(&(partition, seq)) {
            Some(ticket) => {
                if let Ok(mut m) = ticket.message.lock() {
                    *m = message.clone();
                }
                true
            }
            None => false,
        }
    }

    /// Holds an event whose executions have these uids. With none, the caller acknowledges it
    /// at once and nothing is held.
    pub fn hold(
        &self,
        partition: u32,
        seq: u64,
        message: jetstream::Message,
        uids: &[String],
    ) -> Option<Arc<Ticket>> {
        if uids.is_empty() {
            return None;
        }
        let ticket = Arc::new(Ticket {
            partition,
            seq,
            message: Mutex::new(message),
            state: Mutex::new(TicketState {
                remaining: uids.len(),
                markers: HashMap::new(),
                renewed: Instant::now(),
                kept: Instant::now(),
            }),
        });
        if let Ok(mut inner) = self.inner.lock() {
            inner.by_seq.insert((partition, seq), ticket.clone());
            for uid in uids {
                inner.by_uid.insert(uid.clone(), ticket.clone());
            }
            *inner.per_partition.entry(partition).or_default() += 1;
        }
        Some(ticket)
    }

    /// Events held for a partition.
    pub fn held(&self, partition: u32) -> usize {
        self.inner
            .lock()
            .map(|i| i.per_partition.get(&partition).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Events held in all.
    pub fn total(&self) -> usize {
        self.inner.lock().map(|i| i.by_seq.len()).unwrap_or(0)
    }

    /// Records the marker an execution wrote (at its revision).
    pub fn note_marker(&self, uid: &str, key: &str, revision: u64, marker: Marker) {
        if let Some(ticket) = self.ticket_of(uid)
            && let Ok(mut state) = ticket.state.lock()
        {
            state.markers.insert(key.to_string(), (revision, marker));
        }
    }

    /// The marker an execution wrote, if any.
    pub fn marker_of(&self, uid: &str, key: &str) -> Option<(u64, Marker)> {
        let ticket = self.ticket_of(uid)?;
        let state = ticket.state.lock().ok()?;
        state.markers.get(key).cloned()
    }

    fn ticket_of(&self, uid: &str) -> Option<Arc<Ticket>> {
        self.inner.lock().ok()?.by_uid.get(uid).cloned()
    }

    /// An execution has its record. The last one of an event acknowledges the event (confirmed
    /// by the server, so that it is not delivered again once its markers expire).
    pub async fn recorded(&self, uid: &str) {
        let Some(ticket) = self
            .inner
            .lock()
            .ok()
            .and_then(|mut i| i.by_uid.remove(uid))
        else {
            return;
        };
        let last = match ticket.state.lock() {
            Ok(mut state) => {
                state.remaining = state.remaining.saturating_sub(1);
                state.remaining == 0
            }
            Err(_) => false,
        };
        if !last {
            return;
        }
        if let Some(message) = ticket.message() {
            acknowledge(&message, ticket.partition, ticket.seq).await;
        }
        if let Ok(mut inner) = self.inner.lock() {
            inner.by_seq.remove(&(ticket.partition, ticket.seq));
            if let Some(n) = inner.per_partition.get_mut(&ticket.partition) {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Keeps every held event from being delivered elsewhere. First the start markers of
    /// running executions, the proof that their hooks still run here, every round; then an
    /// in-progress acknowledgement for each event not kept alive for half the acknowledgement
    /// wait; then the ended markers of events held longer than half the markers' life.
    pub async fn keep_alive(&self, markers: &Markers, ack_wait: Duration, renew_after: Duration) {
        let held: Vec<Arc<Ticket>> = match self.inner.lock() {
            Ok(inner) => inner.by_seq.values().cloned().collect(),
            Err(_) => return,
        };
        for ticket in &held {
            renew(ticket, markers, |m| m.state == State::Started).await;
        }
        for ticket in &held {
            let due = match ticket.state.lock() {
                Ok(mut state) if state.kept.elapsed() >= ack_wait / 2 => {
                    state.kept = Instant::now();
                    true
                }
                _ => false,
            };
            if due
                && let Some(message) = ticket.message()
                && let Err(e) = message.ack_with(AckKind::Progress).await
            {
                tracing::debug!(error = %e, seq = ticket.seq, "in-progress acknowledgement failed");
            }
        }
        for ticket in &held {
            let due = match ticket.state.lock() {
                Ok(mut state) if state.renewed.elapsed() >= renew_after => {
                    state.renewed = Instant::now();
                    true
                }
                _ => false,
            };
            if due {
                renew(ticket, markers, |m| m.state != State::Started).await;
            }
        }
    }
}

/// Writes the markers of `ticket` that `which` selects again, renewing their time to live.
async fn renew(ticket: &Ticket, markers: &Markers, which: impl Fn(&Marker) -> bool) {
    let due: Vec<(String, u64, Marker)> = match ticket.state.lock() {
        Ok(state) => state
            .markers
            .iter()
            .filter(|(_, (_, m))| which(m))
            .map(|(k, (r, m))| (k.clone(), *r, m.clone()))
            .collect(),
        Err(_) => return,
    };
    for (key, revision, marker) in due {
        match markers.set(&key, &marker, revision).await {
            Ok(new) => {
                if let Ok(mut state) = ticket.state.lock()
                    && let Some(entry) = state.markers.get_mut(&key)
                    && entry.0 == revision
                {
                    entry.0 = new;
                }
            }
            // Ended meanwhile (or claimed by another HEM): nothing left to renew.
            Err(MarkerError::Conflict) => {}
            Err(e) => {
                tracing::warn!(key, error = %e, "cannot renew a start marker");
            }
        }
    }
}

/// A confirmed acknowledgement, retried a few times; an event left unacknowledged is delivered
/// again later, and its markers say what was done.
pub async fn acknowledge(message: &jetstream::Message, partition: u32, seq: u64) {
    for attempt in 1..=ACK_ATTEMPTS {
        match message.double_ack().await {
            Ok(()) => return,
            Err(e) => {
                tracing::debug!(error = %e, partition, seq, attempt, "acknowledgement not confirmed");
                tokio::time::sleep(Duration::from_millis(200) * attempt).await;
            }
        }
    }
    tracing::warn!(
        partition,
        seq,
        "event acknowledgement not confirmed; it will be delivered again and found recorded"
    );
}
