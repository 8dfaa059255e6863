//! The HEM's side of the hook supervisor: connects to the one serving its socket (starting it
//! when none answers), hands it each local execution and waits for the outcome, and tells it
//! which outcomes the state DB holds.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

use super::frame::{self, BusContext, FromSupervisor, SpawnRequest, ToSupervisor};
use super::{BUSY, Outgoing, READY};
use crate::config::Config;
use crate::execution::ResultContext;
use crate::executor::{ExecOutcome, ExecRequest};

/// The start failure text of an execution whose supervisor went away while it ran.
pub const SUPERVISOR_LOST: &str =
    "the hook supervisor stopped while the hook ran; how the hook ended is not known";

/// How long connecting, starting a supervisor and its greeting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Times a HEM tries to reach or start its supervisor before it gives up.
const CONNECT_ATTEMPTS: usize = 20;

/// How the HEM reaches its supervisor.
#[derive(Clone, Debug)]
pub struct SupervisorSettings {
    pub socket: PathBuf,
    /// The `onehem-server` binary, started with `--supervisor` when none answers.
    pub program: PathBuf,
    /// How long a supervisor without HEM and without hooks waits before it exits.
    pub linger: Duration,
    pub kill_grace: Duration,
    pub output_cap: usize,
    /// Variables every hook gets.
    pub env: Vec<(String, OsString)>,
    /// In the distributed mode: the bus, so that the supervisor can finish this HEM's
    /// executions if it dies.
    pub bus: Option<BusContext>,
}

/// What the supervisor said when the HEM connected at its start.
#[derive(Debug, Default)]
pub struct Welcome {
    /// A supervisor was already running: it outlived the previous HEM.
    pub found: bool,
    pub pid: u32,
    pub running: HashSet<String>,
    pub finished: HashSet<String>,
}

impl Welcome {
    /// Whether the supervisor has this execution, running or finished.
    pub fn knows(&self, uid: &str) -> bool {
        self.running.contains(uid) || self.finished.contains(uid)
    }
}

/// A handle to the supervisor; cheap to clone.
#[derive(Clone, Debug)]
pub struct Supervised {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: SupervisorSettings,
    current: Mutex<Option<Arc<Connection>>>,
    /// Held while a connection is made, so that one HEM starts one supervisor at a time.
    connecting: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct Connection {
    frames: mpsc::UnboundedSender<Outgoing>,
    /// Executions waiting for their outcome, and whether the connection is gone (then no
    /// waiter may be added: nobody would answer it).
    waiters: Mutex<Waiters>,
    closed: AtomicBool,
    /// The HEM said `Bye`: the supervisor closing the connection is expected.
    leaving: AtomicBool,
}

#[derive(Debug, Default)]
struct Waiters {
    closed: bool,
    by_uid: HashMap<String, oneshot::Sender<ExecOutcome>>,
}

impl SupervisorSettings {
    /// The settings of the HEM configured by `config`: its supervisor's socket beside
    /// `state_db`, hooks with `env`, and in the distributed mode the `bus`.
    pub fn of_hem(
        config: &Config,
        env: Vec<(String, OsString)>,
        bus: Option<BusContext>,
    ) -> SupervisorSettings {
        SupervisorSettings {
            socket: super::socket_path(&config.state_db),
            program: config.supervisor_program.clone(),
            linger: config.supervisor_linger,
            kill_grace: config.kill_grace,
            output_cap: config.output_cap,
            env,
            bus,
        }
    }
}

impl Supervised {
    /// [`start`](Self::start) for the HEM's own supervisor, logging what it found.
    pub async fn start_for_hem(
        settings: SupervisorSettings,
    ) -> anyhow::Result<(Supervised, Welcome)> {
        let socket = settings.socket.clone();
        let (supervised, welcome) = Supervised::start(settings)
            .await
            .context("cannot start the hook supervisor")?;
        tracing::info!(
            socket = %socket.display(),
            supervisor_pid = welcome.pid,
            found = welcome.found,
            running = welcome.running.len(),
            untaken = welcome.finished.len(),
            "hook supervisor connected"
        );
        Ok((supervised, welcome))
    }

    /// Connects to the supervisor serving `settings.socket`, starting one if none answers.
    pub async fn start(settings: SupervisorSettings) -> anyhow::Result<(Supervised, Welcome)> {
        // A supervisor that outlived an earlier version may have left its files readable.
        let socket = &settings.socket;
        for path in [
            socket.clone(),
            socket.with_extension("lock"),
            super::log_path(socket),
        ] {
            match one_wal::private_files::restrict(&path) {
                Ok(tightened) => tightened.log(),
                Err(e) => tracing::warn!(error = %e, "cannot make a hook supervisor file private"),
            }
        }
        let inner = Arc::new(Inner {
            settings,
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        });
        let welcome = inner.connect().await?;
        Ok((Supervised { inner }, welcome))
    }

    /// Whether spawns carry their record context (the distributed mode), for the supervisor
    /// to report them if this HEM dies.
    pub fn reports_for_the_dead(&self) -> bool {
        self.inner.settings.bus.is_some()
    }

    /// Runs one execution under the supervisor (or attaches to it, when the supervisor already
    /// has `uid`). Never fails: every problem becomes an outcome.
    pub async fn run(
        &self,
        uid: &str,
        req: ExecRequest,
        record: Option<ResultContext>,
    ) -> ExecOutcome {
        let started = SystemTime::now();
        let conn = match self.inner.connection().await {
            Ok(c) => c,
            Err(e) => {
                return ExecOutcome::start_failure(
                    format!("cannot reach the hook supervisor: {e:#}"),
                    started,
                );
            }
        };
        let (tx, rx) = oneshot::channel();
        {
            let Ok(mut waiters) = conn.waiters.lock() else {
                return ExecOutcome::start_failure(SUPERVISOR_LOST, started);
            };
            if waiters.closed {
                return ExecOutcome::start_failure(SUPERVISOR_LOST, started);
            }
            waiters.by_uid.insert(uid.to_string(), tx);
        }
        let frame = ToSupervisor::Spawn(SpawnRequest {
            uid: uid.to_string(),
            argv: req.argv,
            stdin: req.stdin,
            timeout: req.timeout,
            kill_grace: self.inner.settings.kill_grace,
            output_cap: req.output_cap,
            record,
        });
        // A failed send means the connection is gone; its reader then drops the waiter.
        let _ = conn.frames.send(frame.encode().into());
        rx.await
            .unwrap_or_else(|_| ExecOutcome::start_failure(SUPERVISOR_LOST, started))
    }

    /// Tells the supervisor these outcomes are in the state DB, so it forgets them. Never
    /// blocks; uids the supervisor does not hold are ignored by it.
    pub fn taken(&self, uids: Vec<String>) {
        if uids.is_empty() {
            return;
        }
        if let Some(conn) = self.inner.current() {
            let _ = conn
                .frames
                .send(ToSupervisor::Taken { uids }.encode().into());
        }
    }

    /// Tells the supervisor that the HEM stops cleanly: it kills what still runs and exits.
    /// Waits (at most a few seconds) until the frame is written.
    pub async fn bye(&self) {
        if let Some(conn) = self.inner.current() {
            conn.leaving.store(true, Ordering::SeqCst);
            let (written, done) = oneshot::channel();
            let bye = Outgoing {
                bytes: ToSupervisor::Bye.encode(),
                written: Some(written),
            };
            if conn.frames.send(bye).is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(5), done).await;
            }
        }
    }
}

impl Inner {
    fn current(&self) -> Option<Arc<Connection>> {
        self.current
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .filter(|c| !c.closed.load(Ordering::SeqCst))
    }

    /// The live connection, or a new one (a supervisor started if needed).
    async fn connection(self: &Arc<Self>) -> anyhow::Result<Arc<Connection>> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let _guard = self.connecting.lock().await;
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let welcome = self.connect().await?;
        tracing::warn!(
            supervisor_pid = welcome.pid,
            "reconnected to the hook supervisor"
        );
        self.current()
            .context("the hook supervisor closed the connection at once")
    }

    /// Connects (starting a supervisor when none answers), greets, and installs the
    /// connection as the current one.
    async fn connect(self: &Arc<Self>) -> anyhow::Result<Welcome> {
        let socket = &self.settings.socket;
        let mut started_one = false;
        let mut last_error = None;
        for _ in 0..CONNECT_ATTEMPTS {
            match tokio::time::timeout(CONNECT_TIMEOUT, self.greet()).await {
                Ok(Ok((stream, mut welcome))) => {
                    welcome.found = !started_one;
                    self.install(stream);
                    return Ok(welcome);
                }
                Ok(Err(e)) => last_error = Some(e),
                Err(_) => {
                    last_error = Some(anyhow::anyhow!("no greeting within {CONNECT_TIMEOUT:?}"))
                }
            }
            match self.launch().await {
                Ok(Launched::Ready) => started_one = true,
                Ok(Launched::Busy) => {
                    // Another supervisor holds the lock: it is starting or stopping.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error
            .unwrap_or_else(|| anyhow::anyhow!("no answer"))
            .context(format!(
                "cannot reach a hook supervisor on {}",
                socket.display()
            )))
    }

    /// Connects and exchanges `Hello` and `Welcome`.
    async fn greet(&self) -> anyhow::Result<(UnixStream, Welcome)> {
        let mut stream = UnixStream::connect(&self.settings.socket).await?;
        let env = self
            .settings
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
            .collect();
        stream
            .write_all(
                &ToSupervisor::Hello {
                    env,
                    bus: self.settings.bus.clone(),
                }
                .encode(),
            )
            .await?;
        let body = frame::read_frame(&mut stream, self.max_frame())
            .await?
            .context("the supervisor closed the connection before its greeting")?;
        match FromSupervisor::decode(&body)? {
            FromSupervisor::Welcome {
                pid,
                running,
                finished,
            } => Ok((
                stream,
                Welcome {
                    found: true,
                    pid,
                    running: running.into_iter().collect(),
                    finished: finished.into_iter().collect(),
                },
            )),
            other => anyhow::bail!("the supervisor greeted with {other:?}"),
        }
    }

    fn max_frame(&self) -> usize {
        self.settings
            .output_cap
            .saturating_mul(2)
            .saturating_add(frame::OUTCOME_OVERHEAD)
    }

    /// Starts a supervisor process and waits until it listens (or says another one does).
    async fn launch(&self) -> anyhow::Result<Launched> {
        let socket = &self.settings.socket;
        let log = super::log_path(socket);
        let (stderr, tightened) = one_wal::private_files::open_log(&log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        tightened.log();
        let mut child = tokio::process::Command::new(&self.settings.program)
            .arg("--supervisor")
            .arg("--socket")
            .arg(socket)
            .arg("--linger")
            .arg(self.settings.linger.as_secs().to_string())
            .args(
                crate::remote::hook_open_files_limit()
                    .map(|soft| format!("--hook-open-files={soft}")),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start the hook supervisor {}",
                    self.settings.program.display()
                )
            })?;
        let stdout = child
            .stdout
            .take()
            .context("the supervisor has no stdout pipe")?;
        let mut line = String::new();
        let mut stdout = BufReader::new(stdout);
        let said = tokio::time::timeout(CONNECT_TIMEOUT, stdout.read_line(&mut line)).await;
        let pid = child.id();
        // The supervisor outlives this HEM if need be; while the HEM lives it reaps it.
        tokio::spawn(async move {
            match child.wait().await {
                Ok(status) if status.success() => {
                    tracing::debug!(pid, "hook supervisor exited")
                }
                Ok(status) => tracing::warn!(pid, %status, "hook supervisor exited"),
                Err(e) => tracing::warn!(pid, error = %e, "cannot wait for the hook supervisor"),
            }
        });
        match said {
            Ok(Ok(_)) if line.trim() == READY => {
                tracing::info!(pid, socket = %socket.display(), "hook supervisor started");
                Ok(Launched::Ready)
            }
            Ok(Ok(_)) if line.trim() == BUSY => Ok(Launched::Busy),
            Ok(_) => anyhow::bail!("the hook supervisor did not start (see {})", log.display()),
            Err(_) => anyhow::bail!(
                "the hook supervisor did not get ready within {CONNECT_TIMEOUT:?} (see {})",
                log.display()
            ),
        }
    }

    /// Makes `stream` the current connection, with its reader and writer tasks.
    fn install(self: &Arc<Self>, stream: UnixStream) {
        let (read, write) = stream.into_split();
        let mut read = BufReader::with_capacity(64 << 10, read);
        let (frames, rx) = mpsc::unbounded_channel::<Outgoing>();
        let conn = Arc::new(Connection {
            frames,
            waiters: Mutex::new(Waiters::default()),
            closed: AtomicBool::new(false),
            leaving: AtomicBool::new(false),
        });
        tokio::spawn(super::write_frames(write, rx));
        let max = self.max_frame();
        let reader_conn = conn.clone();
        tokio::spawn(async move {
            let error = loop {
                let body = match frame::read_frame(&mut read, max).await {
                    Ok(Some(body)) => body,
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                };
                match FromSupervisor::decode(&body) {
                    Ok(FromSupervisor::Finished { uid, outcome }) => {
                        let waiter = reader_conn
                            .waiters
                            .lock()
                            .ok()
                            .and_then(|mut w| w.by_uid.remove(&uid));
                        if let Some(waiter) = waiter {
                            let _ = waiter.send(outcome);
                        }
                    }
                    Ok(other) => {
                        tracing::debug!(frame = ?other, "unexpected frame from the hook supervisor")
                    }
                    Err(e) => break Some(e),
                }
            };
            reader_conn.closed.store(true, Ordering::SeqCst);
            let lost = match reader_conn.waiters.lock() {
                Ok(mut w) => {
                    w.closed = true;
                    std::mem::take(&mut w.by_uid).len()
                }
                Err(_) => 0,
            };
            match error {
                Some(e) => tracing::error!(error = %e, running = lost,
                    "bad frame from the hook supervisor; connection closed"),
                None if reader_conn.leaving.load(Ordering::SeqCst) => {
                    tracing::debug!("the hook supervisor closed its connection after Bye")
                }
                None => {
                    tracing::error!(running = lost, "the hook supervisor closed its connection")
                }
            }
        });
        if let Ok(mut current) = self.current.lock() {
            *current = Some(conn);
        }
    }
}

enum Launched {
    Ready,
    Busy,
}
