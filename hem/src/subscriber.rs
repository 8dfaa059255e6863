//! The live event stream: a SUB socket on the driver's publisher.
//!
//! It subscribes once, at start, to every key that carries an event the HEM may act on (API,
//! STATE, RETRY and unknown-type events) and matching happens in the process. Hook reloads
//! therefore never touch socket subscriptions, and every sequence number of the stream reaches
//! the HEM exactly once, so a gap in the numbers is a lost event, not a filter effect.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use crate::bell::readable;
use crate::journal::BusMessage;

/// The prefixes the HEM subscribes to. `EVENT VM`, `EVENT HOST`, … repeat an event already
/// published under `EVENT STATE` with the same sequence number, and are not needed.
pub const SUBSCRIPTIONS: [&str; 4] = ["EVENT API ", "EVENT STATE ", "RETRY", "EVENT #"];

/// A stream of live bus messages.
pub trait EventStream: Send {
    /// The next message, waiting at most `timeout`.
    fn recv(&mut self, timeout: Duration) -> Result<Option<BusMessage>, String>;
    /// The next message if one is already waiting.
    fn try_recv(&mut self) -> Result<Option<BusMessage>, String>;

    /// The next message, waiting at most `timeout`, or nothing as soon as one of `wake` is
    /// readable (the stop, a doorbell). This default looks at `wake` between slices of
    /// [`WAKE_SLICE`]; a stream with a socket polls them beside it instead.
    fn recv_or_wake(
        &mut self,
        timeout: Duration,
        wake: &[BorrowedFd<'_>],
    ) -> Result<Option<BusMessage>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || readable(wake) {
                return Ok(None);
            }
            if let Some(msg) = self.recv(left.min(WAKE_SLICE))? {
                return Ok(Some(msg));
            }
        }
    }
}

/// How often [`EventStream::recv_or_wake`]'s default looks at its wake-up descriptors.
pub const WAKE_SLICE: Duration = Duration::from_millis(100);

/// The SUB socket.
pub struct ZmqSubscriber {
    socket: zmq::Socket,
    endpoint: String,
}

/// Messages the SUB socket buffers while the HEM is busy; beyond it the publisher drops them
/// and the HEM replays the gap from the journal. Kept moderate because each message can be
/// several kilobytes and the journal makes a deep buffer unnecessary.
const RECEIVE_HWM: i32 = 5_000;

impl ZmqSubscriber {
    /// Connects and subscribes, with CURVE when `curve` holds keys. The connection completes in
    /// the background; events published before it does are recovered from the journal.
    pub fn connect(
        ctx: &zmq::Context,
        endpoint: &str,
        curve: Option<&one_curve::ClientKeys>,
    ) -> Result<ZmqSubscriber, zmq::Error> {
        let socket = ctx.socket(zmq::SUB)?;
        one_curve::apply_client(curve, &socket)?;
        socket.set_rcvhwm(RECEIVE_HWM)?;
        socket.set_linger(0)?;
        for prefix in SUBSCRIPTIONS {
            socket.set_subscribe(prefix.as_bytes())?;
        }
        socket.connect(endpoint)?;
        Ok(ZmqSubscriber {
            socket,
            endpoint: endpoint.to_string(),
        })
    }

    fn read(&mut self, flags: i32) -> Result<Option<BusMessage>, String> {
        match self.socket.recv_multipart(flags) {
            Ok(frames) => {
                let mut frames = frames.into_iter();
                let key = frames.next().unwrap_or_default();
                let content = frames.next().unwrap_or_default();
                Ok(Some(BusMessage {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    content: String::from_utf8_lossy(&content).into_owned(),
                }))
            }
            Err(zmq::Error::EAGAIN) => Ok(None),
            Err(zmq::Error::EINTR) => Ok(None),
            Err(e) => Err(format!("{}: {e}", self.endpoint)),
        }
    }
}

impl EventStream for ZmqSubscriber {
    fn recv(&mut self, timeout: Duration) -> Result<Option<BusMessage>, String> {
        match self
            .socket
            .poll(zmq::POLLIN, timeout.as_millis().max(1) as i64)
        {
            Ok(0) => Ok(None),
            Ok(_) => self.read(zmq::DONTWAIT),
            Err(zmq::Error::EINTR) => Ok(None),
            Err(e) => Err(format!("{}: {e}", self.endpoint)),
        }
    }

    fn try_recv(&mut self) -> Result<Option<BusMessage>, String> {
        self.read(zmq::DONTWAIT)
    }

    fn recv_or_wake(
        &mut self,
        timeout: Duration,
        wake: &[BorrowedFd<'_>],
    ) -> Result<Option<BusMessage>, String> {
        let polled = {
            let mut items = vec![self.socket.as_poll_item(zmq::POLLIN)];
            items.extend(
                wake.iter()
                    .map(|fd| zmq::PollItem::from_fd(fd.as_raw_fd(), zmq::POLLIN)),
            );
            zmq::poll(&mut items, timeout.as_millis().max(1) as i64).map(|_| items[0].is_readable())
        };
        match polled {
            Ok(true) => self.read(zmq::DONTWAIT),
            Ok(false) | Err(zmq::Error::EINTR) => Ok(None),
            Err(e) => Err(format!("{}: {e}", self.endpoint)),
        }
    }
}
