//! The start marks of the single-HEM mode: an append-only file of execution uids next to the
//! state DB, one line per execution marked started.
//!
//! A start mark must be durable before the hook is spawned (after a crash the execution is
//! reported, never run a second time). Appending a line is one `write` to the page cache, which
//! survives a kill -9 of the HEM as a committed SQLite transaction does (the state DB does not
//! fsync its commits either), without a transaction, a page write and a hand-off to the state DB
//! writer for every execution. The file only grows while executions are marked; once the marks
//! of executions that left the state DB outnumber the live ones, it is rewritten with the live
//! ones only (a new file renamed over the old one, so a crash keeps one of the two whole).

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// Lines the file may hold before a rewrite is considered.
const COMPACT_LINES: usize = 4096;

/// The start-mark file and the uids marked in it whose executions are still in the state DB.
#[derive(Debug)]
pub struct StartLog {
    path: PathBuf,
    file: File,
    /// Marked and still in the state DB: what a rewrite keeps.
    live: HashSet<String>,
    /// Lines in the file.
    lines: usize,
}

/// Why a start mark was not written.
#[derive(Debug, thiserror::Error)]
pub enum StartLogError {
    #[error("start marks {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("start marks {path}: {source}")]
    Private {
        path: PathBuf,
        source: one_wal::private_files::PrivateFileError,
    },
    #[error("an execution uid with a line break cannot be marked: {0:?}")]
    BadUid(String),
}

/// The start-mark file of the state DB at `state_db`.
pub fn path_for(state_db: &Path) -> PathBuf {
    let mut name = state_db.as_os_str().to_owned();
    name.push("-started");
    PathBuf::from(name)
}

/// The uids marked in the file at `path` (none when it does not exist). A last line without its
/// line break is a mark whose write a crash cut short: the spawn waited for the whole line, so
/// that execution never ran, and the partial uid matches none.
pub fn read_marks(path: &Path) -> Result<HashSet<String>, StartLogError> {
    let io = |source| StartLogError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(io(e)),
    };
    let mut marks = HashSet::new();
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(io)? == 0 {
            break;
        }
        if line.pop() == Some(b'\n')
            && let Ok(uid) = String::from_utf8(std::mem::take(&mut line))
        {
            marks.insert(uid);
        }
    }
    Ok(marks)
}

impl StartLog {
    /// Starts the file afresh with `live`, the marked uids whose executions the state DB still
    /// holds.
    pub fn open(path: &Path, live: HashSet<String>) -> Result<StartLog, StartLogError> {
        let file = rewrite(path, &live)?;
        Ok(StartLog {
            path: path.to_path_buf(),
            file,
            lines: live.len(),
            live,
        })
    }

    /// Marks `uid` started; returns once the line is written.
    pub fn mark(&mut self, uid: &str) -> Result<(), StartLogError> {
        if uid.contains('\n') {
            return Err(StartLogError::BadUid(uid.to_string()));
        }
        let mut line = Vec::with_capacity(uid.len() + 1);
        line.extend_from_slice(uid.as_bytes());
        line.push(b'\n');
        // One write of the whole line: an append file shares no offset with anyone.
        self.file
            .write_all(&line)
            .map_err(|source| StartLogError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.lines += 1;
        self.live.insert(uid.to_string());
        Ok(())
    }

    /// Forgets the marks of executions a commit has taken out of the state DB, and rewrites the
    /// file when most of its lines are such marks.
    pub fn settled(&mut self, uids: &[String]) {
        for uid in uids {
            self.live.remove(uid);
        }
        if self.lines >= COMPACT_LINES && self.lines >= 2 * self.live.len() {
            match rewrite(&self.path, &self.live) {
                Ok(file) => {
                    self.file = file;
                    self.lines = self.live.len();
                }
                // The old file stays in use; it only holds more lines than needed.
                Err(e) => tracing::warn!(error = %e, "cannot rewrite the start marks"),
            }
        }
    }

    /// Marked uids whose executions are still in the state DB.
    pub fn live(&self) -> usize {
        self.live.len()
    }
}

/// Writes `live` to a new file, synced, and renames it over `path`; returns it open for
/// appending.
fn rewrite(path: &Path, live: &HashSet<String>) -> Result<File, StartLogError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = PathBuf::from(tmp);
    let io = |source| StartLogError::Io {
        path: tmp.clone(),
        source,
    };
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let (mut file, tightened) =
        one_wal::private_files::open_log(&tmp).map_err(|source| StartLogError::Private {
            path: tmp.clone(),
            source,
        })?;
    tightened.log();
    let mut text = Vec::new();
    for uid in live {
        text.extend_from_slice(uid.as_bytes());
        text.push(b'\n');
    }
    file.write_all(&text).map_err(io)?;
    // The old file is only replaced by a whole new one, also after a power loss.
    file.sync_data().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|source| StartLogError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(uids: &[&str]) -> HashSet<String> {
        uids.iter().map(|u| u.to_string()).collect()
    }

    #[test]
    fn marks_survive_a_reopen_and_settled_ones_leave_at_the_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("hem.db"));
        let mut log = StartLog::open(&path, HashSet::new()).unwrap();
        log.mark("a").unwrap();
        log.mark("b").unwrap();
        // Without a stop: what a kill -9 leaves.
        assert_eq!(read_marks(&path).unwrap(), set(&["a", "b"]));
        log.settled(&["a".to_string()]);
        assert_eq!(log.live(), 1);
        drop(log);
        let log = StartLog::open(&path, set(&["b"])).unwrap();
        assert_eq!(read_marks(&path).unwrap(), set(&["b"]));
        assert_eq!(log.live(), 1);
    }

    #[test]
    fn the_file_is_rewritten_once_settled_marks_dominate() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("hem.db"));
        let mut log = StartLog::open(&path, HashSet::new()).unwrap();
        for i in 0..COMPACT_LINES {
            log.mark(&format!("u{i}")).unwrap();
        }
        let settled: Vec<String> = (1..COMPACT_LINES).map(|i| format!("u{i}")).collect();
        log.settled(&settled);
        assert_eq!(read_marks(&path).unwrap(), set(&["u0"]));
        // Marks after the rewrite go to the new file.
        log.mark("later").unwrap();
        assert_eq!(read_marks(&path).unwrap(), set(&["u0", "later"]));
    }

    #[test]
    fn a_torn_last_line_marks_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("marks");
        std::fs::write(&path, b"whole\npart").unwrap();
        assert_eq!(read_marks(&path).unwrap(), set(&["whole"]));
    }

    #[test]
    fn a_uid_with_a_line_break_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = StartLog::open(&dir.path().join("marks"), HashSet::new()).unwrap();
        assert!(matches!(log.mark("a\nb"), Err(StartLogError::BadUid(_))));
        assert!(read_marks(&dir.path().join("marks")).unwrap().is_empty());
    }
}
