//! Copying the front-end's remote hook directory to a host, sending only the files whose
//! SHA-256 differs (like `onehost sync`). Files present only on the host are left alone.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::agent_link::AgentLink;
use super::connection::SshConnection;
use super::error::RemoteError;
use super::shell_quote::quote;

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Files uploaded (relative paths), in order.
    pub uploaded: Vec<String>,
    /// Files already identical on the host.
    pub unchanged: usize,
}

/// One local file to compare.
#[derive(Debug, Clone)]
pub(crate) struct LocalFile {
    pub path: String,
    pub full: PathBuf,
    pub mode: u32,
    pub sha256: [u8; 32],
}

/// Regular files below `dir` (symlinks are not followed), with their checksums.
pub(crate) fn list_local(dir: &Path) -> io::Result<Vec<LocalFile>> {
    let mut out = Vec::new();
    walk(dir, "", 0, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<LocalFile>) -> io::Result<()> {
    if depth > 32 {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let meta = std::fs::symlink_metadata(entry.path())?;
        if meta.is_dir() {
            walk(&entry.path(), &rel, depth + 1, out)?;
        } else if meta.is_file() {
            let data = std::fs::read(entry.path())?;
            out.push(LocalFile {
                path: rel,
                full: entry.path(),
                mode: meta.mode() & 0o777,
                sha256: Sha256::digest(&data).into(),
            });
        }
    }
    Ok(())
}

/// Remote checksums through the agent.
pub(crate) async fn remote_sums_agent(
    link: &AgentLink,
) -> Result<HashMap<String, [u8; 32]>, RemoteError> {
    Ok(link
        .list_hooks()
        .await?
        .into_iter()
        .map(|e| (e.path, e.sha256))
        .collect())
}

/// Remote checksums through `find | sha256sum` over an exec channel.
pub(crate) async fn remote_sums_ssh(
    conn: &SshConnection,
    base: &str,
    limit: std::time::Duration,
) -> Result<HashMap<String, [u8; 32]>, RemoteError> {
    let script = format!(
        "cd {} 2>/dev/null || exit 0; find . -type f -exec sha256sum -- {{}} +",
        quote(base)
    );
    let out = conn.exec_capture(&script, None, 64 << 20, limit).await?;
    if out.code != Some(0) {
        return Err(RemoteError::Channel {
            host: conn.target.name.clone(),
            message: format!(
                "listing {base} failed (status {:?}): {}",
                out.code,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            connection_lost: false,
        });
    }
    Ok(parse_sha256sum(&String::from_utf8_lossy(&out.stdout)))
}

/// `<hex>  ./path` lines. Escaped names (a leading `\`) are skipped, so those files are sent.
fn parse_sha256sum(text: &str) -> HashMap<String, [u8; 32]> {
    let mut out = HashMap::new();
    for line in text.lines() {
        if line.starts_with('\\') {
            continue;
        }
        let Some((hexsum, path)) = line.split_once("  ") else {
            continue;
        };
        let mut sum = [0u8; 32];
        if hex::decode_to_slice(hexsum, &mut sum).is_err() {
            continue;
        }
        let path = path.strip_prefix("./").unwrap_or(path);
        out.insert(path.to_string(), sum);
    }
    out
}

/// Uploads one file through an exec channel: temporary name, mode, rename.
pub(crate) async fn put_file_ssh(
    conn: &SshConnection,
    base: &str,
    file: &LocalFile,
    data: Vec<u8>,
    limit: std::time::Duration,
) -> Result<(), RemoteError> {
    let target = format!("{}/{}", base.trim_end_matches('/'), file.path);
    let dir = match target.rsplit_once('/') {
        Some((d, _)) if !d.is_empty() => d.to_string(),
        _ => "/".to_string(),
    };
    let q = quote(&target);
    let script = format!(
        "mkdir -p {d} && cat > {q}.onehem-tmp.$$ && chmod {mode:o} {q}.onehem-tmp.$$ && mv -f {q}.onehem-tmp.$$ {q}",
        d = quote(&dir),
        mode = file.mode
    );
    let out = conn.exec_capture(&script, Some(data), 4096, limit).await?;
    if out.code != Some(0) {
        return Err(RemoteError::Channel {
            host: conn.target.name.clone(),
            message: format!(
                "writing {target} failed (status {:?}): {}",
                out.code,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            connection_lost: false,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sha256sum_output() {
        let h = "a".repeat(64);
        let text = format!("{h}  ./x/y.sh\n\\{h}  ./we\\nird\nbad line\n");
        let m = parse_sha256sum(&text);
        assert_eq!(m.len(), 1);
        assert_eq!(m["x/y.sh"], [0xaa; 32]);
    }

    #[test]
    fn lists_local_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("vm")).unwrap();
        std::fs::write(d.path().join("vm/a.sh"), "a").unwrap();
        std::fs::write(d.path().join("b"), "b").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("l")).unwrap();
        let l = list_local(d.path()).unwrap();
        let names: Vec<_> = l.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(names, ["b", "vm/a.sh"]);
    }
}
