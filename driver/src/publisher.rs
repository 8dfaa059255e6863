//! The PUB socket: every committed event as the reference's two-frame messages, one per key.

use std::sync::mpsc::Receiver;

use one_proto::keys::with_seq;
use tracing::{debug, warn};

use crate::config::KeyStyle;
use crate::journal::JournalEvent;

use crate::metrics::METRICS;

/// Frame 1 of one key of an event, in the configured style.
pub fn frame_key(key: &str, seq: u64, style: KeyStyle) -> String {
    match style {
        KeyStyle::WithSequence => with_seq(key, seq),
        KeyStyle::Reference => key.to_owned(),
    }
}

/// Publishes until the writer drops its sender. A PUB socket never blocks: a subscriber over its
/// high-water mark loses messages, and recovers them by replay when it sees the sequence gap.
pub fn run(socket: zmq::Socket, rx: Receiver<Vec<JournalEvent>>, style: KeyStyle) {
    let mut published: u64 = 0;
    let mut failures: u64 = 0;
    for batch in rx {
        METRICS.events_published.add(batch.len() as u64);
        for event in &batch {
            for key in &event.keys {
                let frame = frame_key(key, event.seq, style);
                let sent = socket
                    .send(frame.as_bytes(), zmq::SNDMORE)
                    .and_then(|()| socket.send(event.content.as_bytes(), 0));
                match sent {
                    Ok(()) => published += 1,
                    Err(e) => {
                        failures += 1;
                        if failures.is_power_of_two() {
                            warn!(error = %e, seq = event.seq, failures, "publish failed");
                        }
                    }
                }
            }
        }
    }
    debug!(published, failures, "publisher stopped");
}
