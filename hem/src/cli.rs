//! `onehem-server`'s command line, in the library so that the man page and shell completions
//! are generated from the same definition the binary parses.

use std::path::PathBuf;

use clap::{CommandFactory as _, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "onehem-server",
    version,
    about = "OpenNebula Hook Execution Manager"
)]
pub struct Args {
    /// Configuration file (YAML; the reference's symbol keys or plain keys).
    #[arg(long, global = true, default_value = "etc/onehem-server.conf")]
    pub config: PathBuf,
    /// Without a command, the HEM runs as a daemon.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Runs as the hook supervisor of the HEM that started it (internal).
    #[arg(long, hide = true, requires = "socket")]
    pub supervisor: bool,
    /// The supervisor's socket (internal).
    #[arg(long, hide = true)]
    pub socket: Option<PathBuf>,
    /// Seconds the supervisor waits without HEM and hooks before it exits (internal).
    #[arg(long, hide = true, default_value_t = 300)]
    pub linger: u64,
    /// The soft limit of open files the supervisor's hooks start with, when the HEM raised its
    /// own (internal).
    #[arg(long, hide = true)]
    pub hook_open_files: Option<u64>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Copy the hook directory to hosts, sending only the files whose SHA-256 differs (like
    /// `onehost sync`); exits non-zero if any host failed.
    SyncHooks {
        /// The local directory to copy (default: hook_base_path).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Every host of the configuration's remote.hosts map.
        #[arg(long, conflicts_with = "hosts")]
        all: bool,
        /// Hosts, by their name in the cloud.
        #[arg(required_unless_present = "all")]
        hosts: Vec<String>,
    },
}

/// The command line's definition, for the man page and completions.
pub fn command() -> clap::Command {
    Args::command()
}
