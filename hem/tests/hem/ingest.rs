//! The ingest loop with an in-memory stream, journal, hook source and acceptor: replay and live
//! merge, gaps, first start, reloads, retries and the degraded modes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use one_proto::encoding::b64_encode;
use one_proto::event::{ApiEvent, HookMessage, ObjectKind, StateEvent};
use one_proto::hook::HookType;
use one_proto::keys::{event_keys, with_seq};
use one_proto::replay::ReplayHeader;
use one_proto::retry::RetryMessage;
use onehem_server::config::ReplayFrom;
use onehem_server::execution::{Execution, HookPaths, Target};
use onehem_server::hook_map::HookSpec;
use onehem_server::ingest::{Acceptor, HookSource, Ingest, IngestSettings, IngestShared};
use onehem_server::journal::{BusMessage, Journal, JournalError, ReplayBatch};
use onehem_server::subscriber::EventStream;
use onehem_server::uids::UidKey;

// ---------------------------------------------------------------- fakes

struct FakeStream(mpsc::Receiver<BusMessage>);

impl EventStream for FakeStream {
    fn recv(&mut self, timeout: Duration) -> Result<Option<BusMessage>, String> {
        Ok(self.0.recv_timeout(timeout).ok())
    }
    fn try_recv(&mut self) -> Result<Option<BusMessage>, String> {
        Ok(self.0.try_recv().ok())
    }
}

#[derive(Default)]
struct JournalState {
    events: Vec<(u64, Vec<BusMessage>)>,
    /// Events below this were trimmed.
    oldest: Option<u64>,
    down: bool,
}

#[derive(Clone, Default)]
struct FakeJournal(Arc<Mutex<JournalState>>);

impl FakeJournal {
    fn add(&self, seq: u64, msgs: Vec<BusMessage>) {
        self.0.lock().unwrap().events.push((seq, msgs));
    }
}

impl Journal for FakeJournal {
    fn replay(&mut self, after: u64, max: u32) -> Result<ReplayBatch, JournalError> {
        let s = self.0.lock().unwrap();
        if s.down {
            return Err(JournalError::Timeout {
                endpoint: "fake".into(),
                timeout: 0.1,
            });
        }
        let head = s.events.iter().map(|e| e.0).max().unwrap_or(0);
        let trimmed = s.oldest.unwrap_or(0);
        let kept: Vec<_> = s.events.iter().filter(|e| e.0 >= trimmed).collect();
        let oldest = kept.iter().map(|e| e.0).min().unwrap_or(head + 1);
        let chosen: Vec<_> = kept
            .into_iter()
            .filter(|e| e.0 > after)
            .take(max as usize)
            .collect();
        Ok(ReplayBatch {
            header: ReplayHeader {
                oldest,
                head,
                count: chosen.len() as u32,
            },
            messages: chosen.iter().flat_map(|e| e.1.clone()).collect(),
        })
    }
    fn describe(&self) -> String {
        "fake journal".into()
    }
}

#[derive(Clone, Default)]
struct FakeSource {
    hooks: Arc<Mutex<HashMap<i64, HookSpec>>>,
    fail: Arc<AtomicBool>,
}

impl HookSource for FakeSource {
    fn pool(&self) -> Result<Vec<HookSpec>, String> {
        Ok(self.hooks.lock().unwrap().values().cloned().collect())
    }
    fn hook(&self, id: i64) -> Result<Option<HookSpec>, String> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(format!("[one.hook.info] Error getting hook [{id}]."));
        }
        self.hooks
            .lock()
            .unwrap()
            .get(&id)
            .cloned()
            .map(Some)
            .ok_or_else(|| "no such hook".into())
    }
}

/// One accept call: the executions and the watermark recorded with them.
type AcceptCall = (Vec<Execution>, Option<u64>);

#[derive(Clone, Default)]
struct FakeAcceptor {
    calls: Arc<Mutex<Vec<AcceptCall>>>,
}

impl FakeAcceptor {
    fn execs(&self) -> Vec<Execution> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .flat_map(|c| c.0.clone())
            .collect()
    }
    fn watermarks(&self) -> Vec<Option<u64>> {
        self.calls.lock().unwrap().iter().map(|c| c.1).collect()
    }
}

impl Acceptor for FakeAcceptor {
    fn accept(&mut self, execs: Vec<Execution>, watermark: Option<u64>) -> bool {
        self.calls.lock().unwrap().push((execs, watermark));
        true
    }
}

// ---------------------------------------------------------------- events

fn state_hook(id: i64) -> HookSpec {
    HookSpec {
        id,
        kind: HookType::State,
        key: "VM/PENDING/LCM_INIT".into(),
        command: Some("/bin/true".into()),
        arguments: "$TEMPLATE".into(),
        arguments_stdin: false,
        timeout_secs: None,
        remote: false,
    }
}

fn publish(seq: Option<u64>, msg: &HookMessage) -> Vec<BusMessage> {
    let xml = msg.to_xml();
    let content = b64_encode(xml.as_bytes());
    event_keys(&xml)
        .unwrap()
        .into_iter()
        .map(|k| BusMessage {
            key: seq.map_or(k.clone(), |s| with_seq(&k, s)),
            content: content.clone(),
        })
        .collect()
}

fn vm_pending(seq: u64, vm: i64) -> Vec<BusMessage> {
    publish(
        Some(seq),
        &HookMessage::State(StateEvent {
            object: ObjectKind::Vm,
            state: "PENDING".into(),
            lcm_state: Some("LCM_INIT".into()),
            resource_id: vm,
            service_id: Some(4),
            remote_host: Some("node1".into()),
            body: format!("<VM><ID>{vm}</ID></VM>"),
        }),
    )
}

fn hook_call(seq: u64, call: &str, id: i64, success: bool) -> Vec<BusMessage> {
    let ev = if success {
        ApiEvent::success(call, vec!["s".into(), id.to_string()], id.to_string(), "")
    } else {
        ApiEvent::failure(
            call,
            vec!["s".into(), "NAME=x".into()],
            "[one.hook.allocate] bad",
            8192,
            -1,
            "",
        )
    };
    publish(Some(seq), &HookMessage::Api(ev))
}

fn retry(seq: u64, hook_id: i64, host: Option<&str>) -> BusMessage {
    let xml = RetryMessage {
        arguments: "PFZNPg== pending".into(),
        hook_id,
        remote_host: host.map(str::to_string),
    }
    .to_xml();
    BusMessage {
        key: with_seq("RETRY", seq),
        content: format!("{} ", b64_encode(xml.as_bytes())),
    }
}

// ---------------------------------------------------------------- harness

struct Harness {
    live: mpsc::Sender<BusMessage>,
    acceptor: FakeAcceptor,
    shared: Arc<IngestShared>,
    thread: Option<std::thread::JoinHandle<()>>,
    logs: LogBuffer,
}

/// What the ingest thread logged, as the HEM's log file would show it (INFO and above).
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    /// The lines at `level` (`WARN`, `INFO`…).
    fn lines(&self, level: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some(level))
            .map(str::to_string)
            .collect()
    }
}

fn settings(watermark: Option<u64>, from: ReplayFrom, poll: Duration) -> IngestSettings {
    IngestSettings {
        paths: HookPaths {
            local: "/hooks".into(),
            remote: "/rhooks".into(),
            allowed: vec!["/bin".into()],
        },
        replay_from: from,
        replay_batch: 3,
        poll_interval: poll,
        instance: "inst".into(),
        boot: 1,
        uid_key: UidKey::generate(),
        watermark,
    }
}

fn start(journal: Option<FakeJournal>, source: FakeSource, settings: IngestSettings) -> Harness {
    let (live, rx) = mpsc::channel();
    let acceptor = FakeAcceptor::default();
    let shared = Arc::new(IngestShared::new().unwrap());
    let ingest = Ingest::new(
        FakeStream(rx),
        journal,
        source,
        acceptor.clone(),
        settings,
        shared.clone(),
    );
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let thread = std::thread::spawn(move || {
        tracing::subscriber::with_default(subscriber, || ingest.run());
    });
    Harness {
        live,
        acceptor,
        shared,
        thread: Some(thread),
        logs,
    }
}

impl Harness {
    fn send(&self, msgs: Vec<BusMessage>) {
        // The SUB socket only delivers the subscribed keys; the per-object ones must be ignored
        // anyway, so they are sent too.
        for m in msgs {
            self.live.send(m).unwrap();
        }
    }

    fn wait(&self, what: &str, cond: impl Fn(&Harness) -> bool) {
        let end = Instant::now() + Duration::from_secs(30);
        while !cond(self) {
            assert!(
                Instant::now() < end,
                "gave up waiting for {what}; got {:?}",
                self.seqs()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn ready(&self) {
        self.wait("ready", |h| h.shared.ready.load(Ordering::SeqCst));
    }

    /// Waits until `seq` is processed, then stops the loop.
    fn finish_at(self, seq: u64) -> FakeAcceptor {
        self.finish_with_logs(seq).0
    }

    /// As [`Harness::finish_at`], with what the loop logged.
    fn finish_with_logs(mut self, seq: u64) -> (FakeAcceptor, LogBuffer) {
        self.wait("the watermark", |h| {
            h.shared.processed().is_some_and(|p| p >= seq)
        });
        self.shared.stop.request();
        self.thread.take().unwrap().join().unwrap();
        (self.acceptor.clone(), self.logs.clone())
    }

    fn seqs(&self) -> Vec<(u64, i64)> {
        self.acceptor
            .execs()
            .iter()
            .map(|e| (e.seq, e.hook_id))
            .collect()
    }
}

fn source_with(ids: &[i64]) -> FakeSource {
    let s = FakeSource::default();
    for &id in ids {
        s.hooks.lock().unwrap().insert(id, state_hook(id));
    }
    s
}

const NEVER: Duration = Duration::from_secs(3600);

// ---------------------------------------------------------------- tests

#[test]
fn restart_replays_past_the_watermark_then_goes_live_without_duplicates() {
    let journal = FakeJournal::default();
    for seq in 1..=10 {
        journal.add(seq, vm_pending(seq, seq as i64));
    }
    let h = start(
        Some(journal),
        source_with(&[3]),
        settings(Some(5), ReplayFrom::Head, NEVER),
    );
    h.ready();
    // What the SUB socket buffered during the replay, then new events.
    for seq in 8..=12 {
        h.send(vm_pending(seq, seq as i64));
    }
    let acc = h.finish_at(12);
    let seqs: Vec<u64> = acc.execs().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (6..=12).collect::<Vec<_>>());
    let e = &acc.execs()[0];
    // The uid names the state DB instance, start, event and hook, then a keyed tag.
    assert!(e.uid.starts_with("inst-1-6-3-"), "{}", e.uid);
    assert_eq!(e.lane, "3|VM/6");
    assert_eq!(e.event_key, "EVENT STATE VM/PENDING/LCM_INIT/6");
    // Executions are recorded together with the watermark that covers them.
    for (execs, w) in acc.calls.lock().unwrap().iter() {
        if let Some(last) = execs.last() {
            assert!(w.unwrap() >= last.seq);
        }
    }
}

#[test]
fn a_gap_in_live_sequences_is_replayed_in_order() {
    let journal = FakeJournal::default();
    let h = start(
        Some(journal.clone()),
        source_with(&[3]),
        settings(Some(0), ReplayFrom::Head, NEVER),
    );
    h.ready();
    for seq in 1..=5 {
        journal.add(seq, vm_pending(seq, 1));
    }
    h.send(vm_pending(1, 1));
    h.send(vm_pending(2, 1));
    h.send(vm_pending(5, 1));
    let (acc, logs) = h.finish_with_logs(5);
    let seqs: Vec<u64> = acc.execs().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    // The bus lost events: operators see it, with the count, and see that nothing was lost.
    let warn = logs.lines("WARN");
    assert!(
        warn.iter()
            .any(|l| l.contains("gap in the live events: 2 events") && l.contains("missing=2")),
        "{warn:?}"
    );
    let info = logs.lines("INFO");
    assert!(
        info.iter()
            .any(|l| l.contains("gap recovered: 2 of 2") && l.contains("recovered=2")),
        "{info:?}"
    );
}

#[test]
fn an_idle_hem_fetches_what_the_subscriber_missed() {
    let journal = FakeJournal::default();
    let h = start(
        Some(journal.clone()),
        source_with(&[3]),
        settings(Some(0), ReplayFrom::Head, Duration::from_millis(20)),
    );
    h.ready();
    // Published before the SUB connection was up: expected at a start, not a warning.
    journal.add(1, vm_pending(1, 1));
    journal.add(2, vm_pending(2, 2));
    h.wait("the first events", |h| h.acceptor.execs().len() == 2);
    // The end of a burst dropped at a high-water mark: no later live event shows the gap.
    journal.add(3, vm_pending(3, 3));
    h.send(vm_pending(3, 3));
    // Journaled at once, so that one idle check sees all three.
    journal
        .0
        .lock()
        .unwrap()
        .events
        .extend((4..=6).map(|seq| (seq, vm_pending(seq, seq as i64))));
    let (acc, logs) = h.finish_with_logs(6);
    assert_eq!(acc.execs().len(), 6);
    let warn = logs.lines("WARN");
    assert_eq!(warn.len(), 1, "{warn:?}");
    assert!(
        warn[0].contains("gap in the live events: 3 events") && warn[0].contains("first=4 last=6"),
        "{warn:?}"
    );
    let info = logs.lines("INFO");
    assert!(
        info.iter()
            .any(|l| l.contains("2 events were published before the subscription was up")),
        "{info:?}"
    );
    assert!(
        info.iter().any(|l| l.contains("gap recovered: 3 of 3")),
        "{info:?}"
    );
}

#[test]
fn first_start_begins_at_the_journal_head() {
    let journal = FakeJournal::default();
    for seq in 1..=10 {
        journal.add(seq, vm_pending(seq, 1));
    }
    let h = start(
        Some(journal.clone()),
        source_with(&[3]),
        settings(None, ReplayFrom::Head, NEVER),
    );
    h.ready();
    journal.add(11, vm_pending(11, 1));
    h.send(vm_pending(11, 1));
    let acc = h.finish_at(11);
    assert_eq!(
        acc.execs().iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![11]
    );
    // The start position is recorded at once, before any matching event.
    assert_eq!(acc.watermarks().first(), Some(&Some(10)));

    let h = start(
        Some(journal),
        source_with(&[3]),
        settings(None, ReplayFrom::Oldest, NEVER),
    );
    let acc = h.finish_at(11);
    assert_eq!(acc.execs().len(), 11);
}

#[test]
fn several_hooks_on_one_event_all_run_in_id_order() {
    let h = start(
        Some(FakeJournal::default()),
        source_with(&[9, 4, 6]),
        settings(Some(0), ReplayFrom::Head, NEVER),
    );
    h.ready();
    h.send(vm_pending(1, 1));
    let acc = h.finish_at(1);
    assert_eq!(
        acc.execs().iter().map(|e| e.hook_id).collect::<Vec<_>>(),
        vec![4, 6, 9]
    );
}

#[test]
fn hook_events_reload_the_map_in_event_order_and_never_crash() {
    let source = source_with(&[]);
    let journal = FakeJournal::default();
    let h = start(
        Some(journal),
        source.clone(),
        settings(Some(0), ReplayFrom::Head, NEVER),
    );
    h.ready();
    source.hooks.lock().unwrap().insert(7, state_hook(7));
    h.send(hook_call(1, "one.hook.allocate", 7, true));
    h.send(vm_pending(2, 1)); // runs hook 7
    h.send(hook_call(3, "one.hook.delete", 7, true));
    h.send(vm_pending(4, 1)); // nothing
    h.send(hook_call(5, "one.hook.delete", 99, true)); // unknown: ignored
    h.send(hook_call(6, "one.hook.allocate", 0, false)); // failed allocate: no reload of hook 0
    h.wait("event 6", |h| h.shared.processed().is_some_and(|p| p >= 6));
    source.fail.store(true, Ordering::SeqCst);
    source.hooks.lock().unwrap().insert(8, state_hook(8));
    h.send(hook_call(7, "one.hook.update", 8, true)); // lookup fails: logged
    h.send(vm_pending(8, 1)); // nothing
    h.wait("event 8", |h| h.shared.processed().is_some_and(|p| p >= 8));
    source.fail.store(false, Ordering::SeqCst);
    // A loop of create/update/delete.
    let mut seq = 9;
    for _ in 0..200 {
        for call in ["one.hook.allocate", "one.hook.update", "one.hook.delete"] {
            h.send(hook_call(seq, call, 8, true));
            seq += 1;
        }
    }
    h.send(hook_call(seq, "one.hook.allocate", 8, true));
    h.send(vm_pending(seq + 1, 1)); // runs hook 8
    let last = seq + 1;
    let acc = h.finish_at(last);
    assert_eq!(
        acc.execs()
            .iter()
            .map(|e| (e.seq, e.hook_id))
            .collect::<Vec<_>>(),
        vec![(2, 7), (last, 8)]
    );
}

#[test]
fn retries_become_their_own_executions_even_for_unknown_hooks() {
    let mut hooks = source_with(&[3]);
    let mut remote = state_hook(5);
    remote.remote = true;
    hooks.hooks.lock().unwrap().insert(5, remote);
    hooks = hooks.clone();
    let h = start(
        Some(FakeJournal::default()),
        hooks,
        settings(Some(0), ReplayFrom::Head, NEVER),
    );
    h.ready();
    h.send(vec![retry(1, 3, Some("node1"))]);
    h.send(vec![retry(2, 42, None)]);
    h.send(vec![retry(3, 5, None)]);
    h.send(vec![retry(4, 5, Some("node2"))]);
    h.send(vec![BusMessage {
        key: with_seq("RETRY", 5),
        content: "%%%".into(),
    }]); // unreadable: logged
    let acc = h.finish_at(5);
    let e = acc.execs();
    assert_eq!(e.len(), 4);
    assert!(e.iter().all(|x| x.plan.retry && x.lane == x.uid));
    assert_eq!(e[0].plan.target, Target::Local);
    assert_eq!(e[0].plan.arguments, "PFZNPg== pending");
    assert_eq!(e[0].plan.report_host.as_deref(), Some("node1"));
    assert!(
        matches!(&e[1].plan.target, Target::Refused { reason } if reason.contains("not known"))
    );
    assert!(
        matches!(&e[2].plan.target, Target::Refused { reason } if reason.contains("No remote host"))
    );
    assert_eq!(
        e[3].plan.target,
        Target::Remote {
            host: "node2".into()
        }
    );
}

#[test]
fn without_sequence_tokens_the_hem_runs_live_only() {
    let h = start(
        None,
        source_with(&[3]),
        settings(None, ReplayFrom::Head, NEVER),
    );
    h.ready();
    for vm in 0..3 {
        let msg = HookMessage::State(StateEvent {
            object: ObjectKind::Vm,
            state: "PENDING".into(),
            lcm_state: Some("LCM_INIT".into()),
            resource_id: vm,
            service_id: None,
            remote_host: None,
            body: "<VM/>".into(),
        });
        h.send(publish(None, &msg));
    }
    h.wait("three executions", |h| h.acceptor.execs().len() == 3);
    let uids: Vec<String> = h.acceptor.execs().iter().map(|e| e.uid.clone()).collect();
    let prefixes: Vec<&str> = uids.iter().map(|u| &u[..u.len() - 25]).collect();
    assert_eq!(prefixes, vec!["inst-1-n1-3", "inst-1-n2-3", "inst-1-n3-3"]);
    assert_eq!(h.shared.processed(), None);
    h.shared.stop.request();
}

#[test]
fn a_gap_the_journal_cannot_fill_is_skipped_not_waited_for() {
    let journal = FakeJournal::default();
    journal.0.lock().unwrap().down = true;
    let h = start(
        Some(journal),
        source_with(&[3]),
        settings(Some(0), ReplayFrom::Head, NEVER),
    );
    h.ready();
    h.send(vm_pending(1, 1));
    h.send(vm_pending(3, 1));
    let (acc, logs) = h.finish_with_logs(3);
    assert_eq!(
        acc.execs().iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 3]
    );
    let errors = logs.lines("ERROR");
    assert!(
        errors
            .iter()
            .any(|l| l.contains("could not be replayed") && l.contains("lost=1")),
        "{errors:?}"
    );
    assert!(
        logs.lines("INFO")
            .iter()
            .all(|l| !l.contains("gap recovered"))
    );
}

#[test]
fn trimmed_and_replaced_journals_are_followed() {
    // Events 1..5 left the journal before the HEM (watermark 2) read them.
    let journal = FakeJournal::default();
    for seq in 1..=8 {
        journal.add(seq, vm_pending(seq, 1));
    }
    journal.0.lock().unwrap().oldest = Some(6);
    let h = start(
        Some(journal),
        source_with(&[3]),
        settings(Some(2), ReplayFrom::Head, NEVER),
    );
    let acc = h.finish_at(8);
    assert_eq!(
        acc.execs().iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![6, 7, 8]
    );

    // A new, empty journal numbered from 1 again while the watermark says 100.
    let journal = FakeJournal::default();
    for seq in 1..=3 {
        journal.add(seq, vm_pending(seq, 1));
    }
    let h = start(
        Some(journal),
        source_with(&[3]),
        settings(Some(100), ReplayFrom::Head, NEVER),
    );
    let acc = h.finish_at(3);
    let e = acc.execs();
    assert_eq!(e.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    // New uids, so that the front-end does not drop them as duplicates of old executions.
    assert!(e[0].uid.starts_with("inst-1r1-1-3-"), "{}", e[0].uid);
}

#[test]
fn an_allocate_event_carries_the_hook_when_the_front_end_cannot_be_asked() {
    let source = source_with(&[]);
    source.fail.store(true, Ordering::SeqCst);
    let h = start(
        Some(FakeJournal::default()),
        source,
        settings(Some(0), ReplayFrom::Head, NEVER),
    );
    h.ready();
    let template = one_proto::template::Template::parse(
        "NAME=x\nTYPE=state\nRESOURCE=VM\nSTATE=PENDING\nLCM_STATE=LCM_INIT\nCOMMAND=/bin/true\n",
    )
    .unwrap();
    let stored = one_proto::hook::Hook {
        id: 11,
        name: "x".into(),
        hook_type: one_proto::hook::HookType::State,
        lock: None,
        template,
    };
    let ev = ApiEvent::success(
        "one.hook.allocate",
        vec!["s".into(), "NAME=x".into()],
        "11",
        stored.to_xml(None).unwrap(),
    );
    h.send(publish(Some(1), &HookMessage::Api(ev)));
    h.send(vm_pending(2, 1));
    let acc = h.finish_at(2);
    assert_eq!(
        acc.execs()
            .iter()
            .map(|e| (e.seq, e.hook_id))
            .collect::<Vec<_>>(),
        vec![(2, 11)]
    );
}

/// A hook source whose pool call fails a number of times first.
#[derive(Clone)]
struct FlakySource {
    inner: FakeSource,
    failures: Arc<Mutex<u32>>,
}

impl HookSource for FlakySource {
    fn pool(&self) -> Result<Vec<HookSpec>, String> {
        let mut left = self.failures.lock().unwrap();
        if *left > 0 {
            *left -= 1;
            return Err("cannot reach http://127.0.0.1:1/RPC2".into());
        }
        self.inner.pool()
    }
    fn hook(&self, id: i64) -> Result<Option<HookSpec>, String> {
        self.inner.hook(id)
    }
}

#[test]
fn the_hook_pool_load_is_retried_until_it_works() {
    let source = FlakySource {
        inner: source_with(&[3]),
        failures: Arc::new(Mutex::new(2)),
    };
    let (live, rx) = mpsc::channel();
    let acceptor = FakeAcceptor::default();
    let shared = Arc::new(IngestShared::new().unwrap());
    let ingest = Ingest::new(
        FakeStream(rx),
        Some(FakeJournal::default()),
        source.clone(),
        acceptor.clone(),
        settings(Some(0), ReplayFrom::Head, NEVER),
        shared.clone(),
    );
    let thread = std::thread::spawn(move || ingest.run());
    // An event published while the front-end is unreachable waits for the hooks.
    for m in vm_pending(1, 1) {
        live.send(m).unwrap();
    }
    let end = Instant::now() + Duration::from_secs(30);
    while shared.processed() != Some(1) {
        assert!(Instant::now() < end, "the event was never processed");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(*source.failures.lock().unwrap(), 0);
    assert_eq!(acceptor.execs().len(), 1);
    shared.stop.request();
    thread.join().unwrap();
}

#[test]
fn resync_snapshots_apply_unless_a_reload_happened_meanwhile() {
    use onehem_server::ingest::Snapshot;
    let (live, rx) = mpsc::channel();
    let acceptor = FakeAcceptor::default();
    let shared = Arc::new(IngestShared::new().unwrap());
    let (snap_tx, snap_rx) = onehem_server::ingest::snapshot_channel().unwrap();
    let (resync_tx, _resync_rx) = mpsc::channel();
    let ingest = Ingest::new(
        FakeStream(rx),
        Some(FakeJournal::default()),
        source_with(&[]),
        acceptor.clone(),
        settings(Some(0), ReplayFrom::Head, NEVER),
        shared.clone(),
    )
    .with_resync(snap_rx, resync_tx);
    let thread = std::thread::spawn(move || ingest.run());
    let wait = |what: &str, cond: &dyn Fn() -> bool| {
        let end = Instant::now() + Duration::from_secs(30);
        while !cond() {
            assert!(Instant::now() < end, "gave up waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait("ready", &|| shared.ready.load(Ordering::SeqCst));
    // A snapshot fetched after the last reload replaces the map.
    assert!(snap_tx.send(Snapshot {
        fetched_at: Instant::now(),
        hooks: vec![state_hook(5)],
    }));
    wait("the snapshot", &|| shared.hooks.load(Ordering::SeqCst) == 1);
    for m in vm_pending(1, 1) {
        live.send(m).unwrap();
    }
    // A reload happens; a snapshot whose fetch began before it is stale and ignored.
    let before_reload = Instant::now();
    for m in hook_call(2, "one.hook.delete", 5, true) {
        live.send(m).unwrap();
    }
    wait("the delete", &|| shared.processed() == Some(2));
    assert!(snap_tx.send(Snapshot {
        fetched_at: before_reload,
        hooks: vec![state_hook(5)],
    }));
    for m in vm_pending(3, 1) {
        live.send(m).unwrap();
    }
    wait("event 3", &|| shared.processed() == Some(3));
    shared.stop.request();
    thread.join().unwrap();
    assert_eq!(
        acceptor
            .execs()
            .iter()
            .map(|e| (e.seq, e.hook_id))
            .collect::<Vec<_>>(),
        vec![(1, 5)]
    );
}
