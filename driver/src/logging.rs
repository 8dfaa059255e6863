//! Tracing on stderr that survives a closed or redirected stderr.
//!
//! oned closes fd 2 before it execs the driver. If fds 0-2 are left closed, the next file or
//! socket the process opens takes one of those numbers, and log lines meant for stderr would be
//! written into it (a ZeroMQ signalling pipe, the journal). So the free low fds are first filled
//! with `/dev/null`; every write error on stderr is ignored (see `one_log`).

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, IntoRawFd};

use crate::config::Cli;

/// Points every closed fd among 0, 1 and 2 at `/dev/null`. Call first thing in `main`.
pub fn reserve_standard_fds() {
    loop {
        let Ok(null) = OpenOptions::new().read(true).write(true).open("/dev/null") else {
            return;
        };
        if null.as_raw_fd() > 2 {
            return;
        }
        // The descriptor fills a standard slot for the life of the process.
        let _ = null.into_raw_fd();
    }
}

/// Installs the tracing subscriber: lines on stderr at `--log-level` in `--log-format`
/// (`ONE_LOG` overrides the level).
pub fn init_tracing(cli: &Cli) -> Result<one_log::Logs, one_log::LogError> {
    one_log::init(&one_log::Settings {
        level: cli.log_level.clone(),
        format: cli.log_format,
        file: None,
        stderr: true,
        target: one_log::Target::Shown,
    })
}
