//! `agent` mode: one `onehem-agent --stdio` per connection, started over an exec channel, with
//! executions, listings and uploads multiplexed over its frames by request id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use one_proto::agent::{
    Execute, Executed, FrameBuffer, HookEntry, MAX_OUTPUT_CAP, MAX_PUT_FILE_LEN, PROTOCOL_VERSION,
    Reply, Request,
};
use russh::ChannelMsg;
use tokio::sync::{mpsc, oneshot};

use super::connection::SshConnection;
use super::error::RemoteError;
use super::shell_quote::quote;
use crate::executor::{ExecOutcome, ExecRequest, FAILURE_CODE};

/// Bytes of the agent's stderr kept to explain why it stopped.
const STDERR_TAIL: usize = 2048;

/// The agent's answer to its start.
#[derive(Debug, Clone)]
pub(crate) struct AgentHello {
    pub version: String,
    pub pid: u32,
}

/// A running agent on one connection.
pub(crate) struct AgentLink {
    host: String,
    frames: mpsc::UnboundedSender<Vec<u8>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    dead: AtomicBool,
    death: Mutex<Option<String>>,
    next_id: AtomicU64,
    pub hello: AgentHello,
}

/// How the agent is started.
pub(crate) struct AgentStart<'a> {
    pub agent_path: &'a str,
    pub base: &'a str,
    pub kill_grace: Duration,
    pub hello_timeout: Duration,
}

impl AgentLink {
    /// Starts the agent and waits for its hello.
    pub async fn start(
        conn: &SshConnection,
        how: &AgentStart<'_>,
    ) -> Result<Arc<AgentLink>, RemoteError> {
        let host = conn.target.name.clone();
        let fail = |message: String| RemoteError::Agent {
            host: host.clone(),
            message,
        };
        let channel = conn.open_session().await?;
        let line = format!(
            "exec {} --stdio --base {} --kill-grace {}",
            quote(how.agent_path),
            quote(how.base),
            how.kill_grace.as_secs_f64()
        );
        channel
            .exec(true, line.as_bytes())
            .await
            .map_err(|e| fail(format!("cannot start {}: {e}", how.agent_path)))?;
        let (mut rd, wr) = channel.split();
        let mut frames = FrameBuffer::new();
        let mut stderr_tail = Vec::new();
        let first = tokio::time::timeout(how.hello_timeout, async {
            let mut status = None;
            while let Some(msg) = rd.wait().await {
                match msg {
                    ChannelMsg::Data { data } => {
                        frames.extend(&data);
                        match frames.next_reply() {
                            Ok(Some(reply)) => return Ok(reply),
                            Ok(None) => {}
                            Err(e) => return Err(format!("bad first frame: {e}")),
                        }
                    }
                    ChannelMsg::ExtendedData { data, .. } => keep_tail(&mut stderr_tail, &data),
                    ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                    ChannelMsg::Close => break,
                    _ => {}
                }
            }
            Err(exit_text(status, &stderr_tail))
        })
        .await;
        let hello = match first {
            Ok(Ok(Reply::Hello {
                protocol,
                version,
                pid,
                ..
            })) => {
                if protocol != PROTOCOL_VERSION {
                    let _ = wr.eof().await;
                    return Err(fail(format!(
                        "agent {version} speaks protocol {protocol}, this HEM speaks {PROTOCOL_VERSION}"
                    )));
                }
                AgentHello { version, pid }
            }
            Ok(Ok(other)) => {
                let _ = wr.eof().await;
                return Err(fail(format!("expected a hello frame, got {other:?}")));
            }
            Ok(Err(message)) => return Err(fail(message)),
            Err(_) => {
                let _ = wr.eof().await;
                return Err(fail(format!(
                    "no hello within {:?}{}",
                    how.hello_timeout,
                    stderr_suffix(&stderr_tail)
                )));
            }
        };
        let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let link = Arc::new(AgentLink {
            host: host.clone(),
            frames: tx,
            pending: Mutex::new(HashMap::new()),
            dead: AtomicBool::new(false),
            death: Mutex::new(None),
            next_id: AtomicU64::new(1),
            hello,
        });
        tokio::spawn(write_frames(rx, wr));
        let weak = Arc::downgrade(&link);
        tokio::spawn(async move {
            let mut status = None;
            let mut reason = None;
            loop {
                // Frames left in the buffer from the hello read come first.
                loop {
                    match frames.next_reply() {
                        Ok(Some(reply)) => match weak.upgrade() {
                            Some(link) => link.route(reply),
                            None => return,
                        },
                        Ok(None) => break,
                        Err(e) => {
                            reason = Some(format!("bad frame from the agent: {e}"));
                            break;
                        }
                    }
                }
                if reason.is_some() {
                    break;
                }
                match rd.wait().await {
                    Some(ChannelMsg::Data { data }) => frames.extend(&data),
                    Some(ChannelMsg::ExtendedData { data, .. }) => {
                        keep_tail(&mut stderr_tail, &data);
                    }
                    Some(ChannelMsg::ExitStatus { exit_status }) => status = Some(exit_status),
                    Some(ChannelMsg::Close) | None => break,
                    Some(_) => {}
                }
            }
            if let Some(link) = weak.upgrade() {
                let reason = reason.unwrap_or_else(|| exit_text(status, &stderr_tail));
                link.die(reason);
            }
        });
        Ok(link)
    }

    /// Whether the agent can still take requests.
    pub fn is_alive(&self) -> bool {
        !self.dead.load(Ordering::SeqCst) && !self.frames.is_closed()
    }

    fn death_reason(&self) -> String {
        self.death
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| "agent stopped".into())
    }

    fn die(&self, reason: String) {
        tracing::warn!(host = %self.host, reason = %reason, "onehem-agent stopped");
        *self.death.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
        self.dead.store(true, Ordering::SeqCst);
        // Dropping the senders wakes every waiter with an error.
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn route(&self, reply: Reply) {
        let id = match &reply {
            Reply::Result(r) => r.id,
            Reply::HookList { id, .. } | Reply::PutDone { id, .. } => *id,
            Reply::Hello { .. } => return,
            Reply::ProtocolError { message } => {
                self.die(format!("agent reported a protocol error: {message}"));
                return;
            }
        };
        let waiter = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        if let Some(w) = waiter {
            let _ = w.send(reply);
        }
    }

    fn agent_error(&self, message: String) -> RemoteError {
        RemoteError::Agent {
            host: self.host.clone(),
            message,
        }
    }

    /// Sends a request built for a fresh id and registers for its reply.
    fn submit(
        &self,
        build: impl FnOnce(u64) -> Request,
    ) -> Result<(u64, oneshot::Receiver<Reply>), RemoteError> {
        if !self.is_alive() {
            return Err(self.agent_error(self.death_reason()));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = build(id)
            .encode()
            .map_err(|e| self.agent_error(format!("request not sendable: {e}")))?;
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, tx);
        if self.frames.send(frame).is_err() {
            self.pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
            return Err(self.agent_error(self.death_reason()));
        }
        Ok((id, rx))
    }

    async fn wait(&self, rx: oneshot::Receiver<Reply>) -> Result<Reply, RemoteError> {
        rx.await.map_err(|_| self.agent_error(self.death_reason()))
    }

    /// Runs one hook through the agent.
    pub async fn execute(
        self: &Arc<Self>,
        req: &ExecRequest,
        kill_grace: Duration,
        started: SystemTime,
    ) -> Result<ExecOutcome, RemoteError> {
        let clock = Instant::now();
        let cap = u32::try_from(req.output_cap)
            .unwrap_or(u32::MAX)
            .min(MAX_OUTPUT_CAP);
        let (id, rx) = self.submit(|id| {
            Request::Execute(Execute {
                id,
                argv: req.argv.clone(),
                stdin: req.stdin.clone(),
                timeout_ms: req
                    .timeout
                    .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
                env: Vec::new(),
                output_cap: cap,
            })
        })?;
        // If this future is dropped (HEM shutting down), the hook is cancelled on the host.
        let mut guard = CancelOnDrop {
            link: Arc::clone(self),
            id,
            armed: true,
        };
        // The agent enforces the timeout; this bound only catches an agent that stopped
        // answering while its connection stays up.
        let reply = match req.timeout {
            Some(t) => {
                let bound = t + kill_grace + Duration::from_secs(10);
                match tokio::time::timeout(bound, self.wait(rx)).await {
                    Ok(r) => r?,
                    Err(_) => {
                        return Ok(ExecOutcome {
                            timed_out: true,
                            ..ExecOutcome::failure(started, clock.elapsed())
                        });
                    }
                }
            }
            None => self.wait(rx).await?,
        };
        guard.armed = false;
        match reply {
            Reply::Result(r) => Ok(outcome_from(r, started, clock)),
            other => Err(self.agent_error(format!("unexpected reply {other:?}"))),
        }
    }

    /// The agent's listing of its hook directory.
    pub async fn list_hooks(&self) -> Result<Vec<HookEntry>, RemoteError> {
        let (_, rx) = self.submit(|id| Request::ListHooks { id })?;
        match self.wait(rx).await? {
            Reply::HookList { entries, .. } => entries.map_err(|e| self.agent_error(e)),
            other => Err(self.agent_error(format!("unexpected reply {other:?}"))),
        }
    }

    /// Writes one file below the agent's hook directory.
    pub async fn put_file(&self, path: &str, mode: u32, data: Vec<u8>) -> Result<(), RemoteError> {
        if data.len() > MAX_PUT_FILE_LEN {
            return Err(self.agent_error(format!(
                "{path}: {} bytes exceed the agent's upload limit of {MAX_PUT_FILE_LEN} bytes",
                data.len()
            )));
        }
        let (_, rx) = self.submit(|id| Request::PutFile {
            id,
            path: path.to_string(),
            mode,
            data,
        })?;
        match self.wait(rx).await? {
            Reply::PutDone { error: None, .. } => Ok(()),
            Reply::PutDone { error: Some(e), .. } => Err(self.agent_error(e)),
            other => Err(self.agent_error(format!("unexpected reply {other:?}"))),
        }
    }
}

struct CancelOnDrop {
    link: Arc<AgentLink>,
    id: u64,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.link
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&self.id);
            if let Ok(frame) = (Request::Cancel { id: self.id }).encode() {
                let _ = self.link.frames.send(frame);
            }
        }
    }
}

fn outcome_from(r: Executed, started: SystemTime, clock: Instant) -> ExecOutcome {
    ExecOutcome {
        code: if r.start_error.is_some() || r.timed_out || r.signal.is_some() {
            FAILURE_CODE
        } else {
            r.code
        },
        signal: r.signal,
        stdout: r.stdout,
        stderr: r.stderr,
        stdout_truncated: r.stdout_truncated,
        stderr_truncated: r.stderr_truncated,
        timed_out: r.timed_out,
        start_error: r.start_error,
        started,
        duration: clock.elapsed(),
    }
}

/// Writes queued frames, several per channel message when they pile up. Ends (closing the
/// agent's stdin, which stops it and its hooks) when the link is dropped.
async fn write_frames(
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    wr: russh::ChannelWriteHalf<russh::client::Msg>,
) {
    while let Some(mut batch) = rx.recv().await {
        while batch.len() < 256 * 1024 {
            match rx.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if wr.data_bytes(batch).await.is_err() {
            return;
        }
    }
    let _ = wr.eof().await;
    let _ = wr.close().await;
}

fn keep_tail(tail: &mut Vec<u8>, data: &[u8]) {
    tail.extend_from_slice(data);
    if tail.len() > STDERR_TAIL {
        let cut = tail.len() - STDERR_TAIL;
        tail.drain(..cut);
    }
}

fn stderr_suffix(tail: &[u8]) -> String {
    let text = String::from_utf8_lossy(tail);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

fn exit_text(status: Option<u32>, stderr: &[u8]) -> String {
    let what = match status {
        Some(127) => "agent not found (exit status 127)".to_string(),
        Some(s) => format!("agent exited with status {s}"),
        None => "agent channel closed (the host or the connection went away)".to_string(),
    };
    format!("{what}{}", stderr_suffix(stderr))
}
