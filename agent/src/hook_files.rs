//! The hook directory as files: the checksum listing the HEM compares with its own copy, and
//! the atomic upload of one file.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use one_proto::agent::{HookEntry, MAX_PUT_FILE_LEN};
use sha2::{Digest, Sha256};

use crate::base_path::{Base, io_error_text};

/// Directories deeper than this are not listed; a hook tree is never that deep, a symlink loop
/// or a runaway generator might be.
const MAX_DEPTH: usize = 32;

/// Marker in the names of files being uploaded, which the listing skips.
const TEMP_MARKER: &str = ".onehem-tmp.";

/// Lists every regular file below the base with its size, mode and SHA-256, sorted by path.
/// Symlinks are not followed, and names that are not UTF-8 are skipped.
pub fn list_hooks(base: &Base) -> Result<Vec<HookEntry>, String> {
    let mut entries = Vec::new();
    walk(base.root(), "", 0, &mut entries)
        .map_err(|e| format!("{} - {}", io_error_text(&e), base.configured().display()))?;
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<HookEntry>) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.contains(TEMP_MARKER) {
            continue;
        }
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        // A file that vanishes between read_dir and stat is simply not listed.
        let Ok(meta) = fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if meta.is_dir() {
            walk(&entry.path(), &rel, depth + 1, out)?;
        } else if meta.is_file() {
            let Ok(sha256) = sha256_file(&entry.path()) else {
                continue;
            };
            out.push(HookEntry {
                path: rel,
                size: meta.len(),
                mode: meta.mode() & 0o7777,
                sha256,
            });
        }
    }
    Ok(())
}

/// SHA-256 of a file's content.
pub fn sha256_file(path: &Path) -> io::Result<[u8; 32]> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

/// Writes `data` to `relative` below the base: a temporary file in the same directory, then a
/// rename, so a hook starting meanwhile sees the old or the new file, never half of one.
/// Set-id bits are dropped from `mode`.
pub fn put_file(base: &Base, relative: &str, mode: u32, data: &[u8]) -> Result<(), String> {
    if data.len() > MAX_PUT_FILE_LEN {
        return Err(format!(
            "{relative}: {} bytes exceed the upload limit of {MAX_PUT_FILE_LEN} bytes",
            data.len()
        ));
    }
    let (parent, name) = base.resolve_new_file(relative).map_err(|e| e.to_string())?;
    let target = parent.join(&name);
    if fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
        return Err(format!("{relative}: is a directory"));
    }
    let temp = parent.join(format!(".{name}{TEMP_MARKER}{}", std::process::id()));
    let result = (|| -> io::Result<()> {
        let mut file = fs::File::create(&temp)?;
        file.write_all(data)?;
        file.set_permissions(fs::Permissions::from_mode(mode & 0o777))?;
        file.sync_all()?;
        fs::rename(&temp, &target)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(format!("{} - {relative}", io_error_text(&e)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_then_list() {
        let dir = tempfile::tempdir().unwrap();
        let base = Base::open(&dir.path().join("hooks")).unwrap();
        put_file(&base, "a/b.sh", 0o4755, b"#!/bin/sh\necho hi\n").unwrap();
        put_file(&base, "c.sh", 0o644, b"x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", base.root().join("link")).unwrap();
        let list = list_hooks(&base).unwrap();
        let paths: Vec<_> = list.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a/b.sh", "c.sh"]);
        assert_eq!(list[0].mode, 0o755);
        assert_eq!(list[1].size, 1);
        let expected: [u8; 32] = Sha256::digest(b"x").into();
        assert_eq!(list[1].sha256, expected);
        assert!(put_file(&base, "../x", 0o644, b"").is_err());
        assert!(put_file(&base, "a", 0o644, b"").is_err());
    }
}
