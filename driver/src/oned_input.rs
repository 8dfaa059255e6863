//! Reading oned's MAD lines from stdin: INIT, FINALIZE, EXECUTE, RETRY and STORED.
//!
//! Events are turned into journal entries here (keys derived from the decoded message) and handed
//! to the journal writer a read chunk at a time. This thread never touches a socket, so a slow or
//! absent subscriber cannot stall it; only a journal that cannot keep up slows it down, through the
//! bounded channel to the writer.

use std::borrow::Cow;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::sync::mpsc::{Sender, SyncSender};

use base64::Engine as _;
use one_proto::encoding::b64_decode_lenient;
use one_proto::keys::{RETRY_KEY, event_keys};
use one_proto::mad::{OnedLine, parse_oned_line};
use tracing::{debug, info, warn};

use crate::journal::JournalEvent;
use crate::messages::{ToOned, WriterMsg, WriterWake};
use crate::shutdown::{Shutdown, StopReason};

use crate::metrics::METRICS;

/// Longest line accepted from oned; a longer one is dropped with an error.
pub const MAX_LINE: usize = 64 * 1024 * 1024;
const READ_CHUNK: usize = 256 * 1024;
/// How often a quiet stdin is checked against the shutdown switch.
const POLL_MS: i64 = 100;

/// Where the reader sends what it reads.
pub struct InputLinks {
    /// Journal writer (events).
    pub writer: SyncSender<WriterMsg>,
    /// oned output (INIT reply, LOG lines).
    pub oned: Sender<ToOned>,
    /// Ends the writer's wait for more results: events are never held back.
    pub wake: WriterWake,
}

/// Reads stdin until FINALIZE, end of file, a read error or the shutdown switch, and triggers the
/// switch with the reason.
pub fn run(stdin: File, links: InputLinks, shutdown: Shutdown) {
    let reason = read_loop(stdin, &links, &shutdown);
    if let Some(reason) = reason {
        info!(reason = ?reason, "stopped reading oned");
        shutdown.trigger(reason);
    }
}

fn read_loop(mut stdin: File, links: &InputLinks, shutdown: &Shutdown) -> Option<StopReason> {
    let fd = stdin.as_raw_fd();
    let mut pending: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut chunk = vec![0u8; READ_CHUNK];
    // Set while the rest of an over-long line is being skipped.
    let mut skipping = false;
    loop {
        if shutdown.is_triggered() {
            return None;
        }
        let mut items = [zmq::PollItem::from_fd(fd, zmq::POLLIN)];
        match zmq::poll(&mut items, POLL_MS) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(zmq::Error::EINTR) => continue,
            Err(e) => return Some(StopReason::Fatal(format!("polling stdin: {e}"))),
        }
        let n = match stdin.read(&mut chunk) {
            Ok(0) => {
                if !pending.is_empty() && !skipping {
                    // A last line without LF is still a line.
                    let line = std::mem::take(&mut pending);
                    let mut chunk = Chunk::default();
                    let stop = handle_line(&line, &mut chunk, links);
                    send_chunk(chunk, links);
                    if stop.is_some() {
                        return stop;
                    }
                }
                return Some(StopReason::StdinClosed);
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Some(StopReason::Fatal(format!("reading stdin: {e}"))),
        };
        let mut read = Chunk::default();
        let mut stop = None;
        let mut start = 0;
        let data = &chunk[..n];
        while let Some(lf) = memchr::memchr(b'\n', &data[start..]) {
            let end = start + lf;
            if skipping {
                skipping = false;
            } else if pending.is_empty() {
                stop = handle_line(&data[start..end], &mut read, links);
            } else {
                pending.extend_from_slice(&data[start..end]);
                let line = std::mem::take(&mut pending);
                stop = handle_line(&line, &mut read, links);
            }
            start = end + 1;
            if stop.is_some() {
                break;
            }
        }
        send_chunk(read, links);
        if stop.is_some() {
            return stop;
        }
        if !skipping {
            pending.extend_from_slice(&data[start..]);
            if pending.len() > MAX_LINE {
                warn!(
                    bytes = pending.len(),
                    "line from oned longer than the limit, dropped"
                );
                report(
                    links,
                    format!("Dropped a line longer than {MAX_LINE} bytes"),
                );
                pending = Vec::with_capacity(READ_CHUNK);
                skipping = true;
            }
        }
    }
}

/// What one read produced: its events, and the event id of the last line with one.
#[derive(Default)]
struct Chunk {
    events: Vec<JournalEvent>,
    handled: Option<u64>,
}

fn send_chunk(chunk: Chunk, links: &InputLinks) {
    if chunk.events.is_empty() && chunk.handled.is_none() {
        return;
    }
    let count = chunk.events.len() as i64;
    METRICS.events_awaiting_journal.add(count);
    let msg = WriterMsg::Events {
        events: chunk.events,
        handled: chunk.handled,
    };
    if links.writer.send(msg).is_err() {
        METRICS.events_awaiting_journal.sub(count);
        warn!("journal writer is gone, events dropped");
    }
    links.wake.ring();
}

fn report(links: &InputLinks, text: String) {
    // The output thread only goes away at the very end of shutdown.
    let _ = links.oned.send(ToOned::Log(text));
}

/// Handles one line; returns a stop reason for FINALIZE.
fn handle_line(raw: &[u8], chunk: &mut Chunk, links: &InputLinks) -> Option<StopReason> {
    let text = utf8(raw);
    if text.trim().is_empty() {
        return None;
    }
    match parse_oned_line(&text) {
        OnedLine::Init => {
            debug!("INIT received");
            let _ = links.oned.send(ToOned::InitReply);
        }
        OnedLine::Finalize => return Some(StopReason::Finalize),
        OnedLine::Execute { id, ref payload } => {
            let source = u64::try_from(id).ok().filter(|id| *id > 0);
            let content = payload.split(' ').next().filter(|w| !w.is_empty());
            match content {
                Some(content) => {
                    let content = content.to_owned();
                    let (decoded, canonical) = decode_event(&content);
                    let event = match event_keys(&utf8(&decoded)) {
                        Ok(keys) if canonical => {
                            Some(JournalEvent::canonical(keys, content, decoded))
                        }
                        Ok(keys) => Some(JournalEvent::new(keys, content)),
                        Err(e) => {
                            METRICS.events_refused.inc();
                            warn!(error = %e, "event not published");
                            report(links, format!("Event not published: {e}"));
                            None
                        }
                    };
                    METRICS.events_received.add(u64::from(event.is_some()));
                    chunk
                        .events
                        .extend(event.map(|e| JournalEvent { source, ..e }));
                }
                None => {
                    METRICS.events_refused.inc();
                    warn!("EXECUTE without a message");
                    report(links, "EXECUTE message without a payload".to_owned());
                }
            }
            chunk.handled = source.or(chunk.handled);
        }
        line @ OnedLine::Retry { id, .. } => {
            let source = u64::try_from(id).ok().filter(|id| *id > 0);
            match line.publish_content() {
                Some(content) => {
                    METRICS.events_received.inc();
                    chunk.events.push(JournalEvent {
                        source,
                        ..JournalEvent::new(vec![RETRY_KEY.to_owned()], content)
                    });
                }
                None => {
                    METRICS.events_refused.inc();
                    warn!("RETRY without a message");
                    report(links, "RETRY message without a payload".to_owned());
                }
            }
            chunk.handled = source.or(chunk.handled);
        }
        OnedLine::Stored(id) => {
            // The front-end acknowledges results: from now on a result counts as delivered
            // when acknowledged, not when written (see `one_proto::mad`).
            let _ = links.oned.send(ToOned::AckingFront);
            if id > 0 {
                let _ = links.writer.send(WriterMsg::Forwarded(id));
            }
        }
        OnedLine::Undefined(line) => {
            let shown: String = line.chars().take(120).collect();
            warn!(line = %shown, "undefined message from oned ignored");
        }
    }
    None
}

/// Text of a line or a decoded message; invalid UTF-8 (garbage) is replaced, valid text is
/// borrowed after the fast check.
fn utf8(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Base64 as the reference decodes it (lenient), and whether the text was canonical base64
/// (strict, padded, no stray bits: re-encoding the bytes gives the text back). The strict
/// decoder is also the fast path for the well-formed input oned sends.
fn decode_event(b64: &str) -> (Vec<u8>, bool) {
    match base64::engine::general_purpose::STANDARD.decode(b64) {
        Ok(bytes) => (bytes, true),
        Err(_) => (b64_decode_lenient(b64), false),
    }
}
