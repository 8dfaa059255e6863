//! onehem-agent: runs hooks on a host for the HEM. It is started over SSH with `--stdio` and
//! speaks [`one_proto::agent`] frames on its stdin and stdout; it never listens on a port.
//!
//! Every execution runs without a shell, in its own process group, only from below the base
//! directory. The agent exits when its stdin closes (the HEM or the SSH connection went away)
//! and kills the process groups of the executions still running.

pub mod base_path;
pub mod cli;
pub mod execution;
pub mod hook_files;

use std::collections::HashMap;
use std::sync::atomic::AtomicI32;
use std::sync::{Arc, Mutex, PoisonError};

use one_proto::agent::{Execute, Executed, FrameBuffer, PROTOCOL_VERSION, Reply, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

pub use base_path::Base;
pub use execution::ExecSettings;

/// The agent's package version, reported in its hello frame.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why the agent stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The HEM sent a frame that does not decode; the stream cannot be trusted any more.
    #[error("protocol error")]
    Protocol(#[from] one_proto::agent::FrameError),
    /// Reading stdin or writing stdout failed.
    #[error("stdio")]
    Io(#[from] std::io::Error),
}

/// Settings of one agent process.
#[derive(Debug, Clone)]
pub struct Options {
    /// The hook directory; nothing outside it is executed or written.
    pub base: Base,
    /// Timing of executions.
    pub exec: ExecSettings,
    /// Executions running at once; more are refused with a start error.
    pub max_running: usize,
}

struct Running {
    cancel: Option<oneshot::Sender<()>>,
    pgid: Arc<AtomicI32>,
}

type RunningMap = Arc<Mutex<HashMap<u64, Running>>>;

fn lock(map: &RunningMap) -> std::sync::MutexGuard<'_, HashMap<u64, Running>> {
    // A panic elsewhere cannot leave the map inconsistent: every update is a single insert
    // or remove, so a poisoned lock is still usable.
    map.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Serves one HEM on `input`/`output` until `input` ends.
pub async fn run<R, W>(options: Options, mut input: R, output: W) -> Result<(), AgentError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel::<Reply>();
    let writer = tokio::spawn(write_replies(rx, output));
    let _ = tx.send(Reply::Hello {
        protocol: PROTOCOL_VERSION,
        version: VERSION.to_string(),
        base: options.base.configured().display().to_string(),
        pid: std::process::id(),
    });
    tracing::info!(base = %options.base.root().display(), version = VERSION, "agent started");
    let running: RunningMap = Arc::default();
    let options = Arc::new(options);
    let mut frames = FrameBuffer::new();
    let mut buf = vec![0u8; 64 * 1024];
    let outcome = loop {
        let n = match input.read(&mut buf).await {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) => break Err(AgentError::Io(e)),
        };
        frames.extend(&buf[..n]);
        let mut failed = None;
        loop {
            match frames.next_request() {
                Ok(Some(request)) => dispatch(request, &options, &running, &tx),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "undecodable frame, stopping");
                    let _ = tx.send(Reply::ProtocolError {
                        message: e.to_string(),
                    });
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            break Err(AgentError::Protocol(e));
        }
    };
    // Nothing may outlive the agent: its HEM is gone, so no result could be delivered. The
    // groups are killed before anything is logged, as stderr may be gone as well.
    let mut orphans = 0;
    for entry in lock(&running).values() {
        one_exec::kill_group_now(entry.pgid.load(std::sync::atomic::Ordering::SeqCst));
        orphans += 1;
    }
    if orphans > 0 {
        tracing::warn!(count = orphans, "input closed, killed the running hooks");
    }
    drop(tx);
    // Replies already queued (a protocol error) are flushed unless stdout is gone too.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), writer).await;
    outcome
}

fn dispatch(
    request: Request,
    options: &Arc<Options>,
    running: &RunningMap,
    tx: &mpsc::UnboundedSender<Reply>,
) {
    match request {
        Request::Execute(exec) => start_execution(exec, options, running, tx),
        Request::Cancel { id } => {
            if let Some(entry) = lock(running).get_mut(&id)
                && let Some(cancel) = entry.cancel.take()
            {
                let _ = cancel.send(());
            }
        }
        Request::ListHooks { id } => {
            let options = Arc::clone(options);
            let tx = tx.clone();
            tokio::spawn(async move {
                let listed =
                    tokio::task::spawn_blocking(move || hook_files::list_hooks(&options.base))
                        .await
                        .unwrap_or_else(|e| Err(format!("listing failed: {e}")));
                let _ = tx.send(Reply::HookList {
                    id,
                    entries: listed,
                });
            });
        }
        Request::PutFile {
            id,
            path,
            mode,
            data,
        } => {
            let options = Arc::clone(options);
            let tx = tx.clone();
            tokio::spawn(async move {
                let written = tokio::task::spawn_blocking(move || {
                    hook_files::put_file(&options.base, &path, mode, &data)
                })
                .await
                .unwrap_or_else(|e| Err(format!("write failed: {e}")));
                let _ = tx.send(Reply::PutDone {
                    id,
                    error: written.err(),
                });
            });
        }
    }
}

fn start_execution(
    exec: Execute,
    options: &Arc<Options>,
    running: &RunningMap,
    tx: &mpsc::UnboundedSender<Reply>,
) {
    let id = exec.id;
    let (cancel_tx, cancel_rx) = oneshot::channel();
    let pgid = Arc::new(AtomicI32::new(0));
    {
        let mut map = lock(running);
        let refusal = if map.contains_key(&id) {
            Some(format!("execution id {id} is already running"))
        } else if map.len() >= options.max_running {
            Some(format!(
                "agent busy: {} executions running",
                options.max_running
            ))
        } else {
            None
        };
        if let Some(message) = refusal {
            let _ = tx.send(Reply::Result(Executed {
                id,
                code: execution::FAILURE_CODE,
                start_error: Some(message),
                ..Executed::default()
            }));
            return;
        }
        map.insert(
            id,
            Running {
                cancel: Some(cancel_tx),
                pgid: Arc::clone(&pgid),
            },
        );
    }
    let options = Arc::clone(options);
    let running = Arc::clone(running);
    let tx = tx.clone();
    tokio::spawn(async move {
        let result = execution::execute(&options.base, exec, options.exec, cancel_rx, pgid).await;
        tracing::debug!(id, code = result.code, timed_out = result.timed_out,
            duration_us = result.duration_us, error = ?result.start_error, "execution done");
        lock(&running).remove(&id);
        let _ = tx.send(Reply::Result(result));
    });
}

/// Encodes and writes replies in order, flushing when no more are queued.
async fn write_replies<W: AsyncWrite + Unpin>(mut rx: mpsc::UnboundedReceiver<Reply>, mut out: W) {
    while let Some(reply) = rx.recv().await {
        let mut batch = encode_reply(reply);
        while let Ok(more) = rx.try_recv() {
            batch.extend(encode_reply(more));
            if batch.len() > 1024 * 1024 {
                break;
            }
        }
        if out.write_all(&batch).await.is_err() || out.flush().await.is_err() {
            return;
        }
    }
}

fn encode_reply(reply: Reply) -> Vec<u8> {
    match reply.encode() {
        Ok(frame) => frame,
        Err(e) => {
            // Only an oversized frame can fail; say so instead of losing the answer.
            let fallback = match reply {
                Reply::Result(r) => Reply::Result(Executed {
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                    stdout_truncated: true,
                    stderr_truncated: true,
                    start_error: Some(format!("result not sendable: {e}")),
                    ..r
                }),
                Reply::HookList { id, .. } => Reply::HookList {
                    id,
                    entries: Err(format!("listing not sendable: {e}")),
                },
                other => Reply::ProtocolError {
                    message: format!("reply not sendable: {e}: {other:?}")
                        .chars()
                        .take(512)
                        .collect(),
                },
            };
            fallback.encode().unwrap_or_default()
        }
    }
}
