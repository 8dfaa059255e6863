//! The replay REP socket: "events after N" from the journal, in order, in bounded batches
//! (protocol in [`one_proto::replay`]). Both journal modes serve it with their own reader.
//!
//! A REQ peer waits for an answer to every request it sends, so every request that reaches
//! this socket is answered: a replay, or one frame `ERR <reason>`.

use one_proto::keys::with_seq;
use one_proto::replay::{ReplayHeader, ReplayRequest, err_frame};
use tracing::{debug, warn};

use crate::journal::EventReader;
use crate::shutdown::Shutdown;

use crate::metrics::METRICS;

/// Most events in one reply, whatever the request asks.
pub const MAX_EVENTS_PER_REPLY: u32 = 1_000;
/// Most content bytes in one reply (at least one event is always returned).
pub const MAX_BYTES_PER_REPLY: usize = 16 * 1024 * 1024;
/// Largest request frame read as a request; a valid one is a few dozen bytes.
pub const MAX_REQUEST_BYTES: usize = 4096;
const POLL_MS: i64 = 100;

/// One received request: its first frame, and the size of the whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub first: Vec<u8>,
    pub frames: usize,
    pub bytes: usize,
}

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
        let request = match receive(&socket) {
            Ok(request) => request,
            Err(zmq::Error::EAGAIN | zmq::Error::EINTR) => continue,
            Err(e) => {
                warn!(error = %e, "replay socket receive failed");
                continue;
            }
        };
        let reply = answer(&request, reader.as_mut());
        if let Err(e) = socket.send_multipart(reply, 0) {
            warn!(error = %e, "replay reply failed");
        }
    }
    debug!("replay server stopped");
}

/// Reads one whole request. Only the first frame is kept: the others are counted and dropped,
/// so that a request of many frames costs no memory here.
fn receive(socket: &zmq::Socket) -> zmq::Result<Received> {
    let first = socket.recv_bytes(zmq::DONTWAIT)?;
    let mut received = Received {
        bytes: first.len(),
        first,
        frames: 1,
    };
    let mut part = zmq::Message::new();
    // ZeroMQ delivers the frames of a message together, so the rest is already here: this loop
    // never waits and ends at the message's last frame. REP answers only a whole request.
    while socket.get_rcvmore()? {
        socket.recv(&mut part, zmq::DONTWAIT)?;
        received.frames += 1;
        received.bytes = received.bytes.saturating_add(part.len());
    }
    Ok(received)
}

/// The reply frames for one request.
pub fn answer(request: &Received, reader: &mut dyn EventReader) -> Vec<Vec<u8>> {
    let refuse = |reason: &str| {
        warn!(
            reason,
            frames = request.frames,
            bytes = request.bytes,
            "replay request refused"
        );
        vec![err_frame(reason).into_bytes()]
    };
    if request.frames != 1 {
        return refuse(&format!("expected one frame, got {}", request.frames));
    }
    if request.bytes > MAX_REQUEST_BYTES {
        return refuse(&format!(
            "request of {} bytes is over the limit of {MAX_REQUEST_BYTES}",
            request.bytes
        ));
    }
    let request = match ReplayRequest::parse(&request.first) {
        Ok(request) => request,
        Err(e) => return refuse(&e.to_string()),
    };
    let max = request.max.min(MAX_EVENTS_PER_REPLY);
    let page = match reader.read_after(request.after, max, MAX_BYTES_PER_REPLY) {
        Ok(page) => page,
        Err(e) => {
            warn!(error = %e, "replay read failed");
            return vec![err_frame("journal read failed").into_bytes()];
        }
    };
    debug!(
        after = request.after,
        events = page.events.len(),
        head = page.head,
        "replay"
    );
    METRICS.events_replayed.add(page.events.len() as u64);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{JournalError, JournalEvent, ReplayPage};

    /// A journal of `head` one-key events.
    struct Events {
        head: u64,
    }

    impl EventReader for Events {
        fn read_after(
            &mut self,
            after: u64,
            max_events: u32,
            _max_bytes: usize,
        ) -> Result<ReplayPage, JournalError> {
            let events = (after + 1..=self.head)
                .take(max_events as usize)
                .map(|seq| JournalEvent {
                    seq,
                    ..JournalEvent::new(vec!["EVENT API one.vm.allocate 1".to_owned()], "e".into())
                })
                .collect();
            Ok(ReplayPage {
                oldest: 1,
                head: self.head,
                events,
            })
        }
    }

    fn request(frames: &[&[u8]]) -> Received {
        Received {
            first: frames[0].to_vec(),
            frames: frames.len(),
            bytes: frames.iter().map(|f| f.len()).sum(),
        }
    }

    fn text(reply: &[Vec<u8>]) -> Vec<String> {
        reply
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect()
    }

    #[test]
    fn a_valid_request_gets_the_events() {
        let reply = answer(&request(&[b"REPLAY 1 10"]), &mut Events { head: 3 });
        assert_eq!(
            text(&reply),
            [
                "OK 1 3 2",
                "EVENT API one.vm.allocate 1 #2",
                "e",
                "EVENT API one.vm.allocate 1 #3",
                "e"
            ]
        );
    }

    #[test]
    fn every_bad_request_gets_one_err_frame() {
        let long = format!("REPLAY 0 10{}", " ".repeat(MAX_REQUEST_BYTES));
        let cases: [(&[&[u8]], &str); 5] = [
            (&[b"REPLAY 0 10", b"x"], "ERR expected one frame, got 2"),
            (&[b"", b"", b""], "ERR expected one frame, got 3"),
            (
                &[long.as_bytes()],
                "ERR request of 4107 bytes is over the limit of 4096",
            ),
            (
                &[b"\xff\xfe\x00garbage"],
                "ERR malformed replay frame: frame is not text",
            ),
            (
                &[b"REPLAY -1 10"],
                "ERR malformed replay frame: after \"-1\" is not an unsigned integer",
            ),
        ];
        for (frames, expected) in cases {
            let reply = answer(&request(frames), &mut Events { head: 3 });
            assert_eq!(text(&reply), [expected], "{frames:?}");
        }
    }

    #[test]
    fn a_request_at_the_limit_is_read() {
        let padded = format!("REPLAY 0 1{}", " ".repeat(MAX_REQUEST_BYTES - 10));
        assert_eq!(padded.len(), MAX_REQUEST_BYTES);
        let reply = answer(&request(&[padded.as_bytes()]), &mut Events { head: 3 });
        assert_eq!(text(&reply)[0], "OK 1 3 1");
    }
}
