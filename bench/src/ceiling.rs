//! The machine's ceiling for local hooks: fork/exec of `/bin/true` with captured stdout and
//! stderr (as the HEM runs hooks), from a tight loop with the HEM's concurrency.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Result, bail};

use crate::Scale;
use crate::report::Report;

/// Concurrency used both here and by the HEM in the end-to-end benchmarks.
pub const CONCURRENCY: usize = 10;

pub const SECTION: &str = "1. Ceiling: raw fork/exec";
pub const FIGURE: &str = "fork/exec of /bin/true with pipes, 10 workers";

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

pub fn run(report: &mut Report, scale: Scale) -> Result<()> {
    let total = scale.pick(6000, 1000);
    let mut runs = Vec::new();
    for _ in 0..scale.runs {
        runs.push(spawn_rate(total, CONCURRENCY)?);
    }
    report.add(SECTION, FIGURE, "spawns/s", runs, &format!("{total} spawns per run"));
    Ok(())
}
