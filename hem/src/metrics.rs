//! What the HEM counts: events and executions, where they happen, with relaxed atomic additions
//! ([`HemMetrics`]). `crate::scrape` shows them with the state of the HEM's parts.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use one_metrics::{Counter, Gauge, Histogram, KeyedCounters, SECONDS_BUCKETS};

use crate::executor::ExecOutcome;

/// How an execution ended, as counted in `one_hem_executions_total{outcome}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exit code 0.
    Success,
    /// Ran and exited non-zero (or was killed by a signal).
    Failure,
    /// Killed at its TIMEOUT.
    Timeout,
    /// Could not be started (no such command, host unreachable, agent refused it).
    StartFailure,
    /// Was running when a HEM stopped; reported, not run again.
    Interrupted,
    /// Never started: its COMMAND is outside the allowed directories, or a remote hook named
    /// no host.
    Refused,
}

impl Outcome {
    pub(crate) const ALL: [Outcome; 6] = [
        Outcome::Success,
        Outcome::Failure,
        Outcome::Timeout,
        Outcome::StartFailure,
        Outcome::Interrupted,
        Outcome::Refused,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Timeout => "timeout",
            Outcome::StartFailure => "start_failure",
            Outcome::Interrupted => "interrupted",
            Outcome::Refused => "refused",
        }
    }

    pub(crate) fn column(self) -> usize {
        self as usize
    }

    /// The outcome of a run (a refused execution never reaches the executor).
    pub fn of(outcome: &ExecOutcome) -> Outcome {
        if outcome.timed_out {
            Outcome::Timeout
        } else if outcome.start_error.is_some() {
            Outcome::StartFailure
        } else if outcome.code == 0 {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }
}

/// Distinct hook ids with a series of their own; further ones share `hook_id="other"`.
const HOOK_SERIES: usize = 1024;

/// The replay endpoint as the event reader last found it.
const JOURNAL_UNKNOWN: u8 = 0;
const JOURNAL_UP: u8 = 1;
const JOURNAL_DOWN: u8 = 2;

/// The HEM's counters, updated on its hot paths.
#[derive(Debug)]
pub struct HemMetrics {
    /// Events taken in once each (live or replayed).
    pub events_received: Counter,
    /// Of those, events read from the driver's journal to fill a gap or catch up.
    pub events_replayed: Counter,
    /// Live events already taken in (replayed before they arrived), dropped.
    pub events_duplicate: Counter,
    /// Events missed that the journal could not give (trimmed, unreachable, or no journal).
    pub events_lost: Counter,
    pub(crate) executions: KeyedCounters<6>,
    pub(crate) duration: Histogram,
    pub(crate) start_latency: Histogram,
    /// Executions handed to the scheduler that have not started their run.
    pub waiting: Gauge,
    /// Executions running (start recorded, hook spawned or being spawned).
    pub running: Gauge,
    journal: AtomicU8,
}

impl Default for HemMetrics {
    fn default() -> Self {
        HemMetrics {
            events_received: Counter::new(),
            events_replayed: Counter::new(),
            events_duplicate: Counter::new(),
            events_lost: Counter::new(),
            executions: KeyedCounters::new(HOOK_SERIES),
            duration: Histogram::new(SECONDS_BUCKETS),
            start_latency: Histogram::new(SECONDS_BUCKETS),
            waiting: Gauge::new(),
            running: Gauge::new(),
            journal: AtomicU8::new(JOURNAL_UNKNOWN),
        }
    }
}

impl HemMetrics {
    /// An execution ended with a record; `ran` is how long its process ran, for those that
    /// ran.
    pub fn executed(&self, hook_id: i64, outcome: Outcome, ran: Option<Duration>) {
        self.executions.inc(hook_id, outcome.column());
        if let Some(d) = ran {
            self.duration.observe(d);
        }
    }

    /// An execution got its run slot `waited` after its event was accepted.
    pub fn started(&self, waited: Duration) {
        self.waiting.sub(1);
        self.running.add(1);
        self.start_latency.observe(waited);
    }

    /// The replay endpoint answered (`true`) or did not.
    pub fn journal_seen(&self, up: bool) {
        let v = if up { JOURNAL_UP } else { JOURNAL_DOWN };
        self.journal.store(v, Ordering::Relaxed);
    }

    pub(crate) fn journal_down(&self) -> bool {
        self.journal.load(Ordering::Relaxed) == JOURNAL_DOWN
    }
}
