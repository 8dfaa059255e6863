//! One hook execution on the host: the command confined to the base directory, then run by
//! [`one_exec`] without a shell in its own process group, output captured up to a cap, the
//! whole group killed on timeout or cancel.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use one_exec::{Limits, Process, SpawnError};
use one_proto::agent::{Execute, Executed, MAX_OUTPUT_CAP};
use tokio::process::Command;
use tokio::sync::oneshot;

use crate::base_path::{Base, PathRefusal, io_error_text};

pub use one_exec::{FAILURE_CODE, Timing as ExecSettings};

/// Runs one execution to its end. `pgid` receives the process group id once the process is
/// started (0 before), so the agent can kill the group when it exits itself.
pub async fn execute(
    base: &Base,
    req: Execute,
    settings: ExecSettings,
    cancel: oneshot::Receiver<()>,
    pgid: Arc<AtomicI32>,
) -> Executed {
    let started_wall = SystemTime::now();
    let started = Instant::now();
    let mut result = Executed {
        id: req.id,
        code: FAILURE_CODE,
        started_unix_ms: unix_ms(started_wall),
        ..Executed::default()
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
        .envs(req.env.iter().map(|(k, v)| (k, v)));
    let process = match Process::spawn(&mut cmd, req.stdin) {
        Ok(p) => p,
        Err(SpawnError::Io(e)) => {
            result.start_error = Some(format!("{} - {command}", io_error_text(&e)));
            return result;
        }
        Err(SpawnError::Vanished) => {
            result.start_error = Some(format!("process vanished at start - {command}"));
            return result;
        }
    };
    pgid.store(process.pgid(), Ordering::SeqCst);
    let limits = Limits {
        timeout: req.timeout_ms.map(Duration::from_millis),
        output_cap: req.output_cap.min(MAX_OUTPUT_CAP) as usize,
    };
    // A dropped sender means nobody can cancel any more, not a cancel.
    let cancelled = async {
        if cancel.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let finished = process.supervise(limits, settings, cancelled).await;
    result.duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    result.code = finished.code();
    result.signal = finished.signal();
    result.timed_out = finished.timed_out();
    if let Err(e) = &finished.status {
        result.start_error = Some(format!("waiting for {command}: {}", io_error_text(e)));
    }
    result.stdout = finished.stdout.bytes;
    result.stderr = finished.stderr.bytes;
    result.stdout_truncated = finished.stdout.truncated;
    result.stderr_truncated = finished.stderr.truncated;
    result
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
