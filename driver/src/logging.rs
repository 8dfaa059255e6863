//! Tracing on stderr that survives a closed or redirected stderr.
//!
//! oned closes fd 2 before it execs the driver. If fds 0-2 are left closed, the next file or
//! socket the process opens takes one of those numbers, and log lines meant for stderr would be
//! written into it (a ZeroMQ signalling pipe, the journal). So the free low fds are first filled
//! with `/dev/null`, and every write error on stderr is ignored.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::{AsRawFd, IntoRawFd};

use tracing_subscriber::EnvFilter;

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

/// A stderr writer that never fails.
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

/// Installs the tracing subscriber: text lines on stderr, level from `ONE_HM_LOG` (an
/// `EnvFilter` directive such as `debug` or `one_hm=debug`), `info` by default.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_env("ONE_HM_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(|| QuietStderr)
        .try_init();
}
