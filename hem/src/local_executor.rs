//! Runs a hook on this machine through [`one_exec`]: argv exec (never a shell), its own process
//! group, stdin mode, TIMEOUT with a group kill, and output capture with a size cap. What is
//! the HEM's own here is the environment and the reference's start failure texts.

use std::ffi::OsString;
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use one_exec::{Limits, Process, SpawnBatch, SpawnError, Timing};
use tokio::process::Command;

use crate::executor::{ExecOutcome, ExecRequest};

/// Runs hooks as local processes.
#[derive(Clone, Debug)]
pub struct LocalExecutor {
    /// The kill grace, and the reference's 0.1 s (§8.3) for output readers after the main
    /// process exited: a background child that inherited the pipes must not hold the
    /// execution open.
    timing: Timing,
    env: Vec<(String, OsString)>,
}

impl LocalExecutor {
    /// `kill_grace` is the time between SIGTERM and SIGKILL to a timed-out process group.
    pub fn new(kill_grace: Duration) -> LocalExecutor {
        LocalExecutor {
            timing: Timing {
                kill_grace,
                ..Timing::default()
            },
            env: Vec::new(),
        }
    }

    /// Variables every hook gets on top of the HEM's environment (replacing any of the same
    /// name). Those the HEM's environment already holds with the same value are left out: a
    /// command with any environment change rebuilds the whole environment at every spawn
    /// (CPU on every hook), so the daemon exports its hook variables into
    /// its own environment at start and spawns without changes.
    pub fn with_env(mut self, mut env: Vec<(String, OsString)>) -> LocalExecutor {
        env.retain(|(name, value)| std::env::var_os(name).as_ref() != Some(value));
        self.env = env;
        self
    }

    /// Runs one request to completion. Never fails: every problem becomes an outcome.
    pub async fn run(&self, req: ExecRequest) -> ExecOutcome {
        self.run_until(req, self.timing.kill_grace, std::future::pending())
            .await
    }

    /// [`run`](Self::run) with this request's kill grace, killing the hook's group (SIGTERM,
    /// then SIGKILL after the grace) when `cancel` completes first.
    pub async fn run_until(
        &self,
        req: ExecRequest,
        kill_grace: Duration,
        cancel: impl std::future::Future<Output = ()>,
    ) -> ExecOutcome {
        let started = self.start(req, kill_grace, &mut SpawnBatch::begin());
        match started {
            Ok(hook) => hook.finish(cancel).await,
            Err(outcome) => outcome,
        }
    }

    /// Spawns the request's process within `batch` (several spawns in a row share one short
    /// scheduler slice); [`Started::finish`] then runs it to its end. A process that did not
    /// start is its outcome already. Call inside the runtime, which registers its pipes.
    pub fn start(
        &self,
        req: ExecRequest,
        kill_grace: Duration,
        batch: &mut SpawnBatch,
    ) -> Result<Started, ExecOutcome> {
        let started = SystemTime::now();
        let t0 = Instant::now();
        let Some(path) = req.argv.first() else {
            return Err(ExecOutcome::start_failure("empty command", started));
        };
        let mut cmd = Command::new(path);
        cmd.args(&req.argv[1..])
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        let process = match batch.spawn(&mut cmd, req.stdin) {
            Ok(process) => process,
            Err(SpawnError::Io(e)) => {
                return Err(ExecOutcome::start_failure(
                    spawn_error_text(&e, &req.argv),
                    started,
                ));
            }
            Err(SpawnError::Vanished) => {
                return Err(ExecOutcome::start_failure(
                    "process vanished after start",
                    started,
                ));
            }
        };
        Ok(Started {
            process,
            limits: Limits {
                timeout: req.timeout,
                output_cap: req.output_cap,
            },
            timing: Timing {
                kill_grace,
                ..self.timing
            },
            started,
            t0,
        })
    }
}

/// A hook process that has started, to be run to its end by [`Started::finish`]. Dropped
/// before that, its process group is killed.
#[derive(Debug)]
pub struct Started {
    process: Process,
    limits: Limits,
    timing: Timing,
    started: SystemTime,
    t0: Instant,
}

impl Started {
    /// Feeds stdin, captures the outputs, enforces TIMEOUT (and `cancel`) with a group kill,
    /// and returns the outcome once the process is reaped.
    pub async fn finish(self, cancel: impl std::future::Future<Output = ()>) -> ExecOutcome {
        let finished = self
            .process
            .supervise(self.limits, self.timing, cancel)
            .await;
        ExecOutcome {
            code: finished.code(),
            signal: finished.signal(),
            timed_out: finished.timed_out(),
            start_error: finished
                .status
                .as_ref()
                .err()
                .map(|e| format!("cannot wait for the hook: {e}")),
            stdout: finished.stdout.bytes,
            stderr: finished.stderr.bytes,
            stdout_truncated: finished.stdout.truncated,
            stderr_truncated: finished.stderr.truncated,
            started: self.started,
            duration: self.t0.elapsed(),
        }
    }
}

/// The reference's spawn failure text, `<strerror> - <path>` (Ruby's Errno message), with the
/// argument size and the stdin alternative named when the arguments are too long.
fn spawn_error_text(e: &std::io::Error, argv: &[String]) -> String {
    let path = argv.first().map(String::as_str).unwrap_or("");
    match e.raw_os_error() {
        Some(code) if code == libc::E2BIG => {
            let bytes: usize = argv.iter().map(|a| a.len() + 1).sum();
            format!(
                "{} - {path} (the arguments are {bytes} bytes; set ARGUMENTS_STDIN=yes to pass them on stdin)",
                Errno::from_raw(code).desc()
            )
        }
        Some(code) => format!("{} - {path}", Errno::from_raw(code).desc()),
        None => format!("{e} - {path}"),
    }
}
