//! Writing MAD lines to oned on stdout: the INIT reply, `LOG E 0` lines and forwarded results.
//!
//! oned reads the INIT reply with a single 31-byte read before it starts its line reader, and
//! whatever else that read catches is lost. So nothing is written before INIT is answered, and
//! after the reply everything waits [`INIT_GRACE`] before it goes out. Each line is flushed on its
//! own. Once result lines are written, their ids go back to the journal writer as the forwarding
//! watermark, unless the front-end acknowledges results (`STORED  0 -` before INIT): then the
//! result lines are followed by a `FORWARDED SUCCESS <id> -` marker and the watermark follows the
//! front-end's `STORED` lines instead ([`one_proto::mad`]).

use std::collections::VecDeque;
use std::io::Write;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use one_proto::mad::{DriverLine, forwarded_line, journaled_line};
use tracing::{debug, error};

use crate::messages::{ToOned, WriterMsg};
use crate::shutdown::{Shutdown, StopReason};

use crate::metrics::METRICS;

/// Quiet time after the INIT reply, so that oned's 31-byte read of the reply catches nothing else.
pub const INIT_GRACE: Duration = Duration::from_millis(200);

struct Line {
    result_id: Option<u64>,
    /// An acknowledgement, which a newer one replaces while it waits.
    ack: bool,
    text: String,
}

/// Writes until every sender is gone or writing fails (then the shutdown switch is triggered).
pub fn run(
    mut out: impl Write,
    rx: Receiver<ToOned>,
    writer: SyncSender<WriterMsg>,
    shutdown: Shutdown,
) {
    let mut queue: VecDeque<Line> = VecDeque::new();
    // Set for a front-end that acknowledges results; its `STORED` lines, read on stdin, move
    // the forwarding watermark instead of the writes.
    let mut acking = false;
    // When INIT was last answered; nothing but the reply is written before it.
    let mut answered: Option<Instant> = None;
    loop {
        let hold = answered.map(|at| (at + INIT_GRACE).saturating_duration_since(Instant::now()));
        let msg = match (hold, queue.is_empty()) {
            (Some(hold), false) if !hold.is_zero() => match rx.recv_timeout(hold) {
                Ok(msg) => Some(msg),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
            (Some(_), false) => rx.try_recv().ok(),
            _ => match rx.recv() {
                Ok(msg) => Some(msg),
                Err(_) => break,
            },
        };
        match msg {
            Some(ToOned::InitReply) => {
                if let Err(e) = write_line(&mut out, &DriverLine::InitSuccess.to_line()) {
                    return broken(&shutdown, &e);
                }
                debug!("INIT answered");
                answered = Some(Instant::now());
            }
            Some(ToOned::Log(text)) => queue.push_back(Line {
                result_id: None,
                ack: false,
                text: DriverLine::error(text).to_line(),
            }),
            Some(ToOned::Journaled(id)) => {
                let line = Line {
                    result_id: None,
                    ack: true,
                    text: journaled_line(id),
                };
                match queue.back_mut() {
                    Some(last) if last.ack => *last = line,
                    _ => queue.push_back(line),
                }
            }
            Some(ToOned::AckingFront) => {
                if !acking {
                    debug!("the front-end acknowledges results");
                }
                acking = true;
            }
            Some(ToOned::Results(results)) => {
                queue.extend(results.into_iter().map(|r| Line {
                    result_id: Some(r.id),
                    ack: false,
                    text: DriverLine::result(r.hook_id, r.rc, r.body).to_line(),
                }));
            }
            None => {}
        }
        let ready = answered.is_some_and(|at| at.elapsed() >= INIT_GRACE);
        if ready && let Err(e) = drain(&mut out, &mut queue, &writer, acking) {
            return broken(&shutdown, &e);
        }
    }
    // Every sender is gone: write what is left, if oned is listening.
    if let Some(at) = answered {
        std::thread::sleep((at + INIT_GRACE).saturating_duration_since(Instant::now()));
        if let Err(e) = drain(&mut out, &mut queue, &writer, acking) {
            broken(&shutdown, &e);
        }
    }
}

/// Writes the queue. For a front-end that acknowledges results, the result lines written are
/// followed by one `FORWARDED` marker and the watermark waits for its `STORED` line; otherwise
/// writing a result line delivers it.
fn drain(
    out: &mut impl Write,
    queue: &mut VecDeque<Line>,
    writer: &SyncSender<WriterMsg>,
    acking: bool,
) -> std::io::Result<()> {
    let mut forwarded = None;
    let result = loop {
        let Some(line) = queue.front() else {
            break Ok(());
        };
        if let Err(e) = write_line(out, &line.text) {
            break Err(e);
        }
        if let Some(id) = line.result_id {
            forwarded = Some(id);
            METRICS.results_forwarded.inc();
        }
        queue.pop_front();
    };
    match forwarded {
        Some(id) if acking => {
            // Results already written are re-forwarded after a restart unless acknowledged,
            // so a marker lost with a broken pipe costs nothing.
            result?;
            write_line(out, &forwarded_line(id))
        }
        Some(id) => {
            // The writer outlives this thread, so the mark always arrives.
            let _ = writer.send(WriterMsg::Forwarded(id));
            result
        }
        None => result,
    }
}

fn write_line(out: &mut impl Write, line: &str) -> std::io::Result<()> {
    out.write_all(line.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

fn broken(shutdown: &Shutdown, e: &std::io::Error) {
    error!(error = %e, "cannot write to oned; unforwarded results stay in the journal");
    shutdown.trigger(StopReason::StdoutClosed);
}
