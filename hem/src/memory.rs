//! Gives memory freed by large transient work back to the operating system.
//!
//! Loading a pool of many hooks parses a document of several megabytes into a tree of small
//! allocations that are all freed once the compact hook map is built, and a burst of events
//! fills queues, event bodies, hook arguments and outputs on every worker thread. glibc keeps
//! such freed memory in its arenas (one per thread that allocated, up to eight per core), so
//! without a trim the HEM would stay at its peak for its whole life. A trim costs a walk of
//! every arena under its lock, so it is done after a pool load and once the HEM has gone idle
//! after work, never on the path of an event.

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::HemMetrics;

/// Returns free heap memory of every arena to the kernel. Cheap enough to call after each pool
/// load; a no-op where the C library has no `malloc_trim`.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks glibc's own allocator state under its locks and takes
        // no pointer from us; it is safe to call from any thread at any time.
        #[allow(unsafe_code)]
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// How often the idle trimmer looks at the HEM's counters. An idle HEM is trimmed between one
/// and two periods after its last event and run.
pub const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Decides when the HEM has gone idle after work: no execution waiting or running, and no
/// event taken in for a whole check period. It trims once per idle spell, so a HEM that stays
/// idle, or one that is never idle for a whole period, is never trimmed again.
#[derive(Debug, Default)]
pub struct IdleTrim {
    /// Events taken in at the previous check.
    seen: u64,
    /// Events taken in at the last trim.
    trimmed_at: u64,
}

impl IdleTrim {
    /// One check; `true` when memory should be released now.
    pub fn check(&mut self, events: u64, waiting: i64, running: i64) -> bool {
        let quiet = events == self.seen && waiting <= 0 && running <= 0;
        self.seen = events;
        if quiet && events != self.trimmed_at {
            self.trimmed_at = events;
            return true;
        }
        false
    }

    /// Checks `metrics` every [`IDLE_CHECK`] and trims when the HEM has gone idle after work,
    /// until the task is aborted.
    pub async fn run(metrics: Arc<HemMetrics>) {
        let mut idle = IdleTrim::default();
        let mut tick = tokio::time::interval(IDLE_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if idle.check(
                metrics.events_received.get(),
                metrics.waiting.get(),
                metrics.running.get(),
            ) {
                // Off the runtime's workers: a trim of large arenas takes milliseconds.
                let _ = tokio::task::spawn_blocking(release_free_memory).await;
            }
        }
    }
}

/// Runs [`IdleTrim::run`] until dropped.
#[derive(Debug)]
pub struct IdleTrimmer(tokio::task::JoinHandle<()>);

impl IdleTrimmer {
    /// Starts the trimmer on the current runtime.
    pub fn start(metrics: Arc<HemMetrics>) -> IdleTrimmer {
        IdleTrimmer(tokio::spawn(IdleTrim::run(metrics)))
    }
}

impl Drop for IdleTrimmer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_per_idle_spell_after_work() {
        let mut t = IdleTrim::default();
        assert!(!t.check(0, 0, 0), "nothing happened since start");
        assert!(!t.check(5, 0, 0), "events arrived during this period");
        assert!(t.check(5, 0, 0), "a whole quiet period after work");
        assert!(!t.check(5, 0, 0), "still idle: already trimmed");
        assert!(!t.check(9, 3, 1), "busy again");
        assert!(!t.check(9, 0, 2), "no new event, but hooks still running");
        assert!(!t.check(9, 1, 0), "one still waiting for its slot");
        assert!(
            t.check(9, 0, 0),
            "idle again after the second spell of work"
        );
    }
}
