//! The `/metrics` and `/health` view of one HEM (`metrics_listen`): its counters
//! (`crate::metrics`) and the queue depths and connection states the HEM already keeps, read
//! only when scraped, so a scrape adds nothing to the path of an event.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use one_metrics::{Exposition, Health, Kind, Source};

use crate::ingest::IngestShared;
use crate::metrics::Outcome;
use crate::remote::RemoteExecutor;
use crate::result_sender::ResultQueue;

/// Hosts shown in a scrape; the rest are summed in the up/down counts only.
const HOST_SERIES: usize = 256;
/// Longest last-error text in a label.
const ERROR_LABEL_CHARS: usize = 160;

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
