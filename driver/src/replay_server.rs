//! The replay REP socket: "events after N" from the journal, in order, in bounded batches
//! (protocol in [`one_proto::replay`]).

use one_proto::keys::with_seq;
use one_proto::replay::{ReplayHeader, ReplayRequest, err_frame};
use tracing::{debug, warn};

use crate::journal::EventReader;
use crate::shutdown::Shutdown;

/// Most events in one reply, whatever the request asks.
pub const MAX_EVENTS_PER_REPLY: u32 = 1_000;
/// Most content bytes in one reply (at least one event is always returned).
pub const MAX_BYTES_PER_REPLY: usize = 16 * 1024 * 1024;
const POLL_MS: i64 = 100;

/// Serves until the shutdown switch is on.
pub fn run(socket: zmq::Socket, mut reader: Box<dyn EventReader>, shutdown: Shutdown) {
    while !shutdown.is_triggered() {
        match socket.poll(zmq::POLLIN, POLL_MS) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(zmq::Error::EINTR) => continue,
            Err(e) => {
                warn!(error = %e, "replay socket poll failed");
                break;
            }
        }
        let frames = match socket.recv_multipart(zmq::DONTWAIT) {
            Ok(frames) => frames,
            Err(zmq::Error::EAGAIN | zmq::Error::EINTR) => continue,
            Err(e) => {
                warn!(error = %e, "replay socket receive failed");
                continue;
            }
        };
        let reply = answer(&frames, reader.as_mut());
        if let Err(e) = socket.send_multipart(reply, 0) {
            warn!(error = %e, "replay reply failed");
        }
    }
    debug!("replay server stopped");
}

/// The reply frames for one request.
pub fn answer(frames: &[Vec<u8>], reader: &mut dyn EventReader) -> Vec<Vec<u8>> {
    let refuse = |reason: &str| vec![err_frame(reason).into_bytes()];
    let [frame] = frames else {
        warn!(
            frames = frames.len(),
            "replay request refused: expected one frame"
        );
        return refuse(&format!("expected one frame, got {}", frames.len()));
    };
    let request = match ReplayRequest::parse(frame) {
        Ok(request) => request,
        Err(e) => {
            warn!(reason = %e, "replay request refused");
            return refuse(&e.to_string());
        }
    };
    let max = request.max.min(MAX_EVENTS_PER_REPLY);
    let page = match reader.read_after(request.after, max, MAX_BYTES_PER_REPLY) {
        Ok(page) => page,
        Err(e) => {
            warn!(error = %e, "replay read failed");
            return refuse("journal read failed");
        }
    };
    debug!(
        after = request.after,
        events = page.events.len(),
        head = page.head,
        "replay"
    );
    let header = ReplayHeader {
        oldest: page.oldest,
        head: page.head,
        count: u32::try_from(page.events.len()).unwrap_or(u32::MAX),
    };
    let mut out = Vec::with_capacity(1 + page.events.len() * 4);
    out.push(header.to_frame().into_bytes());
    for event in page.events {
        for key in &event.keys {
            out.push(with_seq(key, event.seq).into_bytes());
            out.push(event.content.clone().into_bytes());
        }
    }
    out
}
