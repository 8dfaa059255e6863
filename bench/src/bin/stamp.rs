//! `one-bench-stamp`: the hook of the latency benchmarks. It prints the wall-clock time at
//! which it started, in nanoseconds since the epoch, and ignores its arguments; the hook log
//! record (or the result line) carries that output back to the benchmark.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    // Read the clock before anything else: the figure is "when the hook started".
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{now}");
}
