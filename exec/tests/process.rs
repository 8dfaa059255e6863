//! The supervisor against real processes.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{NO_LIMITS, TIMING, finish, finish_all, running, sh};
use one_exec::{Ending, FAILURE_CODE, Finished, Limits, Process, SpawnBatch, SpawnError, Timing};
use tokio::process::Command;
use tokio::sync::oneshot;

/// Runs to the end, bounded so that a hang fails the test instead of blocking it.
async fn run(mut cmd: Command, input: Option<&[u8]>, limits: Limits) -> Finished {
    let process = Process::spawn(&mut cmd, input.map(<[u8]>::to_vec)).unwrap();
    tokio::time::timeout(
        Duration::from_secs(60),
        process.supervise(limits, TIMING, std::future::pending()),
    )
    .await
    .expect("supervision did not end")
}

/// A shell script that starts `child` in the background and writes its pid to a file, then
/// runs `main`.
struct WithChild {
    _dir: tempfile::TempDir,
    pid_file: PathBuf,
    script: String,
}

impl WithChild {
    fn new(child: &str, main: &str) -> WithChild {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("{child} & echo $! > {}; {main}", pid_file.display());
        WithChild {
            _dir: dir,
            pid_file,
            script,
        }
    }

    /// The child's pid, once the script has written it (bounded wait).
    async fn child_pid(&self) -> i32 {
        for _ in 0..400 {
            let text = std::fs::read_to_string(&self.pid_file).unwrap_or_default();
            if let Ok(pid) = text.trim().parse() {
                return pid;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the hook wrote no child pid");
    }
}

#[tokio::test]
async fn exit_code_outputs_and_stdin() {
    let f = run(sh("cat; echo err >&2; exit 3"), Some(b"fed"), NO_LIMITS).await;
    assert_eq!((f.ending, f.code(), f.signal()), (Ending::Exited, 3, None));
    assert_eq!(f.stdout.bytes, b"fed");
    assert_eq!(f.stderr.bytes, b"err\n");
    assert!(!f.stdout.truncated && !f.stderr.truncated);

    // Without input stdin is /dev/null: cat ends at once.
    let f = run(Command::new("/bin/cat"), None, NO_LIMITS).await;
    assert_eq!((f.code(), f.stdout.bytes.len()), (0, 0));
}

#[tokio::test]
async fn death_by_signal_is_the_failure_code() {
    let f = run(sh("kill -9 $$"), None, NO_LIMITS).await;
    assert_eq!((f.code(), f.signal()), (FAILURE_CODE, Some(9)));
    assert!(!f.timed_out());
}

#[tokio::test]
async fn output_past_the_cap_is_dropped_and_flagged() {
    let capped = |output_cap| Limits {
        output_cap,
        ..NO_LIMITS
    };
    let script = "head -c 100000 /dev/zero; head -c 1000 /dev/zero >&2";
    let f = run(sh(script), None, capped(1000)).await;
    assert_eq!(f.code(), 0);
    assert_eq!((f.stdout.bytes.len(), f.stdout.truncated), (1000, true));
    // Exactly the cap is not a truncation.
    assert_eq!((f.stderr.bytes.len(), f.stderr.truncated), (1000, false));

    let f = run(sh("echo x"), None, capped(0)).await;
    assert_eq!((f.stdout.bytes.len(), f.stdout.truncated), (0, true));

    // Output of many reads under the cap is kept whole and in order.
    let f = run(sh("seq 1 20000"), None, capped(1 << 20)).await;
    let expected: String = (1..=20000).map(|i| format!("{i}\n")).collect();
    assert_eq!(String::from_utf8_lossy(&f.stdout.bytes), expected);
    assert!(!f.stdout.truncated);
}

#[tokio::test]
async fn timeout_kills_the_whole_group_before_returning() {
    // The child ignores SIGTERM: only the SIGKILL to the group after the grace ends it.
    let hook = WithChild::new("(trap '' TERM; sleep 300)", "sleep 300");
    let mut cmd = sh(&hook.script);
    let process = Process::spawn(&mut cmd, None).unwrap();
    let pgid = process.pgid();
    let limits = Limits {
        timeout: Some(Duration::from_secs(1)),
        ..NO_LIMITS
    };
    let f = process
        .supervise(limits, TIMING, std::future::pending())
        .await;
    assert_eq!(
        (f.ending, f.code(), f.signal()),
        (Ending::TimedOut, FAILURE_CODE, Some(15))
    );
    let child = hook.child_pid().await;
    assert!(
        !running(pgid) && !running(child),
        "group {pgid} survived the timeout"
    );
}

#[tokio::test]
async fn cancel_kills_the_group_and_is_not_a_timeout() {
    let hook = WithChild::new("sleep 300", "wait");
    let mut cmd = sh(&hook.script);
    let process = Process::spawn(&mut cmd, None).unwrap();
    let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
    let cancel = async {
        let _ = cancel_rx.await;
    };
    let supervised = tokio::spawn(process.supervise(NO_LIMITS, TIMING, cancel));
    let child = hook.child_pid().await;
    cancel_tx.send(()).unwrap();
    let f = supervised.await.unwrap();
    assert_eq!(f.ending, Ending::Cancelled);
    assert_eq!(
        (f.code(), f.signal(), f.timed_out()),
        (FAILURE_CODE, Some(15), false)
    );
    assert!(!running(child));
}

#[tokio::test]
async fn a_background_child_holding_the_pipes_does_not_hold_the_result() {
    // The child keeps stdout, stderr and stdin open without reading stdin (fd 3 carries it
    // past the /dev/null a shell gives background commands); the main process exits at once.
    let hook = WithChild::new("exec 3<&0; sleep 300 <&3 3<&-", "echo done");
    let input = vec![b'x'; 1 << 20];
    let f = run(sh(&hook.script), Some(&input), NO_LIMITS).await;
    assert_eq!((f.ending, f.code()), (Ending::Exited, 0));
    assert_eq!(f.stdout.bytes, b"done\n");
    // Not a timeout: the child is the hook's business and still runs.
    let child = hook.child_pid().await;
    assert!(running(child));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child),
        nix::sys::signal::Signal::SIGKILL,
    );
}

#[tokio::test]
async fn dropping_an_unfinished_execution_kills_its_group() {
    let hook = WithChild::new("sleep 300", "wait");
    let mut cmd = sh(&hook.script);
    let process = Process::spawn(&mut cmd, None).unwrap();
    let task = tokio::spawn(process.supervise(NO_LIMITS, TIMING, std::future::pending()));
    // Abandoned once the hook is up.
    let child = hook.child_pid().await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    // SIGKILL is delivered asynchronously; poll (bounded) until the child is gone.
    for _ in 0..400 {
        if !running(child) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        !running(child),
        "process {child} survived the dropped execution"
    );
}

#[tokio::test]
async fn a_missing_program_is_a_spawn_error() {
    let mut cmd = Command::new("/nonexistent/hook");
    match Process::spawn(&mut cmd, None) {
        Err(SpawnError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
        other => panic!("expected a spawn error, got {other:?}"),
    }
}

/// Processes started in one batch are each their own group with their own pipes and stdin; a
/// failed start inside the batch fails only itself.
#[tokio::test]
async fn a_batch_starts_each_process_as_spawn_does() {
    let mut batch = SpawnBatch::begin();
    let mut started = Vec::new();
    for i in 0..20 {
        let input = (i % 2 == 0).then(|| format!("in{i}").into_bytes());
        let process = batch
            .spawn(&mut sh(&format!("cat; echo {i}; echo e{i} >&2")), input)
            .unwrap();
        started.push((i, process));
    }
    let missing = batch.spawn(&mut Command::new("/nonexistent/hook"), None);
    assert!(matches!(missing, Err(SpawnError::Io(_))), "{missing:?}");
    drop(batch);
    let pgids: std::collections::HashSet<i32> = started.iter().map(|(_, p)| p.pgid()).collect();
    assert_eq!(pgids.len(), 20, "one group each");
    for (i, f) in finish_all(started).await {
        let fed = if i % 2 == 0 {
            format!("in{i}")
        } else {
            String::new()
        };
        assert_eq!(f.code(), 0);
        assert_eq!(
            String::from_utf8_lossy(&f.stdout.bytes),
            format!("{fed}{i}\n")
        );
        assert_eq!(String::from_utf8_lossy(&f.stderr.bytes), format!("e{i}\n"));
    }
}

/// Many processes running at once, ending in any order, each reaped with its own exit code
/// (or signal) and its own outputs, whether it wrote nothing, a line, or more than a pipe holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_processes_each_end_with_their_own_code_and_output() {
    common::mixed_batch(SpawnBatch::begin(), 120).await;
}

/// A main process that exits while a background child still holds its output pipe: what the
/// main process wrote is kept, and what the child writes within the drain period too.
#[tokio::test]
async fn output_written_after_the_main_exit_is_read_during_the_drain() {
    let timing = Timing {
        drain_after_exit: Duration::from_secs(5),
        ..TIMING
    };
    let mut cmd = sh("(sleep 0.2; echo late; echo late-err >&2) & echo early");
    let f = finish(Process::spawn(&mut cmd, None).unwrap(), NO_LIMITS, timing).await;
    assert_eq!((f.ending, f.code()), (Ending::Exited, 0));
    assert_eq!(String::from_utf8_lossy(&f.stdout.bytes), "early\nlate\n");
    assert_eq!(String::from_utf8_lossy(&f.stderr.bytes), "late-err\n");
}

/// A process that writes past the cap long after it started, in many reads, is cut at the cap
/// and flagged, and its writes never block it for good.
#[tokio::test]
async fn late_output_past_the_cap_is_dropped_and_flagged() {
    let limits = Limits {
        output_cap: 70_000,
        ..NO_LIMITS
    };
    let f = run(sh("sleep 0.1; head -c 500000 /dev/zero"), None, limits).await;
    assert_eq!(f.code(), 0);
    assert_eq!((f.stdout.bytes.len(), f.stdout.truncated), (70_000, true));
}
