//! `onehem-agent`'s command line, in the library so that the man page is generated from the
//! same definition the binary parses.

use std::path::PathBuf;

use clap::{CommandFactory as _, Parser};

/// Runs hooks on this host for the HEM, speaking frames on stdin/stdout. It never listens on
/// a port: the HEM starts it over SSH.
#[derive(Parser, Debug)]
#[command(name = "onehem-agent", version)]
pub struct Cli {
    /// Serve one HEM on stdin/stdout (the only mode).
    #[arg(long)]
    pub stdio: bool,
    /// The hook directory; only commands below it are executed.
    #[arg(long, default_value = "/var/tmp/one/hooks")]
    pub base: PathBuf,
    /// Seconds between SIGTERM and SIGKILL for a timed-out hook's process group.
    #[arg(long, default_value_t = 2.0)]
    pub kill_grace: f64,
    /// Executions running at once.
    #[arg(long, default_value_t = 256)]
    pub max_running: usize,
}

/// The command line's definition, for the man page and completions.
pub fn command() -> clap::Command {
    Cli::command()
}
