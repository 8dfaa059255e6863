//! The REP socket on the logger port: hook results from the HEM.
//!
//! Every request gets exactly one reply, so a peer's REQ socket never wedges:
//!
//! - `ACK` once the result is stored in the journal (or was stored before under the same
//!   EXECUTION_UID); it is then forwarded to oned in order;
//! - `ERR <reason>` for a malformed request (see [`one_proto::mad::ResultFrame::parse`]), which
//!   is logged and dropped, or when the journal cannot store the result (the sender may retry).

use std::sync::mpsc::{self, SyncSender};

use one_proto::mad::ResultFrame;
use one_proto::replay::err_frame;
use tracing::{debug, warn};

use crate::journal::JournalResult;
use crate::journal_writer::{AcceptedResult, ResultOutcome, WriterMsg};
use crate::shutdown::Shutdown;

/// How often a quiet socket is checked against the shutdown switch.
const POLL_MS: i64 = 100;

/// Serves until the shutdown switch is on.
pub fn run(socket: zmq::Socket, writer: SyncSender<WriterMsg>, shutdown: Shutdown) {
    while !shutdown.is_triggered() {
        match socket.poll(zmq::POLLIN, POLL_MS) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(zmq::Error::EINTR) => continue,
            Err(e) => {
                warn!(error = %e, "results socket poll failed");
                break;
            }
        }
        let frames = match socket.recv_multipart(zmq::DONTWAIT) {
            Ok(frames) => frames,
            Err(zmq::Error::EAGAIN | zmq::Error::EINTR) => continue,
            Err(e) => {
                warn!(error = %e, "results socket receive failed");
                continue;
            }
        };
        let reply = handle(&frames, &writer);
        if let Err(e) = socket.send(reply.as_bytes(), 0) {
            warn!(error = %e, "results socket reply failed");
        }
    }
    debug!("results server stopped");
}

fn handle(frames: &[Vec<u8>], writer: &SyncSender<WriterMsg>) -> String {
    let [frame] = frames else {
        warn!(
            frames = frames.len(),
            "malformed result refused: expected one frame"
        );
        return err_frame(&format!("expected one frame, got {}", frames.len()));
    };
    let result = match ResultFrame::parse(frame) {
        Ok(result) => result,
        Err(e) => {
            let shown: String = String::from_utf8_lossy(frame).chars().take(80).collect();
            warn!(reason = %e, frame = %shown, "malformed result refused");
            return err_frame(&e.to_string());
        }
    };
    let uid = result.execution_uid();
    let (reply, outcome) = mpsc::sync_channel(1);
    let accepted = AcceptedResult {
        result: JournalResult {
            id: 0,
            hook_id: result.hook_id,
            rc: result.rc,
            body: result.body,
            uid,
            duplicate: false,
        },
        reply,
    };
    if writer.send(WriterMsg::Result(accepted)).is_err() {
        return err_frame("driver is shutting down, result not stored");
    }
    match outcome.recv() {
        Ok(ResultOutcome::Stored | ResultOutcome::Duplicate) => "ACK".to_owned(),
        Ok(ResultOutcome::Failed(reason)) => err_frame(&reason),
        Err(_) => err_frame("driver is shutting down, result not stored"),
    }
}
