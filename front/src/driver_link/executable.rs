//! Finding the HM_MAD executable.

use std::path::{Path, PathBuf};

use super::DriverLinkError;

/// Finds the driver: an absolute path as is; a relative one next to the running binary first,
/// then, for a bare name, on `PATH`.
pub fn resolve_executable(name: &str) -> Result<PathBuf, DriverLinkError> {
    let given = Path::new(name);
    let mut searched = Vec::new();
    let mut candidates = Vec::new();
    if given.is_absolute() {
        candidates.push(given.to_path_buf());
    } else {
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
        {
            candidates.push(dir.join(given));
        }
        if given.components().count() == 1
            && let Some(path) = std::env::var_os("PATH")
        {
            candidates.extend(std::env::split_paths(&path).map(|d| d.join(given)));
        }
    }
    for candidate in candidates {
        match std::fs::metadata(&candidate) {
            Ok(meta) if meta.is_file() => {
                if is_executable(&meta) {
                    return Ok(candidate);
                }
                return Err(DriverLinkError::NotExecutable { path: candidate });
            }
            _ => searched.push(candidate.display().to_string()),
        }
    }
    Err(DriverLinkError::NotFound {
        name: name.to_string(),
        searched: if searched.is_empty() {
            "nowhere".to_string()
        } else {
            searched.join(", ")
        },
    })
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_executables_are_reported_with_the_places_searched() {
        let e = resolve_executable("no-such-driver-xyz").unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("no-such-driver-xyz") && text.contains("not found"),
            "{text}"
        );
        let e = resolve_executable("/nonexistent/one_hm").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/one_hm"), "{e}");
        assert!(resolve_executable("sh").is_ok());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, "x").unwrap();
        assert!(matches!(
            resolve_executable(file.to_str().unwrap()),
            Err(DriverLinkError::NotExecutable { .. })
        ));
    }
}
