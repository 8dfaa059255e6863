//! The HEM's logs (see the `one-log` crate): the configured file and/or stderr, at the
//! reference's `debug_level`, in `log_format`; `ONE_LOG` overrides the level.

use crate::config::Config;

/// Where and how the daemon logs, from its configuration.
pub fn settings(config: &Config) -> one_log::Settings {
    one_log::Settings {
        level: one_log::debug_level_directive(config.debug_level).to_string(),
        format: config.log_format,
        file: config.log_file.clone(),
        stderr: config.log_stderr,
        target: one_log::Target::Hidden,
    }
}

/// Installs the daemon's subscriber.
pub fn init(config: &Config) -> Result<one_log::Logs, one_log::LogError> {
    one_log::init(&settings(config))
}

/// Installs a subscriber for a one-shot command: errors on stderr (`ONE_LOG` overrides the
/// level). Its report already says what failed where, so the warnings would only repeat it.
pub fn init_command() -> Result<one_log::Logs, one_log::LogError> {
    one_log::init(&one_log::Settings {
        level: "error".into(),
        format: one_log::Format::Text,
        file: None,
        stderr: true,
        target: one_log::Target::Hidden,
    })
}

/// The hook supervisor's subscriber: plain lines on stderr, which the HEM that started it points
/// at the supervisor's log file (`ONE_LOG` overrides the level).
pub fn init_supervisor() -> anyhow::Result<()> {
    one_log::init(&one_log::Settings {
        level: "info".into(),
        format: one_log::Format::Text,
        file: None,
        stderr: true,
        target: one_log::Target::Hidden,
    })
    .map(drop)
    .map_err(|e| anyhow::anyhow!("{e}"))
}
