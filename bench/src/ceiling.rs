//! The machine's ceiling for local hooks: fork/exec of `/bin/true` with captured stdout and
//! stderr (as the HEM runs hooks), from a tight loop with the HEM's concurrency. Also the floor
//! of the latency method: how long the stamp hook takes from spawn to its clock reading.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result, bail};

use crate::Scale;
use crate::procs::bin;
use crate::report::{Report, percentile};
use crate::workload::{stamp_of, wall_ns};

/// Concurrency used both here and by the HEM in the end-to-end benchmarks.
pub const CONCURRENCY: usize = 10;

pub const SECTION: &str = "1. Ceiling: raw fork/exec";
pub const FIGURE: &str = "fork/exec of /bin/true with pipes, 10 workers";

const METHOD: &str = "Ten threads of one Rust process each spawn `/bin/true` with stdin from \
/dev/null and stdout and stderr piped and read to the end (`Command::output`), as the HEM's \
local executor does, until the fixed count is reached; the rate is the count over the wall \
time. This is the physical limit for local hooks on this machine at this moment; section 3 \
measures it again next to each of its throughput runs, the denominator of its ratios. The \
stamp rows measure the latency method of \
sections 3 and 7: `one-bench-stamp` prints the wall-clock time when its `main` starts; \
spawned directly, one at a time, the gap between `spawn()` and that time is what the method \
itself adds to every hook-start latency.";

/// Spawns `total` processes from `workers` threads; returns processes per second.
pub fn spawn_rate(total: usize, workers: usize) -> Result<f64> {
    let next = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let ok = Command::new("/bin/true")
                        .stdin(Stdio::null())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .output()
                        .map(|o| o.status.success())
                        .unwrap_or(false);
                    if !ok {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let failed = failures.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} of {total} spawns of /bin/true failed");
    }
    Ok(total as f64 / secs)
}

/// Spawn-to-stamp latencies of `count` sequential runs of the stamp hook, in milliseconds.
fn stamp_floor(count: usize) -> Result<Vec<f64>> {
    let stamp = bin("one-bench-stamp")?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let before = SystemTime::now();
        let o = Command::new(&stamp)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .context("running one-bench-stamp")?;
        let at = stamp_of(&o.stdout).context("one-bench-stamp printed no time")?;
        out.push((at - wall_ns(before)) as f64 / 1e6);
    }
    out.sort_by(f64::total_cmp);
    Ok(out)
}

pub fn run(report: &mut Report, scale: Scale) -> Result<()> {
    report.section(SECTION, METHOD);
    let total = scale.pick(6000, 1000);
    let mut runs = Vec::new();
    for _ in 0..scale.runs {
        runs.push(spawn_rate(total, CONCURRENCY)?);
    }
    report.add(
        SECTION,
        FIGURE,
        "spawns/s",
        runs,
        &format!("{total} spawns per run"),
    );
    report.reference("3,044 /s (C, 10 workers); 2,764 /s with pipes");
    let count = scale.pick(300, 50);
    let (mut p50, mut p99) = (Vec::new(), Vec::new());
    for _ in 0..scale.runs {
        let lat = stamp_floor(count)?;
        p50.push(percentile(&lat, 0.5));
        p99.push(percentile(&lat, 0.99));
    }
    let note = format!("{count} sequential spawns per run");
    report.add(
        SECTION,
        "stamp hook: spawn to clock reading, p50",
        "ms",
        p50,
        &note,
    );
    report.add(
        SECTION,
        "stamp hook: spawn to clock reading, p99",
        "ms",
        p99,
        &note,
    );
    Ok(())
}
