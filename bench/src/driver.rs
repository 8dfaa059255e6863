//! one_hm alone: MAD lines written to its stdin, two-frame messages counted on a SUB socket,
//! then the same events read back through the replay endpoint.

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use one_proto::encoding::b64_decode_strict;
use one_proto::keys::event_keys;
use one_proto::replay::{ReplayHeader, ReplayRequest};

use crate::Scale;
use crate::procs::{Driver, cpu_time, thread_breakdown, thread_cpu};
use crate::report::{Goal, Report};
use crate::workload::{vm_allocate_line, vm_state_line};

pub const SECTION: &str = "2. Driver: MAD lines in, PUB frames out";

const METHOD: &str = "The benchmark starts `one_hm` itself and holds its stdin and stdout as \
oned does (INIT first). A SUB socket in the benchmark process subscribes to everything with \
no high-water mark, and the driver runs with `--hwm 0` (no drop), so every published message \
is counted; the journal is on with its default `--journal-sync normal`. How the driver gets \
there: the journal writer takes every event waiting at that moment (up to 16,384 events or 8 \
MiB) into one SQLite transaction (group commit), in WAL mode with no fsync per commit, and \
the WAL is checkpointed (the only fsync) on a thread of its own, so a commit never waits for \
the disk; the publisher sends an event only after its commit. Durability kept: every \
published event is in the journal's WAL first, so a kill -9 of the driver loses none (the \
e2e and driver tests kill it mid-stream and replay); a power loss may lose the last commits, \
which `--journal-sync full` (an fsync per group commit) closes at a cost in rate. After a warm-up event has gone round, the whole workload of pre-built `EXECUTE  -1 \
<b64>` lines is written to stdin at once; the rate is the number of events over the time from \
the first byte written to the last message received. The SUB socket shares the two cores with \
the driver. Replay: a REQ socket then reads every event back through the replay endpoint \
(`REPLAY <after> 1000` until `head`), events over wall time. CPU per event is the driver's \
user+system time over the run divided by the events.";

struct Workload {
    name: &'static str,
    events: usize,
    keys_per_event: usize,
    lines: Vec<u8>,
    bytes_per_line: usize,
}

fn workload(name: &'static str, events: usize, line: impl Fn(i64) -> String) -> Result<Workload> {
    let sample = line(1);
    let b64 = sample
        .trim_end()
        .rsplit(' ')
        .next()
        .context("empty event line")?;
    let xml = String::from_utf8(b64_decode_strict(b64)?)?;
    let keys_per_event = event_keys(&xml)?.len();
    let mut lines = Vec::with_capacity(events * (sample.len() + 8));
    for i in 0..events {
        lines.extend_from_slice(line(1000 + i as i64).as_bytes());
    }
    Ok(Workload {
        name,
        events,
        keys_per_event,
        bytes_per_line: sample.len(),
        lines,
    })
}

struct Run {
    rate: f64,
    replay_rate: f64,
    cpu_us_per_event: f64,
    threads: String,
}

fn one_run(w: &Workload) -> Result<Run> {
    let mut driver = Driver::start(&["--hwm", "0"])?;
    let ctx = zmq::Context::new();
    let sub = ctx.socket(zmq::SUB)?;
    sub.set_rcvhwm(0)?;
    sub.set_subscribe(b"")?;
    sub.connect(&driver.publisher)?;
    // Until a first message arrives the subscription may not be in place (slow joiner): send
    // warm-up events until one comes back, then drain.
    let warm = vm_allocate_line(1);
    let mut msg = zmq::Message::new();
    let mut warmed = false;
    for _ in 0..250 {
        driver.stdin()?.write_all(warm.as_bytes())?;
        if sub.poll(zmq::POLLIN, 20)? > 0 {
            warmed = true;
            break;
        }
    }
    if !warmed {
        bail!(
            "no message from one_hm after 5 s of warm-up: {}",
            driver.log_tail()
        );
    }
    loop {
        if sub.poll(zmq::POLLIN, 200)? == 0 {
            break;
        }
        sub.recv(&mut msg, 0)?;
    }
    let frames_expected = 2 * w.events * w.keys_per_event;
    let cpu_before = cpu_time(driver.pid())?;
    let threads_before = thread_cpu(driver.pid())?;
    let start = Instant::now();
    let receiver = std::thread::scope(|s| -> Result<Instant> {
        let rx = s.spawn(move || -> Result<Instant> {
            let mut frames = 0usize;
            let mut msg = zmq::Message::new();
            sub.set_rcvtimeo(30_000)?;
            while frames < frames_expected {
                sub.recv(&mut msg, 0)
                    .with_context(|| format!("{frames} of {frames_expected} frames received"))?;
                frames += 1;
            }
            Ok(Instant::now())
        });
        let stdin = driver.stdin()?;
        stdin.write_all(&w.lines)?;
        stdin.flush()?;
        rx.join()
            .map_err(|_| anyhow::anyhow!("receiver panicked"))?
    })?;
    let secs = (receiver - start).as_secs_f64();
    let cpu = cpu_time(driver.pid())? - cpu_before;
    let threads = thread_breakdown(&threads_before, &thread_cpu(driver.pid())?, w.events);

    // Replay everything the journal holds.
    let req = ctx.socket(zmq::REQ)?;
    req.set_rcvtimeo(30_000)?;
    req.connect(&driver.replay)?;
    let mut after = 0u64;
    let mut replayed = 0usize;
    let replay_start = Instant::now();
    loop {
        req.send(ReplayRequest { after, max: 1000 }.to_frame().as_bytes(), 0)?;
        let parts = req.recv_multipart(0).context("replay reply")?;
        let header = ReplayHeader::parse(parts.first().context("empty replay reply")?)?;
        if header.count == 0 {
            break;
        }
        replayed += header.count as usize;
        after += u64::from(header.count);
        if after >= header.head {
            break;
        }
    }
    let replay_secs = replay_start.elapsed().as_secs_f64();
    if replayed < w.events {
        bail!("replay returned {replayed} events, {} expected", w.events);
    }
    Ok(Run {
        rate: w.events as f64 / secs,
        replay_rate: replayed as f64 / replay_secs,
        cpu_us_per_event: cpu.own * 1e6 / w.events as f64,
        threads,
    })
}

pub fn run(report: &mut Report, scale: Scale) -> Result<()> {
    report.section(SECTION, METHOD);
    let workloads = [
        workload(
            "one.vm.allocate API events",
            scale.pick(150_000, 20_000),
            vm_allocate_line,
        )?,
        workload(
            "VM state events (running VM body)",
            scale.pick(50_000, 5_000),
            |id| vm_state_line(id, "ACTIVE", "RUNNING"),
        )?,
    ];
    for w in &workloads {
        let mut runs = Vec::new();
        for _ in 0..scale.runs {
            runs.push(one_run(w)?);
        }
        let note = format!(
            "{} events of {} B, {} key(s) each",
            w.events, w.bytes_per_line, w.keys_per_event
        );
        report.add(
            SECTION,
            &format!("{}: MAD in to PUB out, journal on", w.name),
            "events/s",
            runs.iter().map(|r| r.rate).collect(),
            &note,
        );
        report.goal(Goal::AtLeast(100_000.0));
        report.add(
            SECTION,
            &format!("{}: replay", w.name),
            "events/s",
            runs.iter().map(|r| r.replay_rate).collect(),
            "REPLAY in batches of 1000 from the start of the journal",
        );
        report.add(
            SECTION,
            &format!("{}: driver CPU per event", w.name),
            "µs",
            runs.iter().map(|r| r.cpu_us_per_event).collect(),
            "user+system of one_hm over the publishing run",
        );
        if let Some(last) = runs.last() {
            report.note(
                SECTION,
                &format!(
                    "{}: driver CPU per event by thread (last run): {}.",
                    w.name, last.threads
                ),
            );
        }
    }
    report.note(
        SECTION,
        "The target (≥ 100,000 events/s) is judged on both event kinds; the state events carry a \
         1.5 KB VM body and two keys each, so they cost more per event than API events.",
    );
    Ok(())
}
