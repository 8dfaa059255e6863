//! `ssh` mode: one exec channel per hook on the host's pooled connection.
//!
//! The command line is `echo $$; exec '<command>' '<arg>'…`: every word is quoted so the remote
//! shell passes it through unchanged, and the shell first reports its pid, which (sshd makes
//! every session a new session leader) is also the process group of the hook. On timeout the
//! HEM kills that group through a second channel, as the agent would.

use std::time::{Duration, Instant, SystemTime};

use russh::{ChannelMsg, Sig};

use super::connection::{SshConnection, feed_while_reading, push_capped};
use super::error::RemoteError;
use super::shell_quote::{quote, quote_argv};
use crate::executor::{ExecOutcome, ExecRequest, FAILURE_CODE};

/// How long output is still read after the command exited (background children may hold the
/// channel open; the reference gives its readers the same 0.1 s).
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Collected {
    pid_line: Vec<u8>,
    pid: Option<u32>,
    pid_done: bool,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    stdout_truncated: bool,
    stderr_truncated: bool,
    code: Option<u32>,
    signal: Option<i32>,
}

impl Collected {
    fn stdout(&mut self, mut data: &[u8], cap: usize) {
        if !self.pid_done {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.pid_line.extend_from_slice(&data[..i]);
                    data = &data[i + 1..];
                    self.pid_done = true;
                    self.pid = std::str::from_utf8(&self.pid_line)
                        .ok()
                        .and_then(|s| s.trim().parse::<u32>().ok())
                        .filter(|p| *p > 1);
                    if self.pid.is_none() {
                        // Not ours (a chatty login script): keep it as output.
                        let line = std::mem::take(&mut self.pid_line);
                        self.stdout_truncated |= push_capped(&mut self.stdout, &line, cap);
                        self.stdout_truncated |= push_capped(&mut self.stdout, b"\n", cap);
                    }
                }
                None => {
                    self.pid_line.extend_from_slice(data);
                    if self.pid_line.len() > 64 {
                        self.pid_done = true;
                        let line = std::mem::take(&mut self.pid_line);
                        self.stdout_truncated |= push_capped(&mut self.stdout, &line, cap);
                    }
                    return;
                }
            }
        }
        self.stdout_truncated |= push_capped(&mut self.stdout, data, cap);
    }
}

/// Runs one hook over an exec channel. An error means the hook did not start (the channel
/// could not be opened); once started, every ending is an outcome.
pub(crate) async fn run(
    conn: &SshConnection,
    req: &ExecRequest,
    kill_grace: Duration,
    started: SystemTime,
) -> Result<ExecOutcome, RemoteError> {
    let channel = conn.open_session().await?;
    let clock = Instant::now();
    let line = format!("echo $$; exec {}", quote_argv(&req.argv));
    if let Err(e) = channel.exec(true, line.as_bytes()).await {
        return Err(RemoteError::Channel {
            host: conn.target.name.clone(),
            message: e.to_string(),
            connection_lost: true,
        });
    }
    let (mut rd, wr) = channel.split();
    let cap = req.output_cap;
    let mut got = Collected::default();
    let mut lost: Option<String> = None;
    let stdin = req.stdin.clone();
    let work = async {
        let read = async {
            let mut drain_until: Option<tokio::time::Instant> = None;
            loop {
                let msg = match drain_until {
                    Some(d) => match tokio::time::timeout_at(d, rd.wait()).await {
                        Ok(m) => m,
                        Err(_) => break,
                    },
                    None => rd.wait().await,
                };
                let Some(msg) = msg else {
                    if got.code.is_none() && got.signal.is_none() {
                        lost = Some("connection lost while the hook ran".into());
                    }
                    break;
                };
                match msg {
                    ChannelMsg::Data { data } => got.stdout(&data, cap),
                    ChannelMsg::ExtendedData { data, .. } => {
                        got.stderr_truncated |= push_capped(&mut got.stderr, &data, cap);
                    }
                    ChannelMsg::ExitStatus { exit_status } => {
                        got.code = Some(exit_status);
                        drain_until = Some(tokio::time::Instant::now() + DRAIN_AFTER_EXIT);
                    }
                    ChannelMsg::ExitSignal { signal_name, .. } => {
                        got.signal = Some(signal_number(&signal_name));
                        drain_until = Some(tokio::time::Instant::now() + DRAIN_AFTER_EXIT);
                    }
                    ChannelMsg::Failure => {
                        lost = Some("the host refused to run the command".into());
                        break;
                    }
                    ChannelMsg::Close => {
                        if got.code.is_none() && got.signal.is_none() {
                            lost = Some("channel closed before the hook exited".into());
                        }
                        break;
                    }
                    _ => {}
                }
            }
        };
        tokio::pin!(read);
        // A hook that does not read its stdin is not an error: the output is read to its end.
        if feed_while_reading(&wr, stdin, read.as_mut()).await.is_err() {
            read.await;
        }
    };
    let timed_out = match req.timeout {
        Some(t) => tokio::time::timeout(t, work).await.is_err(),
        None => {
            work.await;
            false
        }
    };
    if timed_out && let Some(pid) = got.pid {
        kill_remote_group(conn, pid, kill_grace).await;
    }
    let _ = wr.close().await;
    let duration = clock.elapsed();
    let signal = got.signal;
    let mut outcome = ExecOutcome {
        code: match (got.code, signal) {
            (Some(c), None) if !timed_out => i32::try_from(c).unwrap_or(FAILURE_CODE),
            _ => FAILURE_CODE,
        },
        signal,
        stdout: got.stdout,
        stderr: got.stderr,
        stdout_truncated: got.stdout_truncated,
        stderr_truncated: got.stderr_truncated,
        timed_out,
        start_error: None,
        started,
        duration,
    };
    if !timed_out && let Some(reason) = lost {
        outcome.start_error = Some(format!("{reason} on {}", conn.target.name));
    }
    Ok(outcome)
}

/// SIGTERM to the group, SIGKILL to what is left after the grace period, then a bounded wait
/// until the group is gone. The pid came from the remote shell itself.
async fn kill_remote_group(conn: &SshConnection, pid: u32, grace: Duration) {
    let steps = (grace.as_millis() / 100).max(1);
    let g = format!("-{pid}");
    let script = format!(
        "kill -TERM -- {g} 2>/dev/null || exit 0; i=0; \
         while [ $i -lt {steps} ]; do kill -0 -- {g} 2>/dev/null || exit 0; sleep 0.1; i=$((i+1)); done; \
         kill -KILL -- {g} 2>/dev/null; i=0; \
         while [ $i -lt 10 ]; do kill -0 -- {g} 2>/dev/null || exit 0; sleep 0.1; i=$((i+1)); done; exit 0",
        g = quote(&g)
    );
    let limit = grace + Duration::from_secs(10);
    if let Err(e) = conn.exec_capture(&script, None, 4096, limit).await {
        tracing::warn!(host = %conn.target.name, pid, error = %e, "cannot kill the timed-out hook's process group");
    }
}

/// The number of a signal named in an SSH exit-signal message (RFC 4254 names).
fn signal_number(sig: &Sig) -> i32 {
    match sig {
        Sig::HUP => 1,
        Sig::INT => 2,
        Sig::QUIT => 3,
        Sig::ILL => 4,
        Sig::ABRT => 6,
        Sig::FPE => 8,
        Sig::KILL => 9,
        Sig::USR1 => 10,
        Sig::SEGV => 11,
        Sig::PIPE => 13,
        Sig::ALRM => 14,
        Sig::TERM => 15,
        Sig::Custom(name) => match name.as_str() {
            "BUS" => 7,
            "USR2" => 12,
            "CHLD" => 17,
            "CONT" => 18,
            "STOP" => 19,
            "TSTP" => 20,
            "XCPU" => 24,
            "XFSZ" => 25,
            "VTALRM" => 26,
            "PROF" => 27,
            "SYS" => 31,
            _ => 0,
        },
    }
}
