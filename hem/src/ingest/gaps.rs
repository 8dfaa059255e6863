//! The sequence side of the ingest loop: where a first start begins, duplicates, gaps in the
//! numbers filled from the driver's journal, the idle poll that finds events the bus dropped,
//! and a journal that is down or numbering from the start again.

use std::time::{Duration, Instant};

use one_proto::keys::parse_key;

use super::{Acceptor, Ingest};
use crate::config::ReplayFrom;
use crate::journal::{Journal, JournalError};
use crate::matcher::{HookSource, is_primary};
use crate::subscriber::EventStream;

/// Pause of optional journal requests after a failure, doubled up to the maximum.
pub(super) const JOURNAL_BACKOFF_MIN: Duration = Duration::from_secs(2);
const JOURNAL_BACKOFF_MAX: Duration = Duration::from_secs(60);

impl<S: EventStream, J: Journal, H: HookSource, A: Acceptor> Ingest<S, J, H, A> {
    /// On a first start, picks the sequence to start after from the journal (`replay_from`).
    pub(super) fn start_position(&mut self) {
        if self.processed.is_some() {
            return;
        }
        if let ReplayFrom::After(n) = self.settings.replay_from {
            self.set_processed(n);
            tracing::info!(
                after = n,
                "first start: reading events after the configured sequence"
            );
            self.flush(true);
            return;
        }
        if !self.journal_worth_asking() {
            return;
        }
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        match journal.replay(0, 0) {
            Ok(batch) => {
                let h = batch.header;
                let start = match self.settings.replay_from {
                    ReplayFrom::Oldest => h.oldest.saturating_sub(1),
                    _ => h.head,
                };
                self.note_journal(true, None);
                tracing::info!(
                    oldest = h.oldest,
                    head = h.head,
                    after = start,
                    "first start: reading events after the journal position"
                );
                self.set_processed(start);
                self.flush(true);
            }
            Err(e) => self.note_journal(false, Some(&e)),
        }
    }

    pub(super) fn note_journal(&mut self, up: bool, error: Option<&JournalError>) {
        let name = self
            .journal
            .as_ref()
            .map(|j| j.describe())
            .unwrap_or_default();
        if self.journal_up != Some(up) {
            if up {
                tracing::info!(journal = %name, "replay endpoint answered: missed events are replayed from the journal");
            } else {
                tracing::warn!(journal = %name, error = %error.map(|e| e.to_string()).unwrap_or_default(),
                    "replay endpoint not answering: running live-only until it does; events missed meanwhile are lost");
            }
        }
        self.journal_up = Some(up);
        self.shared.metrics.journal_seen(up);
        if up {
            self.journal_quiet_until = None;
            self.journal_backoff = JOURNAL_BACKOFF_MIN;
        } else {
            self.journal_quiet_until = Some(Instant::now() + self.journal_backoff);
            self.journal_backoff = (self.journal_backoff * 2).min(JOURNAL_BACKOFF_MAX);
        }
    }

    /// Whether an optional journal request may be made now.
    pub(super) fn journal_worth_asking(&self) -> bool {
        self.journal.is_some()
            && self.sequenced != Some(false)
            && self.journal_quiet_until.is_none_or(|t| Instant::now() >= t)
    }

    /// A live event at or below the watermark: normally one already replayed. If it keeps
    /// happening the journal may have restarted its numbering; checking once a second is cheap.
    pub(super) fn on_duplicate(&mut self, seq: u64) {
        tracing::trace!(seq, "duplicate event dropped");
        self.shared.metrics.events_duplicate.inc();
        let due = self
            .last_reset_check
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if due && self.journal_worth_asking() {
            self.last_reset_check = Some(Instant::now());
            self.catch_up(None);
        }
    }

    /// Events `processed + 1 ..= until` never arrived live. Dropped ones (a high-water mark, a
    /// slow subscriber) are worth an operator's attention even when the journal has them all.
    pub(super) fn fill_gap(&mut self, processed: u64, until: u64, missed: Missed) {
        let first = processed.saturating_add(1);
        let missing = until.saturating_sub(processed);
        if self.journal.is_none() {
            tracing::error!(
                first,
                last = until,
                missing,
                "{missing} events were missed and no replay endpoint is configured; they are lost"
            );
            self.shared.metrics.events_lost.add(missing);
            self.set_processed(until);
            return;
        }
        match missed {
            Missed::Dropped => tracing::warn!(
                first,
                last = until,
                missing,
                "gap in the live events: {missing} events were not delivered by the bus; replaying them from the journal"
            ),
            Missed::BeforeSubscription => tracing::info!(
                first,
                last = until,
                missing,
                "{missing} events were published before the subscription was up; replaying them from the journal"
            ),
        }
        let recovered = self.catch_up(Some(until));
        if recovered > 0 {
            tracing::info!(
                first,
                last = until,
                missing,
                recovered,
                "gap recovered: {recovered} of {missing} missing events replayed from the journal"
            );
        }
    }

    /// The idle check: events the journal holds past the watermark were not delivered live
    /// (typically the end of a burst dropped at a high-water mark, which no later live event
    /// reveals). A header-only request keeps the check cheap when there is nothing to fetch.
    pub(super) fn poll_journal(&mut self) {
        let Some(after) = self.processed else {
            return;
        };
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        match journal.replay(after, 0) {
            Ok(batch) => {
                self.note_journal(true, None);
                let head = batch.header.head;
                if head > after {
                    let missed = if self.sequenced.is_none() {
                        Missed::BeforeSubscription
                    } else {
                        Missed::Dropped
                    };
                    self.fill_gap(after, head, missed);
                } else if head < after {
                    // The journal was replaced; catch_up follows it from its oldest event.
                    self.catch_up(None);
                }
            }
            Err(e) => self.note_journal(false, Some(&e)),
        }
    }

    /// Replays from the watermark until `target` (or the journal's head), in bounded batches.
    /// Returns how many events it replayed up to `target` (all of them without one).
    pub(super) fn catch_up(&mut self, target: Option<u64>) -> u64 {
        let mut replayed = 0;
        let mut resets = 0;
        loop {
            if self.shared.stopping() {
                return replayed;
            }
            let Some(after) = self.processed else {
                return replayed;
            };
            let batch = match self.journal.as_mut() {
                None => return replayed,
                Some(j) => j.replay(after, self.settings.replay_batch),
            };
            let batch = match batch {
                Ok(b) => {
                    self.note_journal(true, None);
                    b
                }
                Err(e) => {
                    self.note_journal(false, Some(&e));
                    if let Some(t) = target.filter(|&t| t > after) {
                        let lost = t - after;
                        tracing::error!(first = after.saturating_add(1), last = t, lost, error = %e,
                            "{lost} events could not be replayed; they are lost");
                        self.shared.metrics.events_lost.add(lost);
                        self.set_processed(t);
                    }
                    return replayed;
                }
            };
            let h = batch.header;
            if h.head < after {
                if resets > 0 {
                    return replayed;
                }
                resets += 1;
                self.uids.next_epoch();
                tracing::warn!(
                    head = h.head,
                    oldest = h.oldest,
                    watermark = after,
                    "the journal is behind the HEM's watermark (it was replaced); following it from its oldest event"
                );
                self.set_processed(h.oldest.saturating_sub(1));
                continue;
            }
            if h.oldest > after.saturating_add(1) {
                let lost_to = (h.oldest - 1).min(h.head);
                if lost_to > after {
                    let lost = lost_to - after;
                    tracing::error!(
                        first = after.saturating_add(1),
                        last = lost_to,
                        lost,
                        "{lost} events left the journal before the HEM read them; they are lost"
                    );
                    self.shared.metrics.events_lost.add(lost);
                    self.set_processed(lost_to);
                    continue;
                }
            }
            let received = batch.messages.len();
            let mut last = after;
            for msg in batch.messages {
                let parsed = parse_key(&msg.key);
                let Some(seq) = parsed.seq else { continue };
                last = last.max(seq);
                if !is_primary(&parsed) || self.processed.is_some_and(|p| seq <= p) {
                    continue;
                }
                self.shared.metrics.events_received.inc();
                self.shared.metrics.events_replayed.inc();
                self.process(seq, &parsed, &msg);
                self.set_processed(seq);
                if target.is_none_or(|t| seq <= t) {
                    replayed += 1;
                }
            }
            if self.processed.is_some_and(|p| last > p) {
                self.set_processed(last);
            }
            self.flush(false);
            let p = self.processed.unwrap_or(after);
            let goal = target.unwrap_or(h.head);
            if p >= goal {
                return replayed;
            }
            if received == 0 {
                // The journal has nothing more up to the goal: the missing numbers carried no
                // event the HEM subscribes to.
                if let Some(t) = target {
                    if t > h.head {
                        tracing::warn!(
                            first = p.saturating_add(1),
                            last = t,
                            head = h.head,
                            "live events are ahead of the journal's head; continuing from the live stream"
                        );
                    }
                    self.set_processed(t);
                }
                return replayed;
            }
        }
    }
}

/// Why events in the sequence never arrived live.
#[derive(Clone, Copy, Debug)]
pub(super) enum Missed {
    /// Published before the first live event reached the HEM: the subscription was still being
    /// set up (libzmq's slow-joiner window), which is expected at every start.
    BeforeSubscription,
    /// Dropped by the bus while the HEM was subscribed.
    Dropped,
}
