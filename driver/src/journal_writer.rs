//! The journal writer: group commit of events and results, then publication and forwarding.
//!
//! Everything that has to be durable goes through this one thread. It takes whatever has queued
//! up while the previous commit ran (up to [`MAX_BATCH_EVENTS`] and [`MAX_BATCH_BYTES`]), commits
//! it in one transaction, and only then hands the events to the publisher, answers the results'
//! requests and queues the stored results for oned. Under load batches grow, so the cost of a commit is shared by
//! thousands of events; when idle, an event is committed alone as soon as it arrives.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::{Duration, Instant};

use tracing::{debug, error, info, warn};

use crate::journal::{Batch, EventLog, JournalEvent};
use crate::messages::{ResultOutcome, ResultReply, ToOned, WriterMsg, WriterWake};
use crate::metrics::METRICS;
use crate::redelivery::Redelivery;
use crate::result_checks::ResultChecks;
use crate::shutdown::Shutdown;

/// Most events in one commit.
pub const MAX_BATCH_EVENTS: usize = 16_384;
/// Most content bytes in one commit: a transaction that outgrows SQLite's page cache spills
/// pages to the WAL before it commits, which costs more than a second commit.
pub const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// How often retention is applied.
const TRIM_INTERVAL: Duration = Duration::from_secs(1);
/// Fewest events a trim pass may remove (more when the journal is growing faster).
const TRIM_BUDGET: u64 = 20_000;
/// How long the writer waits with nothing to do, after work, before it frees caches and
/// returns free memory (a burst's buffers) to the system.
const IDLE_RELEASE: Duration = Duration::from_secs(1);
/// Backoff bounds while the journal refuses commits.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Attempts at a failing commit once shutdown has begun, before its events are given up.
const FINAL_ATTEMPTS: u32 = 3;

/// Where committed work goes.
pub struct WriterLinks {
    /// Committed events, to publish.
    pub publisher: Sender<Vec<JournalEvent>>,
    /// Stored results, to forward.
    pub oned: Sender<ToOned>,
    /// Which results are refused before they are stored.
    pub checks: ResultChecks,
    /// Rung by the senders of events and of `Finish` ([`WriterWake`]).
    pub wake: WriterWake,
}

/// Runs until every sender is gone. `Finish` drops the links, so the publisher and the output
/// thread wind down while forwarding marks are still recorded.
pub fn run(
    mut journal: Box<dyn EventLog>,
    rx: Receiver<WriterMsg>,
    links: WriterLinks,
    shutdown: Shutdown,
) {
    let checks = links.checks;
    let wake = links.wake.clone();
    wake.register();
    let mut links = Some(links);
    match journal.pending_results() {
        Ok(pending) if !pending.is_empty() => {
            info!(
                count = pending.len(),
                "forwarding results stored before the last stop"
            );
            if let Some(l) = &links {
                let _ = l.oned.send(ToOned::Results(pending));
            }
        }
        Ok(_) => {}
        Err(e) => error!(error = %e, "cannot read unforwarded results"),
    }
    let mut redelivery = Redelivery::from_journal(journal.as_mut());
    let mut last_trim = Instant::now();
    let mut since_trim: u64 = 0;
    let mut owed = OwedMark::default();
    let mut idle = IdleRelease::default();
    let mut pace = ResultPace::default();
    loop {
        // Waking up at least every trim interval keeps retention going on an idle journal.
        let first = match rx.recv_timeout(owed.wait(TRIM_INTERVAL)) {
            Ok(msg) => Some(msg),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if first.is_none() && idle.due() {
            journal.release_memory();
            crate::memory::release_free_memory();
        }
        let mut work = Work::default();
        if let Some(msg) = first {
            work.absorb(msg);
        }
        while work.batch.events.len() < MAX_BATCH_EVENTS
            && work.bytes < MAX_BATCH_BYTES
            && !work.finish
        {
            match rx.try_recv() {
                Ok(msg) => work.absorb(msg),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        pace.linger(&rx, &mut work, &wake);
        owed.settle(&mut work);
        work.refuse_impossible_results(checks, journal.head());
        let read = work.batch.events.len() as i64;
        let dropped = redelivery.drop_redelivered(journal.as_mut(), &mut work.batch.events);
        METRICS.events_redelivered.add(dropped as u64);
        if dropped > 0 {
            info!(
                events = dropped,
                "redelivered events already journaled, dropped"
            );
        }
        let committed = work.batch.is_empty()
            || commit_with_retry(
                journal.as_mut(),
                &mut work.batch,
                &mut work.replies,
                links.as_ref().map(|l| &l.oned),
                &shutdown,
            );
        // Committed or given up at shutdown: either way no longer waiting.
        METRICS.events_awaiting_journal.sub(read);
        if committed && !(work.batch.events.is_empty() && work.batch.results.is_empty()) {
            idle.worked();
        }
        if committed {
            pace.committed(work.batch.results.len());
            METRICS.events_journaled.add(work.batch.events.len() as u64);
            since_trim += work.batch.events.len() as u64;
            redelivery.committed(&work.batch.events);
            if let (Some(id), Some(l)) = (work.handled, &links) {
                let _ = l.oned.send(ToOned::Journaled(id));
            }
            deliver(
                work.batch,
                work.replies,
                links.as_ref(),
                journal.delivers_results(),
            );
        }
        if work.finish {
            debug!("writer finishing: publisher and output released");
            links = None;
        }
        if last_trim.elapsed() >= TRIM_INTERVAL {
            match journal.trim(TRIM_BUDGET.max(since_trim.saturating_mul(2))) {
                Ok(t) if t.events + t.results > 0 => {
                    debug!(events = t.events, results = t.results, "journal trimmed");
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "journal trim failed"),
            }
            last_trim = Instant::now();
            since_trim = 0;
        }
    }
    if let Some(id) = owed.id.take() {
        let mut batch = Batch {
            forwarded: Some(id),
            ..Batch::default()
        };
        if let Err(e) = journal.commit(&mut batch) {
            warn!(error = %e, "last forwarding mark not stored; those results go to oned again");
        }
    }
    info!(head = journal.head(), "journal writer stopped");
}

/// When the writer last committed events or results, until it has been idle long enough to
/// release memory once.
struct IdleRelease {
    last_work: Option<Instant>,
    after: Duration,
}

impl Default for IdleRelease {
    fn default() -> Self {
        IdleRelease {
            last_work: None,
            after: IDLE_RELEASE,
        }
    }
}

impl IdleRelease {
    fn worked(&mut self) {
        self.last_work = Some(Instant::now());
    }

    /// `true` once per idle spell, [`IDLE_RELEASE`] after the last work.
    fn due(&mut self) -> bool {
        let due = self.last_work.is_some_and(|at| at.elapsed() >= self.after);
        if due {
            self.last_work = None;
        }
        due
    }
}

/// A forwarding mark not committed yet.
///
/// Once oned has a result, the mark that says so is only bookkeeping: lost in a crash, it makes
/// the restarted driver forward a few results again, which oned-lite drops by EXECUTION_UID.
/// So a mark alone waits up to [`MARK_DELAY`] for a commit that happens anyway (the next event
/// or result) instead of costing a transaction per result: under a steady flow of hooks this
/// removes one commit of three per execution.
#[derive(Default)]
struct OwedMark {
    id: Option<u64>,
    since: Option<Instant>,
}

/// Longest time a forwarding mark waits for a commit to ride along with.
const MARK_DELAY: Duration = Duration::from_millis(200);

impl OwedMark {
    /// How long the writer may wait for work before the mark is due.
    fn wait(&self, idle: Duration) -> Duration {
        match self.since {
            Some(since) => idle.min(MARK_DELAY.saturating_sub(since.elapsed())),
            None => idle,
        }
    }

    /// Puts the owed mark into `work` when it commits something else, when the mark is due or
    /// at shutdown; otherwise takes `work`'s mark and owes it.
    fn settle(&mut self, work: &mut Work) {
        let mark = work.batch.forwarded.max(self.id.take());
        let alone = work.batch.events.is_empty() && work.batch.results.is_empty();
        let due = self.since.is_some_and(|s| s.elapsed() >= MARK_DELAY);
        if mark.is_some() && alone && !due && !work.finish {
            work.batch.forwarded = None;
            self.id = mark;
            self.since.get_or_insert_with(Instant::now);
        } else {
            work.batch.forwarded = mark;
            self.since = None;
        }
    }
}

/// Group commit of results that arrive close together.
///
/// Results come one by one, as hooks finish, and a commit that carries one result costs about
/// as much as one that carries several (SQLite writes every page it changed, and a result
/// changes four). So a result that arrives less than [`RESULT_LINGER`] after the last commit
/// of results waits for the rest of that time, and the results arriving meanwhile share its
/// commit; an event ends the wait at once (events are never held back, and the results ride
/// along: the reader of oned's events rings [`WriterWake`], and the writer sleeps through the
/// wait otherwise, so results arriving meanwhile cost it no wake-up). A peer that sends one
/// result at a time and waits for its `ACK` (a REQ socket) can add nothing to a waiting batch:
/// when a wait gathered no second result, the next [`PROBATION`] commits of results do not
/// wait.
struct ResultPace {
    /// How long results may wait ([`RESULT_LINGER`]).
    linger: Duration,
    last_commit: Option<Instant>,
    /// Commits of results left before waiting is tried again.
    probation: u32,
    /// Whether the batch being gathered waited.
    lingered: bool,
}

/// Longest time a result waits for others to share its commit.
const RESULT_LINGER: Duration = Duration::from_millis(5);
/// Commits of results that do not wait after a wait that gathered nothing.
const PROBATION: u32 = 8;

impl Default for ResultPace {
    fn default() -> Self {
        ResultPace {
            linger: RESULT_LINGER,
            last_commit: None,
            probation: 0,
            lingered: false,
        }
    }
}

impl ResultPace {
    /// Whether what `work` holds may wait for more: results only, room left.
    fn may_wait(work: &Work) -> bool {
        !work.batch.results.is_empty()
            && work.batch.events.is_empty()
            && !work.finish
            && work.bytes < MAX_BATCH_BYTES
    }

    /// Until when the results of `work` may wait for more, if they may.
    fn deadline(&self, work: &Work) -> Option<Instant> {
        if !Self::may_wait(work) || self.probation > 0 {
            return None;
        }
        let until = self.last_commit? + self.linger;
        (until > Instant::now()).then_some(until)
    }

    /// Gathers what arrives until the deadline, or until an event or the end comes. The writer
    /// sleeps meanwhile and takes the results in when it wakes: `wake` is rung by the senders
    /// of events and of the end, so results arriving during the wait wake nobody.
    fn linger(&mut self, rx: &Receiver<WriterMsg>, work: &mut Work, wake: &WriterWake) {
        self.lingered = false;
        let Some(until) = self.deadline(work) else {
            return;
        };
        self.lingered = true;
        while Self::may_wait(work) {
            wake.arm();
            let received = rx.try_recv();
            if let Err(TryRecvError::Empty) = received {
                let left = until.saturating_duration_since(Instant::now());
                if !left.is_zero() {
                    wake.sleep(left);
                    continue;
                }
            }
            wake.disarm();
            match received {
                Ok(msg) => work.absorb(msg),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
    }

    /// A commit carrying `results` results went through.
    fn committed(&mut self, results: usize) {
        if results == 0 {
            return;
        }
        if self.lingered && results < 2 {
            self.probation = PROBATION;
        } else {
            self.probation = self.probation.saturating_sub(1);
        }
        self.last_commit = Some(Instant::now());
    }
}

/// What one commit gathers from the queue.
#[derive(Default)]
struct Work {
    batch: Batch,
    replies: Vec<ResultReply>,
    bytes: usize,
    /// Event id of the last line covered by this batch.
    handled: Option<u64>,
    finish: bool,
}

impl Work {
    fn absorb(&mut self, msg: WriterMsg) {
        match msg {
            WriterMsg::Events { events, handled } => {
                self.bytes += events.iter().map(JournalEvent::size).sum::<usize>();
                self.batch.events.extend(events);
                if handled.is_some() {
                    self.handled = handled;
                }
            }
            WriterMsg::Result(accepted) => {
                self.bytes += accepted.result.body.len();
                self.batch.results.push(accepted.result);
                self.replies.push(accepted.reply);
            }
            WriterMsg::Forwarded(id) => {
                self.batch.forwarded = self.batch.forwarded.max(Some(id));
            }
            WriterMsg::Finish => self.finish = true,
        }
    }
}

impl Work {
    /// Answers and drops the results no HEM could have sent (`result_checks`).
    fn refuse_impossible_results(&mut self, checks: ResultChecks, head: u64) {
        if self.batch.results.is_empty() {
            return;
        }
        let results = std::mem::take(&mut self.batch.results);
        let replies = std::mem::take(&mut self.replies);
        for (result, reply) in results.into_iter().zip(replies) {
            match checks.refusal(&result, head) {
                Some(reason) => {
                    METRICS.results_refused.inc();
                    warn!(hook_id = result.hook_id, uid = ?result.uid, %reason, "result refused");
                    reply.send(ResultOutcome::Failed(reason));
                }
                None => {
                    self.batch.results.push(result);
                    self.replies.push(reply);
                }
            }
        }
    }
}

/// Commits, retrying with backoff while the journal fails: events are never published without
/// being journaled, so a broken disk holds the pipeline (and, through the bounded channel, stdin)
/// instead. Results are refused at once, so their senders can try again later.
fn commit_with_retry(
    journal: &mut dyn EventLog,
    batch: &mut Batch,
    replies: &mut Vec<ResultReply>,
    oned: Option<&Sender<ToOned>>,
    shutdown: &Shutdown,
) -> bool {
    let mut delay = RETRY_MIN;
    let mut attempts = 0u32;
    loop {
        match journal.commit(batch) {
            Ok(()) => {
                METRICS.journal_committed();
                return true;
            }
            Err(e) => {
                attempts += 1;
                METRICS.journal_failed(e.to_string());
                error!(error = %e, events = batch.events.len(), attempt = attempts, "journal commit failed");
                METRICS.results_unstored.add(replies.len() as u64);
                let reason = format!("result not stored, journal unavailable: {e}");
                ResultReply::send_all(
                    replies
                        .drain(..)
                        .map(|reply| (reply, ResultOutcome::Failed(reason.clone()))),
                );
                batch.results.clear();
                if batch.events.is_empty() && batch.forwarded.is_none() {
                    return false;
                }
                if shutdown.is_triggered() && attempts >= FINAL_ATTEMPTS {
                    error!(
                        events = batch.events.len(),
                        "giving up on the journal at shutdown; these events are lost"
                    );
                    return false;
                }
                if attempts == 1 && !shutdown.is_triggered() {
                    warn!("journal unavailable: holding events until it accepts them");
                    if let Some(oned) = oned {
                        let _ = oned.send(ToOned::Log(format!(
                            "Event journal unavailable, events held: {e}"
                        )));
                    }
                }
                std::thread::sleep(delay);
                delay = (delay * 2).min(RETRY_MAX);
            }
        }
    }
}

fn deliver(
    batch: Batch,
    replies: Vec<ResultReply>,
    links: Option<&WriterLinks>,
    log_delivers: bool,
) {
    let mut stored = Vec::new();
    let mut outcomes = Vec::with_capacity(replies.len());
    for (result, reply) in batch.results.into_iter().zip(replies) {
        let outcome = if result.duplicate {
            info!(hook_id = result.hook_id, uid = ?result.uid, "duplicate result acknowledged, not forwarded");
            ResultOutcome::Duplicate
        } else if log_delivers {
            ResultOutcome::Stored
        } else {
            stored.push(crate::journal::PendingResult {
                id: result.id,
                hook_id: result.hook_id,
                rc: result.rc,
                body: result.body,
            });
            ResultOutcome::Stored
        };
        outcomes.push((reply, outcome));
    }
    ResultReply::send_all(outcomes);
    let Some(links) = links else {
        // Shutting down: what is stored is forwarded at the next start.
        return;
    };
    if !stored.is_empty() && links.oned.send(ToOned::Results(stored)).is_err() {
        warn!("output to oned is gone; stored results are forwarded at the next start");
    }
    if !batch.events.is_empty() && links.publisher.send(batch.events).is_err() {
        error!("publisher is gone; journaled events are only available by replay");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::journal::{EventReader, JournalError, JournalResult, PendingResult, Trimmed};
    use crate::messages::AcceptedResult;

    #[test]
    fn memory_is_released_once_per_idle_spell_after_work() {
        let mut idle = IdleRelease {
            last_work: None,
            after: Duration::ZERO,
        };
        assert!(!idle.due(), "no work since start");
        idle.worked();
        assert!(idle.due(), "idle after work");
        assert!(!idle.due(), "still idle: already released");
        idle.worked();
        idle.worked();
        assert!(idle.due(), "idle again after more work");
        let mut long = IdleRelease::default();
        long.worked();
        assert!(!long.due(), "work just now: not idle yet");
    }

    /// A pace whose waits are long enough that a loaded machine never ends one early.
    fn patient() -> ResultPace {
        ResultPace {
            linger: Duration::from_millis(500),
            ..ResultPace::default()
        }
    }

    fn a_result() -> WriterMsg {
        let (bell, _read) = crate::messages::doorbell().expect("pipe");
        let (reply, _outcome) = ResultReply::channel(bell);
        WriterMsg::Result(AcceptedResult {
            result: JournalResult::new(1, 0, "QUJD".into(), b"ABC".to_vec(), None),
            reply,
        })
    }

    fn an_event() -> WriterMsg {
        WriterMsg::Events {
            events: vec![JournalEvent::new(vec!["EVENT ".into()], "x".into())],
            handled: None,
        }
    }

    #[test]
    fn results_close_together_share_a_commit_and_an_event_ends_the_wait() {
        let (tx, rx) = mpsc::sync_channel(16);
        let mut pace = patient();
        // The first result after a quiet spell does not wait.
        let mut work = Work::default();
        work.absorb(a_result());
        pace.linger(&rx, &mut work, &WriterWake::default());
        assert!(!pace.lingered);
        pace.committed(work.batch.results.len());
        // The next one, right after that commit, waits and takes in the one queued behind it.
        let mut work = Work::default();
        work.absorb(a_result());
        tx.send(a_result()).expect("send");
        pace.linger(&rx, &mut work, &WriterWake::default());
        assert!(pace.lingered);
        assert_eq!(work.batch.results.len(), 2);
        pace.committed(work.batch.results.len());
        // An event ends the wait at once; what comes after it is left for the next batch.
        let mut work = Work::default();
        work.absorb(a_result());
        tx.send(an_event()).expect("send");
        tx.send(a_result()).expect("send");
        pace.linger(&rx, &mut work, &WriterWake::default());
        assert_eq!((work.batch.results.len(), work.batch.events.len()), (1, 1));
        assert!(
            rx.try_recv().is_ok(),
            "the result after the event still queued"
        );
    }

    #[test]
    fn an_event_sent_while_results_wait_wakes_the_writer() {
        let (tx, rx) = mpsc::sync_channel::<WriterMsg>(16);
        let wake = WriterWake::default();
        let (done_tx, done_rx) = mpsc::channel();
        let writer = {
            let wake = wake.clone();
            std::thread::spawn(move || {
                wake.register();
                // A wait far longer than the test may take: only the ring can end it in time.
                let mut pace = ResultPace {
                    linger: Duration::from_secs(600),
                    ..ResultPace::default()
                };
                pace.committed(1);
                let mut work = Work::default();
                work.absorb(a_result());
                pace.linger(&rx, &mut work, &wake);
                done_tx
                    .send((
                        pace.lingered,
                        work.batch.results.len(),
                        work.batch.events.len(),
                    ))
                    .expect("send");
            })
        };
        tx.send(a_result()).expect("send");
        tx.send(an_event()).expect("send");
        wake.ring();
        let (lingered, results, events) = done_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the event ended the wait");
        assert!(lingered);
        assert_eq!(
            (results, events),
            (2, 1),
            "the results ride along with the event"
        );
        writer.join().expect("writer");
    }

    #[test]
    fn a_wait_that_gathers_nothing_is_not_tried_again_for_a_while() {
        let (_tx, rx) = mpsc::sync_channel::<WriterMsg>(16);
        let mut pace = patient();
        pace.committed(1);
        let mut work = Work::default();
        work.absorb(a_result());
        pace.linger(&rx, &mut work, &WriterWake::default());
        assert!(pace.lingered, "waited for a second result");
        pace.committed(work.batch.results.len());
        for _ in 0..PROBATION {
            let mut work = Work::default();
            work.absorb(a_result());
            pace.linger(&rx, &mut work, &WriterWake::default());
            assert!(
                !pace.lingered,
                "a peer sending one result at a time is not held back"
            );
            pace.committed(work.batch.results.len());
        }
        let mut work = Work::default();
        work.absorb(a_result());
        pace.linger(&rx, &mut work, &WriterWake::default());
        assert!(pace.lingered, "waiting is tried again after the probation");
    }

    /// A journal that refuses the first `failures` commits.
    struct Flaky {
        failures: u32,
        head: u64,
    }

    impl EventLog for Flaky {
        fn commit(&mut self, batch: &mut Batch) -> Result<(), JournalError> {
            if self.failures > 0 {
                self.failures -= 1;
                return Err(JournalError::new("commit", "disk full"));
            }
            for event in &mut batch.events {
                self.head += 1;
                event.seq = self.head;
            }
            for (i, result) in batch.results.iter_mut().enumerate() {
                result.id = i as u64 + 1;
            }
            Ok(())
        }

        fn trim(&mut self, _budget: u64) -> Result<Trimmed, JournalError> {
            Ok(Trimmed::default())
        }

        fn pending_results(&mut self) -> Result<Vec<PendingResult>, JournalError> {
            Ok(Vec::new())
        }

        fn head(&self) -> u64 {
            self.head
        }

        fn reader(&self) -> Result<Box<dyn EventReader>, JournalError> {
            Err(JournalError::new("reader", "not in this test"))
        }

        fn recent_sources(&mut self, _limit: usize) -> Result<Vec<(u64, u64)>, JournalError> {
            Ok(Vec::new())
        }

        fn same_content(&mut self, _seq: u64, _event: &JournalEvent) -> Result<bool, JournalError> {
            Ok(false)
        }
    }

    #[test]
    fn a_failing_journal_holds_events_refuses_results_and_tells_oned() {
        let (tx, rx) = mpsc::sync_channel(16);
        let (publish_tx, publish_rx) = mpsc::channel();
        let (oned_tx, oned_rx) = mpsc::channel();
        let journal = Box::new(Flaky {
            failures: 2,
            head: 0,
        });
        let links = WriterLinks {
            publisher: publish_tx,
            oned: oned_tx,
            checks: ResultChecks::default(),
            wake: WriterWake::default(),
        };
        let writer = std::thread::spawn(move || run(journal, rx, links, Shutdown::new()));
        let (bell, _bell_read) = crate::messages::doorbell().expect("pipe");
        let (reply, outcome) = ResultReply::channel(bell);
        tx.send(WriterMsg::Result(AcceptedResult {
            result: JournalResult {
                id: 0,
                hook_id: 1,
                rc: 0,
                body: "QUJD".into(),
                decoded: None,
                uid: None,
                duplicate: false,
            },
            reply,
        }))
        .expect("send");
        tx.send(WriterMsg::Events {
            events: vec![JournalEvent::new(vec!["EVENT ".into()], "x".into())],
            handled: None,
        })
        .expect("send");
        // The result and the event may land in one batch or two; either way the result is
        // refused by the failing commit and the event waits for a commit that succeeds.
        let refused = outcome.recv().expect("outcome");
        assert!(matches!(refused, ResultOutcome::Failed(ref m) if m.contains("disk full")));
        let published = publish_rx.recv().expect("published after the retries");
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].seq, 1);
        match oned_rx.recv().expect("log line") {
            ToOned::Log(text) => assert!(text.starts_with("Event journal unavailable")),
            other => panic!("unexpected {other:?}"),
        }
        tx.send(WriterMsg::Finish).expect("finish");
        drop(tx);
        writer.join().expect("writer");
        assert!(publish_rx.recv().is_err(), "publisher released at Finish");
    }
}
