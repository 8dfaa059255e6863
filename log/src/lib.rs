//! The daemons' logs, set up the same way for `oned-lite`, `one_hm` and `onehem-server`.
//!
//! - The level comes from each daemon's own setting (oned.conf `LOG/DEBUG_LEVEL`,
//!   onehem-server.conf `debug_level`, `one_hm --log-level`); the environment variable
//!   [`LEVEL_ENV`] (`ONE_LOG`, an `EnvFilter` directive such as `debug` or `one_hm=debug`)
//!   overrides it for every daemon alike.
//! - Lines are plain text or JSON objects, one per line ([`Format`]). Colour codes are written
//!   only to a terminal: never to a file, never to a redirected stderr, never in JSON.
//! - A log file is reopened at its path on SIGHUP ([`Logs::reopen_on_hangup`]), so logrotate can
//!   rename it and signal the daemon. Writers hold a shared lock on the file and the reopen an
//!   exclusive one, so each line lands whole in either the old file or the new one.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use one_wal::private_files::{self, PrivateFileError, Tightened};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// The environment variable that overrides every daemon's configured level.
pub const LEVEL_ENV: &str = "ONE_LOG";

/// How each log line is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// `TIMESTAMP LEVEL target: message key=value …`.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the event's
    /// fields at the top level.
    Json,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            _ => Err(format!("must be text or json, got {s:?}")),
        }
    }
}

/// The reference's debug levels (0 = ERROR, 1 = WARNING, 2 = INFO, 3 = DEBUG) as a filter
/// directive; levels above 3 are DEBUG, as in oned.
pub fn debug_level_directive(level: u8) -> &'static str {
    match level {
        0 => "error",
        1 => "warn",
        2 => "info",
        _ => "debug",
    }
}

/// Whether the daemon's module path is shown on each line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Shown,
    Hidden,
}

/// Where and how a daemon logs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The filter directive used when [`LEVEL_ENV`] is not set.
    pub level: String,
    pub format: Format,
    /// A file appended to (created private to its owner), reopened on SIGHUP.
    pub file: Option<PathBuf>,
    /// Whether lines go to stderr as well.
    pub stderr: bool,
    pub target: Target,
}

/// Why the logs could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{LEVEL_ENV}={value:?} is not a log filter: {reason}")]
    EnvFilter { value: String, reason: String },
    #[error("log level {value:?} is not a log filter: {reason}")]
    Level { value: String, reason: String },
    #[error("cannot create the log directory {}: {source}", path.display())]
    Directory {
        path: PathBuf,
        source: PrivateFileError,
    },
    #[error("cannot open the log file: {0}")]
    Open(PrivateFileError),
    #[error("cannot install the log subscriber: {0}")]
    Install(String),
}

/// The installed logs: the handle that reopens the log file.
#[derive(Clone, Debug, Default)]
pub struct Logs {
    file: Option<Arc<LogFile>>,
}

impl Logs {
    /// The log file's path, if the daemon writes one.
    pub fn file_path(&self) -> Option<&Path> {
        self.file.as_deref().map(|f| f.path.as_path())
    }

    /// Opens the log file at its path again (a new file if it was renamed) and writes from now
    /// on to it; on failure the old file is kept.
    pub fn reopen(&self) -> Result<(), LogError> {
        match &self.file {
            Some(file) => file.reopen(),
            None => Ok(()),
        }
    }

    /// A task that reopens the log file on every SIGHUP, for as long as it runs. The handler is
    /// installed by this call (inside a tokio runtime), so a SIGHUP that arrives after it returns
    /// no longer stops the process, whether or not there is a file to reopen.
    pub fn reopen_on_hangup(
        &self,
    ) -> std::io::Result<impl Future<Output = ()> + Send + 'static + use<>> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = signal(SignalKind::hangup())?;
        let logs = self.clone();
        Ok(async move {
            while hangup.recv().await.is_some() {
                let Some(path) = logs.file_path() else {
                    tracing::info!("SIGHUP received; no log file to reopen");
                    continue;
                };
                match logs.reopen() {
                    Ok(()) => tracing::info!(path = %path.display(), "log file reopened"),
                    Err(e) => tracing::error!(
                        path = %path.display(),
                        error = %e,
                        "cannot reopen the log file; still writing to the old one"
                    ),
                }
            }
        })
    }
}

/// Installs the global subscriber for a daemon. Problems found while opening the file (its
/// permissions tightened) are logged once the subscriber can write them down.
pub fn init(settings: &Settings) -> Result<Logs, LogError> {
    let filter = filter(&settings.level)?;
    let mut logs = Logs::default();
    let mut tightened = Tightened::default();
    let mut layers: Vec<BoxedLayer> = Vec::new();
    if let Some(path) = &settings.file {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            private_files::create_dir_all(dir).map_err(|source| LogError::Directory {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let (file, tight) = private_files::open_log(path).map_err(LogError::Open)?;
        tightened = tight;
        let file = Arc::new(LogFile {
            path: path.clone(),
            file: RwLock::new(file),
        });
        layers.push(layer(settings, SharedFile(file.clone()), Colour::Never));
        logs.file = Some(file);
    }
    if settings.stderr {
        // Colours only on a terminal: stderr redirected to a file must stay plain text.
        let colour = if std::io::stderr().is_terminal() {
            Colour::Terminal
        } else {
            Colour::Never
        };
        layers.push(layer(settings, || QuietStderr, colour));
    }
    tracing_subscriber::registry()
        .with(filter)
        .with(layers)
        .try_init()
        .map_err(|e| LogError::Install(e.to_string()))?;
    tightened.log();
    Ok(logs)
}

/// The filter: [`LEVEL_ENV`] when it is set, else `level`.
fn filter(level: &str) -> Result<EnvFilter, LogError> {
    match std::env::var(LEVEL_ENV) {
        Ok(value) if !value.trim().is_empty() => {
            EnvFilter::builder()
                .parse(value.trim())
                .map_err(|e| LogError::EnvFilter {
                    value: value.clone(),
                    reason: e.to_string(),
                })
        }
        _ => EnvFilter::builder()
            .parse(level)
            .map_err(|e| LogError::Level {
                value: level.to_string(),
                reason: e.to_string(),
            }),
    }
}

type BoxedLayer = Box<dyn Layer<Layered<EnvFilter, Registry>> + Send + Sync>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Colour {
    Terminal,
    Never,
}

fn layer<W>(settings: &Settings, writer: W, colour: Colour) -> BoxedLayer
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let base = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_target(settings.target == Target::Shown);
    match settings.format {
        Format::Text => base.with_ansi(colour == Colour::Terminal).boxed(),
        Format::Json => base.json().flatten_event(true).with_ansi(false).boxed(),
    }
}

/// The log file, replaced in place by a reopen.
#[derive(Debug)]
struct LogFile {
    path: PathBuf,
    file: RwLock<File>,
}

impl LogFile {
    fn reopen(&self) -> Result<(), LogError> {
        let (new, tightened) = private_files::open_log(&self.path).map_err(LogError::Open)?;
        let old = {
            let mut slot = self.file.write().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *slot, new)
        };
        // Lines written before the swap are on their way to the old file; it is closed after.
        let _ = old.sync_data();
        tightened.log();
        Ok(())
    }
}

/// Makes writers of the current log file.
struct SharedFile(Arc<LogFile>);

impl<'a> MakeWriter<'a> for SharedFile {
    type Writer = FileLine<'a>;

    fn make_writer(&'a self) -> FileLine<'a> {
        FileLine(&self.0)
    }
}

/// One line's writes, each under the shared lock so a reopen waits for it.
struct FileLine<'a>(&'a LogFile);

impl Write for FileLine<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let file = self.0.file.read().unwrap_or_else(|e| e.into_inner());
        (&*file).write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let file = self.0.file.read().unwrap_or_else(|e| e.into_inner());
        (&*file).write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A stderr writer that never fails: a daemon whose stderr was closed or whose reader went
/// away keeps running.
struct QuietStderr;

impl Write for QuietStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_in_any_case_and_refuse_others() {
        assert_eq!("JSON".parse::<Format>(), Ok(Format::Json));
        assert_eq!(" text ".parse::<Format>(), Ok(Format::Text));
        assert!(
            "yaml"
                .parse::<Format>()
                .unwrap_err()
                .contains("text or json")
        );
    }

    #[test]
    fn debug_levels_map_to_the_reference_scale() {
        let levels: Vec<_> = (0..=4).map(debug_level_directive).collect();
        assert_eq!(levels, ["error", "warn", "info", "debug", "debug"]);
    }

    #[test]
    fn a_reopen_writes_to_a_new_file_at_the_old_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let (file, _) = private_files::open_log(&path).unwrap();
        let log = LogFile {
            path: path.clone(),
            file: RwLock::new(file),
        };
        FileLine(&log).write_all(b"before\n").unwrap();
        let rotated = dir.path().join("x.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        FileLine(&log).write_all(b"still old\n").unwrap();
        log.reopen().unwrap();
        FileLine(&log).write_all(b"after\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&rotated).unwrap(),
            "before\nstill old\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "after\n");
    }
}
