//! What the driver counts, and the `/metrics` and `/health` view of it (`--metrics-listen`).
//!
//! One driver runs per process, so the counters are one process-wide [`METRICS`] of relaxed
//! atomics that each thread adds to where the thing happens. The journal's size and the
//! results oned has not acknowledged are read only when scraped, on a read-only connection of
//! the scrape's own ([`DriverSource`]), so a scrape never touches the writer.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use one_metrics::{Counter, Exposition, Gauge, Health, Kind, Source};
use rusqlite::{Connection, OpenFlags};

/// The driver's counters.
#[derive(Debug)]
pub struct DriverMetrics {
    /// `EXECUTE`/`RETRY` lines from oned that carry an event.
    pub events_received: Counter,
    /// Lines not published (missing keys, no payload), reported to oned as `LOG E`.
    pub events_refused: Counter,
    /// Events oned sent again after a restart that were journaled already, dropped.
    pub events_redelivered: Counter,
    pub events_journaled: Counter,
    /// Events handed to the PUB socket (each once, whatever its number of keys).
    pub events_published: Counter,
    /// Events sent by the replay endpoint (gap fills and catch-ups of subscribers).
    pub events_replayed: Counter,
    /// Events read from oned and not yet journaled: what a front-end that acknowledges waits
    /// `JOURNALED` for.
    pub events_awaiting_journal: Gauge,
    pub results_received: Counter,
    /// Results stored and answered `ACK`.
    pub results_acked: Counter,
    /// Results with an EXECUTION_UID stored before: answered `ACK`, not forwarded again.
    pub results_duplicate: Counter,
    /// Results answered `ERR` because they were malformed.
    pub results_malformed: Counter,
    /// Results answered `ERR` by the driver's checks (`--require-execution-uid`, a uid that
    /// names an event the journal never had).
    pub results_refused: Counter,
    /// Results answered `ERR` because the journal could not store them.
    pub results_unstored: Counter,
    /// Result lines written to oned (again after a restart for those not acknowledged).
    pub results_forwarded: Counter,
    /// The error of the failing journal commit, while commits fail.
    journal_failure: Mutex<Option<String>>,
    /// Whether `journal_failure` holds an error, read by every commit without the lock.
    journal_failed: AtomicBool,
}

/// The process's driver counters.
pub static METRICS: DriverMetrics = DriverMetrics {
    events_received: Counter::new(),
    events_refused: Counter::new(),
    events_redelivered: Counter::new(),
    events_journaled: Counter::new(),
    events_published: Counter::new(),
    events_replayed: Counter::new(),
    events_awaiting_journal: Gauge::new(),
    results_received: Counter::new(),
    results_acked: Counter::new(),
    results_duplicate: Counter::new(),
    results_malformed: Counter::new(),
    results_refused: Counter::new(),
    results_unstored: Counter::new(),
    results_forwarded: Counter::new(),
    journal_failure: Mutex::new(None),
    journal_failed: AtomicBool::new(false),
};

impl DriverMetrics {
    /// A commit failed with `error`.
    pub fn journal_failed(&self, error: String) {
        let mut f = self
            .journal_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *f = Some(error);
        self.journal_failed.store(true, Ordering::Relaxed);
    }

    /// A commit succeeded: the failure, if any, is over.
    pub fn journal_committed(&self) {
        if self.journal_failed.swap(false, Ordering::Relaxed) {
            let mut f = self
                .journal_failure
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *f = None;
        }
    }

    fn journal_failure(&self) -> Option<String> {
        self.journal_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The scrape: the counters, and the SQLite journal read on a connection of its own.
pub struct DriverSource {
    /// `None` in the NATS mode, whose journal is the events stream.
    journal: Option<JournalProbe>,
}

struct JournalProbe {
    path: PathBuf,
    conn: Mutex<Option<Connection>>,
}

/// What the probe reads: events kept, the result backlog towards oned.
struct JournalState {
    events: u64,
    head: u64,
    result_backlog: u64,
}

impl DriverSource {
    /// `journal` is the SQLite journal's path (`None` in the NATS mode).
    pub fn new(journal: Option<PathBuf>) -> DriverSource {
        DriverSource {
            journal: journal.map(|path| JournalProbe {
                path,
                conn: Mutex::new(None),
            }),
        }
    }
}

impl JournalProbe {
    fn read(&self) -> Result<JournalState, rusqlite::Error> {
        let mut conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if conn.is_none() {
            let c = Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            *conn = Some(c);
        }
        let Some(c) = conn.as_ref() else {
            return Err(rusqlite::Error::InvalidQuery);
        };
        let read = c
            .prepare_cached(
                "SELECT (SELECT min(seq) FROM events), (SELECT max(seq) FROM events),
                        (SELECT value FROM meta WHERE name = 'head'),
                        (SELECT count(*) FROM results
                          WHERE id > (SELECT value FROM meta WHERE name = 'forwarded'))",
            )
            .and_then(|mut st| {
                st.query_row([], |r| {
                    let oldest: Option<i64> = r.get(0)?;
                    let newest: Option<i64> = r.get(1)?;
                    let head: i64 = r.get(2)?;
                    let backlog: i64 = r.get(3)?;
                    let events = match (oldest, newest) {
                        (Some(o), Some(n)) if n >= o => (n - o + 1) as u64,
                        _ => 0,
                    };
                    Ok(JournalState {
                        events,
                        head: head.max(0) as u64,
                        result_backlog: backlog.max(0) as u64,
                    })
                })
            });
        if read.is_err() {
            // Opened again at the next scrape (the file may have been replaced).
            *conn = None;
        }
        read
    }

    /// The journal file and its WAL, in bytes.
    fn bytes(&self) -> u64 {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        [self.path.clone(), PathBuf::from(wal)]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

impl Source for DriverSource {
    fn render(&self, out: &mut Exposition) {
        let m = &METRICS;
        out.counters(&[
            (
                "one_hm_events_received_total",
                "EXECUTE and RETRY lines from oned that carry an event.",
                m.events_received.get(),
            ),
            (
                "one_hm_events_refused_total",
                "Lines from oned not published (missing event keys or payload), reported as LOG E.",
                m.events_refused.get(),
            ),
            (
                "one_hm_events_redelivered_total",
                "Events oned sent again after a restart that were journaled already, dropped.",
                m.events_redelivered.get(),
            ),
            (
                "one_hm_events_journaled_total",
                "Events committed to the journal.",
                m.events_journaled.get(),
            ),
            (
                "one_hm_events_published_total",
                "Events published on the PUB socket (each once, whatever its number of keys).",
                m.events_published.get(),
            ),
            (
                "one_hm_events_replayed_total",
                "Events sent by the replay endpoint to subscribers filling gaps or catching up.",
                m.events_replayed.get(),
            ),
            (
                "one_hm_results_received_total",
                "Result requests received on the results socket.",
                m.results_received.get(),
            ),
            (
                "one_hm_results_acked_total",
                "Results stored and answered ACK.",
                m.results_acked.get(),
            ),
            (
                "one_hm_results_duplicate_total",
                "Results whose EXECUTION_UID was stored before: answered ACK, not forwarded again.",
                m.results_duplicate.get(),
            ),
            (
                "one_hm_results_forwarded_total",
                "Result lines written to oned.",
                m.results_forwarded.get(),
            ),
            (
                "one_hm_results_malformed_total",
                "Result requests answered ERR as malformed.",
                m.results_malformed.get(),
            ),
            (
                "one_hm_results_refused_total",
                "Results answered ERR by the driver's checks of their EXECUTION_UID.",
                m.results_refused.get(),
            ),
            (
                "one_hm_results_unstored_total",
                "Results answered ERR because the journal could not store them.",
                m.results_unstored.get(),
            ),
        ]);
        out.gauge(
            "one_hm_events_awaiting_journal",
            "Events read from oned and not yet journaled (oned waits JOURNALED for them).",
            m.events_awaiting_journal.get() as f64,
        );
        out.gauge(
            "one_hm_journal_up",
            "1 while the journal accepts commits.",
            if m.journal_failure().is_none() {
                1.0
            } else {
                0.0
            },
        );
        let Some(probe) = &self.journal else {
            return;
        };
        match probe.read() {
            Ok(s) => {
                out.gauge(
                    "one_hm_journal_events",
                    "Events kept in the journal for replay.",
                    s.events as f64,
                );
                out.gauge(
                    "one_hm_journal_head_sequence",
                    "Sequence number of the newest journaled event.",
                    s.head as f64,
                );
                out.gauge(
                    "one_hm_result_backlog",
                    "Results stored in the journal that oned has not acknowledged yet.",
                    s.result_backlog as f64,
                );
            }
            Err(e) => tracing::warn!(error = %e, "metrics cannot read the journal"),
        }
        out.family(
            "one_hm_journal_bytes",
            Kind::Gauge,
            "Size of the journal's database file and its WAL.",
        );
        out.sample("one_hm_journal_bytes", &[], probe.bytes() as f64);
    }

    fn health(&self) -> Health {
        if let Some(error) = METRICS.journal_failure() {
            return Health::Unavailable(format!("journal unavailable: {error}"));
        }
        if let Some(probe) = &self.journal
            && let Err(e) = probe.read()
        {
            return Health::Unavailable(format!("journal unreadable: {e}"));
        }
        Health::Ok("journal accepting events".into())
    }
}
