//! Spawning a hook process and supervising it to its end.

use std::fs::File;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{oneshot, watch};

use crate::capture::{Captured, read_capped};
use crate::group::Group;
use crate::main_process::Main;
use crate::open_files::Lowered;
use crate::quick_start::QuickStart;
use crate::reaper::Reaper;

/// Exit code the reference reports for a timeout, a death by signal or a start failure.
pub const FAILURE_CODE: i32 = 255;

/// Timing of the end of an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Time between SIGTERM and SIGKILL when a process group is killed.
    pub kill_grace: Duration,
    /// How long output is still read after the main process exited; a background child that
    /// keeps the pipes open must not hold the result back.
    pub drain_after_exit: Duration,
}

impl Default for Timing {
    /// A 2 s kill grace and the reference's 0.1 s for readers after the exit (§8.3).
    fn default() -> Self {
        Timing {
            kill_grace: Duration::from_secs(2),
            drain_after_exit: Duration::from_millis(100),
        }
    }
}

/// Bounds of one execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time the main process may run before its group is killed; `None` waits for ever.
    pub timeout: Option<Duration>,
    /// Bytes kept of stdout and of stderr each; the rest is read and dropped.
    pub output_cap: usize,
}

/// How the wait for the main process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The main process exited by itself.
    Exited,
    /// The timeout expired and the group was killed.
    TimedOut,
    /// The cancel future completed and the group was killed.
    Cancelled,
}

/// What a supervised process produced.
#[derive(Debug)]
pub struct Finished {
    /// The main process's status; an error if it could not be waited for.
    pub status: std::io::Result<ExitStatus>,
    pub ending: Ending,
    pub stdout: Captured,
    pub stderr: Captured,
}

impl Finished {
    pub fn timed_out(&self) -> bool {
        self.ending == Ending::TimedOut
    }

    /// The exit code to report: the process's own unless it timed out, died by a signal or
    /// could not be waited for, which are [`FAILURE_CODE`].
    pub fn code(&self) -> i32 {
        match (&self.status, self.ending) {
            (Ok(status), Ending::Exited | Ending::Cancelled) => {
                status.code().unwrap_or(FAILURE_CODE)
            }
            _ => FAILURE_CODE,
        }
    }

    /// The signal that ended the main process, if one did.
    pub fn signal(&self) -> Option<i32> {
        self.status.as_ref().ok().and_then(|s| s.signal())
    }
}

/// Why a process did not start.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// `exec` failed (missing file, not executable, arguments too long…).
    #[error("cannot start the process: {0}")]
    Io(#[source] std::io::Error),
    /// The process had no pid right after the spawn.
    #[error("the process vanished right after it started")]
    Vanished,
}

/// A started process, in its own process group, not yet supervised. Dropping it kills the
/// group.
#[derive(Debug)]
pub struct Process {
    child: Main,
    group: Group,
    input: Option<Vec<u8>>,
    stdin: Option<Stdin>,
    /// The read ends of stdout and stderr, not yet registered with the runtime (see
    /// `capture::read_capped`).
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
}

impl Process {
    /// Starts `cmd` as the leader of a new process group, with stdout and stderr piped. With
    /// `input`, stdin is a pipe that [`supervise`](Self::supervise) feeds it through and then
    /// closes; without, stdin is `/dev/null`, so the process sees end of file at once.
    pub fn spawn(cmd: &mut Command, input: Option<Vec<u8>>) -> Result<Process, SpawnError> {
        SpawnBatch::begin().spawn(cmd, input)
    }

    /// The process group id (the process's pid).
    pub fn pgid(&self) -> i32 {
        self.group.id()
    }

    /// Runs the process to its end: feeds stdin, reads both outputs up to the cap, and kills
    /// the group when `limits.timeout` expires or `cancel` completes (pass
    /// `std::future::pending()` for no cancel). Returns once the main process is reaped and
    /// its outputs are read to their end or for `timing.drain_after_exit` after its exit.
    ///
    /// Stdin is written alongside and given up when the rest is done: a hook that exits
    /// without reading it, while a background child holds the pipe, must not hold the
    /// result back.
    pub async fn supervise(
        self,
        limits: Limits,
        timing: Timing,
        cancel: impl Future<Output = ()>,
    ) -> Finished {
        let Process {
            mut child,
            mut group,
            input,
            stdin,
            stdout,
            stderr,
        } = self;
        let feed = feed_stdin(stdin, input);
        let (exited_tx, exited_rx) = watch::channel(false);
        let cap = limits.output_cap;
        let drain = timing.drain_after_exit;
        let stdout = read_capped(stdout, cap, exited_rx.clone(), drain);
        let stderr = read_capped(stderr, cap, exited_rx, drain);
        let wait = async {
            let ended = wait_main(&mut child, &mut group, limits.timeout, timing, cancel).await;
            let _ = exited_tx.send(true);
            ended
        };
        let work = async { tokio::join!(stdout, stderr, wait) };
        tokio::pin!(feed, work);
        let mut fed = false;
        let (stdout, stderr, (status, ending)) = loop {
            tokio::select! {
                // A hook that exits without reading its stdin is not an error.
                () = &mut feed, if !fed => fed = true,
                done = &mut work => break done,
            }
        };
        Finished {
            status,
            ending,
            stdout,
            stderr,
        }
    }
}

/// Several processes started in a row, as [`Process::spawn`] starts one: the spawning thread
/// takes the short scheduler slice once for all of them and gets its own settings back when the
/// batch is dropped (see `quick_start`), instead of twice per process. Hold it for a short run
/// of spawns only: whatever else the thread does meanwhile runs with the short slice too.
pub struct SpawnBatch {
    quick: QuickStart,
    reaper: Option<Reaper>,
    open_files: Option<u64>,
}

impl SpawnBatch {
    /// Gives the calling thread the short slice until the batch is dropped.
    pub fn begin() -> SpawnBatch {
        SpawnBatch {
            quick: QuickStart::enter(),
            reaper: None,
            open_files: None,
        }
    }

    /// Starts the processes of this batch with `soft` as their soft limit of open files when
    /// the caller's is higher (see `open_files`). Only for a caller whose other threads do not
    /// open descriptors while it spawns.
    pub fn open_files(mut self, soft: Option<u64>) -> SpawnBatch {
        self.open_files = soft;
        self
    }

    /// Has the processes of this batch waited for by `reaper` instead of one pidfd each.
    pub fn reaped_by(mut self, reaper: &Reaper) -> SpawnBatch {
        self.reaper = Some(reaper.clone());
        self
    }

    /// Starts `cmd` as [`Process::spawn`] does.
    pub fn spawn(
        &mut self,
        cmd: &mut Command,
        input: Option<Vec<u8>>,
    ) -> Result<Process, SpawnError> {
        let stdin = match input {
            Some(_) => Stdio::piped(),
            None => dev_null(),
        };
        let (stdout, stdout_w) = output_pipe().map_err(SpawnError::Io)?;
        let (stderr, stderr_w) = output_pipe().map_err(SpawnError::Io)?;
        cmd.process_group(0)
            .stdin(stdin)
            .stdout(stdout_w)
            .stderr(stderr_w);
        let (child, stdin) = match &self.reaper {
            Some(reaper) => {
                // Locked from the spawn until the waiter is in, so the reaper cannot take the
                // exit first.
                let mut waiting = reaper.lock();
                let lowered = self.open_files.and_then(Lowered::to);
                let child = cmd.as_std_mut().spawn();
                drop(lowered);
                let pid = child.as_ref().ok().and_then(|c| i32::try_from(c.id()).ok());
                self.quick.give_back(pid);
                let mut child = child.map_err(SpawnError::Io)?;
                let pid = pid.ok_or(SpawnError::Vanished)?;
                let (exited, exit) = oneshot::channel();
                waiting.insert(pid, exited);
                drop(waiting);
                // The std handle is let go without a wait: the reaper collects the process.
                let stdin = match child.stdin.take().map(input_pipe).transpose() {
                    Ok(stdin) => stdin.map(Stdin::Pipe),
                    Err(e) => {
                        // Started but not to be supervised: it must not run on unseen.
                        crate::group::kill_group_now(pid);
                        return Err(SpawnError::Io(e));
                    }
                };
                let main = Main::Reaped {
                    pid,
                    exit,
                    status: None,
                };
                (main, stdin)
            }
            None => {
                let lowered = self.open_files.and_then(Lowered::to);
                let child = cmd.spawn();
                drop(lowered);
                let pid = child
                    .as_ref()
                    .ok()
                    .and_then(Child::id)
                    .and_then(|p| i32::try_from(p).ok());
                // Past its `exec`, the child runs with the thread's normal settings.
                self.quick.give_back(pid);
                let mut child = child.map_err(SpawnError::Io)?;
                let pid = pid.ok_or(SpawnError::Vanished)?;
                let stdin = child.stdin.take().map(Stdin::Tokio);
                (Main::Tokio { child, pid }, stdin)
            }
        };
        // The command keeps what it was given: the parent's copies of the write ends close
        // here, or the pipes would never reach their end.
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        Ok(Process {
            group: Group::new(child.pid()),
            child,
            input,
            stdin,
            stdout: Some(stdout),
            stderr: Some(stderr),
        })
    }
}

impl std::fmt::Debug for SpawnBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpawnBatch").finish_non_exhaustive()
    }
}

/// `/dev/null` for a child's stdin: a copy of one descriptor opened once, which spares every
/// spawn the path lookup of an `open` (a few percent of the spawning thread's time).
fn dev_null() -> Stdio {
    static DEV_NULL: OnceLock<Option<File>> = OnceLock::new();
    DEV_NULL
        .get_or_init(|| File::open("/dev/null").ok())
        .as_ref()
        .and_then(|f| f.try_clone().ok())
        .map_or_else(Stdio::null, Stdio::from)
}

/// A pipe for one output of a child: the read end non-blocking (read without waiting once the
/// child exited, or by the runtime), the write end blocking as a child expects its stdout to be;
/// both close on `exec`, the child's copy being a `dup2` of the write end.
fn output_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    fcntl(&read, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    Ok((read, write))
}

/// A child's stdin pipe.
#[derive(Debug)]
enum Stdin {
    Tokio(ChildStdin),
    Pipe(pipe::Sender),
}

/// A spawned child's stdin, registered with the runtime (non-blocking, as it requires).
fn input_pipe(stdin: std::process::ChildStdin) -> std::io::Result<pipe::Sender> {
    let fd = OwnedFd::from(stdin);
    fcntl(&fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    pipe::Sender::from_owned_fd_unchecked(fd)
}

/// Waits for the main process; on timeout or cancel, kills its group.
async fn wait_main(
    child: &mut Main,
    group: &mut Group,
    timeout: Option<Duration>,
    timing: Timing,
    cancel: impl Future<Output = ()>,
) -> (std::io::Result<ExitStatus>, Ending) {
    let expired = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending::<()>().await,
        }
    };
    let ending = tokio::select! {
        status = child.wait() => {
            group.disarm();
            return (status, Ending::Exited);
        }
        () = expired => Ending::TimedOut,
        () = cancel => Ending::Cancelled,
    };
    (group.kill(child, timing.kill_grace).await, ending)
}

async fn feed_stdin(stdin: Option<Stdin>, input: Option<Vec<u8>>) {
    match stdin {
        Some(Stdin::Tokio(pipe)) => feed(pipe, input).await,
        Some(Stdin::Pipe(pipe)) => feed(pipe, input).await,
        None => {}
    }
}

async fn feed(mut pipe: impl AsyncWrite + Unpin, input: Option<Vec<u8>>) {
    if let Some(data) = input {
        // A broken pipe only means the hook did not want the data.
        let _ = pipe.write_all(&data).await;
        let _ = pipe.shutdown().await;
    }
}
