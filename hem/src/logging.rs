//! Structured logs (tracing) to the configured file and/or stderr, at the reference's
//! `debug_level` (0 = ERROR, 1 = WARN, 2 = INFO, 3 = DEBUG); RUST_LOG overrides it.

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::Context;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::Config;

/// Installs the global subscriber.
pub fn init(config: &Config) -> anyhow::Result<()> {
    let level = match config.debug_level {
        0 => "error",
        1 => "warn",
        2 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let (file_layer, tightened) = match &config.log_file {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                one_wal::private_files::create_dir_all(dir)
                    .context("cannot create the log directory")?;
            }
            // The log names hooks, hosts and failures; only its owner reads it.
            let (file, tightened) =
                one_wal::private_files::open_log(path).context("cannot open the log file")?;
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(Arc::new(file))
                .with_ansi(false)
                .with_target(false);
            (Some(layer), tightened)
        }
        None => (None, one_wal::private_files::Tightened::default()),
    };
    // Colours only on a terminal: stderr redirected to a file must stay plain text.
    let stderr_layer = config.log_stderr.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(file_layer)
        .with(stderr_layer)
        .try_init()
        .context("cannot install the log subscriber")?;
    // Said once the subscriber can write it down.
    tightened.log();
    Ok(())
}

/// Installs a subscriber for a one-shot command: errors on stderr (RUST_LOG overrides the
/// level). Its report already says what failed where, so the warnings would only repeat it.
pub fn init_command() -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}

/// The hook supervisor's subscriber: plain lines on stderr, which the HEM that started it points
/// at the supervisor's log file.
pub fn init_supervisor() -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}
