//! The pending simulated transitions: at most one due time per object.
//!
//! The due time of an object's next step is persisted in its row; this is the in-memory index
//! the timer task sleeps on. Entries are only hints: when one fires, the step re-reads the row
//! and acts only if the row's own due time has passed. Entries are set while the writing
//! transaction still holds the database, so the index follows commit order.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

/// An object with simulated transitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ObjKey {
    Host(i64),
    Vm(i64),
    Image(i64),
}

#[derive(Default)]
struct Index {
    due: HashMap<ObjKey, i64>,
    queue: BTreeSet<(i64, ObjKey)>,
}

/// Due times (epoch milliseconds) by object, and the wake-up of the timer task.
#[derive(Default)]
pub(crate) struct Timers {
    index: Mutex<Index>,
    pub(crate) notify: Notify,
}

impl Timers {
    fn lock(&self) -> MutexGuard<'_, Index> {
        self.index
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sets (or, with `None`, clears) the due time of `key`, replacing any earlier one.
    pub(crate) fn set(&self, key: ObjKey, due_ms: Option<i64>) {
        let wake = {
            let mut index = self.lock();
            if let Some(old) = index.due.remove(&key) {
                index.queue.remove(&(old, key));
            }
            match due_ms {
                Some(due) => {
                    index.due.insert(key, due);
                    index.queue.insert((due, key));
                    // Only an entry that became the earliest changes how long the task sleeps.
                    index.queue.first() == Some(&(due, key))
                }
                None => false,
            }
        };
        if wake {
            self.notify.notify_one();
        }
    }

    /// Removes and returns up to `max` entries due at or before `now_ms`, earliest first.
    pub(crate) fn take_due(&self, now_ms: i64, max: usize) -> Vec<ObjKey> {
        let mut index = self.lock();
        let mut keys = Vec::new();
        while keys.len() < max {
            match index.queue.first().copied() {
                Some((due, key)) if due <= now_ms => {
                    index.queue.remove(&(due, key));
                    index.due.remove(&key);
                    keys.push(key);
                }
                _ => break,
            }
        }
        keys
    }

    /// The earliest due time, if any.
    pub(crate) fn next_due(&self) -> Option<i64> {
        self.lock().queue.first().map(|(due, _)| *due)
    }

    /// How many objects have a pending step.
    pub(crate) fn len(&self) -> usize {
        self.lock().due.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_object_earliest_first() {
        let t = Timers::default();
        t.set(ObjKey::Vm(1), Some(50));
        t.set(ObjKey::Vm(2), Some(10));
        t.set(ObjKey::Vm(1), Some(5));
        t.set(ObjKey::Host(1), Some(100));
        t.set(ObjKey::Host(1), None);
        assert_eq!(t.len(), 2);
        assert_eq!(t.next_due(), Some(5));
        assert_eq!(t.take_due(20, 10), vec![ObjKey::Vm(1), ObjKey::Vm(2)]);
        assert_eq!(t.take_due(1000, 10), Vec::<ObjKey>::new());
        assert_eq!(t.len(), 0);
    }
}
