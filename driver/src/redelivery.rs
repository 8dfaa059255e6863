//! Recognising events a front-end sends again after a driver restart (delivery acknowledgement,
//! [`one_proto::mad`]).
//!
//! A front-end numbers its events and, after a restart, sends again every line the previous
//! driver had not acknowledged, some of which that driver had journaled. Event ids only grow
//! while a front-end runs, so a line whose id is not above the id of the last journaled one is
//! either such a redelivery or the first line of a front-end whose ids started over (a new
//! database). It is a redelivery when the journal holds an event with that id and exactly the
//! same content; only then is it dropped. The check reads the journal only for those suspect
//! lines, so a steady stream costs a map insert per event.

use std::collections::{HashMap, VecDeque};

use tracing::{info, warn};

use crate::journal::{EventLog, JournalEvent};

/// Event ids remembered (newest first to go last): far more than a front-end ever sends again,
/// which is what it wrote since the last acknowledgement.
pub const REMEMBERED: usize = 16_384;

/// The recent event ids and where they are in the journal.
#[derive(Debug, Default)]
pub struct Redelivery {
    seq_of: HashMap<u64, u64>,
    order: VecDeque<u64>,
    /// The id of the newest accepted event (journaled or about to be).
    last: Option<u64>,
}

impl Redelivery {
    /// Loads the ids of the newest journaled events.
    pub fn from_journal(journal: &mut dyn EventLog) -> Redelivery {
        let mut index = Redelivery::default();
        match journal.recent_sources(REMEMBERED) {
            Ok(recent) => {
                for (seq, source) in recent {
                    index.remember(source, seq);
                    index.last = Some(source);
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot read recent event ids; redeliveries may be journaled twice")
            }
        }
        index
    }

    /// Removes the redelivered events from `events` (in order) and returns how many.
    pub fn drop_redelivered(
        &mut self,
        journal: &mut dyn EventLog,
        events: &mut Vec<JournalEvent>,
    ) -> usize {
        let before = events.len();
        events.retain(|event| {
            let Some(source) = event.source else {
                return true;
            };
            let redelivered = self.last.is_some_and(|last| source <= last)
                && self.seq_of.get(&source).is_some_and(|&seq| {
                    match journal.same_content(seq, event) {
                        Ok(same) => same,
                        Err(e) => {
                            warn!(error = %e, source, "cannot compare a redelivered event; journaling it");
                            false
                        }
                    }
                });
            if redelivered {
                return false;
            }
            if self.last.is_some_and(|last| source <= last) {
                info!(
                    source,
                    "event id not above the last one and not a redelivery: the front-end's ids started over"
                );
            }
            // An accepted event sets the mark, also downwards when the ids started over.
            self.last = Some(source);
            true
        });
        before - events.len()
    }

    /// Records the ids of committed events.
    pub fn committed(&mut self, events: &[JournalEvent]) {
        for event in events {
            if let Some(source) = event.source {
                self.remember(source, event.seq);
            }
        }
    }

    fn remember(&mut self, source: u64, seq: u64) {
        if self.seq_of.insert(source, seq).is_none() {
            self.order.push_back(source);
        }
        while self.order.len() > REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.seq_of.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Retention, SyncMode};
    use crate::journal::Batch;
    use crate::sqlite_journal::{JournalOptions, SqliteJournal};

    fn event(source: u64, content: &str) -> JournalEvent {
        JournalEvent {
            source: Some(source),
            ..JournalEvent::new(vec!["EVENT ".into()], content.into())
        }
    }

    #[test]
    fn redeliveries_are_dropped_and_restarted_ids_are_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = JournalOptions {
            retention: Retention {
                max_events: None,
                max_age: None,
            },
            sync: SyncMode::Normal,
            dedupe_window: 10,
        };
        let path = dir.path().join("j.db");
        {
            let mut j = SqliteJournal::open(&path, options).expect("open");
            let mut batch = Batch {
                events: (1..=5).map(|i| event(i, &format!("c{i}"))).collect(),
                ..Batch::default()
            };
            j.commit(&mut batch).expect("commit");
        }
        let mut j = SqliteJournal::open(&path, options).expect("reopen");
        let mut index = Redelivery::from_journal(&mut j);
        let mut again = vec![
            event(3, "c3"),
            event(4, "c4"),
            event(5, "c5"),
            event(6, "c6"),
        ];
        assert_eq!(index.drop_redelivered(&mut j, &mut again), 3);
        assert_eq!(
            again.iter().map(|e| e.source).collect::<Vec<_>>(),
            [Some(6)]
        );
        let mut batch = Batch {
            events: again,
            ..Batch::default()
        };
        j.commit(&mut batch).expect("commit");
        index.committed(&batch.events);
        // A front-end whose ids started over: same id, other content.
        let mut fresh = vec![event(1, "new-1"), event(2, "new-2")];
        assert_eq!(index.drop_redelivered(&mut j, &mut fresh), 0);
        // Events without an id are never suspects.
        let mut plain = vec![JournalEvent::new(vec!["EVENT ".into()], "c1".into())];
        assert_eq!(index.drop_redelivered(&mut j, &mut plain), 0);
    }
}
