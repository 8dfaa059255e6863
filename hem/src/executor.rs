//! The executor interface shared by the local executor and the remote executor: what to run and
//! what came out of it.

use std::time::{Duration, SystemTime};

pub use one_exec::FAILURE_CODE;

/// One hook execution, already resolved: no expansion or lookup happens after this point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRequest {
    /// `argv[0]` is the resolved command path; the rest are the expanded arguments, one word each.
    pub argv: Vec<String>,
    /// Data written to the command's stdin (ARGUMENTS_STDIN mode); `None` closes stdin at once.
    pub stdin: Option<Vec<u8>>,
    /// TIMEOUT of the hook; `None` waits for ever.
    pub timeout: Option<Duration>,
    /// Bytes kept of stdout and of stderr each; the rest is read and dropped.
    pub output_cap: usize,
}

/// What an execution produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutcome {
    /// Exit code; [`FAILURE_CODE`] on timeout, death by signal or start failure.
    pub code: i32,
    /// The signal that ended the process, if one did.
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub timed_out: bool,
    /// Why the command could not be started (missing file, not executable, host unreachable),
    /// in the reference's form, e.g. `No such file or directory - /path`.
    pub start_error: Option<String>,
    pub started: SystemTime,
    pub duration: Duration,
}

impl ExecOutcome {
    /// An outcome for a command that never ran, with code 255. The result body turns
    /// `start_error` into the reference's `Internal error <reason>` stderr text and `timed_out`
    /// into `Timeout executing <command>`, so executors only fill in the facts.
    pub fn start_failure(reason: impl Into<String>, started: SystemTime) -> ExecOutcome {
        ExecOutcome {
            start_error: Some(reason.into()),
            ..ExecOutcome::failure(started, started.elapsed().unwrap_or_default())
        }
    }

    /// An outcome with code 255 and nothing else to report: no output, no signal, no reason.
    pub fn failure(started: SystemTime, duration: Duration) -> ExecOutcome {
        ExecOutcome {
            code: FAILURE_CODE,
            signal: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            timed_out: false,
            start_error: None,
            started,
            duration,
        }
    }
}
