//! Delivers result frames to the driver's results socket (reference §5.5) without ever wedging:
//! one DEALER socket on one thread, with many results in flight at once. Each request goes out
//! as `[request id, empty delimiter, frame]`; the driver's ROUTER and a reference REP both echo
//! the envelope, so each reply names the result it answers and replies may come in any order.
//!
//! The thread sleeps until a result is queued (a doorbell), a reply arrives, the earliest ACK
//! deadline passes or the stop is requested; each wake-up takes every queued result and sends
//! as many as the in-flight bound allows. A result without a reply by its deadline is sent
//! again under the same request id (the execution uid in the body lets the driver drop the
//! duplicate); when nothing at all came back for a whole timeout the peer seems gone, and the
//! socket is replaced before everything in flight is sent again, since a DEALER would otherwise
//! keep queueing to a dead connection. No lock is held across a network wait, and a slow or
//! lost reply only delays its own result.

use std::collections::{HashMap, VecDeque};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::bell::Bell;
use crate::state_db::OutboxEntry;
use crate::stop::Stop;

/// Called with the uid of every result the driver acknowledged (or refused: a refusal will not
/// improve by resending, so it leaves the outbox too).
pub type AckHook = Arc<dyn Fn(&OutboxEntry) + Send + Sync>;

/// Settings of the sender.
#[derive(Clone, Debug)]
pub struct SenderConfig {
    pub endpoint: String,
    /// Results sent and waiting for their reply at once; more wait in the queue.
    pub in_flight: usize,
    pub ack_timeout: Duration,
    /// CURVE keys for the driver's results socket; `None` connects without CURVE.
    pub curve: Option<one_curve::ClientKeys>,
}

/// The sender thread. Cloneable handles to it are [`ResultQueue`]s.
pub struct ResultSender {
    queue: ResultQueue,
    stop: Stop,
    thread: Option<JoinHandle<()>>,
}

/// Where results are handed to the sender.
#[derive(Clone)]
pub struct ResultQueue {
    inbox: Arc<Inbox>,
    backlog: Arc<Backlog>,
}

/// Results queued for the sender thread, and its doorbell.
struct Inbox {
    queued: Mutex<Queued>,
    bell: Bell,
}

struct Queued {
    entries: Vec<OutboxEntry>,
    /// Set when the thread has ended: later results are not counted as outstanding.
    closed: bool,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, Queued> {
        // The lock only guards a list; a panic elsewhere cannot leave it half-changed.
        self.queued.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ResultQueue {
    /// Queues a result; it is sent at the sender's next wake-up.
    pub fn send(&self, entry: OutboxEntry) {
        let ring = {
            let mut queued = self.inbox.lock();
            if queued.closed {
                return;
            }
            self.backlog.add();
            queued.entries.push(entry);
            // The thread empties the list after draining the bell, so only the first result
            // of a batch needs to ring it.
            queued.entries.len() == 1
        };
        if ring {
            self.inbox.bell.ring();
        }
    }

    /// Results queued or in flight.
    pub fn outstanding(&self) -> usize {
        *self.backlog.watch.borrow()
    }

    /// Completes once at most `limit` results are queued or in flight.
    pub async fn at_most(&self, limit: usize) {
        let mut rx = self.backlog.watch.subscribe();
        // The sender lives in `backlog`, which this queue keeps alive: the wait cannot fail.
        let _ = rx.wait_for(|n| *n <= limit).await;
    }
}

/// Results queued or in flight, with waits for the number to fall: async ones (executions
/// waiting for a driver that acknowledges again) and a blocking one (the stop's grace).
struct Backlog {
    watch: watch::Sender<usize>,
    empty: (Mutex<()>, Condvar),
}

impl Backlog {
    fn add(&self) {
        self.watch.send_modify(|n| *n += 1);
    }

    fn done(&self) {
        let mut now = 0;
        self.watch.send_modify(|n| {
            *n = n.saturating_sub(1);
            now = *n;
        });
        if now == 0 {
            // Taking the lock orders this wake-up after a waiter's check of the count.
            let _guard = self.empty.0.lock();
            self.empty.1.notify_all();
        }
    }

    /// Waits until nothing is outstanding or `deadline` passes; true if nothing is.
    fn wait_empty(&self, deadline: Instant) -> bool {
        let (lock, cond) = &self.empty;
        let Ok(mut guard) = lock.lock() else {
            return *self.watch.borrow() == 0;
        };
        loop {
            if *self.watch.borrow() == 0 {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            guard = match cond.wait_timeout(guard, left) {
                Ok((g, _)) => g,
                Err(_) => return *self.watch.borrow() == 0,
            };
        }
    }
}

impl ResultSender {
    /// Starts the sender thread (fails only if the system refuses a pipe or a thread).
    pub fn start(
        ctx: zmq::Context,
        config: SenderConfig,
        on_ack: AckHook,
    ) -> std::io::Result<ResultSender> {
        let inbox = Arc::new(Inbox {
            queued: Mutex::new(Queued {
                entries: Vec::new(),
                closed: false,
            }),
            bell: Bell::new()?,
        });
        let backlog = Arc::new(Backlog {
            watch: watch::Sender::new(0),
            empty: (Mutex::new(()), Condvar::new()),
        });
        let stop = Stop::new()?;
        let worker = Worker {
            ctx,
            config,
            inbox: inbox.clone(),
            backlog: backlog.clone(),
            stop: stop.clone(),
            on_ack,
            link: None,
            reconnect_at: None,
            waiting: VecDeque::new(),
            flights: HashMap::new(),
            next_id: 0,
        };
        let thread = std::thread::Builder::new()
            .name("hem-results".into())
            .spawn(move || worker.run())?;
        Ok(ResultSender {
            queue: ResultQueue { inbox, backlog },
            stop,
            thread: Some(thread),
        })
    }

    pub fn queue(&self) -> ResultQueue {
        self.queue.clone()
    }

    /// Waits up to `grace` for queued results to be acknowledged, then stops the thread. What
    /// is still unacknowledged stays in the state DB's outbox and is sent at the next start.
    pub fn stop(mut self, grace: Duration) {
        self.queue.backlog.wait_empty(Instant::now() + grace);
        self.stop.request();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Room the sender keeps in its lists between bursts.
const SHRINK_ABOVE: usize = 1024;

/// A result sent and waiting for its reply.
struct Flight {
    entry: OutboxEntry,
    deadline: Instant,
    attempts: u32,
}

/// The socket and when it last heard from the peer.
struct Link {
    socket: zmq::Socket,
    /// The last reply, or the connect: a whole timeout without either means the peer is gone.
    heard: Instant,
}

struct Worker {
    ctx: zmq::Context,
    config: SenderConfig,
    inbox: Arc<Inbox>,
    backlog: Arc<Backlog>,
    stop: Stop,
    on_ack: AckHook,
    link: Option<Link>,
    /// After a failed connect, when to try again.
    reconnect_at: Option<Instant>,
    /// Taken from the inbox, not yet sent (the in-flight bound was reached).
    waiting: VecDeque<OutboxEntry>,
    flights: HashMap<u64, Flight>,
    next_id: u64,
}

/// What woke the thread.
struct Woken {
    replies: bool,
    rung: bool,
}

impl Worker {
    fn run(mut self) {
        // The first pass looks at the queue as if the bell had rung.
        let mut rung = true;
        while !self.stop.is_requested() {
            if rung {
                // Drained before the take, so a result queued after the take rings it again.
                self.inbox.bell.drain();
            }
            self.take_queued();
            self.ensure_link();
            self.resend_expired();
            self.send_waiting();
            match self.wait() {
                Ok(woken) => {
                    rung = woken.rung;
                    if woken.replies {
                        self.read_replies();
                    }
                }
                Err(e) => {
                    rung = true;
                    // The socket is no longer usable; a new one starts afresh.
                    tracing::warn!(error = %e, endpoint = %self.config.endpoint,
                        "results socket failed; reconnecting");
                    self.drop_link();
                }
            }
        }
        // Results sent after this are not counted: nobody would ever deliver them. Those still
        // queued or in flight stay in the state DB's outbox for the next start.
        self.inbox.lock().closed = true;
    }

    /// Moves every queued result to the waiting list.
    fn take_queued(&mut self) {
        let taken = std::mem::take(&mut self.inbox.lock().entries);
        self.waiting.extend(taken);
    }

    /// Connects when there is something to send and no socket, unless a failed connect is
    /// still cooling down.
    fn ensure_link(&mut self) {
        if self.link.is_some() || (self.waiting.is_empty() && self.flights.is_empty()) {
            return;
        }
        let now = Instant::now();
        if self.reconnect_at.is_some_and(|at| now < at) {
            return;
        }
        match self.connect() {
            Ok(socket) => {
                self.reconnect_at = None;
                self.link = Some(Link { socket, heard: now });
                // Nothing sent on an earlier socket can be answered on this one.
                let ids: Vec<u64> = self.flights.keys().copied().collect();
                for id in ids {
                    self.transmit(id);
                }
            }
            Err(e) => {
                // A failing connect must not spin; the timeout bounds the pause.
                tracing::warn!(error = %e, endpoint = %self.config.endpoint,
                    "cannot connect the results socket");
                self.reconnect_at =
                    Some(now + Duration::from_millis(200).min(self.config.ack_timeout));
            }
        }
    }

    /// Sends again what passed its deadline; replaces the socket first when the peer has not
    /// answered anything for a whole timeout.
    fn resend_expired(&mut self) {
        let now = Instant::now();
        let expired: Vec<u64> = self
            .flights
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        if expired.is_empty() {
            return;
        }
        let silent = self
            .link
            .as_ref()
            .is_none_or(|l| now.duration_since(l.heard) >= self.config.ack_timeout);
        if silent {
            tracing::warn!(in_flight = self.flights.len(), endpoint = %self.config.endpoint,
                timeout_s = self.config.ack_timeout.as_secs_f64(),
                "no reply from the driver within the timeout; reconnecting and resending");
            self.drop_link();
            // Sends everything in flight on the new socket.
            self.ensure_link();
            if self.link.is_none() {
                // Pushed back so the wait sleeps until the next connect attempt.
                let at = self.reconnect_at.unwrap_or(now) + self.config.ack_timeout;
                for f in self.flights.values_mut() {
                    f.deadline = f.deadline.max(at);
                }
            }
            return;
        }
        for id in expired {
            if let Some(f) = self.flights.get(&id) {
                tracing::warn!(hook_id = f.entry.hook_id, uid = %f.entry.uid, attempt = f.attempts,
                    endpoint = %self.config.endpoint, "no ACK for a result; resending");
            }
            self.transmit(id);
        }
    }

    /// Sends waiting results while the in-flight bound allows.
    fn send_waiting(&mut self) {
        if self.link.is_none() {
            return;
        }
        while self.flights.len() < self.config.in_flight.max(1) {
            let Some(entry) = self.waiting.pop_front() else {
                break;
            };
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            self.flights.insert(
                id,
                Flight {
                    entry,
                    deadline: Instant::now(),
                    attempts: 0,
                },
            );
            self.transmit(id);
        }
        if self.waiting.is_empty() && self.waiting.capacity() > SHRINK_ABOVE {
            // A burst held back by a slow driver gives its memory back once it is sent.
            self.waiting.shrink_to(SHRINK_ABOVE);
        }
        if self.flights.is_empty() && self.flights.capacity() > SHRINK_ABOVE {
            self.flights.shrink_to(SHRINK_ABOVE);
        }
    }

    /// Sends one flight on the current socket and sets its deadline. A send the socket
    /// refuses is left to the deadline, like a lost reply.
    fn transmit(&mut self, id: u64) {
        let Some(flight) = self.flights.get_mut(&id) else {
            return;
        };
        flight.attempts += 1;
        flight.deadline = Instant::now() + self.config.ack_timeout;
        let Some(link) = &self.link else {
            return;
        };
        let id_frame = id.to_be_bytes();
        let sent = link
            .socket
            .send(&id_frame[..], zmq::SNDMORE | zmq::DONTWAIT)
            .and_then(|()| link.socket.send(&b""[..], zmq::SNDMORE | zmq::DONTWAIT))
            .and_then(|()| {
                link.socket
                    .send(flight.entry.frame.as_bytes(), zmq::DONTWAIT)
            });
        if let Err(e) = sent {
            tracing::debug!(uid = %flight.entry.uid, error = %e, "result not sent; waiting for its deadline");
        }
    }

    /// Sleeps until a reply, a queued result, the earliest deadline or the stop.
    fn wait(&mut self) -> Result<Woken, zmq::Error> {
        let next = self
            .flights
            .values()
            .map(|f| f.deadline)
            .min()
            .into_iter()
            .chain(self.reconnect_at.filter(|_| {
                // Only a pending connect attempt with work for it is worth waking for.
                self.link.is_none() && !(self.waiting.is_empty() && self.flights.is_empty())
            }))
            .min();
        let timeout = match next {
            // Rounded up, so the wake-up does not come just before the deadline.
            Some(at) => at
                .saturating_duration_since(Instant::now())
                .as_micros()
                .div_ceil(1000)
                .min(i64::MAX as u128) as i64,
            None => -1,
        };
        let bell_fd = self.inbox.bell.fd().as_raw_fd();
        let stop_fd = self.stop.fd().as_raw_fd();
        let polled = match &self.link {
            Some(link) => {
                let mut items = [
                    link.socket.as_poll_item(zmq::POLLIN),
                    zmq::PollItem::from_fd(bell_fd, zmq::POLLIN),
                    zmq::PollItem::from_fd(stop_fd, zmq::POLLIN),
                ];
                zmq::poll(&mut items, timeout).map(|_| Woken {
                    replies: items[0].is_readable(),
                    rung: items[1].is_readable(),
                })
            }
            None => {
                let mut items = [
                    zmq::PollItem::from_fd(bell_fd, zmq::POLLIN),
                    zmq::PollItem::from_fd(stop_fd, zmq::POLLIN),
                ];
                zmq::poll(&mut items, timeout).map(|_| Woken {
                    replies: false,
                    rung: items[0].is_readable(),
                })
            }
        };
        match polled {
            Err(zmq::Error::EINTR) => Ok(Woken {
                replies: false,
                rung: true,
            }),
            other => other,
        }
    }

    /// Reads every reply waiting on the socket and settles the results they name.
    fn read_replies(&mut self) {
        let Some(link) = &mut self.link else {
            return;
        };
        let mut settled = Vec::new();
        loop {
            let frames = match link.socket.recv_multipart(zmq::DONTWAIT) {
                Ok(frames) => frames,
                Err(zmq::Error::EINTR) => continue,
                Err(zmq::Error::EAGAIN) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "results socket receive failed");
                    break;
                }
            };
            link.heard = Instant::now();
            match parse_reply(&frames) {
                Some((id, body)) => settled.push((id, body)),
                None => tracing::warn!(
                    frames = frames.len(),
                    "reply on the results socket without a request id; ignored"
                ),
            }
        }
        for (id, body) in settled {
            // A reply to a copy already answered (or sent before a reconnect) finds nothing.
            let Some(flight) = self.flights.remove(&id) else {
                tracing::debug!(request = id, "reply to a result already settled");
                continue;
            };
            let entry = &flight.entry;
            if body != b"ACK" {
                tracing::error!(hook_id = entry.hook_id, uid = %entry.uid,
                    "Wrong ACK message: {}.", String::from_utf8_lossy(&body));
            } else if flight.attempts > 1 {
                tracing::info!(hook_id = entry.hook_id, uid = %entry.uid,
                    attempt = flight.attempts, "result delivered after resending");
            }
            (self.on_ack)(entry);
            self.backlog.done();
        }
    }

    fn drop_link(&mut self) {
        self.link = None;
    }

    fn connect(&self) -> Result<zmq::Socket, zmq::Error> {
        let s = self.ctx.socket(zmq::DEALER)?;
        one_curve::apply_client(self.config.curve.as_ref(), &s)?;
        s.set_linger(0)?;
        // Room for everything in flight sent twice (a resend beside its lost first copy).
        let hwm = self
            .config
            .in_flight
            .max(1)
            .saturating_mul(2)
            .saturating_add(16);
        s.set_sndhwm(hwm.min(i32::MAX as usize) as i32)?;
        s.connect(&self.config.endpoint)?;
        Ok(s)
    }
}

/// Splits a reply into its request id and body: `[id, empty delimiter, body]` as the driver's
/// ROUTER and a REP send it; a peer that leaves out the delimiter is understood too.
fn parse_reply(frames: &[Vec<u8>]) -> Option<(u64, Vec<u8>)> {
    let (id, rest) = frames.split_first()?;
    let (body, between) = rest.split_last()?;
    if !between.iter().all(Vec::is_empty) {
        return None;
    }
    let id = u64::from_be_bytes(id.as_slice().try_into().ok()?);
    Some((id, body.clone()))
}

#[cfg(test)]
mod tests {
    use super::parse_reply;

    #[test]
    fn replies_name_their_request() {
        let id = 7u64.to_be_bytes().to_vec();
        assert_eq!(
            parse_reply(&[id.clone(), vec![], b"ACK".to_vec()]),
            Some((7, b"ACK".to_vec()))
        );
        assert_eq!(
            parse_reply(&[id.clone(), b"ERR x".to_vec()]),
            Some((7, b"ERR x".to_vec()))
        );
        assert_eq!(parse_reply(std::slice::from_ref(&id)), None, "no body");
        assert_eq!(
            parse_reply(&[b"short".to_vec(), vec![], b"ACK".to_vec()]),
            None
        );
        assert_eq!(parse_reply(&[id, b"x".to_vec(), b"ACK".to_vec()]), None);
        assert_eq!(parse_reply(&[]), None);
    }
}
