//! Databases, journals and logs that only their owner can read.
//!
//! The databases hold password hashes and VM templates with CONTEXT passwords, so every file a
//! daemon writes them to is created 0600 and every directory it creates for them 0700. The modes
//! are given at creation, never through the umask: the daemons spawn hooks, which must keep the
//! umask they were started with. SQLite creates a database's `-wal`, `-shm` and `-journal` with
//! the mode of the database file, so creating that file 0600 before SQLite opens it covers them.
//! Files left with looser modes by an earlier version are tightened at start. Directories that
//! already exist keep their mode: they may be shared (`/var/lib/one`, `/var/log/one`), and the
//! files in them protect themselves.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The mode of every database, journal and log file a daemon creates.
pub const FILE_MODE: u32 = 0o600;
/// The mode of every directory a daemon creates for them.
pub const DIR_MODE: u32 = 0o700;

/// What could not be made private.
#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    #[error("cannot create the directory {path}: {source}")]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot restrict the permissions of {path}: {source}")]
    Permissions {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Files whose group and other permissions were removed, with their modes before.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[must_use = "the caller says in its log what was tightened"]
pub struct Tightened(pub Vec<(PathBuf, u32)>);

impl Tightened {
    /// Logs one line naming the tightened files, if there were any.
    pub fn log(&self) {
        if self.0.is_empty() {
            return;
        }
        let files = self
            .0
            .iter()
            .map(|(path, mode)| format!("{} (was {mode:04o})", path.display()))
            .collect::<Vec<_>>()
            .join(", ");
        tracing::warn!(
            %files,
            mode = "0600",
            "files other users could read are now private to their owner"
        );
    }
}

/// Creates `dir` and its missing parents with [`DIR_MODE`].
pub fn create_dir_all(dir: &Path) -> Result<(), PrivateFileError> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|source| PrivateFileError::Directory {
            path: dir.to_path_buf(),
            source,
        })
}

/// Makes the SQLite database at `path` private before SQLite opens it: creates the file with
/// [`FILE_MODE`] if it is missing, and removes group and other permissions from it and from its
/// `-wal`, `-shm` and `-journal` files where an earlier version left them.
pub fn prepare_database(path: &Path) -> Result<Tightened, PrivateFileError> {
    create_file(path)?;
    let mut tightened = Tightened::default();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        tighten(Path::new(&name), &mut tightened)?;
    }
    Ok(tightened)
}

/// Opens the log file at `path` for appending, creating it with [`FILE_MODE`], and removes
/// group and other permissions from it if an earlier version left them.
pub fn open_log(path: &Path) -> Result<(File, Tightened), PrivateFileError> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|source| PrivateFileError::Create {
            path: path.to_path_buf(),
            source,
        })?;
    let mut tightened = Tightened::default();
    tighten(path, &mut tightened)?;
    Ok((file, tightened))
}

/// Removes group and other permissions from the file at `path`, if it exists, and returns
/// what it did.
pub fn restrict(path: &Path) -> Result<Tightened, PrivateFileError> {
    let mut tightened = Tightened::default();
    tighten(path, &mut tightened)?;
    Ok(tightened)
}

fn create_file(path: &Path) -> Result<(), PrivateFileError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(FILE_MODE)
        .open(path)
        .map(drop)
        .map_err(|source| PrivateFileError::Create {
            path: path.to_path_buf(),
            source,
        })
}

fn tighten(path: &Path, tightened: &mut Tightened) -> Result<(), PrivateFileError> {
    let err = |source| PrivateFileError::Permissions {
        path: path.to_path_buf(),
        source,
    };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(err(e)),
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, Permissions::from_mode(mode & 0o700)).map_err(err)?;
    tightened.0.push((path.to_path_buf(), mode));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_new_database_and_its_wal_and_shm_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        assert_eq!(prepare_database(&path).unwrap(), Tightened::default());
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (v);")
            .unwrap();
        for name in ["x.db", "x.db-wal", "x.db-shm"] {
            assert_eq!(mode(&dir.path().join(name)), 0o600, "{name}");
        }
    }

    #[test]
    fn an_existing_database_keeps_its_content_and_loses_its_loose_modes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch("CREATE TABLE t (v); INSERT INTO t VALUES (7);")
                .unwrap();
        }
        let wal = dir.path().join("x.db-wal");
        std::fs::write(&wal, b"").unwrap();
        for p in [&path, &wal] {
            std::fs::set_permissions(p, Permissions::from_mode(0o644)).unwrap();
        }
        let tightened = prepare_database(&path).unwrap();
        assert_eq!(
            tightened,
            Tightened(vec![(path.clone(), 0o644), (wal.clone(), 0o644)])
        );
        assert_eq!((mode(&path), mode(&wal)), (0o600, 0o600));
        let v: i64 = rusqlite::Connection::open(&path)
            .unwrap()
            .query_row("SELECT v FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 7);
    }

    #[test]
    fn directories_are_created_private_and_existing_ones_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), Permissions::from_mode(0o755)).unwrap();
        let nested = dir.path().join("a/b");
        create_dir_all(&nested).unwrap();
        assert_eq!(mode(&nested), 0o700);
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(dir.path()), 0o755);
    }

    #[test]
    fn a_log_is_created_private_and_an_old_one_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let (_, tightened) = open_log(&path).unwrap();
        assert_eq!((mode(&path), tightened), (0o600, Tightened::default()));
        std::fs::set_permissions(&path, Permissions::from_mode(0o664)).unwrap();
        let (_, tightened) = open_log(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(tightened, Tightened(vec![(path, 0o664)]));
    }
}
