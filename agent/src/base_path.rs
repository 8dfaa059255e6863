//! The agent's confinement: every command it runs and every file it writes must resolve to a
//! path inside its base directory, after symlinks are followed.

use std::io;
use std::path::{Component, Path, PathBuf};

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathRefusal {
    /// The command or file name is empty.
    #[error("empty path")]
    Empty,
    /// The path contains a `..` component.
    #[error("{path}: '..' components are not allowed")]
    ParentComponent {
        /// The path as received.
        path: String,
    },
    /// An absolute path that does not start with the base directory.
    #[error("{path} is outside the hook directory {base}")]
    OutsideBase {
        /// The path as received.
        path: String,
        /// The base directory.
        base: String,
    },
    /// The path is inside the base lexically, but a symlink takes it outside.
    #[error("{path} resolves to {resolved}, outside the hook directory {base}")]
    ResolvesOutside {
        /// The path as received.
        path: String,
        /// Where it resolves to.
        resolved: String,
        /// The base directory.
        base: String,
    },
    /// A file name for [`Base::resolve_new_file`] that is absolute or not a plain relative path.
    #[error("{path}: must be a relative path of plain names")]
    NotRelative {
        /// The path as received.
        path: String,
    },
    /// Resolving the path failed (missing file, permission denied).
    #[error("{message} - {path}")]
    Io {
        /// The path as received.
        path: String,
        /// The OS error text, in the reference's style (`No such file or directory`).
        message: String,
    },
}

/// The base directory, as configured and as resolved on disk.
#[derive(Debug, Clone)]
pub struct Base {
    configured: PathBuf,
    root: PathBuf,
}

impl Base {
    /// Creates the directory if needed and resolves it.
    pub fn open(configured: &Path) -> io::Result<Base> {
        std::fs::create_dir_all(configured)?;
        let root = configured.canonicalize()?;
        Ok(Base {
            configured: configured.to_path_buf(),
            root,
        })
    }

    /// The resolved base directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The base directory as configured.
    pub fn configured(&self) -> &Path {
        &self.configured
    }

    fn base_text(&self) -> String {
        self.configured.display().to_string()
    }

    /// Resolves `argv[0]` of an execution: either relative to the base, or absolute and
    /// starting with the base (as configured or as resolved). The result is the canonical path,
    /// which is then executed, so a symlink swapped in later cannot redirect the command.
    pub fn resolve_command(&self, command: &str) -> Result<PathBuf, PathRefusal> {
        if command.is_empty() {
            return Err(PathRefusal::Empty);
        }
        let path = Path::new(command);
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(PathRefusal::ParentComponent {
                path: command.to_string(),
            });
        }
        let relative = if path.is_absolute() {
            path.strip_prefix(&self.configured)
                .or_else(|_| path.strip_prefix(&self.root))
                .map_err(|_| PathRefusal::OutsideBase {
                    path: command.to_string(),
                    base: self.base_text(),
                })?
        } else {
            path
        };
        if relative.as_os_str().is_empty() {
            return Err(PathRefusal::OutsideBase {
                path: command.to_string(),
                base: self.base_text(),
            });
        }
        let joined = self.root.join(relative);
        let resolved = joined.canonicalize().map_err(|e| PathRefusal::Io {
            path: command.to_string(),
            message: io_error_text(&e),
        })?;
        if !resolved.starts_with(&self.root) || resolved == self.root {
            return Err(PathRefusal::ResolvesOutside {
                path: command.to_string(),
                resolved: resolved.display().to_string(),
                base: self.base_text(),
            });
        }
        Ok(resolved)
    }

    /// Resolves the destination of a file upload: a relative path of plain names. Missing
    /// parent directories are created; the parent must resolve inside the base. Returns the
    /// resolved parent directory and the file name.
    pub fn resolve_new_file(&self, relative: &str) -> Result<(PathBuf, String), PathRefusal> {
        if relative.is_empty() {
            return Err(PathRefusal::Empty);
        }
        let path = Path::new(relative);
        let mut names = Vec::new();
        for c in path.components() {
            match c {
                Component::Normal(name) => match name.to_str() {
                    Some(n) => names.push(n.to_string()),
                    None => {
                        return Err(PathRefusal::NotRelative {
                            path: relative.to_string(),
                        });
                    }
                },
                Component::ParentDir => {
                    return Err(PathRefusal::ParentComponent {
                        path: relative.to_string(),
                    });
                }
                Component::CurDir | Component::RootDir | Component::Prefix(_) => {
                    return Err(PathRefusal::NotRelative {
                        path: relative.to_string(),
                    });
                }
            }
        }
        let Some(file_name) = names.pop() else {
            return Err(PathRefusal::Empty);
        };
        let mut parent = self.root.clone();
        parent.extend(&names);
        std::fs::create_dir_all(&parent).map_err(|e| PathRefusal::Io {
            path: relative.to_string(),
            message: io_error_text(&e),
        })?;
        let resolved = parent.canonicalize().map_err(|e| PathRefusal::Io {
            path: relative.to_string(),
            message: io_error_text(&e),
        })?;
        if !resolved.starts_with(&self.root) {
            return Err(PathRefusal::ResolvesOutside {
                path: relative.to_string(),
                resolved: resolved.display().to_string(),
                base: self.base_text(),
            });
        }
        Ok((resolved, file_name))
    }
}

/// An I/O error as the reference prints it: the OS description without Rust's
/// `(os error N)` suffix.
pub fn io_error_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn base() -> (tempfile::TempDir, Base) {
        let dir = tempfile::tempdir().unwrap();
        let hooks = dir.path().join("hooks");
        std::fs::create_dir_all(hooks.join("sub")).unwrap();
        std::fs::write(hooks.join("ok.sh"), "#!/bin/sh\n").unwrap();
        std::fs::write(hooks.join("sub/x.sh"), "#!/bin/sh\n").unwrap();
        std::fs::write(dir.path().join("outside.sh"), "#!/bin/sh\n").unwrap();
        symlink(dir.path().join("outside.sh"), hooks.join("escape.sh")).unwrap();
        symlink(hooks.join("ok.sh"), hooks.join("inner.sh")).unwrap();
        symlink(dir.path(), hooks.join("up")).unwrap();
        let b = Base::open(&hooks).unwrap();
        (dir, b)
    }

    #[test]
    fn commands_inside_resolve() {
        let (_d, b) = base();
        assert_eq!(b.resolve_command("ok.sh").unwrap(), b.root().join("ok.sh"));
        let abs = b.configured().join("sub/x.sh");
        assert_eq!(
            b.resolve_command(abs.to_str().unwrap()).unwrap(),
            b.root().join("sub/x.sh")
        );
        assert_eq!(
            b.resolve_command("inner.sh").unwrap(),
            b.root().join("ok.sh")
        );
    }

    #[test]
    fn escapes_are_refused() {
        let (d, b) = base();
        assert!(matches!(
            b.resolve_command("../outside.sh"),
            Err(PathRefusal::ParentComponent { .. })
        ));
        let abs = b.configured().join("../outside.sh");
        assert!(matches!(
            b.resolve_command(abs.to_str().unwrap()),
            Err(PathRefusal::ParentComponent { .. })
        ));
        assert!(matches!(
            b.resolve_command("/bin/true"),
            Err(PathRefusal::OutsideBase { .. })
        ));
        let outside = d.path().join("outside.sh");
        assert!(matches!(
            b.resolve_command(outside.to_str().unwrap()),
            Err(PathRefusal::OutsideBase { .. })
        ));
        assert!(matches!(
            b.resolve_command("escape.sh"),
            Err(PathRefusal::ResolvesOutside { .. })
        ));
        assert!(matches!(
            b.resolve_command("up/outside.sh"),
            Err(PathRefusal::ResolvesOutside { .. })
        ));
        assert!(matches!(
            b.resolve_command(b.configured().to_str().unwrap()),
            Err(PathRefusal::OutsideBase { .. })
        ));
        assert!(matches!(b.resolve_command(""), Err(PathRefusal::Empty)));
        assert!(matches!(
            b.resolve_command("missing.sh"),
            Err(PathRefusal::Io { .. })
        ));
    }

    #[test]
    fn new_files_stay_inside() {
        let (_d, b) = base();
        let (parent, name) = b.resolve_new_file("new/dir/h.sh").unwrap();
        assert_eq!(parent, b.root().join("new/dir"));
        assert_eq!(name, "h.sh");
        assert!(matches!(
            b.resolve_new_file("../x"),
            Err(PathRefusal::ParentComponent { .. })
        ));
        assert!(matches!(
            b.resolve_new_file("/etc/x"),
            Err(PathRefusal::NotRelative { .. })
        ));
        assert!(matches!(
            b.resolve_new_file("up/x"),
            Err(PathRefusal::ResolvesOutside { .. })
        ));
    }

    #[test]
    fn os_errors_read_like_the_reference() {
        let e = io::Error::from_raw_os_error(2);
        assert_eq!(io_error_text(&e), "No such file or directory");
    }
}
