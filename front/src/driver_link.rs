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

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use one_proto::mad::{
    DriverLine, parse_driver_line, parse_forwarded_line, parse_journaled_line, stored_line,
};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
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

/// Finds the driver: an absolute path as is; a relative one next to the running binary first,
/// then, for a bare name, on `PATH`.
pub fn resolve_executable(name: &str) -> Result<PathBuf, DriverLinkError> {
    let given = Path::new(name);
    let mut searched = Vec::new();
    let mut candidates = Vec::new();
    if given.is_absolute() {
        candidates.push(given.to_path_buf());
    } else {
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
        {
            candidates.push(dir.join(given));
        }
        if given.components().count() == 1
            && let Some(path) = std::env::var_os("PATH")
        {
            candidates.extend(std::env::split_paths(&path).map(|d| d.join(given)));
        }
    }
    for candidate in candidates {
        match std::fs::metadata(&candidate) {
            Ok(meta) if meta.is_file() => {
                if is_executable(&meta) {
                    return Ok(candidate);
                }
                return Err(DriverLinkError::NotExecutable { path: candidate });
            }
            _ => searched.push(candidate.display().to_string()),
        }
    }
    Err(DriverLinkError::NotFound {
        name: name.to_string(),
        searched: if searched.is_empty() {
            "nowhere".to_string()
        } else {
            searched.join(", ")
        },
    })
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    true
}

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
    let writer = tokio::spawn(store_results(
        db.clone(),
        spec.retention,
        results_rx,
        stored_tx,
    ));
    let (sender_stop, sender_stop_rx) = watch::channel(false);
    // The last acknowledgements are applied after a FINALIZE, when the sender is gone.
    let journaled_final = journaled_rx.clone();
    let acks = SessionAcks {
        journaled: journaled_rx,
        stored: stored_rx,
    };
    let mut sender: JoinHandle<(ChildStdin, Result<Written, crate::events::EventError>)> = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let r = bus.deliver(&mut stdin, acks, sender_stop_rx).await;
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

/// One line of a driver's output, at most `max` bytes (longer lines are skipped with a
/// warning); `None` at end of file. The LF (and a CR before it) is not included.
async fn next_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<String>> {
    buf.clear();
    let mut overlong = false;
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            if buf.is_empty() {
                return Ok(None);
            }
            break;
        }
        let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i, Some(i + 1)),
            None => (chunk.len(), None),
        };
        if !overlong {
            if buf.len() + take > max {
                overlong = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&chunk[..take]);
            }
        }
        let consumed = done.unwrap_or(take);
        reader.consume(consumed);
        if done.is_some() {
            if overlong {
                tracing::warn!(max, "dropped a driver line longer than the limit");
                overlong = false;
                continue;
            }
            break;
        }
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(buf).into_owned()))
}

/// A result line from the driver.
struct DriverResult {
    success: bool,
    hook_id: i64,
    rc: i64,
    body: String,
}

/// What the reader hands to the result store, in the order read.
enum FromDriver {
    Result(DriverResult),
    /// `FORWARDED SUCCESS <id> -`: the results before it carry driver result ids up to `id`.
    Forwarded(u64),
}

/// Reads the driver's stdout until EOF: results and their `FORWARDED` markers go to the store,
/// `JOURNALED` acknowledgements to the sender (through `journaled`), the rest to the log.
async fn read_driver<R: AsyncBufRead + Unpin>(
    mut stdout: R,
    results: mpsc::Sender<FromDriver>,
    journaled: watch::Sender<u64>,
    pid: u32,
) {
    let mut buf = Vec::new();
    loop {
        let line = match next_line(&mut stdout, &mut buf, MAX_LINE).await {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(pid, error = %e, "cannot read the driver's output");
                break;
            }
        };
        if let Some(id) = parse_journaled_line(&line) {
            journaled.send_if_modified(|v| {
                let newer = id > *v;
                *v = (*v).max(id);
                newer
            });
            continue;
        }
        if let Some(id) = parse_forwarded_line(&line) {
            if results.send(FromDriver::Forwarded(id)).await.is_err() {
                break;
            }
            continue;
        }
        match parse_driver_line(&line) {
            DriverLine::Result {
                success,
                hook_id,
                rc,
                body,
            } => {
                let result = DriverResult {
                    success,
                    hook_id,
                    rc,
                    body,
                };
                if results.send(FromDriver::Result(result)).await.is_err() {
                    break;
                }
            }
            DriverLine::Log { level, id, text } => match level {
                'E' => tracing::error!(target: "hm_mad", pid, id, "{text}"),
                'W' => tracing::warn!(target: "hm_mad", pid, id, "{text}"),
                'D' => tracing::debug!(target: "hm_mad", pid, id, "{text}"),
                _ => tracing::info!(target: "hm_mad", pid, id, "{text}"),
            },
            DriverLine::InitSuccess | DriverLine::InitFailure(_) => {
                tracing::warn!(pid, line = %line, "unexpected INIT answer from the driver")
            }
            DriverLine::Undefined(_) => tracing::warn!(pid, line = %line, "Received UNDEFINED msg"),
        }
    }
}

/// The driver's stderr is its own log: each line is logged again at the level it names (a
/// tracing or `ERROR:`-style level word among its first words), or INFO.
async fn log_stderr(stderr: tokio::process::ChildStderr, pid: u32) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    while let Ok(Some(line)) = next_line(&mut reader, &mut buf, 64 * 1024).await {
        match stderr_level(&line) {
            tracing::Level::ERROR => tracing::error!(target: "hm_mad", pid, "{line}"),
            tracing::Level::WARN => tracing::warn!(target: "hm_mad", pid, "{line}"),
            tracing::Level::DEBUG | tracing::Level::TRACE => {
                tracing::debug!(target: "hm_mad", pid, "{line}")
            }
            _ => tracing::info!(target: "hm_mad", pid, "{line}"),
        }
    }
}

fn stderr_level(line: &str) -> tracing::Level {
    for word in line.split_whitespace().take(3) {
        match word.trim_end_matches(':').to_ascii_uppercase().as_str() {
            "ERROR" => return tracing::Level::ERROR,
            "WARN" | "WARNING" => return tracing::Level::WARN,
            "INFO" => return tracing::Level::INFO,
            "DEBUG" => return tracing::Level::DEBUG,
            "TRACE" => return tracing::Level::TRACE,
            _ => {}
        }
    }
    tracing::Level::INFO
}

/// Stores results in batches: one transaction for whatever arrived while the previous batch
/// was being written. After each commit, the newest `FORWARDED` marker whose results are all
/// stored goes to `stored`, which the sender writes to the driver as `STORED  <id> -`.
async fn store_results(
    db: Db,
    retention: u32,
    mut results: mpsc::Receiver<FromDriver>,
    stored: watch::Sender<u64>,
) {
    // Cleared by a result that could not be stored: acknowledging later markers would cover it,
    // so the rest of this session is left for the next driver to forward again.
    let mut acking = true;
    while let Some(first) = results.recv().await {
        let mut batch = vec![first];
        while batch.len() < RESULT_BATCH {
            match results.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let db2 = db.clone();
        let (batch, outcome) = match tokio::task::spawn_blocking(move || {
            let outcome = store_batch(&db2, &batch, retention);
            (batch, outcome)
        })
        .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "hook result store task failed; results are lost");
                acking = false;
                continue;
            }
        };
        let stored_upto = match outcome {
            Ok(first_failed) => first_failed.unwrap_or(batch.len()),
            Err(e) => {
                let count = batch
                    .iter()
                    .filter(|r| matches!(r, FromDriver::Result(_)))
                    .count();
                tracing::error!(count, error = %e, "cannot store hook results");
                0
            }
        };
        if !acking {
            continue;
        }
        let marker = batch[..stored_upto]
            .iter()
            .filter_map(|r| match r {
                FromDriver::Forwarded(id) => Some(*id),
                FromDriver::Result(_) => None,
            })
            .max();
        if let Some(id) = marker {
            stored.send_if_modified(|v| {
                let newer = id > *v;
                *v = (*v).max(id);
                newer
            });
        }
        if stored_upto < batch.len() {
            acking = false;
            tracing::error!(
                "a hook result was not stored; results of this driver are no longer acknowledged, \
                 so that the next driver forwards them again"
            );
        }
    }
}

/// Stores the results of `batch` in one transaction. Returns the position of the first result
/// that could not be stored (`None`: all were stored, or dropped on purpose as duplicates or
/// ill-formed); an error when the transaction failed (nothing stored).
fn store_batch(db: &Db, batch: &[FromDriver], retention: u32) -> rusqlite::Result<Option<usize>> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let write = || {
        db.write(|tx| {
            let mut first_failed = None;
            for (i, item) in batch.iter().enumerate() {
                let FromDriver::Result(r) = item else {
                    continue;
                };
                match crate::hook_log::add_result(tx, r.hook_id, r.rc, &r.body, retention, now) {
                    Ok(Some(execution_id)) => {
                        if r.success {
                            tracing::debug!(hook_id = r.hook_id, execution_id, rc = r.rc, "Success executing Hook");
                        } else {
                            tracing::info!(hook_id = r.hook_id, execution_id, rc = r.rc, "Error executing Hook");
                        }
                    }
                    Ok(None) => tracing::warn!(
                        hook_id = r.hook_id,
                        rc = r.rc,
                        "hook result not stored (a duplicate, or not well-formed XML)"
                    ),
                    Err(e) => {
                        tracing::error!(hook_id = r.hook_id, rc = r.rc, error = %e, "cannot store hook result");
                        first_failed.get_or_insert(i);
                    }
                }
            }
            Ok::<_, rusqlite::Error>(first_failed)
        })
    };
    // One retry covers a transient lock by another writer.
    write().or_else(|e| {
        tracing::warn!(error = %e, "storing hook results failed; retrying once");
        std::thread::sleep(Duration::from_millis(100));
        write()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_split_bounded_and_stripped() {
        let data: &[u8] = b"INIT SUCCESS - -\r\nLOG I 0 hello\n0123456789abcdef\nlast";
        let mut reader = BufReader::with_capacity(4, data);
        let mut buf = Vec::new();
        assert_eq!(
            next_line(&mut reader, &mut buf, 100)
                .await
                .unwrap()
                .as_deref(),
            Some("INIT SUCCESS - -")
        );
        assert_eq!(
            next_line(&mut reader, &mut buf, 100)
                .await
                .unwrap()
                .as_deref(),
            Some("LOG I 0 hello")
        );
        // The 16-byte line is over a 10-byte limit: skipped.
        assert_eq!(
            next_line(&mut reader, &mut buf, 10)
                .await
                .unwrap()
                .as_deref(),
            Some("last")
        );
        assert_eq!(next_line(&mut reader, &mut buf, 10).await.unwrap(), None);
    }

    #[test]
    fn stderr_lines_keep_their_level() {
        use tracing::Level;
        assert_eq!(
            stderr_level("2026-01-01T00:00:00Z  WARN one_hm: slow"),
            Level::WARN
        );
        assert_eq!(
            stderr_level("ERROR: Failed to bind publisher socket"),
            Level::ERROR
        );
        assert_eq!(
            stderr_level("2026-01-01T00:00:00Z DEBUG one_hm: x"),
            Level::DEBUG
        );
        assert_eq!(stderr_level("plain text"), Level::INFO);
    }

    #[test]
    fn missing_executables_are_reported_with_the_places_searched() {
        let e = resolve_executable("no-such-driver-xyz").unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("no-such-driver-xyz") && text.contains("not found"),
            "{text}"
        );
        let e = resolve_executable("/nonexistent/one_hm").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/one_hm"), "{e}");
        assert!(resolve_executable("sh").is_ok());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, "x").unwrap();
        assert!(matches!(
            resolve_executable(file.to_str().unwrap()),
            Err(DriverLinkError::NotExecutable { .. })
        ));
    }
}
