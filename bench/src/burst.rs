//! 10,000 events offered in about one second: how long until the last one has its record,
//! how many never get one (must be none), and how much memory the HEM and the driver keep
//! once it is over.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::Scale;
use crate::hook_log_db::HookLogDb;
use crate::local::{HookSource, allocate_vms, budget, results_by_vm, sleep_until, stack_with_hook};
use crate::procs::status_kib;
use crate::report::{Goal, Report};
use crate::workload::{vm_hook, vm_id_of, vm_state_line};

pub const SECTION: &str = "7. Bursts";

const METHOD: &str = "**HEM route** (the offered rate the issue asks for): 10,000 VM PENDING \
events are written to the stdin of the benchmark's own `one_hm` on a schedule of 10 events \
every millisecond (one second in all), with the driver's default PUB high-water mark (1,000), \
so the HEM, which cannot run 10,000 hooks in a second, falls behind, libzmq drops what \
exceeds the mark and the HEM must recover it from the journal. The time runs from the first \
event written to the last result line on the driver's stdout; an event without a record is a \
VM id with no result line once every expected line has arrived or the time budget is over. \
**Front-end route**: the same count of `one.vm.allocate` calls from 16 connections as fast as \
oned-lite answers them (it cannot take 10,000 calls in one second, see section 5, so the \
offered duration is given), until the last hook-log record (one run: it takes \
tens of seconds); events without a record are allocated VMs with no record. Hook: \
`/bin/true` with `$TEMPLATE bench` (as in section 3), HEM concurrency 10. **Memory after the \
burst** (HEM route): `VmRSS` of /proc/<pid>/status of the HEM and the driver, idle (1 s after \
the warm-up event, before the burst), and 1, 5 and 10 s after the burst's last result line; \
the peak is `VmHWM` read at the end, so it covers the whole run.";

struct Outcome {
    offered_secs: f64,
    last_secs: f64,
    missing: usize,
    doubled: usize,
    /// The HEM's and the driver's memory around the burst (HEM route only).
    memory: Option<[Memory; 2]>,
}

/// Seconds after the burst's last result at which resident memory is read.
const AFTER: [u64; 3] = [1, 5, 10];

/// Resident memory of one process around a burst, MiB.
#[derive(Clone, Copy, Default)]
struct Memory {
    idle: f64,
    peak: f64,
    /// At each of [`AFTER`].
    after: [f64; 3],
}

fn rss_mib(pid: u32, field: &str) -> Result<f64> {
    Ok(status_kib(pid, field)? as f64 / 1024.0)
}

fn hem_burst(source: &HookSource, n: usize) -> Result<Outcome> {
    let mut p = source.pipeline(&[])?;
    let pids = [p.hem.pid(), p.driver.pid()];
    std::thread::sleep(Duration::from_secs(1));
    let mut memory = [Memory::default(); 2];
    for (m, pid) in memory.iter_mut().zip(pids) {
        m.idle = rss_mib(pid, "VmRSS")?;
    }
    let lines: Vec<String> = (0..n)
        .map(|i| vm_state_line(i as i64, "PENDING", "LCM_INIT"))
        .collect();
    let start = Instant::now();
    {
        let stdin = p.driver.stdin()?;
        for (chunk_no, chunk) in lines.chunks(10).enumerate() {
            sleep_until(start + Duration::from_millis(chunk_no as u64));
            for line in chunk {
                stdin.write_all(line.as_bytes())?;
            }
        }
    }
    let offered_secs = start.elapsed().as_secs_f64();
    // A missing result is reported as a number, not as an error: wait, then count.
    let _ = p.driver.output.wait(p.warm + n, budget(n));
    let lines = p.driver.output.take();
    let r = results_by_vm(&lines, source.true_hook);
    let last = lines
        .iter()
        .map(|l| l.at)
        .max()
        .context("no result at all")?;
    for (i, secs) in AFTER.into_iter().enumerate() {
        sleep_until(last + Duration::from_secs(secs));
        for (m, pid) in memory.iter_mut().zip(pids) {
            m.after[i] = rss_mib(pid, "VmRSS")?;
        }
    }
    for (m, pid) in memory.iter_mut().zip(pids) {
        m.peak = rss_mib(pid, "VmHWM")?;
    }

    Ok(Outcome {
        offered_secs,
        last_secs: (last - start).as_secs_f64(),
        missing: (0..n as i64).filter(|id| !r.by_vm.contains_key(id)).count() + r.failures,
        doubled: r.by_vm.values().filter(|v| v.len() > 1).count(),
        memory: Some(memory),
    })
}

fn front_burst(n: usize) -> Result<Outcome> {
    let (stack, hook, db): (_, i64, HookLogDb) = stack_with_hook(
        &vm_hook("bench-true", "/bin/true", "PENDING", "LCM_INIT"),
        3,
    )?;
    let start = Instant::now();
    let allocs = allocate_vms(&stack, n, 16, None)?;
    let offered_secs = start.elapsed().as_secs_f64();
    let deadline = Instant::now() + budget(n);
    let mut last = Instant::now();
    let mut stored = 0;
    while Instant::now() < deadline {
        stored = db.stored(hook)?;
        last = Instant::now();
        if stored >= (n + 3) as u64 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = stored;
    let mut per_vm: HashMap<i64, usize> = HashMap::new();
    let mut failed = 0;
    for r in db.records(hook, 3)? {
        match r.result.as_ref() {
            Some(res) if res.code == 0 => {
                if let Some(id) = vm_id_of(&res.arguments) {
                    *per_vm.entry(id).or_default() += 1;
                }
            }
            _ => failed += 1,
        }
    }
    Ok(Outcome {
        offered_secs,
        last_secs: (last - start).as_secs_f64(),
        missing: allocs
            .sent
            .iter()
            .filter(|(id, _)| !per_vm.contains_key(id))
            .count()
            + failed,
        doubled: per_vm.values().filter(|&&c| c > 1).count(),
        memory: None,
    })
}

pub fn run(report: &mut Report, scale: Scale) -> Result<()> {
    report.section(SECTION, METHOD);
    let n = scale.pick(10_000, 1_000);
    let source = HookSource::start(0)?;
    let mut hem = Vec::new();
    for _ in 0..scale.runs {
        hem.push(hem_burst(&source, n)?);
    }
    drop(source);
    let n_front = scale.pick(10_000, 500);
    // The front-end takes many seconds to accept this many calls (section 5): one run.
    let front = vec![front_burst(n_front)?];
    for (route, outcomes, count) in [("HEM route", &hem, n), ("front-end route", &front, n_front)] {
        let note = format!("{count} events");
        report.add(
            SECTION,
            &format!("{route}: time to offer the events"),
            "s",
            outcomes.iter().map(|o| o.offered_secs).collect(),
            &note,
        );
        report.add(
            SECTION,
            &format!("{route}: time until the last record"),
            "s",
            outcomes.iter().map(|o| o.last_secs).collect(),
            &note,
        );
        report.add(
            SECTION,
            &format!("{route}: events without a record"),
            "events",
            outcomes.iter().map(|o| o.missing as f64).collect(),
            &note,
        );
        report.goal(Goal::Exactly(0.0));
        report.reference("4,001 of 10,000 lost silently");
        report.add(
            SECTION,
            &format!("{route}: events with more than one record"),
            "events",
            outcomes.iter().map(|o| o.doubled as f64).collect(),
            &note,
        );
    }
    add_memory(report, &hem, n);
    Ok(())
}

/// The memory rows of the HEM route's runs, with their targets.
fn add_memory(report: &mut Report, runs: &[Outcome], n: usize) {
    let memory: Vec<[Memory; 2]> = runs.iter().filter_map(|o| o.memory).collect();
    let note = format!("HEM route, {n} events");
    for (who, i) in [("HEM", 0), ("driver", 1)] {
        let of = |f: &dyn Fn(&Memory) -> f64| memory.iter().map(|m| f(&m[i])).collect();
        report.add(
            SECTION,
            &format!("{who} resident memory, idle before the burst"),
            "MiB",
            of(&|m| m.idle),
            &note,
        );
        report.add(
            SECTION,
            &format!("{who} peak resident memory (VmHWM)"),
            "MiB",
            of(&|m| m.peak),
            &note,
        );
        for (k, secs) in AFTER.into_iter().enumerate() {
            report.add(
                SECTION,
                &format!("{who} resident memory {secs} s after the burst's last result"),
                "MiB",
                of(&|m| m.after[k]),
                &note,
            );
        }
        if i == 0 {
            report.goal(Goal::Below(30.0));
        }
    }
    let last = AFTER.len() - 1;
    report.add(
        SECTION,
        &format!(
            "driver resident memory {} s after the burst's last result / idle",
            AFTER[last]
        ),
        "×",
        memory
            .iter()
            .map(|m| m[1].after[last] / m[1].idle)
            .collect(),
        &note,
    );
    report.goal(Goal::Below(2.0));
}
