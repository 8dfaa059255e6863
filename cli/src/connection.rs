//! The options every tool shares for reaching the front-end: `--endpoint`, `--user` and
//! `--password`, else `ONE_XMLRPC` and `ONE_AUTH`, else OpenNebula's default files and URL.

use std::io::{BufRead, Write};

use one_client::Client;

use crate::console::CliError;

#[derive(Clone, Debug, Default, clap::Args)]
pub struct ConnectionArgs {
    /// URL of the XML-RPC front-end (default: $ONE_XMLRPC, ~/.one/one_endpoint, http://localhost:2633/RPC2)
    #[arg(long, global = true, value_name = "endpoint")]
    pub endpoint: Option<String>,
    /// User name to connect as (default: the session in $ONE_AUTH or ~/.one/one_auth)
    #[arg(long, global = true, value_name = "name")]
    pub user: Option<String>,
    /// Password for --user; asked for on the terminal when missing
    #[arg(long, global = true, value_name = "password")]
    pub password: Option<String>,
}

impl ConnectionArgs {
    /// A client for the chosen endpoint and session.
    pub fn client(&self) -> Result<Client, CliError> {
        let endpoint = match &self.endpoint {
            Some(e) => e.trim().to_string(),
            None => one_client::endpoint_from_env(),
        };
        let session = match &self.user {
            Some(user) => {
                let password = match &self.password {
                    Some(p) => p.clone(),
                    None => ask_password()?,
                };
                format!("{user}:{password}")
            }
            None => one_client::session_from_env()?,
        };
        Ok(Client::new(&endpoint, &session))
    }
}

/// Asks for the password on the controlling terminal with echo off, or reads one line from
/// stdin when there is no terminal.
fn ask_password() -> Result<String, CliError> {
    let io_err = |what: &str, source| CliError::Io {
        what: what.to_string(),
        source,
    };
    let Ok(tty) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| io_err("reading the password from stdin", e))?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    };
    let mut writer = &tty;
    write!(writer, "Password: ").map_err(|e| io_err("writing the password prompt", e))?;
    let saved = rustix::termios::tcgetattr(&tty).ok();
    if let Some(saved) = &saved {
        let mut quiet = saved.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        let _ = rustix::termios::tcsetattr(&tty, rustix::termios::OptionalActions::Now, &quiet);
    }
    let mut line = String::new();
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    if let Some(saved) = &saved {
        let _ = rustix::termios::tcsetattr(&tty, rustix::termios::OptionalActions::Now, saved);
    }
    let _ = writeln!(writer);
    read.map_err(|e| io_err("reading the password", e))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}
