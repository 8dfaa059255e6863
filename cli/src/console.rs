//! Where a command reads and writes: stdout, stderr and stdin, the terminal facts and the time
//! zone. Commands take a `Console` so tests can run them against buffers.

use std::io::{Read, Write};

use crate::terminal::Terminal;
use crate::timestamp::Zone;

/// The exit status of a failed command: the reference CLI exits with Ruby's `exit(-1)`.
pub const FAILURE: u8 = 255;

pub struct Console<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    pub stdin: &'a mut dyn Read,
    /// Stdin is a terminal (so nobody is piping a template in).
    pub stdin_tty: bool,
    pub terminal: Terminal,
    pub zone: Zone,
}

impl Console<'_> {
    /// Writes command output; a closed stdout (`| head`) is not an error worth reporting.
    pub fn write(&mut self, bytes: impl AsRef<[u8]>) -> Result<(), CliError> {
        match self.out.write_all(bytes.as_ref()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(CliError::BrokenPipe),
            Err(e) => Err(CliError::Io {
                what: "writing to stdout".to_string(),
                source: e,
            }),
        }
    }

    pub fn eprintln(&mut self, message: &str) {
        // Nothing sensible is left to do when stderr itself cannot be written.
        let _ = writeln!(self.err, "{message}");
    }

    /// Reads all of stdin as text.
    pub fn read_stdin(&mut self) -> Result<String, CliError> {
        let mut text = String::new();
        self.stdin
            .read_to_string(&mut text)
            .map_err(|e| CliError::Io {
                what: "reading stdin".to_string(),
                source: e,
            })?;
        Ok(text)
    }
}

/// Why a command failed. `Display` is exactly what goes to stderr: for a refused call, the
/// server's own message (`[one.hook.info] Error getting hook [5].`).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Client(#[from] one_client::ClientError),
    #[error("{0}")]
    Usage(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Xml {
        what: String,
        #[source]
        source: crate::xml::XmlError,
    },
    #[error("{0}")]
    Table(#[from] crate::table::TableError),
    #[error("{0}")]
    Date(#[from] crate::date::DateError),
    /// Stdout was closed by the reader; the command stops quietly.
    #[error("broken pipe")]
    BrokenPipe,
    /// Several actions failed; each message was already printed.
    #[error("")]
    Reported,
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError::Usage(message.into())
    }
}

/// Parses a document the server returned, naming it in the error.
pub fn parse_document(text: &str, what: &str) -> Result<crate::xml::Element, CliError> {
    crate::xml::parse(text).map_err(|source| CliError::Xml {
        what: format!("cannot read the {what} document"),
        source,
    })
}

/// Turns a command's result into the process exit status, printing the error on stderr.
pub fn finish(result: Result<(), CliError>, console: &mut Console<'_>) -> u8 {
    match result {
        Ok(()) => 0,
        Err(CliError::BrokenPipe) => 0,
        Err(CliError::Reported) => FAILURE,
        Err(e) => {
            console.eprintln(&e.to_string());
            FAILURE
        }
    }
}
