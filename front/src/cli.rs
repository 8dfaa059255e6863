//! `oned-lite`'s command line, in the library so that the man page and shell completions are
//! generated from the same definition the binary parses.

use std::path::PathBuf;

use clap::{CommandFactory as _, Parser};

/// OpenNebula-compatible front-end: XML-RPC API, hook pool, hook log and a simulated cloud.
#[derive(Parser, Debug)]
#[command(name = "oned-lite", version)]
pub struct Args {
    /// Configuration file in OpenNebula template syntax.
    #[arg(long, value_name = "PATH", default_value = "etc/oned.conf")]
    pub config: PathBuf,
    /// Directory for the database and the oneadmin credentials (`one_auth`).
    #[arg(long, value_name = "DIR", default_value = "var")]
    pub var_dir: PathBuf,
}

/// The command line's definition, for the man page and completions.
pub fn command() -> clap::Command {
    Args::command()
}
