//! Remote execution on the hypervisor hosts.
//!
//! One persistent SSH connection per host (russh), opened on the first hook for that host,
//! kept alive, reopened with backoff after a failure. Host keys are checked against
//! known_hosts and never learned. Each host runs at most `max_per_host` hooks at once, so a
//! slow or dead host only holds up its own hooks, and a connection attempt is bounded by the
//! connect timeout.
//!
//! Two modes, chosen per host: `ssh` runs each hook in its own exec channel through the login
//! shell with every word quoted; `agent` starts `onehem-agent --stdio` once per connection and
//! multiplexes hooks over its frames (no shell, process-group kill on the host). In both modes
//! the command must lie below the host's hook directory.

// Errors carry the host, the endpoint and the host key details for the failure record; they
// are built once per failed hook, so their size does not matter.
#![allow(clippy::result_large_err)]

mod agent_install;
mod agent_link;
mod command_path;
mod config;
mod connection;
mod error;
mod hook_sync;
mod host_pool;
pub mod known_hosts;
pub mod shell_quote;
mod ssh_exec;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use tokio::sync::OnceCell;

pub use command_path::{CommandRefused, map_command};
pub use config::{ExecMode, HostEntry, RemoteConfig};
pub use error::RemoteError;
pub use hook_sync::SyncReport;

use agent_install::LocalAgent;
use agent_link::{AgentLink, AgentStart};
use config::{HostTarget, Settings};
pub use host_pool::HostState;
use host_pool::{HostSlot, Live};

use crate::executor::{ExecOutcome, ExecRequest};

/// The soft limit of open files the HEM was started with, when it raised it.
static STARTED_WITH: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// Raises the soft limit of open files to the hard limit (an unlimited one capped at 2^20, as
/// the kernel refuses more than `fs.nr_open`): every host holds a socket, so a thousand hosts
/// need more than the usual soft limit of 1,024. Processes started afterwards inherit it, so
/// the limit it replaced is kept for the hooks ([`hook_open_files_limit`]). Returns the limits
/// before and after when it changed.
pub fn raise_open_files_limit() -> std::io::Result<Option<(u64, u64)>> {
    let raised = one_exec::raise_open_files_limit(1 << 20)?;
    if let Some((before, _)) = raised {
        let _ = STARTED_WITH.set(before);
    }
    Ok(raised)
}

/// The soft limit of open files hooks start with: the one the HEM was started with, when
/// [`raise_open_files_limit`] raised it; `None` when it was left as it was.
pub fn hook_open_files_limit() -> Option<u64> {
    STARTED_WITH.get().copied()
}

/// Runs hooks on hosts over SSH. Cheap to share: clone the `Arc` it lives in.
pub struct RemoteExecutor {
    settings: Arc<Settings>,
    hosts: Mutex<HashMap<String, Arc<HostSlot>>>,
    local_agent: OnceCell<Result<Arc<LocalAgent>, RemoteError>>,
    closed: AtomicBool,
}

impl RemoteExecutor {
    /// An executor; nothing connects until the first hook for a host.
    pub fn new(cfg: RemoteConfig) -> Self {
        for problem in cfg.problems() {
            tracing::warn!(problem = %problem, "remote configuration (default used instead)");
        }
        RemoteExecutor {
            settings: Arc::new(Settings::resolve(cfg)),
            hosts: Mutex::new(HashMap::new()),
            local_agent: OnceCell::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// Runs `req` on `host`. Never fails: a hook that could not run (unreachable host,
    /// refused host key, command outside the hook directory…) is an outcome with code 255 and
    /// the reason in `start_error`.
    pub async fn run(&self, host: &str, req: ExecRequest) -> ExecOutcome {
        let started = SystemTime::now();
        match self.execute(host, req).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::warn!(host, error = %e, "remote hook not run");
                ExecOutcome::start_failure(e.to_string(), started)
            }
        }
    }

    /// Like [`run`](Self::run), with the reason a hook did not run as a typed error.
    pub async fn execute(
        &self,
        host: &str,
        mut req: ExecRequest,
    ) -> Result<ExecOutcome, RemoteError> {
        let started = SystemTime::now();
        if self.closed.load(Ordering::SeqCst) {
            return Err(RemoteError::ShutDown);
        }
        if host.is_empty() {
            return Err(RemoteError::Config {
                message: "no remote host specified for a remote hook".into(),
            });
        }
        let slot = self.slot(host);
        let Some(command) = req.argv.first() else {
            return Err(RemoteError::Config {
                message: "empty command".into(),
            });
        };
        let mapped = map_command(command, &self.settings.global_base, &slot.target.base)?;
        req.argv[0] = mapped;
        let _permit = slot
            .permits
            .acquire()
            .await
            .map_err(|_| RemoteError::ShutDown)?;
        // A shutdown that raced with this call must not leave a new connection behind.
        if self.closed.load(Ordering::SeqCst) {
            return Err(RemoteError::ShutDown);
        }
        // A pooled connection may turn out dead only when a channel is opened on it; nothing
        // ran then, so one more attempt on a fresh connection is safe.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let live = slot.connection(&self.settings).await?;
            let result = match slot.target.mode {
                ExecMode::Ssh => {
                    ssh_exec::run(&live.ssh, &req, self.settings.kill_grace, started).await
                }
                ExecMode::Agent => match self.agent(&slot, &live).await {
                    Ok(link) => link.execute(&req, self.settings.kill_grace, started).await,
                    Err(e) => Err(e),
                },
            };
            match result {
                Err(RemoteError::Channel {
                    connection_lost: true,
                    ..
                }) if attempts < 2 => {
                    slot.discard(&live).await;
                }
                other => return other,
            }
        }
    }

    /// Copies the regular files below `local_dir` to `host`'s hook directory, sending only
    /// the files whose SHA-256 differs from the host's copy.
    pub async fn sync_hooks(
        &self,
        host: &str,
        local_dir: &Path,
    ) -> Result<SyncReport, RemoteError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(RemoteError::ShutDown);
        }
        let dir = local_dir.to_path_buf();
        let local = tokio::task::spawn_blocking(move || hook_sync::list_local(&dir))
            .await
            .map_err(|e| RemoteError::Config {
                message: format!("listing {}: {e}", local_dir.display()),
            })?
            .map_err(|e| RemoteError::Config {
                message: format!(
                    "cannot read hook directory {}: {}",
                    local_dir.display(),
                    error::io_text(&e)
                ),
            })?;
        let slot = self.slot(host);
        let live = slot.connection(&self.settings).await?;
        let limit = self
            .settings
            .connect_timeout
            .max(std::time::Duration::from_secs(30));
        let link = match slot.target.mode {
            ExecMode::Agent => Some(self.agent(&slot, &live).await?),
            ExecMode::Ssh => None,
        };
        let remote = match &link {
            Some(l) => hook_sync::remote_sums_agent(l).await?,
            None => hook_sync::remote_sums_ssh(&live.ssh, &slot.target.base, limit).await?,
        };
        let mut report = SyncReport::default();
        for file in local {
            if remote.get(&file.path) == Some(&file.sha256) {
                report.unchanged += 1;
                continue;
            }
            let data = tokio::fs::read(&file.full)
                .await
                .map_err(|e| RemoteError::Config {
                    message: format!(
                        "cannot read {}: {}",
                        file.full.display(),
                        error::io_text(&e)
                    ),
                })?;
            match &link {
                Some(l) => l.put_file(&file.path, file.mode, data).await?,
                None => {
                    hook_sync::put_file_ssh(&live.ssh, &slot.target.base, &file, data, limit)
                        .await?;
                }
            }
            tracing::info!(host, file = %file.path, "hook synced");
            report.uploaded.push(file.path);
        }
        Ok(report)
    }

    /// Closes every connection (which stops the agents and, with them, their hooks). Later
    /// calls fail with [`RemoteError::ShutDown`].
    pub async fn shutdown(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let slots: Vec<Arc<HostSlot>> = self
            .hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .map(|(_, s)| s)
            .collect();
        for slot in slots {
            slot.permits.close();
            slot.close().await;
        }
    }

    /// Every host a hook ran on, with its connection state, by name.
    pub fn host_states(&self) -> Vec<HostState> {
        let slots: Vec<Arc<HostSlot>> = self
            .hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        let mut states: Vec<HostState> = slots.iter().map(|s| s.seen()).collect();
        states.sort_by(|a, b| a.name.cmp(&b.name));
        states
    }

    fn slot(&self, host: &str) -> Arc<HostSlot> {
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(hosts.entry(host.to_string()).or_insert_with(|| {
            let target: HostTarget = self.settings.target(host);
            let max_running = target.max_running;
            Arc::new(HostSlot::new(target, max_running))
        }))
    }

    /// The agent of a connection, started (and installed first, if configured) when missing
    /// or dead.
    async fn agent(&self, slot: &HostSlot, live: &Live) -> Result<Arc<AgentLink>, RemoteError> {
        let mut current = live.agent.lock().await;
        if let Some(link) = current.as_ref()
            && link.is_alive()
        {
            return Ok(Arc::clone(link));
        }
        let s = &self.settings;
        // Starting an agent forks a session and a process on the host: it takes a turn to
        // open a host, like the connection before it.
        let _turn = s
            .opening
            .acquire()
            .await
            .map_err(|_| RemoteError::ShutDown)?;
        if s.install_agent {
            let local = self.local_agent().await?;
            agent_install::ensure_installed(&live.ssh, &s.agent_path, &local, s.connect_timeout)
                .await?;
        }
        let link = AgentLink::start(
            &live.ssh,
            &AgentStart {
                agent_path: &s.agent_path,
                base: &slot.target.base,
                kill_grace: s.kill_grace,
                hello_timeout: s.connect_timeout,
            },
        )
        .await?;
        if link.hello.version != env!("CARGO_PKG_VERSION") {
            tracing::warn!(host = %slot.target.name, agent_version = %link.hello.version,
                hem_version = env!("CARGO_PKG_VERSION"), "onehem-agent version differs");
        }
        tracing::info!(host = %slot.target.name, agent_pid = link.hello.pid,
            agent_version = %link.hello.version, "onehem-agent started");
        *current = Some(Arc::clone(&link));
        Ok(link)
    }

    async fn local_agent(&self) -> Result<Arc<LocalAgent>, RemoteError> {
        self.local_agent
            .get_or_init(|| async {
                match &self.settings.agent_binary {
                    Some(p) => LocalAgent::load(p).await.map(Arc::new),
                    None => Err(RemoteError::Config {
                        message: "install_agent is set but no agent_binary is known".into(),
                    }),
                }
            })
            .await
            .clone()
    }
}
