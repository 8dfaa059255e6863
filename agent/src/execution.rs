//! One hook execution on the host: spawned without a shell in its own process group, output
//! captured up to a cap, the whole group killed on timeout or cancel.

use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use one_proto::agent::{ExecResult, Execute, MAX_OUTPUT_CAP};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};

use crate::base_path::{Base, PathRefusal, io_error_text};

/// Exit code reported for a timeout, a death by signal or a start failure.
pub const FAILURE_CODE: i32 = 255;

/// Timing knobs of executions.
#[derive(Debug, Clone, Copy)]
pub struct ExecSettings {
    /// Time between SIGTERM and SIGKILL when a process group is killed.
    pub kill_grace: Duration,
    /// How long output is still read after the main process exited; a background child that
    /// keeps the pipes open must not hold the result back.
    pub drain_after_exit: Duration,
}

impl Default for ExecSettings {
    fn default() -> Self {
        ExecSettings {
            kill_grace: Duration::from_secs(2),
            drain_after_exit: Duration::from_millis(100),
        }
    }
}

/// How the wait for the main process ended.
enum Ending {
    Exited(std::io::Result<ExitStatus>),
    TimedOut,
    Cancelled,
}

/// Runs one execution to its end. `pgid` receives the process group id once the process is
/// started (0 before), so the agent can kill the group when it exits itself.
pub async fn execute(
    base: &Base,
    req: Execute,
    settings: ExecSettings,
    cancel: oneshot::Receiver<()>,
    pgid: Arc<AtomicI32>,
) -> ExecResult {
    let started_wall = SystemTime::now();
    let started = Instant::now();
    let mut result = ExecResult {
        id: req.id,
        code: FAILURE_CODE,
        started_unix_ms: unix_ms(started_wall),
        ..ExecResult::default()
    };
    let Some(command) = req.argv.first() else {
        result.start_error = Some("empty argv".to_string());
        return result;
    };
    let program = match base.resolve_command(command) {
        Ok(p) => p,
        Err(PathRefusal::Io { path, message }) => {
            result.start_error = Some(format!("{message} - {path}"));
            return result;
        }
        Err(refusal) => {
            result.start_error = Some(format!("refused: {refusal}"));
            return result;
        }
    };

    let mut cmd = Command::new(&program);
    cmd.arg0(command)
        .args(req.argv.iter().skip(1))
        .envs(req.env.iter().map(|(k, v)| (k, v)))
        .process_group(0)
        .stdin(if req.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            result.start_error = Some(format!("{} - {command}", io_error_text(&e)));
            return result;
        }
    };
    let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) else {
        result.start_error = Some(format!("process vanished at start - {command}"));
        return result;
    };
    pgid.store(pid, Ordering::SeqCst);
    let group = Pid::from_raw(pid);

    let cap = req.output_cap.min(MAX_OUTPUT_CAP) as usize;
    let (exited_tx, exited_rx) = watch::channel(false);
    let stdin_fut = write_stdin(child.stdin.take(), req.stdin);
    let stdout_fut = read_capped(child.stdout.take(), cap, exited_rx.clone(), settings);
    let stderr_fut = read_capped(child.stderr.take(), cap, exited_rx, settings);
    let timeout = req.timeout_ms.map(Duration::from_millis);
    let wait_fut = async {
        let ending = wait_main(&mut child, timeout, cancel).await;
        let status = match ending {
            Ending::Exited(status) => (status, false),
            Ending::TimedOut => (kill_group(group, &mut child, settings).await, true),
            Ending::Cancelled => (kill_group(group, &mut child, settings).await, false),
        };
        let _ = exited_tx.send(true);
        status
    };
    let (_, (stdout, stdout_truncated), (stderr, stderr_truncated), (status, timed_out)) =
        tokio::join!(stdin_fut, stdout_fut, stderr_fut, wait_fut);
    result.duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    result.stdout = stdout;
    result.stderr = stderr;
    result.stdout_truncated = stdout_truncated;
    result.stderr_truncated = stderr_truncated;
    result.timed_out = timed_out;
    match status {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            if let Some(code) = status.code() {
                result.code = if timed_out { FAILURE_CODE } else { code };
            } else {
                result.signal = status.signal();
            }
        }
        Err(e) => {
            result.start_error = Some(format!("waiting for {command}: {}", io_error_text(&e)));
        }
    }
    result
}

async fn wait_main(
    child: &mut Child,
    timeout: Option<Duration>,
    cancel: oneshot::Receiver<()>,
) -> Ending {
    // A dropped sender means nobody can cancel any more, not a cancel.
    let cancelled = async {
        if cancel.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let expired = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        status = child.wait() => Ending::Exited(status),
        () = expired => Ending::TimedOut,
        () = cancelled => Ending::Cancelled,
    }
}

/// SIGTERM to the group, SIGKILL after the grace period to whatever is left of it (the main
/// process or its descendants), then reaps the main process.
async fn kill_group(
    group: Pid,
    child: &mut Child,
    settings: ExecSettings,
) -> std::io::Result<ExitStatus> {
    let deadline = Instant::now() + settings.kill_grace;
    let _ = killpg(group, Signal::SIGTERM);
    let status = match tokio::time::timeout(settings.kill_grace, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            let _ = killpg(group, Signal::SIGKILL);
            child.wait().await
        }
    };
    // Descendants that ignored SIGTERM get the rest of the grace period, then SIGKILL.
    while group_alive(group) {
        if Instant::now() >= deadline {
            let _ = killpg(group, Signal::SIGKILL);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SIGKILL is asynchronous; wait (bounded) until the group is gone so that the result
    // only arrives once nothing of the hook runs any more.
    let settle = Instant::now() + Duration::from_secs(1);
    while group_alive(group) && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    status
}

/// Whether any process of the group still exists.
pub fn group_alive(group: Pid) -> bool {
    !matches!(killpg(group, None), Err(Errno::ESRCH))
}

/// Sends SIGKILL to a process group (used when the agent itself exits).
pub fn kill_group_now(pgid: i32) {
    if pgid > 0 {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}

async fn write_stdin(stdin: Option<tokio::process::ChildStdin>, data: Option<Vec<u8>>) {
    if let (Some(mut pipe), Some(data)) = (stdin, data) {
        // A hook that exits without reading its stdin is not an error.
        let _ = pipe.write_all(&data).await;
        let _ = pipe.shutdown().await;
    }
}

/// Reads a pipe to its end, keeping the first `cap` bytes. Once the main process has exited,
/// reading goes on for at most `drain_after_exit`.
async fn read_capped<R: AsyncRead + Unpin>(
    pipe: Option<R>,
    cap: usize,
    mut exited: watch::Receiver<bool>,
    settings: ExecSettings,
) -> (Vec<u8>, bool) {
    let Some(mut pipe) = pipe else {
        return (Vec::new(), false);
    };
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut chunk = vec![0u8; 16 * 1024];
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    enum Step {
        Read(Option<std::io::Result<usize>>),
        Exited,
    }
    loop {
        let step = {
            let deadline = drain_deadline;
            let read = async {
                match deadline {
                    Some(d) => tokio::time::timeout_at(d, pipe.read(&mut chunk)).await.ok(),
                    None => Some(pipe.read(&mut chunk).await),
                }
            };
            tokio::select! {
                r = read => Step::Read(r),
                // Either the process exited or the sender is gone: start the drain period.
                _ = exited.wait_for(|e| *e), if deadline.is_none() => Step::Exited,
            }
        };
        match step {
            Step::Read(Some(Ok(0)) | Some(Err(_)) | None) => break,
            Step::Read(Some(Ok(n))) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..n.min(room)]);
                if n > room {
                    truncated = true;
                }
            }
            Step::Exited => {
                drain_deadline = Some(tokio::time::Instant::now() + settings.drain_after_exit);
            }
        }
    }
    (kept, truncated)
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
