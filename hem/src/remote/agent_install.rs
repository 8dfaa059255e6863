//! Installing `onehem-agent` on a host over the same SSH connection: compare the remote
//! binary's SHA-256 with the local one, upload through an exec channel when they differ.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::connection::SshConnection;
use super::error::RemoteError;
use super::shell_quote::quote;

/// The agent binary the HEM installs, read once.
#[derive(Debug)]
pub(crate) struct LocalAgent {
    pub path: PathBuf,
    pub bytes: Arc<Vec<u8>>,
    pub sha256_hex: String,
}

impl LocalAgent {
    pub async fn load(path: &Path) -> Result<LocalAgent, RemoteError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| RemoteError::Config {
                message: format!(
                    "cannot read the agent binary {}: {}",
                    path.display(),
                    super::error::io_text(&e)
                ),
            })?;
        let sha256_hex = hex::encode(Sha256::digest(&bytes));
        Ok(LocalAgent {
            path: path.to_path_buf(),
            bytes: Arc::new(bytes),
            sha256_hex,
        })
    }
}

/// Makes sure `agent_path` on the host is the local binary. Returns whether it was uploaded.
pub(crate) async fn ensure_installed(
    conn: &SshConnection,
    agent_path: &str,
    local: &LocalAgent,
    limit: Duration,
) -> Result<bool, RemoteError> {
    let host = conn.target.name.clone();
    let check = conn
        .exec_capture(
            &format!("sha256sum -- {} 2>/dev/null", quote(agent_path)),
            None,
            4096,
            limit,
        )
        .await?;
    let remote_hex = String::from_utf8_lossy(&check.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    if check.code == Some(0) && remote_hex == local.sha256_hex {
        return Ok(false);
    }
    let dir = match agent_path.rsplit_once('/') {
        Some((d, _)) if !d.is_empty() => d,
        _ => "/",
    };
    // A temporary name and a rename, so an agent starting meanwhile never runs half a file.
    let q = quote(agent_path);
    let script = format!(
        "umask 022 && mkdir -p {d} && cat > {q}.tmp.$$ && chmod 755 {q}.tmp.$$ && mv -f {q}.tmp.$$ {q}",
        d = quote(dir)
    );
    let upload_limit = limit.max(Duration::from_secs(60));
    let out = conn
        .exec_capture(
            &script,
            Some(local.bytes.as_ref().clone()),
            4096,
            upload_limit,
        )
        .await?;
    if out.code != Some(0) {
        return Err(RemoteError::Agent {
            host,
            message: format!(
                "installing {} failed (status {:?}): {}",
                agent_path,
                out.code,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    tracing::info!(host = %conn.target.name, path = agent_path, local = %local.path.display(),
        sha256 = %local.sha256_hex, "installed onehem-agent");
    Ok(true)
}
