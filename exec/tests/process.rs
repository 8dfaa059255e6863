//! The supervisor against real processes.

use std::path::Path;
use std::time::Duration;

use one_exec::{Ending, FAILURE_CODE, Finished, Limits, Process, SpawnError, Timing};
use tokio::process::Command;
use tokio::sync::oneshot;

const TIMING: Timing = Timing {
    kill_grace: Duration::from_millis(300),
    drain_after_exit: Duration::from_millis(100),
};

fn limits() -> Limits {
    Limits {
        timeout: None,
        output_cap: 1 << 20,
    }
}

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(script);
    cmd
}

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

/// Whether a process of group `pgid` runs: zombies do not count, since a child orphaned by
/// the hook waits for an init that may not reap it.
fn group_alive(pgid: i32) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        // The fields after the command name, which is in parentheses and may hold spaces.
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            return false;
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
    })
}

fn read_pids(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

#[tokio::test]
async fn exit_code_outputs_and_stdin() {
    let f = run(sh("cat; echo err >&2; exit 3"), Some(b"fed"), limits()).await;
    assert_eq!((f.ending, f.code(), f.signal()), (Ending::Exited, 3, None));
    assert_eq!(f.stdout.bytes, b"fed");
    assert_eq!(f.stderr.bytes, b"err\n");
    assert!(!f.stdout.truncated && !f.stderr.truncated);

    // Without input stdin is /dev/null: cat ends at once.
    let f = run(Command::new("/bin/cat"), None, limits()).await;
    assert_eq!((f.code(), f.stdout.bytes.len()), (0, 0));
}

#[tokio::test]
async fn death_by_signal_is_the_failure_code() {
    let f = run(sh("kill -9 $$"), None, limits()).await;
    assert_eq!((f.code(), f.signal()), (FAILURE_CODE, Some(9)));
    assert!(!f.timed_out());
}

#[tokio::test]
async fn output_past_the_cap_is_dropped_and_flagged() {
    let script = "head -c 100000 /dev/zero; head -c 1000 /dev/zero >&2";
    let f = run(
        sh(script),
        None,
        Limits {
            output_cap: 1000,
            ..limits()
        },
    )
    .await;
    assert_eq!(f.code(), 0);
    assert_eq!((f.stdout.bytes.len(), f.stdout.truncated), (1000, true));
    // Exactly the cap is not a truncation.
    assert_eq!((f.stderr.bytes.len(), f.stderr.truncated), (1000, false));

    let f = run(
        sh("echo x"),
        None,
        Limits {
            output_cap: 0,
            ..limits()
        },
    )
    .await;
    assert_eq!((f.stdout.bytes.len(), f.stdout.truncated), (0, true));
}

#[tokio::test]
async fn timeout_kills_the_whole_group_before_returning() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    // The background child ignores SIGTERM: only the SIGKILL after the grace ends it.
    let script = format!(
        "(trap '' TERM; sleep 300) & echo $$ $! > {}; sleep 300",
        pids.display()
    );
    let mut cmd = sh(&script);
    let process = Process::spawn(&mut cmd, None).unwrap();
    let pgid = process.pgid();
    let f = process
        .supervise(
            Limits {
                timeout: Some(Duration::from_millis(300)),
                ..limits()
            },
            TIMING,
            std::future::pending(),
        )
        .await;
    assert_eq!((f.ending, f.code()), (Ending::TimedOut, FAILURE_CODE));
    assert_eq!(f.signal(), Some(15));
    assert_eq!(read_pids(&pids)[0], pgid);
    assert!(!group_alive(pgid), "group {pgid} survived the timeout");
}

#[tokio::test]
async fn cancel_kills_the_group_and_is_not_a_timeout() {
    let mut cmd = sh("sleep 300");
    let process = Process::spawn(&mut cmd, None).unwrap();
    let pgid = process.pgid();
    let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
    let cancel = async {
        let _ = cancel_rx.await;
    };
    let supervised = process.supervise(limits(), TIMING, cancel);
    cancel_tx.send(()).unwrap();
    let f = supervised.await;
    assert_eq!(f.ending, Ending::Cancelled);
    assert_eq!(
        (f.code(), f.signal(), f.timed_out()),
        (FAILURE_CODE, Some(15), false)
    );
    assert!(!group_alive(pgid));
}

#[tokio::test]
async fn a_background_child_holding_the_pipes_does_not_hold_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    // The child keeps stdout, stderr and stdin open without reading stdin (fd 3 carries it
    // past the /dev/null a shell gives background commands); the main process exits at once.
    let script = format!(
        "exec 3<&0; sleep 300 <&3 3<&- & echo $! > {}; echo done",
        pid_file.display()
    );
    let input = vec![b'x'; 1 << 20];
    let f = run(sh(&script), Some(&input), limits()).await;
    assert_eq!((f.ending, f.code()), (Ending::Exited, 0));
    assert_eq!(f.stdout.bytes, b"done\n");
    // Not a timeout: the child is the hook's business and still runs.
    let child = read_pids(&pid_file)[0];
    let child = nix::unistd::Pid::from_raw(child);
    assert!(nix::sys::signal::kill(child, None).is_ok());
    let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
}

#[tokio::test]
async fn dropping_an_unfinished_execution_kills_its_group() {
    let mut cmd = sh("sleep 300");
    let process = Process::spawn(&mut cmd, None).unwrap();
    let pgid = process.pgid();
    let task = tokio::spawn(process.supervise(limits(), TIMING, std::future::pending()));
    tokio::task::yield_now().await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    // SIGKILL is delivered asynchronously; poll (bounded) until the kernel removed the group.
    let mut alive = group_alive(pgid);
    for _ in 0..200 {
        if !alive {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        alive = group_alive(pgid);
    }
    assert!(!alive, "group {pgid} survived the dropped execution");
}

#[tokio::test]
async fn a_missing_program_is_a_spawn_error() {
    let mut cmd = Command::new("/nonexistent/hook");
    match Process::spawn(&mut cmd, None) {
        Err(SpawnError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
        other => panic!("expected a spawn error, got {other:?}"),
    }
}
