//! Delivers result frames to the driver's REP socket (reference §5.5) without ever wedging:
//! a small pool of REQ sockets, one per thread, each waiting for `ACK` with a timeout. On a
//! timeout the socket is closed, a new one connected and the same frame sent again; the
//! execution uid in the body lets the driver drop the duplicate if the first one did arrive.
//! No lock is held across a network wait, and a slow or lost ACK only delays its own result.

use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::state_db::OutboxEntry;
use crate::stop::Stop;

/// Called with the uid of every result the driver acknowledged (or refused: a refusal will not
/// improve by resending, so it leaves the outbox too).
pub type AckHook = Arc<dyn Fn(&OutboxEntry) + Send + Sync>;

/// Settings of the sender pool.
#[derive(Clone, Debug)]
pub struct SenderConfig {
    pub endpoint: String,
    pub sockets: usize,
    pub ack_timeout: Duration,
    /// CURVE keys for the driver's results socket; `None` connects without CURVE.
    pub curve: Option<one_curve::ClientKeys>,
}

/// The sender pool. Cloneable handles to it are [`ResultQueue`]s.
pub struct ResultSender {
    queue: ResultQueue,
    stop: Stop,
    threads: Vec<JoinHandle<()>>,
}

/// What the sender threads take off the queue.
enum Job {
    Deliver(OutboxEntry),
    /// One per thread at stop, after everything queued before it.
    Exit,
}

/// Where results are handed to the pool.
#[derive(Clone)]
pub struct ResultQueue {
    tx: mpsc::Sender<Job>,
    backlog: Arc<Backlog>,
}

impl ResultQueue {
    /// Queues a result; it is sent as soon as a socket is free.
    pub fn send(&self, entry: OutboxEntry) {
        self.backlog.add();
        if self.tx.send(Job::Deliver(entry)).is_err() {
            self.backlog.done();
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
    /// Starts the pool (fails only if the system refuses the pipe of its stop switch).
    pub fn start(
        ctx: zmq::Context,
        config: SenderConfig,
        on_ack: AckHook,
    ) -> std::io::Result<ResultSender> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let backlog = Arc::new(Backlog {
            watch: watch::Sender::new(0),
            empty: (Mutex::new(()), Condvar::new()),
        });
        let stop = Stop::new()?;
        let mut threads = Vec::new();
        for n in 0..config.sockets.max(1) {
            let worker = Worker {
                ctx: ctx.clone(),
                config: config.clone(),
                rx: rx.clone(),
                backlog: backlog.clone(),
                stop: stop.clone(),
                on_ack: on_ack.clone(),
                socket: None,
            };
            match std::thread::Builder::new()
                .name(format!("hem-result-{n}"))
                .spawn(move || worker.run())
            {
                Ok(handle) => threads.push(handle),
                Err(e) => tracing::error!(error = %e, "cannot start a result sender thread"),
            }
        }
        Ok(ResultSender {
            queue: ResultQueue { tx, backlog },
            stop,
            threads,
        })
    }

    pub fn queue(&self) -> ResultQueue {
        self.queue.clone()
    }

    /// Waits up to `grace` for queued results to be acknowledged, then stops the threads. What
    /// is still unacknowledged stays in the state DB's outbox and is sent at the next start.
    pub fn stop(self, grace: Duration) {
        self.queue.backlog.wait_empty(Instant::now() + grace);
        self.stop.request();
        for _ in &self.threads {
            let _ = self.queue.tx.send(Job::Exit);
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

struct Worker {
    ctx: zmq::Context,
    config: SenderConfig,
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    backlog: Arc<Backlog>,
    stop: Stop,
    on_ack: AckHook,
    socket: Option<zmq::Socket>,
}

impl Worker {
    fn run(mut self) {
        loop {
            // The lock only covers taking the next job off the queue, never a network wait:
            // the other threads wait for the lock while this one waits for a job.
            let next = match self.rx.lock() {
                Ok(rx) => rx.recv(),
                Err(_) => return,
            };
            match next {
                Ok(Job::Deliver(entry)) => {
                    self.deliver(&entry);
                    self.backlog.done();
                }
                Ok(Job::Exit) | Err(_) => return,
            }
        }
    }

    /// Sends one frame until it is acknowledged or the pool stops.
    fn deliver(&mut self, entry: &OutboxEntry) {
        let mut attempt = 0u32;
        while !self.stop.is_requested() {
            attempt += 1;
            match self.try_once(entry) {
                Ok(reply) => {
                    if reply != "ACK" {
                        tracing::error!(hook_id = entry.hook_id, uid = %entry.uid, "Wrong ACK message: {reply}.");
                    } else if attempt > 1 {
                        tracing::info!(hook_id = entry.hook_id, uid = %entry.uid, attempt, "result delivered after resending");
                    }
                    (self.on_ack)(entry);
                    return;
                }
                Err(e) => {
                    // A REQ socket that missed its reply cannot send again; start afresh.
                    self.socket = None;
                    if self.stop.is_requested() {
                        // Left in the outbox; the next start sends it.
                        return;
                    }
                    tracing::warn!(hook_id = entry.hook_id, uid = %entry.uid, attempt, error = %e,
                        endpoint = %self.config.endpoint, "no ACK for a result; reconnecting and resending");
                    if attempt > 1 {
                        // The timeout already spaced the attempts; a failing connect must not spin.
                        self.stop
                            .sleep(Duration::from_millis(200).min(self.config.ack_timeout));
                    }
                }
            }
        }
    }

    fn try_once(&mut self, entry: &OutboxEntry) -> Result<String, String> {
        let socket = match self.socket.take() {
            Some(s) => s,
            None => self.connect().map_err(|e| format!("connect: {e}"))?,
        };
        socket
            .send(entry.frame.as_bytes(), 0)
            .map_err(|e| format!("send: {e}"))?;
        let stop_fd = self.stop.fd().as_raw_fd();
        let deadline = Instant::now() + self.config.ack_timeout;
        loop {
            if self.stop.is_requested() {
                return Err("stopping".into());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "no reply within {:.1} s",
                    self.config.ack_timeout.as_secs_f64()
                ));
            }
            // The reply or the stop, whichever comes first.
            let ready = {
                let mut items = [
                    socket.as_poll_item(zmq::POLLIN),
                    zmq::PollItem::from_fd(stop_fd, zmq::POLLIN),
                ];
                zmq::poll(&mut items, left.as_millis().max(1) as i64)
                    .map_err(|e| format!("poll: {e}"))?;
                items[0].is_readable()
            };
            if ready {
                let reply = socket.recv_bytes(0).map_err(|e| format!("recv: {e}"))?;
                self.socket = Some(socket);
                return Ok(String::from_utf8_lossy(&reply).into_owned());
            }
        }
    }

    fn connect(&self) -> Result<zmq::Socket, zmq::Error> {
        let s = self.ctx.socket(zmq::REQ)?;
        one_curve::apply_client(self.config.curve.as_ref(), &s)?;
        s.set_linger(0)?;
        s.set_sndtimeo(self.config.ack_timeout.as_millis().min(i32::MAX as u128) as i32)?;
        s.connect(&self.config.endpoint)?;
        Ok(s)
    }
}
