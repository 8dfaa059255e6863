//! The durable event log the HEM reads missed events from. Its default is the driver's SQLite
//! journal behind the replay REP socket (ARCHITECTURE.md "Replay"); other logs (a shared
//! stream for several HEMs) can implement [`Journal`] the same way.

use std::time::{Duration, Instant};

use one_proto::replay::{ReplayHeader, ReplayRequest};

/// Longest wait for the reply to a header-only request.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One message of the bus: the key frame (with its sequence token) and the content frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusMessage {
    pub key: String,
    pub content: String,
}

/// A journal reply: where the journal stands and the events after the requested sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayBatch {
    pub header: ReplayHeader,
    /// Every key of every event in the reply, in sequence order.
    pub messages: Vec<BusMessage>,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("no reply from {endpoint} within {timeout:.1} s")]
    Timeout { endpoint: String, timeout: f64 },
    #[error("{endpoint}: {message}")]
    Transport { endpoint: String, message: String },
    #[error("{endpoint} refused the request: {reason}")]
    Refused { endpoint: String, reason: String },
    #[error("malformed reply from {endpoint}: {message}")]
    Malformed { endpoint: String, message: String },
}

/// A source of past events by sequence number.
pub trait Journal: Send {
    /// The events after `after`, at most `max` of them (0 asks only for the header).
    fn replay(&mut self, after: u64, max: u32) -> Result<ReplayBatch, JournalError>;
    /// Names the journal in logs.
    fn describe(&self) -> String;
}

/// The driver's replay endpoint, over a REQ socket that is rebuilt after any failure so a lost
/// reply never wedges it.
pub struct ZmqJournal {
    ctx: zmq::Context,
    endpoint: String,
    timeout: Duration,
    curve: Option<one_curve::ClientKeys>,
    socket: Option<zmq::Socket>,
}

impl ZmqJournal {
    /// A journal reached at `endpoint`, with CURVE when `curve` holds keys.
    pub fn new(
        ctx: zmq::Context,
        endpoint: &str,
        timeout: Duration,
        curve: Option<one_curve::ClientKeys>,
    ) -> ZmqJournal {
        ZmqJournal {
            ctx,
            endpoint: endpoint.to_string(),
            timeout,
            curve,
            socket: None,
        }
    }

    fn transport(&self, what: &str, e: zmq::Error) -> JournalError {
        JournalError::Transport {
            endpoint: self.endpoint.clone(),
            message: format!("{what}: {e}"),
        }
    }

    fn request(&mut self, frame: &str, timeout: Duration) -> Result<Vec<Vec<u8>>, JournalError> {
        let socket = match self.socket.take() {
            Some(s) => s,
            None => {
                let s = self
                    .ctx
                    .socket(zmq::REQ)
                    .map_err(|e| self.transport("socket", e))?;
                one_curve::apply_client(self.curve.as_ref(), &s)
                    .map_err(|e| self.transport("CURVE keys", e))?;
                s.set_linger(0).map_err(|e| self.transport("linger", e))?;
                s.set_sndtimeo(self.timeout.as_millis().min(i32::MAX as u128) as i32)
                    .map_err(|e| self.transport("sndtimeo", e))?;
                s.connect(&self.endpoint)
                    .map_err(|e| self.transport("connect", e))?;
                s
            }
        };
        socket
            .send(frame.as_bytes(), 0)
            .map_err(|e| self.transport("send", e))?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                // The socket is dropped: a REQ that missed its reply cannot be used again.
                return Err(JournalError::Timeout {
                    endpoint: self.endpoint.clone(),
                    timeout: timeout.as_secs_f64(),
                });
            }
            let ready = socket
                .poll(zmq::POLLIN, left.as_millis().max(1) as i64)
                .map_err(|e| self.transport("poll", e))?;
            if ready > 0 {
                let frames = socket
                    .recv_multipart(0)
                    .map_err(|e| self.transport("recv", e))?;
                self.socket = Some(socket);
                return Ok(frames);
            }
        }
    }
}

impl Journal for ZmqJournal {
    fn replay(&mut self, after: u64, max: u32) -> Result<ReplayBatch, JournalError> {
        // A header-only request is small and answered at once by a live journal; it is also
        // how the HEM finds out that a driver has no replay endpoint, so it waits less.
        let timeout = if max == 0 {
            self.timeout.min(PROBE_TIMEOUT)
        } else {
            self.timeout
        };
        let frames = self.request(&ReplayRequest { after, max }.to_frame(), timeout)?;
        let malformed = |message: String| JournalError::Malformed {
            endpoint: self.endpoint.clone(),
            message,
        };
        let Some((first, rest)) = frames.split_first() else {
            return Err(malformed("empty reply".into()));
        };
        let header = ReplayHeader::parse(first).map_err(|e| match e {
            one_proto::replay::ReplayError::Refused(reason) => JournalError::Refused {
                endpoint: self.endpoint.clone(),
                reason,
            },
            other => malformed(other.to_string()),
        })?;
        if rest.len() % 2 != 0 {
            return Err(malformed(format!(
                "{} frames after the header, expected key/content pairs",
                rest.len()
            )));
        }
        let messages = rest
            .chunks_exact(2)
            .map(|pair| BusMessage {
                key: String::from_utf8_lossy(&pair[0]).into_owned(),
                content: String::from_utf8_lossy(&pair[1]).into_owned(),
            })
            .collect();
        Ok(ReplayBatch { header, messages })
    }

    fn describe(&self) -> String {
        self.endpoint.clone()
    }
}
