//! The supervisor process (`onehem-server --supervisor --socket PATH`): spawns the HEM's local
//! hooks through [`LocalExecutor`], enforces their TIMEOUT, captures their output, and keeps
//! each outcome until the HEM says it has it in its state DB. It runs in a session of its own,
//! so it outlives a HEM killed with its process group, and one loop owns all of its state.
//!
//! The loop works in wake-ups: it handles every frame already read, spawning the hooks they ask
//! for right there, one after the other under one short scheduler slice
//! ([`one_exec::SpawnBatch`]), and it takes every hook that has ended; the frames a wake-up
//! produces go to each connection's writer as one buffer, one `write`. Each running hook's
//! task only waits for it (outputs, exit, TIMEOUT). Its hooks are its only children, so one
//! [`Reaper`] collects them all (one signalfd for SIGCHLD instead of a pidfd per hook).

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use nix::fcntl::{Flock, FlockArg};
use one_exec::{Reaper, SpawnBatch};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::caretaker::{self, Orphan};
use super::frame::{self, BusContext, FromSupervisor, SpawnRequest, ToSupervisor};
use super::{BUSY, Outgoing, READY};
use crate::execution::ResultContext;
use crate::executor::{ExecOutcome, ExecRequest};
use crate::local_executor::LocalExecutor;

/// HEM connections served at once (one HEM, and a second while the first one's socket closes).
const MAX_CONNECTIONS: usize = 4;

/// How often a supervisor without a HEM and without hooks checks that its socket is still
/// its own (a removed state directory ends it at once instead of after the linger time).
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// The outcome text of a spawn that arrives while the supervisor stops.
const STOPPING: &str = "the hook supervisor is stopping";

/// How long a stopping supervisor, its hooks ended, still lets its caretakers report.
const CARETAKER_GRACE: Duration = Duration::from_secs(5);

/// Runs the supervisor on `socket` until it is told to stop (the HEM's `Bye`, SIGTERM) and no
/// hook runs, or until it has had neither HEM nor hook for `linger`. `Ok` also when another
/// supervisor already serves the socket (it then prints [`BUSY`] instead of [`READY`]).
/// Hooks start with `hook_open_files` as their soft limit of open files when this process's is
/// higher (the HEM raised its own for its connections).
pub fn serve(socket: &Path, linger: Duration, hook_open_files: Option<u64>) -> anyhow::Result<()> {
    // First, while this is the process's only thread: every thread started later inherits the
    // blocked SIGCHLD that the reaper reads.
    let reaper = Reaper::new().context("cannot set up the reaper of hook processes")?;
    let defaulted = one_exec::default_for_children();
    if !defaulted.is_empty() {
        tracing::info!(signals = ?defaulted, "signals ignored by the HEM's parent are left at their default for hooks");
    }
    // A new session: a signal to the HEM's process group or terminal does not reach the hooks'
    // supervisor. It fails only for a session leader, which is detached already.
    let _ = nix::unistd::setsid();
    let lock_path = socket.with_extension("lock");
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode_private()
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    let _lock = match Flock::lock(lock_file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            tracing::info!(socket = %socket.display(), "another hook supervisor serves this socket");
            say(BUSY);
            return Ok(());
        }
        Err((_, e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", lock_path.display()));
        }
    };
    // Holding the lock, any socket file left is a dead supervisor's.
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", socket.display())),
    }
    let listener = std::os::unix::net::UnixListener::bind(socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    // The directory is the HEM's private one; the socket is private too.
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", socket.display()))?;
    listener.set_nonblocking(true)?;
    let inode = std::fs::metadata(socket)?.ino();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async {
        let listener = UnixListener::from_std(listener)?;
        tracing::info!(socket = %socket.display(), pid = std::process::id(), "hook supervisor ready");
        say(READY);
        tokio::spawn(reaper.watch().context("cannot watch for ended hooks")?);
        let outcome = Supervisor::new(socket.to_path_buf(), inode, linger, reaper, hook_open_files)
            .run(listener)
            .await;
        // Only this supervisor's socket file is removed, never a successor's.
        if std::fs::metadata(socket).is_ok_and(|m| m.ino() == inode) {
            let _ = std::fs::remove_file(socket);
        }
        outcome
    })
}

/// One line to the HEM that started this process, which waits for it on a pipe.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

trait PrivateMode {
    fn mode_private(&mut self) -> &mut Self;
}

impl PrivateMode for std::fs::OpenOptions {
    fn mode_private(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

/// An execution the supervisor knows: its state, the connection that spawned it, and, from a
/// distributed-mode HEM, its record context.
struct Exec {
    state: Entry,
    origin: u64,
    record: Option<ResultContext>,
}

enum Entry {
    Running {
        owner: Option<u64>,
        /// Its HEM died: the outcome goes to the caretaker reporting for it.
        adopted: Option<mpsc::UnboundedSender<(String, ExecOutcome)>>,
    },
    Finished {
        outcome: ExecOutcome,
    },
}

struct Connection {
    frames: mpsc::UnboundedSender<Outgoing>,
    executor: LocalExecutor,
    reader: tokio::task::AbortHandle,
    /// A distributed-mode HEM's bus, to finish its executions if it dies.
    bus: Option<BusContext>,
    /// The HEM said `Bye`: it ends what it ran itself.
    said_bye: bool,
}

enum Event {
    Frame(u64, Box<ToSupervisor>),
    Closed(u64, Option<frame::FrameError>),
}

struct Supervisor {
    socket: PathBuf,
    inode: u64,
    linger: Duration,
    execs: HashMap<String, Exec>,
    /// Caretakers finishing the executions of dead distributed-mode HEMs.
    caretakers: JoinSet<()>,
    connections: HashMap<u64, Connection>,
    next_connection: u64,
    hooks: JoinSet<(String, ExecOutcome)>,
    hook_uids: HashMap<tokio::task::Id, String>,
    stopping: bool,
    cancel: watch::Sender<bool>,
    events_tx: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,
    /// Frames produced in this wake-up, by connection, in order; written at its end.
    outbox: Vec<(u64, Vec<u8>)>,
    reaper: Reaper,
    /// The soft limit of open files hooks start with; spawns happen on this process's only
    /// thread, so lowering its own limit for the spawn cannot fail another thread's `open`.
    hook_open_files: Option<u64>,
}

/// Hooks that ended, as their tasks return them.
type Joined = Result<(tokio::task::Id, (String, ExecOutcome)), tokio::task::JoinError>;

impl Supervisor {
    fn new(
        socket: PathBuf,
        inode: u64,
        linger: Duration,
        reaper: Reaper,
        hook_open_files: Option<u64>,
    ) -> Supervisor {
        let (events_tx, events) = mpsc::unbounded_channel();
        Supervisor {
            socket,
            inode,
            linger,
            execs: HashMap::new(),
            caretakers: JoinSet::new(),
            connections: HashMap::new(),
            next_connection: 0,
            hooks: JoinSet::new(),
            hook_uids: HashMap::new(),
            stopping: false,
            cancel: watch::Sender::new(false),
            events_tx,
            events,
            outbox: Vec::new(),
            reaper,
            hook_open_files,
        }
    }

    async fn run(mut self, listener: UnixListener) -> anyhow::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let mut idle_since = Instant::now();
        loop {
            if self.stopping && self.hooks.is_empty() {
                if tokio::time::timeout(CARETAKER_GRACE, async {
                    while self.caretakers.join_next().await.is_some() {}
                })
                .await
                .is_err()
                {
                    tracing::warn!(
                        "stopping before every execution of a dead HEM was reported; the HEMs taking them over record them interrupted"
                    );
                }
                tracing::info!("hook supervisor stopped");
                return Ok(());
            }
            let idle =
                self.connections.is_empty() && self.hooks.is_empty() && self.caretakers.is_empty();
            if !idle {
                idle_since = Instant::now();
            }
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => self.connect(stream),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(event) = self.events.recv() => {
                    // Every frame already read is handled in this wake-up, and the hooks they
                    // ask for are spawned in one batch.
                    let mut batch = None;
                    self.handle(event, &mut batch);
                    while let Ok(event) = self.events.try_recv() {
                        self.handle(event, &mut batch);
                    }
                }
                Some(joined) = self.hooks.join_next_with_id(), if !self.hooks.is_empty() => {
                    self.joined(joined);
                    while let Some(joined) = self.hooks.try_join_next_with_id() {
                        self.joined(joined);
                    }
                }
                Some(_) = self.caretakers.join_next(), if !self.caretakers.is_empty() => {}
                _ = term.recv() => self.stop("SIGTERM"),
                _ = int.recv() => self.stop("SIGINT"),
                () = tokio::time::sleep(IDLE_CHECK), if idle => {
                    if !self.socket_is_ours() {
                        tracing::info!(socket = %self.socket.display(), "socket removed; hook supervisor exits");
                        return Ok(());
                    }
                    if idle_since.elapsed() >= self.linger {
                        tracing::info!(untaken = self.execs.len(),
                            "no HEM and no hook for the linger time; hook supervisor exits");
                        return Ok(());
                    }
                }
            }
            self.flush();
        }
    }

    /// Records what a hook's task returned.
    fn joined(&mut self, joined: Joined) {
        match joined {
            Ok((id, (uid, outcome))) => {
                self.hook_uids.remove(&id);
                self.finished(uid, outcome);
            }
            Err(e) => {
                // Not expected: the executor turns every problem into an outcome.
                if let Some(uid) = self.hook_uids.remove(&e.id()) {
                    tracing::error!(%uid, "a hook task failed: {e}");
                    let outcome = ExecOutcome::start_failure(
                        format!("the hook supervisor lost the hook: {e}"),
                        SystemTime::now(),
                    );
                    self.finished(uid, outcome);
                }
            }
        }
    }

    fn socket_is_ours(&self) -> bool {
        std::fs::metadata(&self.socket).is_ok_and(|m| m.ino() == self.inode)
    }

    fn stop(&mut self, why: &str) {
        if !self.stopping {
            tracing::info!(
                reason = why,
                running = self.hooks.len(),
                "hook supervisor stopping; running hooks are killed"
            );
        }
        self.stopping = true;
        self.cancel.send_replace(true);
    }

    fn connect(&mut self, stream: UnixStream) {
        if self.connections.len() >= MAX_CONNECTIONS {
            tracing::warn!(max = MAX_CONNECTIONS, "too many connections; one refused");
            return;
        }
        let id = self.next_connection;
        self.next_connection += 1;
        let (read, write) = stream.into_split();
        let mut read = tokio::io::BufReader::with_capacity(64 << 10, read);
        let (frames, rx) = mpsc::unbounded_channel();
        tokio::spawn(super::write_frames(write, rx));
        let events = self.events_tx.clone();
        let reader = tokio::spawn(async move {
            loop {
                let event = match frame::read_frame(&mut read, frame::MAX_TO_SUPERVISOR).await {
                    Ok(Some(body)) => match ToSupervisor::decode(&body) {
                        Ok(f) => Event::Frame(id, Box::new(f)),
                        Err(e) => Event::Closed(id, Some(e)),
                    },
                    Ok(None) => Event::Closed(id, None),
                    Err(e) => Event::Closed(id, Some(e)),
                };
                let closed = matches!(event, Event::Closed(..));
                if events.send(event).is_err() || closed {
                    return;
                }
            }
        })
        .abort_handle();
        self.connections.insert(
            id,
            Connection {
                frames,
                executor: LocalExecutor::new(Duration::ZERO),
                reader,
                bus: None,
                said_bye: false,
            },
        );
    }

    fn handle(&mut self, event: Event, batch: &mut Option<SpawnBatch>) {
        match event {
            Event::Closed(id, error) => {
                if let Some(c) = self.connections.remove(&id) {
                    c.reader.abort();
                    if let (Some(bus), false) = (c.bus, c.said_bye) {
                        self.adopt(id, bus);
                    }
                }
                match error {
                    Some(e) => tracing::warn!(connection = id, error = %e,
                        "bad frame from the HEM; connection closed"),
                    None => tracing::info!(
                        connection = id,
                        running = self.hooks.len(),
                        "HEM disconnected"
                    ),
                }
            }
            Event::Frame(id, frame) => self.frame(id, *frame, batch),
        }
    }

    fn frame(&mut self, id: u64, frame: ToSupervisor, batch: &mut Option<SpawnBatch>) {
        match frame {
            ToSupervisor::Hello { env, bus } => {
                let env = env
                    .into_iter()
                    .map(|(k, v)| (k, std::ffi::OsString::from_vec(v)))
                    .collect();
                let mut running = Vec::new();
                let mut finished = Vec::new();
                for (uid, exec) in &self.execs {
                    match exec.state {
                        Entry::Running { .. } => running.push(uid.clone()),
                        Entry::Finished { .. } => finished.push(uid.clone()),
                    }
                }
                tracing::info!(
                    connection = id,
                    running = running.len(),
                    untaken = finished.len(),
                    "HEM connected"
                );
                if let Some(c) = self.connections.get_mut(&id) {
                    c.executor = LocalExecutor::new(Duration::ZERO).with_env(env);
                    c.bus = bus;
                }
                self.send(
                    id,
                    &FromSupervisor::Welcome {
                        pid: std::process::id(),
                        running,
                        finished,
                    },
                );
            }
            ToSupervisor::Spawn(req) => self.spawn(id, req, batch),
            ToSupervisor::Taken { uids } => {
                for uid in uids {
                    if matches!(
                        self.execs.get(&uid),
                        Some(Exec {
                            state: Entry::Finished { .. },
                            ..
                        })
                    ) {
                        self.execs.remove(&uid);
                    }
                }
            }
            ToSupervisor::Bye => {
                if let Some(c) = self.connections.get_mut(&id) {
                    c.said_bye = true;
                }
                self.stop("the HEM stopped")
            }
        }
    }

    /// Starts the execution `req` asks for, within `batch` (begun by the first spawn of a
    /// wake-up), unless the supervisor has it already or is stopping.
    fn spawn(&mut self, id: u64, req: SpawnRequest, batch: &mut Option<SpawnBatch>) {
        match self.execs.get_mut(&req.uid).map(|e| &mut e.state) {
            // The HEM restarted and asks for an execution this supervisor already has.
            Some(Entry::Running { owner, .. }) => {
                *owner = Some(id);
                return;
            }
            Some(Entry::Finished { outcome }) => {
                let frame = FromSupervisor::Finished {
                    uid: req.uid,
                    outcome: outcome.clone(),
                };
                self.send(id, &frame);
                return;
            }
            None => {}
        }
        if self.stopping {
            let outcome = ExecOutcome::start_failure(STOPPING, SystemTime::now());
            self.send(
                id,
                &FromSupervisor::Finished {
                    uid: req.uid,
                    outcome,
                },
            );
            return;
        }
        let Some(connection) = self.connections.get(&id) else {
            return;
        };
        let uid = req.uid.clone();
        let request = ExecRequest {
            argv: req.argv,
            stdin: req.stdin,
            timeout: req.timeout,
            output_cap: req.output_cap,
        };
        let batch = batch.get_or_insert_with(|| {
            SpawnBatch::begin()
                .reaped_by(&self.reaper)
                .open_files(self.hook_open_files)
        });
        let started = connection.executor.start(request, req.kill_grace, batch);
        self.execs.insert(
            uid.clone(),
            Exec {
                state: Entry::Running {
                    owner: Some(id),
                    adopted: None,
                },
                origin: id,
                record: req.record,
            },
        );
        match started {
            Ok(hook) => {
                let mut cancel = self.cancel.subscribe();
                let task_uid = uid.clone();
                let handle = self.hooks.spawn(async move {
                    let cancelled = async move {
                        let _ = cancel.wait_for(|c| *c).await;
                    };
                    (task_uid, hook.finish(cancelled).await)
                });
                self.hook_uids.insert(handle.id(), uid);
            }
            // It never ran: its outcome is its start failure.
            Err(outcome) => self.finished(uid, outcome),
        }
    }

    fn finished(&mut self, uid: String, outcome: ExecOutcome) {
        let Some(exec) = self.execs.get_mut(&uid) else {
            return;
        };
        let (owner, adopted) = match &mut exec.state {
            Entry::Running { owner, adopted } => (*owner, adopted.take()),
            Entry::Finished { .. } => (None, None),
        };
        if let Some(caretaker) = adopted {
            // The caretaker reports it; a HEM that attached meanwhile gets it too, and only
            // the one the start marker names records it.
            let _ = caretaker.send((uid.clone(), outcome.clone()));
            if owner.is_none() {
                self.execs.remove(&uid);
            }
        }
        if let Some(owner) = owner {
            self.send(
                owner,
                &FromSupervisor::Finished {
                    uid: uid.clone(),
                    outcome: outcome.clone(),
                },
            );
        }
        if let Some(exec) = self.execs.get_mut(&uid) {
            exec.state = Entry::Finished { outcome };
        }
    }

    /// The distributed-mode HEM of connection `id` went away without `Bye` (it died): a
    /// caretaker finishes its executions, those still running and those ended but not yet
    /// taken, which the HEM may not have reported.
    fn adopt(&mut self, id: u64, bus: BusContext) {
        let (outcomes_tx, outcomes) = mpsc::unbounded_channel();
        let mut orphans = Vec::new();
        let mut untaken = Vec::new();
        for (uid, exec) in &mut self.execs {
            let Some(record) = exec.record.clone() else {
                continue;
            };
            match &mut exec.state {
                Entry::Running { owner, adopted } if *owner == Some(id) => {
                    *owner = None;
                    *adopted = Some(outcomes_tx.clone());
                    orphans.push(Orphan {
                        record,
                        outcome: None,
                    });
                }
                Entry::Finished { outcome } if exec.origin == id => {
                    untaken.push(uid.clone());
                    orphans.push(Orphan {
                        record,
                        outcome: Some(outcome.clone()),
                    });
                }
                _ => {}
            }
        }
        for uid in untaken {
            self.execs.remove(&uid);
        }
        if orphans.is_empty() {
            return;
        }
        self.caretakers
            .spawn(caretaker::care(bus, orphans, outcomes, self.linger));
    }

    /// Queues `frame` for connection `id`; [`flush`](Self::flush) writes it at the end of the
    /// wake-up.
    fn send(&mut self, id: u64, frame: &FromSupervisor) {
        match self.outbox.iter_mut().find(|(c, _)| *c == id) {
            Some((_, bytes)) => bytes.extend_from_slice(&frame.encode()),
            None => self.outbox.push((id, frame.encode())),
        }
    }

    /// Hands each connection the frames of this wake-up, in the order they were produced, as
    /// one buffer. A connection that closed meanwhile gets nothing.
    fn flush(&mut self) {
        for (id, bytes) in self.outbox.drain(..) {
            if let Some(c) = self.connections.get(&id) {
                let _ = c.frames.send(bytes.into());
            }
        }
    }
}
