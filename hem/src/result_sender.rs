//! Delivers result frames to the driver's REP socket (reference §5.5) without ever wedging:
//! a small pool of REQ sockets, one per thread, each waiting for `ACK` with a timeout. On a
//! timeout the socket is closed, a new one connected and the same frame sent again; the
//! execution uid in the body lets the driver drop the duplicate if the first one did arrive.
//! No lock is held across a network wait, and a slow or lost ACK only delays its own result.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::state_db::OutboxEntry;

/// Called with the uid of every result the driver acknowledged (or refused: a refusal will not
/// improve by resending, so it leaves the outbox too).
pub type AckHook = Arc<dyn Fn(&OutboxEntry) + Send + Sync>;

/// Settings of the sender pool.
#[derive(Clone, Debug)]
pub struct SenderConfig {
    pub endpoint: String,
    pub sockets: usize,
    pub ack_timeout: Duration,
}

/// The sender pool. Cloneable handles to it are [`ResultQueue`]s.
pub struct ResultSender {
    queue: ResultQueue,
    stopping: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// Where results are handed to the pool.
#[derive(Clone)]
pub struct ResultQueue {
    tx: mpsc::Sender<OutboxEntry>,
    queued: Arc<AtomicUsize>,
}

impl ResultQueue {
    /// Queues a result; it is sent as soon as a socket is free.
    pub fn send(&self, entry: OutboxEntry) {
        self.queued.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(entry).is_err() {
            self.queued.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Results queued or in flight.
    pub fn outstanding(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }
}

impl ResultSender {
    pub fn start(ctx: zmq::Context, config: SenderConfig, on_ack: AckHook) -> ResultSender {
        let (tx, rx) = mpsc::channel::<OutboxEntry>();
        let rx = Arc::new(Mutex::new(rx));
        let queued = Arc::new(AtomicUsize::new(0));
        let stopping = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for n in 0..config.sockets.max(1) {
            let worker = Worker {
                ctx: ctx.clone(),
                config: config.clone(),
                rx: rx.clone(),
                queued: queued.clone(),
                stopping: stopping.clone(),
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
        ResultSender {
            queue: ResultQueue { tx, queued },
            stopping,
            threads,
        }
    }

    pub fn queue(&self) -> ResultQueue {
        self.queue.clone()
    }

    /// Waits up to `grace` for queued results to be acknowledged, then stops the threads. What
    /// is still unacknowledged stays in the state DB's outbox and is sent at the next start.
    pub fn stop(self, grace: Duration) {
        let deadline = Instant::now() + grace;
        while self.queue.outstanding() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stopping.store(true, Ordering::SeqCst);
        drop(self.queue);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

struct Worker {
    ctx: zmq::Context,
    config: SenderConfig,
    rx: Arc<Mutex<mpsc::Receiver<OutboxEntry>>>,
    queued: Arc<AtomicUsize>,
    stopping: Arc<AtomicBool>,
    on_ack: AckHook,
    socket: Option<zmq::Socket>,
}

/// How often a waiting thread looks at the stop flag.
const POLL: Duration = Duration::from_millis(100);

impl Worker {
    fn run(mut self) {
        while !self.stopping.load(Ordering::SeqCst) {
            // The lock only covers taking the next job off the queue, never a network wait.
            let next = match self.rx.lock() {
                Ok(rx) => rx.recv_timeout(POLL),
                Err(_) => return,
            };
            match next {
                Ok(entry) => {
                    self.deliver(&entry);
                    self.queued.fetch_sub(1, Ordering::SeqCst);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Sends one frame until it is acknowledged or the pool stops.
    fn deliver(&mut self, entry: &OutboxEntry) {
        let mut attempt = 0u32;
        while !self.stopping.load(Ordering::SeqCst) {
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
                    if self.stopping.load(Ordering::SeqCst) {
                        // Left in the outbox; the next start sends it.
                        return;
                    }
                    tracing::warn!(hook_id = entry.hook_id, uid = %entry.uid, attempt, error = %e,
                        endpoint = %self.config.endpoint, "no ACK for a result; reconnecting and resending");
                    if attempt > 1 {
                        // The timeout already spaced the attempts; a failing connect must not spin.
                        std::thread::sleep(Duration::from_millis(200).min(self.config.ack_timeout));
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
        let deadline = Instant::now() + self.config.ack_timeout;
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                return Err("stopping".into());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "no reply within {:.1} s",
                    self.config.ack_timeout.as_secs_f64()
                ));
            }
            let wait = left.min(POLL);
            let ready = socket
                .poll(zmq::POLLIN, wait.as_millis().max(1) as i64)
                .map_err(|e| format!("poll: {e}"))?;
            if ready > 0 {
                let reply = socket.recv_bytes(0).map_err(|e| format!("recv: {e}"))?;
                self.socket = Some(socket);
                return Ok(String::from_utf8_lossy(&reply).into_owned());
            }
        }
    }

    fn connect(&self) -> Result<zmq::Socket, zmq::Error> {
        let s = self.ctx.socket(zmq::REQ)?;
        s.set_linger(0)?;
        s.set_sndtimeo(self.config.ack_timeout.as_millis().min(i32::MAX as u128) as i32)?;
        s.connect(&self.config.endpoint)?;
        Ok(s)
    }
}
