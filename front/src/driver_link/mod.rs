//! Spawning and supervising the HM_MAD driver.
//!
//! The driver named by `HM_MAD = [ EXECUTABLE, ARGUMENTS ]` is started with the ARGUMENTS split
//! into argv words (passed as given: the operator's ARGUMENTS are authoritative), in its own
//! process group, with the var dir as working directory. A relative EXECUTABLE is looked up next
//! to the running binary first, then (a bare name only) on `PATH`. The link then:
//!
//! - sends `STORED  0 -` (announcing result acknowledgement, see below) and `INIT`, and
//!   requires `INIT SUCCESS` as the first line within 10 s;
//! - writes the event outbox to the driver's stdin ([`EventBus::deliver`]), keeping events
//!   until the driver's `JOURNALED SUCCESS <id> -` lines cover them (delivery acknowledgement,
//!   [`crate::events`]);
//! - reads the driver's stdout: result lines are stored in the hook log in batched
//!   transactions, `JOURNALED` lines go to the sender, `LOG` lines go to the log, anything else
//!   is logged as undefined;
//! - acknowledges stored results: a driver that read `STORED  0 -` follows its result lines
//!   with `FORWARDED SUCCESS <result_id> -`; once every result line read before such a marker
//!   is committed to the hook log, the link writes `STORED  <result_id> -`, and the driver
//!   forwards again, after a restart, every result not acknowledged ([`one_proto::mad`]).
//!   Duplicates are dropped by `<EXECUTION_UID>`. After a failed hook-log commit no further
//!   result is acknowledged in that driver session, so the next driver forwards them again;
//! - logs the driver's stderr;
//! - restarts the driver with exponential backoff (0.2 s doubling to 30 s, reset after a minute
//!   of healthy running) whenever it exits or its pipes break;
//! - on [`DriverLink::stop`], sends `FINALIZE`, closes stdin, waits up to 10 s for the driver to
//!   exit and kills it after that.
//!
//! `EVENT_OUTBOX = [ LIMIT = n, ACK_TIMEOUT = s ]` in oned.conf ([`crate::config::EventOutbox`])
//! bounds the outbox and sets how long a driver has to acknowledge the first events written to
//! it before it is taken for one that never does.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use one_proto::mad::{DriverLine, parse_driver_line, stored_line};
use tokio::io::{AsyncBufRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::db::Db;
use crate::events::{EventBus, SessionAcks, Written};

/// How long the driver has to answer `INIT` (the reference's value).
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the driver has to exit after `FINALIZE` before it is killed (the reference's value).
pub const FINALIZE_TIMEOUT: Duration = Duration::from_secs(10);

const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A driver that ran this long is considered healthy: the next restart starts from the
/// minimum backoff again.
const HEALTHY_RUN: Duration = Duration::from_secs(60);
/// How long the sender may take to finish its current batch at shutdown.
const SENDER_STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the stdout reader may take to reach EOF once the driver is gone.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest driver line accepted; longer ones are dropped with a warning.
const MAX_LINE: usize = 64 * 1024 * 1024;
/// Results stored in one transaction at most.
const RESULT_BATCH: usize = 500;
/// Results read but not yet stored; the reader waits when the store falls this far behind.
const RESULT_QUEUE: usize = 4096;

/// Why the link cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DriverLinkError {
    #[error("HM_MAD executable {name:?} not found (looked in {searched})")]
    NotFound { name: String, searched: String },
    #[error("HM_MAD executable {} is not an executable file", path.display())]
    NotExecutable { path: PathBuf },
}

/// The running link; [`DriverLink::stop`] finalizes the driver. Dropping it asks the
/// supervisor to stop as well (the driver is killed if the runtime goes away first).
#[derive(Debug)]
pub struct DriverLink {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl DriverLink {
    /// Sends `FINALIZE` to the driver, waits for it (killing it after [`FINALIZE_TIMEOUT`]) and
    /// for the last results to be stored.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "hook manager driver supervisor failed");
        }
    }

    /// Whether a driver is configured (and so supervised).
    pub fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for DriverLink {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// What the supervisor starts, resolved once from the configuration.
#[derive(Clone, Debug)]
struct Spec {
    executable: String,
    args: Vec<String>,
    var_dir: PathBuf,
    retention: u32,
}

/// Applies the outbox settings, checks the driver executable and starts supervising it. Must be
/// called inside a tokio runtime. Without HM_MAD, nothing is started and events stay in the
/// outbox.
pub fn start(
    config: &Config,
    var_dir: &Path,
    db: Db,
    bus: EventBus,
    retention: u32,
) -> Result<DriverLink, DriverLinkError> {
    bus.set_limit(config.event_outbox.limit);
    bus.set_ack_timeout(config.event_outbox.ack_timeout);
    let (stop, stop_rx) = watch::channel(false);
    let Some(hm) = &config.hm_mad else {
        tracing::warn!(
            "HM_MAD is not configured: events are kept in the outbox until a driver is configured"
        );
        return Ok(DriverLink { stop, task: None });
    };
    let path = resolve_executable(&hm.executable)?;
    tracing::info!(executable = %path.display(), arguments = %hm.arguments, "starting the hook manager driver");
    let spec = Spec {
        executable: hm.executable.clone(),
        args: hm
            .arguments
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        var_dir: var_dir.to_path_buf(),
        retention,
    };
    let task = tokio::spawn(supervise(spec, db, bus, stop_rx));
    Ok(DriverLink {
        stop,
        task: Some(task),
    })
}

mod executable;
mod from_driver;
mod stderr;
mod store;

pub use executable::resolve_executable;
use from_driver::{next_line, read_driver};
use stderr::log_stderr;
use store::store_results;

/// How one driver process ended.
enum Session {
    /// Shutdown was requested and the driver finalized.
    Stopped,
    /// The driver failed to start or went away; restart it.
    Ended { reason: String, ran: Duration },
}

async fn supervise(spec: Spec, db: Db, bus: EventBus, mut stop: watch::Receiver<bool>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        if *stop.borrow() {
            break;
        }
        match run_once(&spec, &db, &bus, stop.clone()).await {
            Session::Stopped => break,
            Session::Ended { reason, ran } => {
                if ran >= HEALTHY_RUN {
                    backoff = BACKOFF_MIN;
                }
                tracing::error!(
                    executable = %spec.executable,
                    reason = %reason,
                    retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                    pending_events = bus.pending().unwrap_or(0),
                    "hook manager driver is down; restarting it"
                );
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
    tracing::info!("hook manager driver link stopped");
}

async fn run_once(
    spec: &Spec,
    db: &Db,
    bus: &EventBus,
    mut stop: watch::Receiver<bool>,
) -> Session {
    let started = Instant::now();
    let ended = |reason: String| Session::Ended {
        reason,
        ran: started.elapsed(),
    };
    // Resolved on every start: the driver may be installed or replaced while we run.
    let path = match resolve_executable(&spec.executable) {
        Ok(p) => p,
        Err(e) => return ended(e.to_string()),
    };
    let mut command = Command::new(&path);
    command
        .args(&spec.args)
        .current_dir(&spec.var_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Its own process group: a Ctrl-C on our terminal must not reach the driver before FINALIZE.
    #[cfg(unix)]
    command.process_group(0);
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => return ended(format!("cannot start {}: {e}", path.display())),
    };
    let pid = child.id().unwrap_or(0);
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        kill(&mut child).await;
        return ended("the driver's pipes are missing".to_string());
    };
    tokio::spawn(log_stderr(stderr, pid));
    let mut stdout = BufReader::new(stdout);

    if let Err(reason) = handshake(&mut stdin, &mut stdout, &mut child).await {
        kill(&mut child).await;
        return ended(reason);
    }
    tracing::info!(pid, executable = %path.display(), "hook manager driver initialized");

    let (results_tx, results_rx) = mpsc::channel(RESULT_QUEUE);
    let (journaled_tx, journaled_rx) = watch::channel(0u64);
    let (stored_tx, stored_rx) = watch::channel(0u64);
    let mut reader = tokio::spawn(read_driver(stdout, results_tx, journaled_tx, pid));
    let writer = {
        let db = db.clone();
        let retention = spec.retention;
        tokio::task::spawn_blocking(move || store_results(db, retention, results_rx, stored_tx))
    };
    let (sender_stop, sender_stop_rx) = watch::channel(false);
    // The last acknowledgements are applied after a FINALIZE, when the sender is gone.
    let journaled_final = journaled_rx.clone();
    let acks = SessionAcks {
        journaled: journaled_rx,
        stored: stored_rx,
    };
    let mut sender: JoinHandle<(ChildStdin, Result<Written, crate::events::EventError>)> = {
        let bus = bus.clone();
        // The committers write events to the pipe through a descriptor of their own while the
        // sender has handed it over (`crate::events`).
        let direct = stdin.as_fd().try_clone_to_owned().ok();
        tokio::spawn(async move {
            let r = bus.deliver(&mut stdin, direct, acks, sender_stop_rx).await;
            (stdin, r)
        })
    };

    enum Event {
        Exited(String),
        SenderDone(String),
        OutputClosed,
        Stop,
    }
    let event = tokio::select! {
        status = child.wait() => {
            Event::Exited(status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()))
        }
        r = &mut sender => Event::SenderDone(match r {
            Ok((_, Err(e))) => e.to_string(),
            Ok((_, Ok(_))) => "the event sender stopped".to_string(),
            Err(e) => format!("the event sender failed: {e}"),
        }),
        _ = &mut reader => Event::OutputClosed,
        _ = stop_requested(&mut stop) => Event::Stop,
    };
    let reader_done = matches!(event, Event::OutputClosed);
    let mut finished = None;
    let outcome = match event {
        Event::Exited(status) => {
            sender.abort();
            ended(format!("the driver exited ({status})"))
        }
        Event::SenderDone(reason) => {
            exit_or_kill(&mut child, DRAIN_TIMEOUT).await;
            ended(reason)
        }
        Event::OutputClosed => {
            sender.abort();
            exit_or_kill(&mut child, DRAIN_TIMEOUT).await;
            ended("the driver closed its output".to_string())
        }
        Event::Stop => {
            finished = finalize(&mut child, sender, sender_stop, pid).await;
            Session::Stopped
        }
    };
    // Store what the driver wrote before it went away.
    if !reader_done
        && tokio::time::timeout(DRAIN_TIMEOUT, &mut reader)
            .await
            .is_err()
    {
        tracing::warn!(
            pid,
            "the driver's output did not close; its last lines are dropped"
        );
        reader.abort();
    }
    if let Err(e) = writer.await {
        tracing::error!(pid, error = %e, "hook result store task failed");
    }
    if let Some((written, clean_exit)) = finished {
        let journaled = *journaled_final.borrow();
        bus.finish_session(written, journaled, clean_exit).await;
    }
    outcome
}

/// Resolves when a stop is requested (or the link handle is gone).
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Sends `STORED  0 -` and `INIT`, and reads the answer, which must be `INIT SUCCESS` within
/// [`INIT_TIMEOUT`]. The `STORED` line comes first so that the driver knows, before it writes
/// any result, that this front-end acknowledges them; a reference driver ignores an action it
/// has no handler for.
async fn handshake<R: AsyncBufRead + Unpin>(
    stdin: &mut ChildStdin,
    stdout: &mut R,
    child: &mut Child,
) -> Result<(), String> {
    let hello = format!("{}\nINIT\n", stored_line(0));
    let write = async {
        stdin.write_all(hello.as_bytes()).await?;
        stdin.flush().await
    };
    if let Err(e) = write.await {
        let status = exit_status(child).await;
        return Err(format!("cannot send INIT to the driver: {e}{status}"));
    }
    let mut buf = Vec::new();
    match tokio::time::timeout(INIT_TIMEOUT, next_line(stdout, &mut buf, MAX_LINE)).await {
        Err(_) => Err(format!(
            "the driver did not answer INIT within {} s",
            INIT_TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => Err(format!("cannot read the driver's INIT answer: {e}")),
        Ok(Ok(None)) => {
            let status = exit_status(child).await;
            Err(format!(
                "Driver initialization failed, expected INIT SUCCESS message (the driver closed its output{status})"
            ))
        }
        Ok(Ok(Some(line))) => match parse_driver_line(&line) {
            DriverLine::InitSuccess => Ok(()),
            _ => Err(format!(
                "Driver initialization failed, expected INIT SUCCESS message, got {line:?}"
            )),
        },
    }
}

/// ", exit status N" when the child has exited within a short while, else "".
async fn exit_status(child: &mut Child) -> String {
    match tokio::time::timeout(Duration::from_millis(500), child.wait()).await {
        Ok(Ok(s)) => format!(", {s}"),
        _ => String::new(),
    }
}

async fn kill(child: &mut Child) {
    if let Err(e) = child.kill().await {
        tracing::warn!(error = %e, "cannot kill the hook manager driver");
    }
}

async fn exit_or_kill(child: &mut Child, wait: Duration) {
    match tokio::time::timeout(wait, child.wait()).await {
        Ok(_) => {}
        Err(_) => {
            tracing::warn!(
                pid = child.id().unwrap_or(0),
                "the driver did not exit; killing it"
            );
            kill(child).await;
        }
    }
}

/// Stops the sender between batches, sends `FINALIZE`, closes stdin and waits for the driver.
/// Returns what the sender had written and whether the driver then exited with success, when
/// `FINALIZE` was sent.
async fn finalize(
    child: &mut Child,
    mut sender: JoinHandle<(ChildStdin, Result<Written, crate::events::EventError>)>,
    sender_stop: watch::Sender<bool>,
    pid: u32,
) -> Option<(Written, bool)> {
    let _ = sender_stop.send(true);
    let mut written = None;
    match tokio::time::timeout(SENDER_STOP_TIMEOUT, &mut sender).await {
        Ok(Ok((mut stdin, Ok(sent)))) => {
            let write = async {
                stdin.write_all(b"FINALIZE\n").await?;
                stdin.flush().await
            };
            match write.await {
                Ok(()) => written = Some(sent),
                Err(e) => tracing::warn!(pid, error = %e, "cannot send FINALIZE to the driver"),
            }
            drop(stdin);
        }
        Ok(Ok((_, Err(e)))) => {
            tracing::warn!(pid, error = %e, "event sender failed while stopping")
        }
        Ok(Err(e)) => tracing::warn!(pid, error = %e, "event sender task failed while stopping"),
        Err(_) => {
            // It is stuck writing to a driver that does not read; a FINALIZE now would be glued
            // to a half-written line, so just close stdin.
            tracing::warn!(
                pid,
                "the driver does not read its input; closing it without FINALIZE"
            );
            sender.abort();
        }
    }
    let clean_exit = match tokio::time::timeout(FINALIZE_TIMEOUT, child.wait()).await {
        Ok(Ok(status)) => {
            tracing::info!(pid, status = %status, "hook manager driver finalized");
            status.success()
        }
        Ok(Err(e)) => {
            tracing::warn!(pid, error = %e, "cannot wait for the hook manager driver");
            false
        }
        Err(_) => {
            tracing::warn!(
                pid,
                timeout_s = FINALIZE_TIMEOUT.as_secs(),
                "the driver did not exit after FINALIZE; killing it"
            );
            kill(child).await;
            false
        }
    };
    written.map(|w| (w, clean_exit))
}
