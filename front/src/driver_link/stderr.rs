//! The driver's stderr, logged line by line at the level each line names.

use tokio::io::BufReader;

use super::from_driver::next_line;

/// The driver's stderr is its own log: each line is logged again at the level it names (a
/// tracing or `ERROR:`-style level word among its first words), or INFO.
pub(super) async fn log_stderr(stderr: tokio::process::ChildStderr, pid: u32) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    while let Ok(Some(line)) = next_line(&mut reader, &mut buf, 64 * 1024).await {
        match stderr_level(&line) {
            tracing::Level::ERROR => tracing::error!(target: "hm_mad", pid, "{line}"),
            tracing::Level::WARN => tracing::warn!(target: "hm_mad", pid, "{line}"),
            tracing::Level::DEBUG | tracing::Level::TRACE => {
                tracing::debug!(target: "hm_mad", pid, "{line}")
            }
            _ => tracing::info!(target: "hm_mad", pid, "{line}"),
        }
    }
}

pub(super) fn stderr_level(line: &str) -> tracing::Level {
    for word in line.split_whitespace().take(3) {
        match word.trim_end_matches(':').to_ascii_uppercase().as_str() {
            "ERROR" => return tracing::Level::ERROR,
            "WARN" | "WARNING" => return tracing::Level::WARN,
            "INFO" => return tracing::Level::INFO,
            "DEBUG" => return tracing::Level::DEBUG,
            "TRACE" => return tracing::Level::TRACE,
            _ => {}
        }
    }
    tracing::Level::INFO
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_lines_keep_their_level() {
        use tracing::Level;
        assert_eq!(
            stderr_level("2026-01-01T00:00:00Z  WARN one_hm: slow"),
            Level::WARN
        );
        assert_eq!(
            stderr_level("ERROR: Failed to bind publisher socket"),
            Level::ERROR
        );
        assert_eq!(
            stderr_level("2026-01-01T00:00:00Z DEBUG one_hm: x"),
            Level::DEBUG
        );
        assert_eq!(stderr_level("plain text"), Level::INFO);
    }
}
