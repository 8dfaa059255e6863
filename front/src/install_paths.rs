//! Where oned-lite finds its configuration and keeps its state when the command line does not
//! say, following the reference's two layouts: a self-contained install below `ONE_LOCATION`
//! (`etc/oned.conf`, `var/`), or a system-wide one (`/etc/one/oned.conf`, `/var/lib/one`). A
//! build tree counts as a self-contained install rooted at the nearest ancestor of the binary
//! that holds `etc/oned.conf`, so a freshly built `oned-lite` runs from any directory.

use std::path::{Path, PathBuf};

/// The system-wide configuration directory and state directory.
const SYSTEM_ETC: &str = "/etc/one";
const SYSTEM_VAR: &str = "/var/lib/one";
const CONFIG_NAME: &str = "oned.conf";

/// The configuration file and the var dir oned-lite runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallPaths {
    pub config: PathBuf,
    pub var_dir: PathBuf,
}

/// What the lookup is given: the flags, `ONE_LOCATION` and the binary's path.
#[derive(Clone, Debug, Default)]
pub struct Lookup {
    pub config: Option<PathBuf>,
    pub var_dir: Option<PathBuf>,
    pub one_location: Option<PathBuf>,
    pub executable: Option<PathBuf>,
}

/// No configuration file was given and none was found.
#[derive(Debug, thiserror::Error)]
#[error("no configuration file given (--config) and none found; looked for {}", list(.looked))]
pub struct NotFound {
    pub looked: Vec<PathBuf>,
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Lookup {
    /// The flags and the process's own `ONE_LOCATION` and binary path.
    pub fn from_process(config: Option<PathBuf>, var_dir: Option<PathBuf>) -> Lookup {
        Lookup {
            config,
            var_dir,
            one_location: std::env::var_os("ONE_LOCATION")
                .filter(|l| !l.is_empty())
                .map(PathBuf::from),
            executable: std::env::current_exe().ok(),
        }
    }

    /// Resolves both paths: a flag wins; otherwise `ONE_LOCATION`'s layout, else the first
    /// existing of the system-wide file and a build tree's `etc/oned.conf`.
    pub fn resolve(self) -> Result<InstallPaths, NotFound> {
        let config = match &self.config {
            Some(config) => config.clone(),
            None => self.find_config()?,
        };
        let var_dir = match &self.var_dir {
            Some(dir) => dir.clone(),
            None => self.var_dir_for(&config),
        };
        Ok(InstallPaths { config, var_dir })
    }

    fn find_config(&self) -> Result<PathBuf, NotFound> {
        let candidates = match &self.one_location {
            Some(location) => vec![location.join("etc").join(CONFIG_NAME)],
            None => {
                let mut candidates = vec![Path::new(SYSTEM_ETC).join(CONFIG_NAME)];
                if let Some(dir) = self.executable.as_deref().and_then(Path::parent) {
                    candidates.extend(dir.ancestors().map(|a| a.join("etc").join(CONFIG_NAME)));
                }
                candidates
            }
        };
        match candidates.iter().find(|c| c.is_file()) {
            Some(found) => Ok(found.clone()),
            None => Err(NotFound { looked: candidates }),
        }
    }

    /// `ONE_LOCATION/var`; `/var/lib/one` for the system-wide file; else `var` beside the
    /// `etc` directory holding the file (or beside the file when its directory has another
    /// name).
    fn var_dir_for(&self, config: &Path) -> PathBuf {
        if let Some(location) = &self.one_location {
            return location.join("var");
        }
        let dir = config.parent().unwrap_or(Path::new(""));
        if dir == Path::new(SYSTEM_ETC) {
            return PathBuf::from(SYSTEM_VAR);
        }
        let root = match dir.file_name() {
            Some(name) if name == "etc" => dir.parent().unwrap_or(Path::new("")),
            _ => dir,
        };
        root.join("var")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_every_default() {
        let paths = Lookup {
            config: Some("/a/b.conf".into()),
            var_dir: Some("/v".into()),
            one_location: Some("/opt/one".into()),
            executable: None,
        }
        .resolve()
        .unwrap();
        assert_eq!(paths.config, PathBuf::from("/a/b.conf"));
        assert_eq!(paths.var_dir, PathBuf::from("/v"));
    }

    #[test]
    fn one_location_names_both_paths_and_a_missing_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let lookup = || Lookup {
            one_location: Some(dir.path().to_path_buf()),
            ..Lookup::default()
        };
        let err = lookup().resolve().unwrap_err().to_string();
        assert!(
            err.contains(&dir.path().join("etc/oned.conf").display().to_string()),
            "{err}"
        );
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/oned.conf"), "").unwrap();
        let paths = lookup().resolve().unwrap();
        assert_eq!(paths.config, dir.path().join("etc/oned.conf"));
        assert_eq!(paths.var_dir, dir.path().join("var"));
    }

    #[test]
    fn a_build_tree_is_found_from_the_binary() {
        if Path::new(SYSTEM_ETC).join(CONFIG_NAME).exists() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::create_dir_all(dir.path().join("target/debug")).unwrap();
        std::fs::write(dir.path().join("etc/oned.conf"), "").unwrap();
        let paths = Lookup {
            executable: Some(dir.path().join("target/debug/oned-lite")),
            ..Lookup::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(paths.config, dir.path().join("etc/oned.conf"));
        assert_eq!(paths.var_dir, dir.path().join("var"));
    }

    #[test]
    fn an_explicit_file_keeps_its_state_beside_its_etc_directory() {
        let var = |config: &str| {
            Lookup {
                config: Some(config.into()),
                ..Lookup::default()
            }
            .resolve()
            .unwrap()
            .var_dir
        };
        assert_eq!(var("/srv/one/etc/oned.conf"), PathBuf::from("/srv/one/var"));
        assert_eq!(var("/tmp/x/oned.conf"), PathBuf::from("/tmp/x/var"));
        assert_eq!(var("/etc/one/oned.conf"), PathBuf::from("/var/lib/one"));
    }
}
