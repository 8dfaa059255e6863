//! `oned-lite`'s command line, in the library so that the man page and shell completions are
//! generated from the same definition the binary parses.

use std::path::PathBuf;

use clap::{CommandFactory as _, Parser};

/// OpenNebula-compatible front-end: XML-RPC API, hook pool, hook log and a simulated cloud.
#[derive(Parser, Debug)]
#[command(name = "oned-lite", version)]
pub struct Args {
    /// Configuration file in OpenNebula template syntax [default: $ONE_LOCATION/etc/oned.conf,
    /// else the first of /etc/one/oned.conf and etc/oned.conf in an ancestor of this binary's
    /// directory].
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Directory for the database and the oneadmin credentials (`one_auth`) [default:
    /// $ONE_LOCATION/var, /var/lib/one for /etc/one/oned.conf, else `var` beside the
    /// configuration's `etc` directory].
    #[arg(long, value_name = "DIR")]
    pub var_dir: Option<PathBuf>,
}

/// The command line's definition, for the man page and completions.
pub fn command() -> clap::Command {
    Args::command()
}
