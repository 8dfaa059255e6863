//! The results socket on the logger port: hook results from the HEM.
//!
//! Peers are REQ sockets (reference §5.5), or our HEM's DEALER, which puts a request id before
//! the delimiter and gets it back with the reply. The driver's side is a ROUTER socket, which
//! speaks the same wire protocol as REP but lets many requests wait for the journal at once, so
//! results from several senders share one group commit instead of queueing behind each other.
//! Every request gets exactly one reply, so a peer's REQ socket never wedges:
//!
//! - `ACK` once the result is stored in the journal (or was stored before under the same
//!   EXECUTION_UID); it is then forwarded to oned in order;
//! - `ERR <reason>` for a malformed request (see [`one_proto::mad::ResultFrame::parse`]), which
//!   is logged and dropped, or when the journal cannot store the result (the sender may retry).

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};

use one_proto::mad::ResultFrame;
use one_proto::replay::err_frame;
use tracing::{debug, warn};

use crate::journal::JournalResult;
use crate::messages::{AcceptedResult, Doorbell, ResultOutcome, ResultReply, WriterMsg};
use crate::shutdown::Shutdown;

use crate::metrics::METRICS;

/// How often a quiet socket is checked against the shutdown switch.
const POLL_MS: i64 = 100;
/// Requests read in one go before pending replies are looked at again.
const READ_BURST: usize = 256;

/// A request waiting for the journal.
struct Waiting {
    envelope: Vec<Vec<u8>>,
    outcome: Receiver<ResultOutcome>,
}

/// Serves until the shutdown switch is on, then answers what is still waiting.
pub fn run(
    socket: zmq::Socket,
    mut bell_read: File,
    bell: Doorbell,
    writer: SyncSender<WriterMsg>,
    shutdown: Shutdown,
) {
    let mut waiting: VecDeque<Waiting> = VecDeque::new();
    let bell_fd = bell_read.as_raw_fd();
    while !shutdown.is_triggered() {
        let mut items = [
            socket.as_poll_item(zmq::POLLIN),
            zmq::PollItem::from_fd(bell_fd, zmq::POLLIN),
        ];
        match zmq::poll(&mut items, POLL_MS) {
            Ok(_) => {}
            Err(zmq::Error::EINTR) => continue,
            Err(e) => {
                warn!(error = %e, "results socket poll failed");
                break;
            }
        }
        let (requests, rung) = (items[0].is_readable(), items[1].is_readable());
        if rung {
            let mut sink = [0u8; 256];
            while matches!(bell_read.read(&mut sink), Ok(n) if n > 0) {}
        }
        answer_decided(&socket, &mut waiting, false);
        if !requests {
            continue;
        }
        for _ in 0..READ_BURST {
            let frames = match socket.recv_multipart(zmq::DONTWAIT) {
                Ok(frames) => frames,
                Err(zmq::Error::EAGAIN) => break,
                Err(zmq::Error::EINTR) => continue,
                Err(e) => {
                    warn!(error = %e, "results socket receive failed");
                    break;
                }
            };
            let (envelope, body) = split_envelope(frames);
            METRICS.results_received.inc();
            match accept(&body, &writer, &bell) {
                Ok(outcome) => waiting.push_back(Waiting { envelope, outcome }),
                Err(reply) => send_reply(&socket, envelope, &reply),
            }
        }
    }
    // The writer decides every result it was given before it stops; answer them all.
    answer_decided(&socket, &mut waiting, true);
    debug!("results server stopped");
}

/// Replies to every waiting request whose outcome is known (all of them with `block`).
fn answer_decided(socket: &zmq::Socket, waiting: &mut VecDeque<Waiting>, block: bool) {
    let mut still = VecDeque::with_capacity(waiting.len());
    for w in waiting.drain(..) {
        let outcome = if block {
            w.outcome.recv().map_err(|_| TryRecvError::Disconnected)
        } else {
            w.outcome.try_recv()
        };
        let reply = match outcome {
            Ok(ResultOutcome::Stored) => {
                METRICS.results_acked.inc();
                "ACK".to_owned()
            }
            Ok(ResultOutcome::Duplicate) => {
                METRICS.results_duplicate.inc();
                "ACK".to_owned()
            }
            // Counted where the writer decided (refused, or not stored).
            Ok(ResultOutcome::Failed(reason)) => err_frame(&reason),
            Err(TryRecvError::Empty) => {
                still.push_back(w);
                continue;
            }
            Err(TryRecvError::Disconnected) => {
                METRICS.results_unstored.inc();
                err_frame("driver is shutting down, result not stored")
            }
        };
        send_reply(socket, w.envelope, &reply);
    }
    *waiting = still;
}

/// Splits a ROUTER message into the routing envelope (identity frames and the empty delimiter a
/// REQ peer adds) and the request frames. A DEALER peer without delimiter gets its identity
/// back alone.
fn split_envelope(mut frames: Vec<Vec<u8>>) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    match frames.iter().position(Vec::is_empty) {
        Some(delimiter) => {
            let body = frames.split_off(delimiter + 1);
            (frames, body)
        }
        None => {
            let body = frames.split_off(1.min(frames.len()));
            (frames, body)
        }
    }
}

fn send_reply(socket: &zmq::Socket, mut envelope: Vec<Vec<u8>>, reply: &str) {
    envelope.push(reply.as_bytes().to_vec());
    if let Err(e) = socket.send_multipart(envelope, 0) {
        warn!(error = %e, "results socket reply failed");
    }
}

/// Checks a request and hands it to the writer; `Err` is the immediate reply.
fn accept(
    frames: &[Vec<u8>],
    writer: &SyncSender<WriterMsg>,
    bell: &Doorbell,
) -> Result<Receiver<ResultOutcome>, String> {
    let [frame] = frames else {
        METRICS.results_malformed.inc();
        warn!(
            frames = frames.len(),
            "malformed result refused: expected one frame"
        );
        return Err(err_frame(&format!(
            "expected one frame, got {}",
            frames.len()
        )));
    };
    let (result, uid, decoded) = match ResultFrame::parse_with_uid_and_body(frame) {
        Ok(result) => result,
        Err(e) => {
            let shown: String = String::from_utf8_lossy(frame).chars().take(80).collect();
            METRICS.results_malformed.inc();
            warn!(reason = %e, frame = %shown, "malformed result refused");
            return Err(err_frame(&e.to_string()));
        }
    };
    let (reply, outcome) = ResultReply::channel(bell.clone());
    let accepted = AcceptedResult {
        result: JournalResult::new(result.hook_id, result.rc, result.body, decoded, uid),
        reply,
    };
    if writer.send(WriterMsg::Result(accepted)).is_err() {
        METRICS.results_unstored.inc();
        return Err(err_frame("driver is shutting down, result not stored"));
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_of_req_and_dealer_peers_are_split_off() {
        let req = vec![b"id".to_vec(), Vec::new(), b"0 1 QUJD".to_vec()];
        assert_eq!(
            split_envelope(req),
            (vec![b"id".to_vec(), Vec::new()], vec![b"0 1 QUJD".to_vec()])
        );
        let dealer = vec![b"id".to_vec(), b"0 1 QUJD".to_vec()];
        assert_eq!(
            split_envelope(dealer),
            (vec![b"id".to_vec()], vec![b"0 1 QUJD".to_vec()])
        );
        // An empty request body after the delimiter stays a (malformed) empty frame list.
        let empty = vec![b"id".to_vec(), Vec::new()];
        assert_eq!(
            split_envelope(empty),
            (vec![b"id".to_vec(), Vec::new()], Vec::<Vec<u8>>::new())
        );
    }
}
