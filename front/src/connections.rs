//! The open XML-RPC connections: what each one is doing, when it must be closed, and which one
//! makes room when the cap is reached.
//!
//! A connection is in one of four phases. `Idle` (waiting for a request) may last
//! `KEEPALIVE_TIMEOUT`; `Request` (from a request's first byte until its body is read) may last
//! `TIMEOUT`, however slowly the bytes come; `Busy` (a call running) has no limit; `Shed` means
//! closed to make room. At the cap, the accept loop sheds the connection that has waited
//! longest without running a call, preferring one that never completed a call (a client that
//! connects and sends nothing, or sends byte by byte) to one that did (a HEM between calls), so
//! a new client is served at once instead of queueing behind idle or slow ones.
//!
//! The phase and its start live in one atomic word per connection: the per-request path only
//! touches its own connection's word, and the registry lock is taken at accept, close and shed.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the next request.
    Idle,
    /// A request is arriving.
    Request,
    /// A call is running.
    Busy,
    /// Closed to make room.
    Shed,
}

const PHASE_BITS: u64 = 0b11;
const SERVED_BIT: u64 = 0b100;
const TIME_SHIFT: u32 = 3;

/// One connection's phase, whether it completed a call, and when the phase began
/// (milliseconds since the registry's epoch), packed so that a change is one atomic operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State(u64);

impl State {
    fn new(phase: Phase, served: bool, since_ms: u64) -> State {
        let p = match phase {
            Phase::Idle => 0,
            Phase::Request => 1,
            Phase::Busy => 2,
            Phase::Shed => 3,
        };
        State((since_ms << TIME_SHIFT) | if served { SERVED_BIT } else { 0 } | p)
    }

    fn phase(self) -> Phase {
        match self.0 & PHASE_BITS {
            0 => Phase::Idle,
            1 => Phase::Request,
            2 => Phase::Busy,
            _ => Phase::Shed,
        }
    }

    fn served(self) -> bool {
        self.0 & SERVED_BIT != 0
    }

    fn since_ms(self) -> u64 {
        self.0 >> TIME_SHIFT
    }

    /// The order in which connections are shed: never served first, then the oldest.
    fn shed_rank(self) -> Option<(bool, u64)> {
        match self.phase() {
            Phase::Idle | Phase::Request => Some((self.served(), self.since_ms())),
            Phase::Busy | Phase::Shed => None,
        }
    }
}

/// One open connection, shared by its task, its I/O and the registry.
#[derive(Debug)]
pub struct Slot {
    state: AtomicU64,
    epoch: Instant,
    calls: AtomicU32,
    shed: Notify,
    room: Arc<Room>,
}

/// Wakes an accept loop that waits because every connection was running a call: a call
/// ending makes its connection sheddable, a connection closing frees its place. Only a waiting
/// loop is woken, so a request costs one load of `waiting`.
#[derive(Debug, Default)]
struct Room {
    waiting: AtomicBool,
    notify: Notify,
}

impl Room {
    fn signal(&self) {
        if self.waiting.load(Ordering::Acquire) {
            self.notify.notify_waiters();
        }
    }
}

impl Slot {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn load(&self) -> State {
        State(self.state.load(Ordering::Acquire))
    }

    /// Bytes arrived: an idle connection starts a request.
    fn on_read(&self) {
        let current = self.load();
        if current.phase() == Phase::Idle {
            let next = State::new(Phase::Request, current.served(), self.now_ms());
            // Losing the race to a shed is fine: the connection is closing.
            let _ =
                self.state
                    .compare_exchange(current.0, next.0, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// The request is read and its call starts; `false` when the connection was shed meanwhile.
    pub fn begin_call(&self) -> bool {
        let mut current = self.load();
        loop {
            if current.phase() == Phase::Shed {
                return false;
            }
            let next = State::new(Phase::Busy, current.served(), 0);
            match self.state.compare_exchange_weak(
                current.0,
                next.0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(seen) => current = State(seen),
            }
        }
    }

    /// The request is answered (a call, or a refusal such as a 404): the connection waits for
    /// the next one. Returns how many calls it has served.
    pub fn end_request(&self) -> u32 {
        let mut current = self.load();
        loop {
            let called = match current.phase() {
                // A shed stays shed.
                Phase::Shed => return self.calls.load(Ordering::Relaxed),
                Phase::Busy => true,
                Phase::Idle | Phase::Request => false,
            };
            let idle = State::new(Phase::Idle, current.served() || called, self.now_ms());
            match self.state.compare_exchange_weak(
                current.0,
                idle.0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) if called => {
                    self.room.signal();
                    return self.calls.fetch_add(1, Ordering::Relaxed) + 1;
                }
                Ok(_) => return self.calls.load(Ordering::Relaxed),
                Err(seen) => current = State(seen),
            }
        }
    }

    pub fn phase(&self) -> Phase {
        self.load().phase()
    }

    /// When the connection must be closed if its phase does not change: `None` while a call
    /// runs.
    pub fn deadline(&self, limits: &Limits) -> Option<Instant> {
        let state = self.load();
        let since = self.epoch + Duration::from_millis(state.since_ms());
        match state.phase() {
            Phase::Idle => Some(since + limits.keepalive_timeout),
            Phase::Request => Some(since + limits.request_timeout),
            Phase::Busy => None,
            Phase::Shed => Some(self.epoch),
        }
    }

    /// Completes once the registry has shed this connection.
    pub async fn shed(&self) {
        self.shed.notified().await
    }
}

/// The timeouts of a connection's phases.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub keepalive_timeout: Duration,
    pub request_timeout: Duration,
}

/// Every open connection, and the cap on their number.
#[derive(Debug)]
pub struct Connections {
    cap: usize,
    epoch: Instant,
    open: Mutex<Open>,
    room: Arc<Room>,
}

#[derive(Debug, Default)]
struct Open {
    next_id: u64,
    slots: HashMap<u64, Arc<Slot>>,
}

impl Connections {
    pub fn new(cap: usize) -> Arc<Connections> {
        Arc::new(Connections {
            cap: cap.max(1),
            epoch: Instant::now(),
            open: Mutex::new(Open::default()),
            room: Arc::default(),
        })
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Connections open and not shed.
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes room for one more connection: `true` when there is room, possibly after shedding
    /// the connection that waited longest without a call; `false` when every connection is
    /// running a call.
    pub fn make_room(&self) -> bool {
        let mut open = self.lock();
        // A victim that starts a call between the scan and the shed is skipped; bounded,
        // because each retry follows another connection's change.
        for _ in 0..8 {
            if open.slots.len() < self.cap {
                return true;
            }
            let victim = open
                .slots
                .iter()
                .filter_map(|(id, slot)| {
                    let state = slot.load();
                    state.shed_rank().map(|rank| (rank, *id, state))
                })
                .min_by_key(|(rank, id, _)| (*rank, *id));
            let Some((_, id, state)) = victim else {
                return false;
            };
            let Some(slot) = open.slots.get(&id) else {
                continue;
            };
            let shed = State::new(Phase::Shed, state.served(), state.since_ms());
            if slot
                .state
                .compare_exchange(state.0, shed.0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                slot.shed.notify_one();
                open.slots.remove(&id);
                tracing::debug!(
                    phase = ?state.phase(),
                    served = state.served(),
                    "connection cap reached: closed the connection waiting longest"
                );
            }
        }
        open.slots.len() < self.cap
    }

    /// Waits until [`Connections::make_room`] may succeed: a connection closed or a call
    /// ended.
    pub async fn wait_for_room(&self) {
        let room = self.room.notify.notified();
        tokio::pin!(room);
        room.as_mut().enable();
        self.room.waiting.store(true, Ordering::Release);
        // What changed before `waiting` was set woke no one: look once more.
        if !self.make_room() {
            room.await;
        }
        self.room.waiting.store(false, Ordering::Release);
    }

    /// Registers a new connection, idle from now; it stays registered until the guard drops.
    pub fn register(self: &Arc<Self>) -> Registered {
        let slot = Arc::new(Slot {
            state: AtomicU64::new(State::new(Phase::Idle, false, 0).0),
            epoch: self.epoch,
            calls: AtomicU32::new(0),
            shed: Notify::new(),
            room: self.room.clone(),
        });
        slot.state.store(
            State::new(Phase::Idle, false, slot.now_ms()).0,
            Ordering::Release,
        );
        let mut open = self.lock();
        let id = open.next_id;
        open.next_id += 1;
        open.slots.insert(id, slot.clone());
        Registered {
            connections: self.clone(),
            id,
            slot,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        // The map holds no invariant a panicking holder could break.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A registered connection; dropping it unregisters it.
#[derive(Debug)]
pub struct Registered {
    connections: Arc<Connections>,
    id: u64,
    slot: Arc<Slot>,
}

impl Registered {
    pub fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.connections.lock().slots.remove(&self.id);
        self.connections.room.signal();
    }
}

/// A connection's byte stream, telling its slot when a request's first bytes arrive.
#[derive(Debug)]
pub struct Tracked<T> {
    io: T,
    slot: Arc<Slot>,
}

impl<T> Tracked<T> {
    pub fn new(io: T, slot: Arc<Slot>) -> Tracked<T> {
        Tracked { io, slot }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.slot.on_read();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_pack_and_unpack() {
        for phase in [Phase::Idle, Phase::Request, Phase::Busy, Phase::Shed] {
            for served in [false, true] {
                let s = State::new(phase, served, 123_456_789);
                assert_eq!(
                    (s.phase(), s.served(), s.since_ms()),
                    (phase, served, 123_456_789)
                );
            }
        }
    }

    #[tokio::test]
    async fn at_the_cap_the_longest_waiting_connection_that_never_served_a_call_goes_first() {
        let conns = Connections::new(3);
        let served = conns.register();
        assert!(served.slot().begin_call());
        served.slot().end_request();
        let old = conns.register();
        let busy = conns.register();
        assert!(busy.slot().begin_call());
        assert!(conns.make_room());
        assert_eq!(old.slot().phase(), Phase::Shed, "never served, idle");
        assert!(!old.slot().begin_call());
        assert_eq!(served.slot().phase(), Phase::Idle);
        let new = conns.register();
        assert!(conns.make_room());
        assert_eq!(
            new.slot().phase(),
            Phase::Shed,
            "never served, though newer"
        );
        assert_eq!(served.slot().phase(), Phase::Idle);
        let calling = conns.register();
        assert!(calling.slot().begin_call());
        assert!(conns.make_room());
        assert_eq!(
            served.slot().phase(),
            Phase::Shed,
            "then one that served calls"
        );
        let _another = conns.register();
        assert!(_another.slot().begin_call());
        assert!(!conns.make_room(), "every connection runs a call: no room");
        assert_eq!(busy.slot().phase(), Phase::Busy);
        // A call that ends makes room, and wakes a waiting accept loop.
        let waiter = tokio::spawn({
            let conns = conns.clone();
            async move { conns.wait_for_room().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        calling.slot().end_request();
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("woken")
            .expect("joined");
        assert!(conns.make_room());
        assert_eq!(calling.slot().phase(), Phase::Shed);
        drop(busy);
        assert!(conns.make_room());
    }

    #[tokio::test]
    async fn deadlines_follow_the_phase() {
        let conns = Connections::new(4);
        let limits = Limits {
            keepalive_timeout: Duration::from_secs(15),
            request_timeout: Duration::from_secs(5),
        };
        let r = conns.register();
        let slot = r.slot();
        let idle = slot.deadline(&limits).unwrap();
        assert!(idle > Instant::now() + Duration::from_secs(14));
        slot.on_read();
        assert_eq!(slot.phase(), Phase::Request);
        let request = slot.deadline(&limits).unwrap();
        assert!(request < Instant::now() + Duration::from_secs(6));
        assert!(slot.begin_call());
        assert_eq!(slot.deadline(&limits), None);
        assert_eq!(slot.end_request(), 1);
        assert_eq!(slot.phase(), Phase::Idle);
        slot.on_read();
        assert_eq!(slot.phase(), Phase::Request);
    }
}
