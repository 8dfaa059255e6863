//! Turns the event stream into accepted executions, exactly once per matching event.
//!
//! The live stream (SUB) and the journal (replay) are merged by sequence number: events at or
//! below the watermark are dropped as duplicates, a jump in the live numbers is filled from the
//! journal, and an idle HEM asks the journal for anything it missed (events published before
//! the SUB connection was up, or dropped at a high-water mark). Each event is matched with a
//! hash lookup, its executions are planned and, together with the new watermark, recorded in
//! one state-DB transaction before they are handed to the scheduler. Reload events update the
//! hook map in place, in event order, so the events after them see the new hooks.
//!
//! Against a driver without sequence tokens the HEM runs live-only, as the reference does.

mod gaps;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use one_proto::keys::{ParsedKey, parse_key};

use crate::bell::Bell;
use crate::config::ReplayFrom;
use crate::execution::{Execution, HookPaths};
use crate::hook_map::HookMap;
use crate::journal::{BusMessage, Journal};
use crate::matcher::{Apply, Matcher, is_primary};
pub use crate::matcher::{HookSource, Snapshot};
use crate::metrics::HemMetrics;
use crate::stop::Stop;
use crate::subscriber::EventStream;
use crate::uids::{RunUids, UidKey};
use gaps::{JOURNAL_BACKOFF_MIN, Missed};

/// Records accepted executions durably and hands them to the scheduler.
pub trait Acceptor: Send {
    /// Records `execs` and the watermark in one transaction, then submits the executions,
    /// blocking while the scheduler is full. Returns false when the HEM is stopping; the
    /// executions not submitted yet stay recorded and run at the next start.
    fn accept(&mut self, execs: Vec<Execution>, watermark: Option<u64>) -> bool;
}

/// State shared with the rest of the HEM: the stop switch, hook count, progress.
#[derive(Debug)]
pub struct IngestShared {
    pub stop: Stop,
    /// The last processed sequence + 1 (0: none yet).
    pub processed_plus_one: AtomicU64,
    /// The hook map is loaded and the journal was caught up once.
    pub ready: AtomicBool,
    /// Number of hooks loaded.
    pub hooks: AtomicU64,
    /// What the HEM counts (events here, executions in the runner and scheduler).
    pub metrics: Arc<HemMetrics>,
}

impl IngestShared {
    /// Nothing processed yet, not ready, not stopping (fails only if the system refuses the
    /// stop switch's pipe).
    pub fn new() -> std::io::Result<IngestShared> {
        Ok(IngestShared {
            stop: Stop::new()?,
            processed_plus_one: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            hooks: AtomicU64::new(0),
            metrics: Arc::new(HemMetrics::default()),
        })
    }

    pub fn processed(&self) -> Option<u64> {
        self.processed_plus_one
            .load(Ordering::SeqCst)
            .checked_sub(1)
    }

    fn stopping(&self) -> bool {
        self.stop.is_requested()
    }
}

/// Settings of the ingest loop.
#[derive(Clone, Debug)]
pub struct IngestSettings {
    pub paths: HookPaths,
    pub replay_from: ReplayFrom,
    pub replay_batch: u32,
    pub poll_interval: Duration,
    pub instance: String,
    pub boot: u64,
    /// The secret execution uids are tagged with, kept in the state DB.
    pub uid_key: UidKey,
    /// The watermark recovered from the state DB.
    pub watermark: Option<u64>,
}

/// The resync's end of the snapshot hand-off: every snapshot wakes the ingest loop.
pub struct SnapshotSender {
    tx: mpsc::Sender<Snapshot>,
    bell: Bell,
}

impl SnapshotSender {
    /// Hands a snapshot over; false once the ingest loop is gone.
    pub fn send(&self, snapshot: Snapshot) -> bool {
        let sent = self.tx.send(snapshot).is_ok();
        self.bell.ring();
        sent
    }
}

/// The ingest loop's end of the snapshot hand-off.
pub struct SnapshotReceiver {
    rx: mpsc::Receiver<Snapshot>,
    bell: Bell,
}

/// A snapshot hand-off from the resync thread to the ingest loop (fails only if the system
/// refuses a pipe).
pub fn snapshot_channel() -> std::io::Result<(SnapshotSender, SnapshotReceiver)> {
    let (tx, rx) = mpsc::channel();
    let bell = Bell::new()?;
    Ok((
        SnapshotSender {
            tx,
            bell: bell.clone(),
        },
        SnapshotReceiver { rx, bell },
    ))
}

/// Messages handled per wake-up before the accepted executions are committed.
const BURST: usize = 512;
/// How often the watermark of events that matched nothing is written.
const WATERMARK_PERIOD: Duration = Duration::from_millis(500);
/// Pause after the subscriber socket failed, so that a broken socket does not spin.
const SOCKET_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The ingest loop and its state.
pub struct Ingest<S: EventStream, J: Journal, H: HookSource, A: Acceptor> {
    stream: S,
    journal: Option<J>,
    matcher: Matcher<H>,
    acceptor: A,
    settings: IngestSettings,
    shared: Arc<IngestShared>,
    snapshots: Option<SnapshotReceiver>,
    resync_now: Option<mpsc::Sender<()>>,

    processed: Option<u64>,
    written: Option<u64>,
    last_write: Instant,
    pending: Vec<Execution>,
    uids: RunUids,
    journal_up: Option<bool>,
    /// After a failure, optional journal requests (start probe, idle poll, duplicate check)
    /// wait until then, so a driver without a replay endpoint costs no request timeouts on the
    /// live path. Filling a gap always asks.
    journal_quiet_until: Option<Instant>,
    journal_backoff: Duration,
    sequenced: Option<bool>,
    last_reset_check: Option<Instant>,
}

impl<S: EventStream, J: Journal, H: HookSource, A: Acceptor> Ingest<S, J, H, A> {
    pub fn new(
        stream: S,
        journal: Option<J>,
        source: H,
        acceptor: A,
        settings: IngestSettings,
        shared: Arc<IngestShared>,
    ) -> Self {
        let processed = settings.watermark;
        Ingest {
            stream,
            journal,
            matcher: Matcher::new(source, settings.paths.clone()),
            acceptor,
            shared,
            snapshots: None,
            resync_now: None,
            processed,
            written: processed,
            last_write: Instant::now(),
            pending: Vec::new(),
            uids: RunUids::new(settings.uid_key.clone(), &settings.instance, settings.boot),
            journal_up: None,
            journal_quiet_until: None,
            journal_backoff: JOURNAL_BACKOFF_MIN,
            sequenced: None,
            last_reset_check: None,
            settings,
        }
    }

    /// Connects the periodic resync: snapshots in, early-resync requests out.
    pub fn with_resync(
        mut self,
        snapshots: SnapshotReceiver,
        resync_now: mpsc::Sender<()>,
    ) -> Self {
        self.snapshots = Some(snapshots);
        self.resync_now = Some(resync_now);
        self
    }

    /// Runs until the stop is requested.
    pub fn run(mut self) {
        // The start position of a first start is taken before anything slow (the hook pool
        // load can take seconds), so that events published meanwhile are replayed.
        self.start_position();
        if !self.load_hooks() {
            return;
        }
        if let Some(after) = self.processed {
            let replayed = self.catch_up(None);
            if replayed > 0 {
                tracing::info!(
                    after,
                    replayed,
                    "replayed {replayed} events published while the HEM was not reading"
                );
            }
        }
        self.shared.ready.store(true, Ordering::SeqCst);
        one_notify::ready();
        let mut last_activity = Instant::now();
        let mut last_poll = Instant::now();
        while !self.shared.stopping() {
            self.apply_snapshot();
            let wait = self.settings.poll_interval;
            let stop = self.shared.stop.fd();
            let received = match &self.snapshots {
                Some(snapshots) => self.stream.recv_or_wake(wait, &[stop, snapshots.bell.fd()]),
                None => self.stream.recv_or_wake(wait, &[stop]),
            };
            match received {
                Ok(Some(msg)) => {
                    // A snapshot that arrived during the wait applies before this event.
                    self.apply_snapshot();
                    self.on_live(msg);
                    for _ in 0..BURST {
                        match self.stream.try_recv() {
                            Ok(Some(msg)) => self.on_live(msg),
                            _ => break,
                        }
                    }
                    self.flush(false);
                    last_activity = Instant::now();
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, "cannot read events from the subscriber socket");
                    self.shared.stop.sleep(SOCKET_ERROR_PAUSE);
                }
            }
            let now = Instant::now();
            if now.duration_since(last_activity) >= self.settings.poll_interval
                && now.duration_since(last_poll) >= self.settings.poll_interval
            {
                last_poll = now;
                if self.processed.is_none() {
                    self.start_position();
                }
                if self.journal_worth_asking() {
                    self.poll_journal();
                }
            }
            self.flush(false);
        }
        self.flush(true);
    }

    /// Loads the hook pool, retrying with backoff until it works or the HEM stops.
    fn load_hooks(&mut self) -> bool {
        tracing::info!("Loading Hooks...");
        let mut delay = Duration::from_millis(500);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.matcher.source().pool() {
                Ok(specs) => {
                    self.matcher.replace(HookMap::from_specs(specs));
                    self.count_hooks();
                    tracing::info!(hooks = self.matcher.len(), "Hooks successfully loaded");
                    return true;
                }
                Err(e) => {
                    tracing::error!(
                        attempt,
                        retry_in_ms = delay.as_millis() as u64,
                        "Cannot get hook information: {e}"
                    );
                    if !self.sleep(delay) {
                        return false;
                    }
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// Sleeps unless the HEM stops first; false when it is stopping.
    fn sleep(&self, total: Duration) -> bool {
        self.shared.stop.sleep(total)
    }

    fn set_processed(&mut self, seq: u64) {
        self.processed = Some(seq);
        self.shared
            .processed_plus_one
            .store(seq.saturating_add(1), Ordering::SeqCst);
    }

    fn on_live(&mut self, msg: BusMessage) {
        let parsed = parse_key(&msg.key);
        if !is_primary(&parsed) {
            return;
        }
        let Some(seq) = parsed.seq else {
            if self.sequenced != Some(false) {
                tracing::warn!(key = %msg.key, "the driver publishes no sequence numbers: running live-only, events missed while the HEM is down or slow are lost");
                self.sequenced = Some(false);
            }
            self.shared.metrics.events_received.inc();
            self.process(0, &parsed, &msg);
            return;
        };
        let missed = if self.sequenced.is_none() {
            Missed::BeforeSubscription
        } else {
            Missed::Dropped
        };
        self.sequenced = Some(true);
        let processed = match self.processed {
            Some(p) => p,
            None => {
                // No journal position yet: the live stream defines the start.
                let p = seq.saturating_sub(1);
                tracing::info!(after = p, "starting with the first live event");
                self.set_processed(p);
                p
            }
        };
        if seq <= processed {
            self.on_duplicate(seq);
            return;
        }
        if seq > processed.saturating_add(1) {
            self.flush(false);
            self.fill_gap(processed, seq - 1, missed);
            if self.processed.is_some_and(|p| seq <= p) {
                return;
            }
        }
        self.shared.metrics.events_received.inc();
        self.process(seq, &parsed, &msg);
        self.set_processed(seq);
    }

    fn process(&mut self, seq: u64, parsed: &ParsedKey<'_>, msg: &BusMessage) {
        self.matcher.handle(
            seq,
            parsed,
            msg,
            Apply::All,
            &mut self.uids,
            &mut self.pending,
        );
        if Matcher::<H>::may_reload(parsed) {
            self.count_hooks();
            if self.matcher.take_resync_wanted()
                && let Some(tx) = &self.resync_now
            {
                let _ = tx.send(());
            }
        }
    }

    fn apply_snapshot(&mut self) {
        let Some(snapshots) = &self.snapshots else {
            return;
        };
        // Drained before reading, so that a ring after this read wakes the next wait.
        snapshots.bell.drain();
        let mut latest = None;
        while let Ok(s) = snapshots.rx.try_recv() {
            latest = Some(s);
        }
        if let Some(snapshot) = latest
            && self.matcher.apply_snapshot(snapshot)
        {
            self.count_hooks();
        }
    }

    fn count_hooks(&self) {
        self.shared
            .hooks
            .store(self.matcher.len() as u64, Ordering::SeqCst);
    }

    /// Commits the planned executions with the watermark. A watermark move alone is written at
    /// most every WATERMARK_PERIOD (replaying a few unmatched events after a crash is harmless).
    fn flush(&mut self, force: bool) {
        let watermark_moved = self.processed != self.written;
        if self.pending.is_empty()
            && !(watermark_moved && (force || self.last_write.elapsed() >= WATERMARK_PERIOD))
        {
            return;
        }
        let execs = std::mem::take(&mut self.pending);
        if !self.acceptor.accept(execs, self.processed) {
            self.shared.stop.request();
        }
        self.written = self.processed;
        self.last_write = Instant::now();
    }
}
