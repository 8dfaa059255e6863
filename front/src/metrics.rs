//! What oned-lite counts, and the `/metrics` and `/health` view of it (`METRICS_LISTEN`):
//! API calls by method and outcome, hook log records stored, and the event outbox's depth.
//!
//! One front-end runs per process, so the counters are one process-wide [`METRICS`], added to
//! with relaxed atomics; the outbox is counted only when scraped.

use std::sync::LazyLock;

use one_metrics::{Counter, Exposition, Health, KeyedCounters, Kind, Source};
use one_proto::xmlrpc::{Response, Value};

use crate::events::EventBus;

/// Outcomes of a call, the columns of `one_oned_api_calls_total`.
const OUTCOMES: [&str; 3] = ["success", "failure", "fault"];
/// Key of the calls to methods oned does not register (`method="other"`).
const OTHER: i64 = -1;

/// oned-lite's counters.
pub struct OnedMetrics {
    /// By registered method (its index in oned's list) and outcome.
    calls: KeyedCounters<3>,
    /// Hook log records committed.
    pub hooklog_stored: Counter,
}

/// The process's front-end counters.
pub static METRICS: LazyLock<OnedMetrics> = LazyLock::new(|| OnedMetrics {
    // Room for every registered method, and the overflow row for "other".
    calls: KeyedCounters::new(1024),
    hooklog_stored: Counter::new(),
});

impl OnedMetrics {
    /// A call to the registered method `index` (`None`: not a registered method) was answered
    /// with `response`.
    pub fn call_answered(&self, index: Option<usize>, response: &Response) {
        let outcome = match response {
            Response::Value(Value::Array(a)) if matches!(a.first(), Some(Value::Bool(false))) => 1,
            Response::Value(_) => 0,
            Response::Fault { .. } => 2,
        };
        let key = index.and_then(|i| i64::try_from(i).ok()).unwrap_or(OTHER);
        self.calls.inc(key, outcome);
    }
}

/// The scrape: counters, and the outbox read through the event bus.
pub struct OnedSource {
    pub bus: EventBus,
}

impl Source for OnedSource {
    fn render(&self, out: &mut Exposition) {
        let m = &*METRICS;
        out.family(
            "one_oned_api_calls_total",
            Kind::Counter,
            "XML-RPC calls answered, by method (other: not a method oned registers) and outcome (failure: an error array, fault: an XML-RPC fault).",
        );
        for (key, counts) in m.calls.rows() {
            let method = key
                .and_then(|k| usize::try_from(k).ok())
                .and_then(one_proto::hook::registered_call_name)
                .unwrap_or("other");
            for (i, outcome) in OUTCOMES.iter().enumerate() {
                out.sample(
                    "one_oned_api_calls_total",
                    &[("method", method), ("outcome", outcome)],
                    counts[i] as f64,
                );
            }
        }
        out.counter(
            "one_oned_hooklog_records_stored_total",
            "Hook execution records committed to the hook log.",
            m.hooklog_stored.get(),
        );
        match self.bus.pending() {
            Ok(n) => out.gauge(
                "one_oned_event_outbox",
                "Events in the outbox: not yet acknowledged by the driver (JOURNALED).",
                n as f64,
            ),
            Err(e) => tracing::warn!(error = %e, "metrics cannot count the event outbox"),
        }
    }

    fn health(&self) -> Health {
        match self.bus.pending() {
            Ok(n) => Health::Ok(format!("{n} events in the outbox")),
            Err(e) => Health::Unavailable(format!("database unreadable: {e}")),
        }
    }
}
