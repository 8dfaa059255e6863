//! Processes collected by one [`Reaper`] against real processes: many at once with their own
//! exit codes and signals, stdin fed, a background child holding the output pipes, TIMEOUT in a
//! batch killing its whole group, and a dropped execution. Runs without the test harness: the
//! reaper must be set up before the process starts any other thread.

mod common;

use std::time::{Duration, Instant};

use common::{NO_LIMITS, TIMING, running, sh};
use one_exec::{Ending, FAILURE_CODE, Limits, Reaper, SpawnBatch};

/// The pid a hook wrote to `file`, once written (bounded wait).
async fn pid_in(file: &std::path::Path) -> i32 {
    for _ in 0..400 {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if let Ok(pid) = text.trim().parse() {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the hook wrote no child pid");
}

async fn many_at_once_each_with_its_own_code(reaper: &Reaper) {
    common::mixed_batch(SpawnBatch::begin().reaped_by(reaper), 150).await;
}

async fn a_background_child_holding_the_pipes_does_not_hold_the_result(reaper: &Reaper) {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let script = format!("sleep 300 & echo $! > {}; echo early", pid_file.display());
    let p = SpawnBatch::begin()
        .reaped_by(reaper)
        .spawn(&mut sh(&script), None)
        .unwrap();
    let started = Instant::now();
    let f = common::finish(p, NO_LIMITS, TIMING).await;
    assert_eq!((f.ending, f.code()), (Ending::Exited, 0));
    assert_eq!(f.stdout.bytes, b"early\n");
    assert!(started.elapsed() < Duration::from_secs(60));
    let child = pid_in(&pid_file).await;
    assert!(
        running(child),
        "the hook's background child is its own business"
    );
    one_exec::kill_group_now(child);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child),
        nix::sys::signal::Signal::SIGKILL,
    );
}

async fn a_timeout_in_a_batch_kills_its_whole_group(reaper: &Reaper) {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    // A background child that ignores SIGTERM, and a main process that outlives the timeout.
    let stuck = format!(
        "(trap '' TERM; sleep 300) & echo $! > {}; sleep 300",
        pid_file.display()
    );
    let mut batch = SpawnBatch::begin().reaped_by(reaper);
    let slow = batch.spawn(&mut sh(&stuck), None).unwrap();
    let quick: Vec<_> = (0..5)
        .map(|i| batch.spawn(&mut sh(&format!("exit {i}")), None).unwrap())
        .collect();
    drop(batch);
    let timeout = Limits {
        timeout: Some(Duration::from_millis(500)),
        ..NO_LIMITS
    };
    let slow = tokio::spawn(common::finish(slow, timeout, TIMING));
    for (i, p) in quick.into_iter().enumerate() {
        let f = common::finish(p, timeout, TIMING).await;
        assert_eq!((f.ending, f.code()), (Ending::Exited, i as i32));
    }
    let f = slow.await.unwrap();
    assert_eq!((f.ending, f.code()), (Ending::TimedOut, FAILURE_CODE));
    let child = pid_in(&pid_file).await;
    assert!(
        !running(child),
        "the TERM-ignoring child {child} survived the timeout"
    );
}

/// SIGCHLD is blocked in the reaper's process; its children start with no signal blocked.
async fn children_start_with_no_signal_blocked(reaper: &Reaper) {
    let p = SpawnBatch::begin()
        .reaped_by(reaper)
        .spawn(&mut sh("grep '^SigBlk' /proc/self/status"), None)
        .unwrap();
    let f = common::finish(p, NO_LIMITS, TIMING).await;
    assert_eq!(
        String::from_utf8_lossy(&f.stdout.bytes),
        "SigBlk:\t0000000000000000\n"
    );
}

async fn a_dropped_execution_is_killed_and_the_reaper_goes_on(reaper: &Reaper) {
    let p = SpawnBatch::begin()
        .reaped_by(reaper)
        .spawn(&mut sh("sleep 300"), None)
        .unwrap();
    let pgid = p.pgid();
    drop(p);
    let deadline = Instant::now() + Duration::from_secs(30);
    while running(pgid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!running(pgid), "the dropped execution's process survived");
    let p = SpawnBatch::begin()
        .reaped_by(reaper)
        .spawn(&mut sh("exit 7"), None)
        .unwrap();
    assert_eq!(common::finish(p, NO_LIMITS, TIMING).await.code(), 7);
}

fn main() {
    let reaper = Reaper::new().expect("the reaper");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        tokio::spawn(reaper.watch().expect("the reaper's signalfd"));
        many_at_once_each_with_its_own_code(&reaper).await;
        println!("many at once, each with its own code: ok");
        a_background_child_holding_the_pipes_does_not_hold_the_result(&reaper).await;
        println!("a background child holding the pipes: ok");
        a_timeout_in_a_batch_kills_its_whole_group(&reaper).await;
        println!("a timeout in a batch: ok");
        children_start_with_no_signal_blocked(&reaper).await;
        println!("children start with no signal blocked: ok");
        a_dropped_execution_is_killed_and_the_reaper_goes_on(&reaper).await;
        println!("a dropped execution: ok");
    });
}
