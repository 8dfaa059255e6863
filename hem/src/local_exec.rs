//! Runs a hook on this machine: argv exec (never a shell), its own process group, stdin mode,
//! TIMEOUT with a group kill, and output capture with a size cap.

use std::ffi::OsString;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::exec::{ExecOutcome, ExecRequest, FAILURE_CODE};

/// How long output readers may keep going once the hook's main process has exited. A background
/// child that inherited the pipes must not hold the execution open (reference §8.3: 0.1 s).
const READER_GRACE: Duration = Duration::from_millis(100);

/// Runs hooks as local processes.
#[derive(Clone, Debug)]
pub struct LocalExecutor {
    kill_grace: Duration,
    env: Vec<(String, OsString)>,
}

impl LocalExecutor {
    /// `kill_grace` is the time between SIGTERM and SIGKILL to a timed-out process group.
    pub fn new(kill_grace: Duration) -> LocalExecutor {
        LocalExecutor {
            kill_grace,
            env: Vec::new(),
        }
    }

    /// Variables every hook gets on top of the HEM's environment (replacing any of the same
    /// name).
    pub fn with_env(mut self, env: Vec<(String, OsString)>) -> LocalExecutor {
        self.env = env;
        self
    }

    /// Runs one request to completion. Never fails: every problem becomes an outcome.
    pub async fn run(&self, req: ExecRequest) -> ExecOutcome {
        let started = SystemTime::now();
        let t0 = Instant::now();
        let Some(path) = req.argv.first() else {
            return ExecOutcome::start_failure("empty command", started);
        };
        let mut cmd = Command::new(path);
        cmd.args(&req.argv[1..])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .process_group(0)
            .stdin(if req.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => return ExecOutcome::start_failure(spawn_error_text(&e, &req), started),
        };
        let Some(pid) = child.id() else {
            return ExecOutcome::start_failure("process vanished after start", started);
        };
        let group = GroupGuard::new(pid);

        if let (Some(data), Some(mut stdin)) = (req.stdin, child.stdin.take()) {
            // A hook that never reads its stdin must not block the HEM, so the write runs on
            // its own; a broken pipe only means the hook did not want the data.
            tokio::spawn(async move {
                let _ = stdin.write_all(&data).await;
                let _ = stdin.shutdown().await;
            });
        }

        let (stop_tx, stop_rx) = watch::channel(false);
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let cap = req.output_cap;
        let readers = async {
            tokio::join!(
                read_capped(stdout, cap, stop_rx.clone()),
                read_capped(stderr, cap, stop_rx)
            )
        };
        let waiter = wait_child(&mut child, req.timeout, &group, self.kill_grace);
        tokio::pin!(readers, waiter);

        let mut outputs = None;
        let (status, timed_out) = loop {
            tokio::select! {
                r = &mut waiter => break r,
                o = &mut readers, if outputs.is_none() => outputs = Some(o),
            }
        };
        let (out, err) = match outputs {
            Some(o) => o,
            None => match tokio::time::timeout(READER_GRACE, &mut readers).await {
                Ok(o) => o,
                Err(_) => {
                    let _ = stop_tx.send(true);
                    readers.await
                }
            },
        };
        // The main process is reaped; background children that are still running are the
        // hook's business unless it timed out, in which case wait_child killed the group.
        group.disarm();

        let (code, signal, wait_error) = match status {
            Ok(st) => exit_code(st),
            Err(e) => (
                FAILURE_CODE,
                None,
                Some(format!("cannot wait for the hook: {e}")),
            ),
        };
        ExecOutcome {
            code: if timed_out { FAILURE_CODE } else { code },
            signal,
            stdout: out.0,
            stderr: err.0,
            stdout_truncated: out.1,
            stderr_truncated: err.1,
            timed_out,
            start_error: wait_error,
            started,
            duration: t0.elapsed(),
        }
    }
}

fn exit_code(st: ExitStatus) -> (i32, Option<i32>, Option<String>) {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => (c, None, None),
        (None, sig) => (FAILURE_CODE, sig, None),
    }
}

/// Waits for the main process; on timeout, SIGTERM to the group, then SIGKILL to whatever is
/// left of the group after the grace period, so no process of the hook survives it.
async fn wait_child(
    child: &mut Child,
    timeout: Option<Duration>,
    group: &GroupGuard,
    kill_grace: Duration,
) -> (std::io::Result<ExitStatus>, bool) {
    let Some(limit) = timeout else {
        return (child.wait().await, false);
    };
    if let Ok(status) = tokio::time::timeout(limit, child.wait()).await {
        return (status, false);
    }
    group.signal(Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + kill_grace;
    let status = match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            group.signal(Signal::SIGKILL);
            return (child.wait().await, true);
        }
    };
    // The main process is gone; give the rest of the group the remaining grace to exit on
    // SIGTERM, then kill what is left.
    while tokio::time::Instant::now() < deadline && group.alive() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    group.signal(Signal::SIGKILL);
    (status, true)
}

/// Reads a pipe until EOF or until told to stop, keeping the first `cap` bytes and draining the
/// rest so that the writer never blocks on a full pipe.
async fn read_capped(
    pipe: Option<impl AsyncRead + Unpin>,
    cap: usize,
    mut stop: watch::Receiver<bool>,
) -> (Vec<u8>, bool) {
    let mut buf = Vec::new();
    let mut truncated = false;
    let Some(mut pipe) = pipe else {
        return (buf, truncated);
    };
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            r = pipe.read(&mut chunk) => match r {
                Ok(0) => break,
                Ok(n) => {
                    let room = cap.saturating_sub(buf.len());
                    if n > room {
                        truncated = true;
                    }
                    buf.extend_from_slice(&chunk[..n.min(room)]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            },
        }
    }
    (buf, truncated)
}

/// The reference's spawn failure text, `<strerror> - <path>` (Ruby's Errno message), with the
/// argument size and the stdin alternative named when the arguments are too long.
fn spawn_error_text(e: &std::io::Error, req: &ExecRequest) -> String {
    let path = req.argv.first().map(String::as_str).unwrap_or("");
    match e.raw_os_error() {
        Some(code) if code == libc::E2BIG => {
            let bytes: usize = req.argv.iter().map(|a| a.len() + 1).sum();
            format!(
                "{} - {path} (the arguments are {bytes} bytes; set ARGUMENTS_STDIN=yes to pass them on stdin)",
                Errno::from_raw(code).desc()
            )
        }
        Some(code) => format!("{} - {path}", Errno::from_raw(code).desc()),
        None => format!("{e} - {path}"),
    }
}

/// The hook's process group. Killed with SIGKILL if the execution is abandoned (the HEM stops
/// or the task is dropped) before the main process was reaped, so nothing is left behind.
struct GroupGuard {
    pgid: Pid,
    armed: AtomicBool,
}

impl GroupGuard {
    fn new(pid: u32) -> GroupGuard {
        GroupGuard {
            pgid: Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX)),
            armed: AtomicBool::new(true),
        }
    }

    fn signal(&self, sig: Signal) {
        let _ = killpg(self.pgid, sig);
    }

    /// Whether any process of the group still exists.
    fn alive(&self) -> bool {
        killpg(self.pgid, None) != Err(Errno::ESRCH)
    }

    fn disarm(&self) {
        self.armed.store(false, Ordering::Relaxed);
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed.load(Ordering::Relaxed) {
            self.signal(Signal::SIGKILL);
        }
    }
}
