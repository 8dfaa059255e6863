//! `onehem-server sync-hooks`: copies the front-end's hook directory to hosts, sending only the
//! files whose SHA-256 differs from the host's copy (like `onehost sync`), and says per host what
//! it did. Hosts are reached exactly as remote hooks are (the `remote` section and its host map);
//! files present only on a host are left alone.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::config::Config;
use crate::remote::{RemoteError, RemoteExecutor, SyncReport};

/// Hosts synced at once.
const PARALLEL_HOSTS: usize = 8;

/// Which hosts to sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncHosts {
    /// Every host of the `remote.hosts` map.
    All,
    /// These hosts, by their cloud name.
    Named(Vec<String>),
}

/// What to sync where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncRequest {
    /// The local directory; `None` is the configured `hook_base_path`.
    pub dir: Option<PathBuf>,
    pub hosts: SyncHosts,
}

/// Why nothing was synced at all.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("--all: the remote.hosts map of the configuration lists no host")]
    NoHostsInMap,
    #[error("no host given")]
    NoHosts,
    #[error("{dir} is not a directory")]
    NotADirectory { dir: PathBuf },
}

/// The outcome on one host.
#[derive(Debug)]
pub struct HostSync {
    pub host: String,
    pub result: Result<SyncReport, RemoteError>,
}

/// Syncs every requested host (a few at a time) and returns their outcomes in request order.
pub async fn sync_hooks(
    config: &Config,
    request: &SyncRequest,
) -> Result<Vec<HostSync>, SyncError> {
    let hosts: Vec<String> = match &request.hosts {
        SyncHosts::All if config.remote.hosts.is_empty() => return Err(SyncError::NoHostsInMap),
        SyncHosts::All => config.remote.hosts.keys().cloned().collect(),
        SyncHosts::Named(names) if names.is_empty() => return Err(SyncError::NoHosts),
        SyncHosts::Named(names) => names.clone(),
    };
    let dir = request
        .dir
        .clone()
        .unwrap_or_else(|| config.hook_base_path.clone());
    if !dir.is_dir() {
        return Err(SyncError::NotADirectory { dir });
    }
    let executor = Arc::new(RemoteExecutor::new(config.remote.clone()));
    let dir = Arc::new(dir);
    let permits = Arc::new(Semaphore::new(PARALLEL_HOSTS));
    let mut tasks = JoinSet::new();
    for (index, host) in hosts.iter().enumerate() {
        let (executor, dir, permits, host) = (
            Arc::clone(&executor),
            Arc::clone(&dir),
            Arc::clone(&permits),
            host.clone(),
        );
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let result = executor.sync_hooks(&host, &dir).await;
            (index, HostSync { host, result })
        });
    }
    let mut done: Vec<Option<HostSync>> = hosts.iter().map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, outcome)) => done[index] = Some(outcome),
            Err(e) => tracing::error!(error = %e, "a host sync task failed"),
        }
    }
    executor.shutdown().await;
    // A task that died leaves its host without an outcome: it is reported as failed.
    Ok(hosts
        .into_iter()
        .zip(done)
        .map(|(host, outcome)| {
            outcome.unwrap_or_else(|| HostSync {
                host,
                result: Err(RemoteError::Config {
                    message: "the sync task stopped unexpectedly".into(),
                }),
            })
        })
        .collect())
}

/// One line per host: `HOST: uploaded N, unchanged M[: FILE, …]` or `HOST: failed: REASON`.
/// Returns the number of hosts that failed.
pub fn print_report(outcomes: &[HostSync], out: &mut dyn Write) -> std::io::Result<usize> {
    let mut failed = 0;
    for o in outcomes {
        match &o.result {
            Ok(r) if r.uploaded.is_empty() => {
                writeln!(out, "{}: uploaded 0, unchanged {}", o.host, r.unchanged)?;
            }
            Ok(r) => writeln!(
                out,
                "{}: uploaded {}, unchanged {}: {}",
                o.host,
                r.uploaded.len(),
                r.unchanged,
                r.uploaded.join(", ")
            )?,
            Err(e) => {
                failed += 1;
                writeln!(out, "{}: failed: {e}", o.host)?;
            }
        }
    }
    Ok(failed)
}

/// The `sync-hooks` command: syncs, prints the report on `out`, and fails when a host failed.
pub async fn run(
    config: &Config,
    request: &SyncRequest,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let outcomes = sync_hooks(config, request).await?;
    let failed = print_report(&outcomes, out)?;
    out.flush()?;
    if failed > 0 {
        anyhow::bail!("{failed} of {} hosts failed", outcomes.len());
    }
    Ok(())
}
