//! What the tests of `one-exec` share: limits, a shell command, process checks, and a mixed
//! batch of processes with its expected outcomes.
#![allow(dead_code)]

use std::time::Duration;

use one_exec::{Ending, FAILURE_CODE, Finished, Limits, Process, SpawnBatch, Timing};
use tokio::process::Command;

pub const TIMING: Timing = Timing {
    kill_grace: Duration::from_millis(300),
    drain_after_exit: Duration::from_millis(100),
};

pub const NO_LIMITS: Limits = Limits {
    timeout: None,
    output_cap: 1 << 20,
};

pub fn sh(script: &str) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(script);
    cmd
}

/// Supervises to the end, bounded so that a hang fails the test instead of blocking it.
pub async fn finish(p: Process, limits: Limits, timing: Timing) -> Finished {
    tokio::time::timeout(
        Duration::from_secs(120),
        p.supervise(limits, timing, std::future::pending()),
    )
    .await
    .expect("supervision did not end")
}

/// Supervises every process at once, each on a task of its own; the outcomes come back in
/// the order given.
pub async fn finish_all<K: Send + 'static>(started: Vec<(K, Process)>) -> Vec<(K, Finished)> {
    let runs: Vec<_> = started
        .into_iter()
        .map(|(k, p)| tokio::spawn(async move { (k, finish(p, NO_LIMITS, TIMING).await) }))
        .collect();
    let mut out = Vec::with_capacity(runs.len());
    for run in runs {
        out.push(run.await.expect("a supervision task failed"));
    }
    out
}

/// Whether process `pid` still runs. A zombie does not: it has ended and only waits for an
/// init (here, maybe one that never reaps) to collect it.
pub fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Starts `n` processes in `batch` that end in every way at once: exit codes, output on both
/// pipes, more output than a pipe holds from a process that runs a while, death by a signal,
/// stdin fed back; then checks that each got its own outcome.
pub async fn mixed_batch(mut batch: SpawnBatch, n: u32) {
    let mut started = Vec::new();
    for i in 0..n {
        let script = match i % 5 {
            0 => format!("exit {}", i % 256),
            1 => format!("echo out{i}; echo err{i} >&2; exit {}", i % 7),
            2 => format!("sleep 0.0{}; head -c 200000 /dev/zero; exit 3", i % 10),
            3 => "kill -TERM $$".to_string(),
            _ => "cat".to_string(),
        };
        let input = (i % 5 == 4).then(|| format!("in{i}").into_bytes());
        started.push((i, batch.spawn(&mut sh(&script), input).unwrap()));
    }
    drop(batch);
    for (i, f) in finish_all(started).await {
        assert_eq!(f.ending, Ending::Exited, "{i}");
        match i % 5 {
            0 => assert_eq!((f.code(), f.signal()), ((i % 256) as i32, None), "{i}"),
            1 => {
                assert_eq!(f.code(), (i % 7) as i32, "{i}");
                assert_eq!(f.stdout.bytes, format!("out{i}\n").into_bytes());
                assert_eq!(f.stderr.bytes, format!("err{i}\n").into_bytes());
            }
            2 => {
                assert_eq!(f.code(), 3, "{i}");
                assert_eq!(f.stdout.bytes.len(), 200_000, "{i}");
                assert!(f.stdout.bytes.iter().all(|b| *b == 0) && !f.stdout.truncated);
            }
            3 => assert_eq!((f.code(), f.signal()), (FAILURE_CODE, Some(15)), "{i}"),
            _ => {
                assert_eq!(f.code(), 0, "{i}");
                assert_eq!(f.stdout.bytes, format!("in{i}").into_bytes());
            }
        }
    }
}
