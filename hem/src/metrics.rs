//! What the HEM counts, and the `/metrics` and `/health` view of it (`metrics_listen`).
//!
//! Events and executions are counted where they happen with relaxed atomic additions
//! ([`HemMetrics`]); queue depths and connection states the HEM already keeps are read only
//! when scraped ([`HemSource`]), so a scrape adds nothing to the path of an event.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use one_metrics::{
    Counter, Exposition, Gauge, Health, Histogram, KeyedCounters, Kind, SECONDS_BUCKETS, Source,
};

use crate::executor::ExecOutcome;
use crate::ingest::IngestShared;
use crate::remote::RemoteExecutor;
use crate::result_sender::ResultQueue;

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
    const ALL: [Outcome; 6] = [
        Outcome::Success,
        Outcome::Failure,
        Outcome::Timeout,
        Outcome::StartFailure,
        Outcome::Interrupted,
        Outcome::Refused,
    ];

    fn label(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Timeout => "timeout",
            Outcome::StartFailure => "start_failure",
            Outcome::Interrupted => "interrupted",
            Outcome::Refused => "refused",
        }
    }

    fn column(self) -> usize {
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
/// Hosts shown in a scrape; the rest are summed in the up/down counts only.
const HOST_SERIES: usize = 256;
/// Longest last-error text in a label.
const ERROR_LABEL_CHARS: usize = 160;

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
    executions: KeyedCounters<6>,
    duration: Histogram,
    start_latency: Histogram,
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

    fn journal_down(&self) -> bool {
        self.journal.load(Ordering::Relaxed) == JOURNAL_DOWN
    }
}

/// The event counters' names and help, in the order `render` reads them.
const EVENT_COUNTERS: [(&str, &str); 4] = [
    (
        "one_hem_events_received_total",
        "Events taken in, each once, live or replayed from the driver's journal.",
    ),
    (
        "one_hem_events_replayed_total",
        "Events read from the driver's journal to fill a gap in the live stream or to catch up.",
    ),
    (
        "one_hem_events_duplicate_total",
        "Live events dropped because they had been taken in already (replayed first).",
    ),
    (
        "one_hem_events_lost_total",
        "Events missed that the journal could not give (trimmed, unreachable or not configured).",
    ),
];

/// The scrape of one HEM: its counters and the state of its parts, each part shown once it
/// exists (the endpoint is up before them, answering 503 while the HEM starts).
pub struct HemSource {
    pub shared: Arc<IngestShared>,
    /// The result outbox towards the driver (single-HEM mode).
    pub results: OnceLock<ResultQueue>,
    pub remote: OnceLock<Arc<RemoteExecutor>>,
}

impl HemSource {
    pub fn new(shared: Arc<IngestShared>) -> HemSource {
        HemSource {
            shared,
            results: OnceLock::new(),
            remote: OnceLock::new(),
        }
    }
}

impl Source for HemSource {
    fn render(&self, out: &mut Exposition) {
        let m = &self.shared.metrics;
        let events = [
            m.events_received.get(),
            m.events_replayed.get(),
            m.events_duplicate.get(),
            m.events_lost.get(),
        ];
        for ((name, help), value) in EVENT_COUNTERS.iter().zip(events) {
            out.counter(name, help, value);
        }
        out.family(
            "one_hem_executions_total",
            Kind::Counter,
            "Hook executions ended with a record, by hook id and outcome.",
        );
        for (key, counts) in m.executions.rows() {
            let hook = key.map_or_else(|| "other".to_string(), |k| k.to_string());
            for outcome in Outcome::ALL {
                out.sample(
                    "one_hem_executions_total",
                    &[("hook_id", &hook), ("outcome", outcome.label())],
                    counts[outcome.column()] as f64,
                );
            }
        }
        out.histogram(
            "one_hem_hook_duration_seconds",
            "How long hook processes ran (executions that were started).",
            &m.duration,
        );
        out.histogram(
            "one_hem_execution_start_latency_seconds",
            "Time from an event's acceptance to the start of each of its executions' runs.",
            &m.start_latency,
        );
        out.gauge(
            "one_hem_executions_waiting",
            "Accepted executions waiting for their lane or a run slot.",
            m.waiting.get() as f64,
        );
        out.gauge(
            "one_hem_executions_running",
            "Executions running now.",
            m.running.get() as f64,
        );
        if let Some(results) = self.results.get() {
            out.gauge(
                "one_hem_result_outbox",
                "Results not yet acknowledged by the driver.",
                results.outstanding() as f64,
            );
        }
        out.gauge(
            "one_hem_hooks_loaded",
            "Hooks in the HEM's hook map.",
            self.shared.hooks.load(Ordering::Relaxed) as f64,
        );
        if let Some(seq) = self.shared.processed() {
            out.gauge(
                "one_hem_event_watermark",
                "Sequence number of the last event taken in.",
                seq as f64,
            );
        }
        self.render_hosts(out);
    }

    fn health(&self) -> Health {
        if self.shared.stop.is_requested() {
            return Health::Unavailable("stopping".into());
        }
        if !self.shared.ready.load(Ordering::SeqCst) {
            return Health::Unavailable(
                "starting: the hook pool is not loaded or the journal not caught up yet".into(),
            );
        }
        if self.shared.metrics.journal_down() {
            return Health::Unavailable(
                "the driver's replay endpoint is not answering: no event source".into(),
            );
        }
        Health::Ok(format!(
            "{} hooks loaded",
            self.shared.hooks.load(Ordering::Relaxed)
        ))
    }
}

impl HemSource {
    fn render_hosts(&self, out: &mut Exposition) {
        let hosts = self
            .remote
            .get()
            .map(|r| r.host_states())
            .unwrap_or_default();
        let up = hosts.iter().filter(|h| h.up).count();
        out.family(
            "one_hem_host_connections",
            Kind::Gauge,
            "Hosts of remote hooks by connection state.",
        );
        out.sample("one_hem_host_connections", &[("state", "up")], up as f64);
        out.sample(
            "one_hem_host_connections",
            &[("state", "down")],
            (hosts.len() - up) as f64,
        );
        out.family(
            "one_hem_host_up",
            Kind::Gauge,
            "1 while the HEM holds a working connection to the host.",
        );
        for h in hosts.iter().take(HOST_SERIES) {
            out.sample(
                "one_hem_host_up",
                &[("host", &h.name)],
                if h.up { 1.0 } else { 0.0 },
            );
        }
        out.family(
            "one_hem_host_last_error_info",
            Kind::Gauge,
            "The last connection error of each host that is down (value 1; the error is the label).",
        );
        for h in hosts.iter().take(HOST_SERIES) {
            if let (false, Some(error)) = (h.up, &h.last_error) {
                let error: String = error.chars().take(ERROR_LABEL_CHARS).collect();
                out.sample(
                    "one_hem_host_last_error_info",
                    &[("host", &h.name), ("error", &error)],
                    1.0,
                );
            }
        }
    }
}
