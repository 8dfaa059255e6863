//! Why a remote execution could not run. Each message names the host, and ends up after
//! `Internal error ` in the failure record.

use std::time::Duration;

use super::command_path::CommandRefused;
use super::known_hosts::HostKeyProblem;

/// A remote execution that did not run (or whose fate is unknown because its host went away).
#[derive(Debug, Clone, thiserror::Error)]
pub enum RemoteError {
    /// The remote configuration cannot be used.
    #[error("remote configuration: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
    /// The identity (private key) cannot be loaded.
    #[error("cannot load SSH identity {path}: {message}")]
    Identity {
        /// The key file.
        path: String,
        /// Why.
        message: String,
    },
    /// TCP connection or SSH handshake failed.
    #[error("cannot connect to {host} ({endpoint}): {message}")]
    Connect {
        /// The host's name.
        host: String,
        /// `address:port`.
        endpoint: String,
        /// Why.
        message: String,
    },
    /// No connection within the connect timeout.
    #[error("cannot connect to {host} ({endpoint}): connect timeout ({timeout:?}) expired")]
    ConnectTimeout {
        /// The host's name.
        host: String,
        /// `address:port`.
        endpoint: String,
        /// The configured timeout.
        timeout: Duration,
    },
    /// The host key is not the one known_hosts lists.
    #[error(
        "host key verification failed for {host} ({endpoint}): {problem} (known_hosts: {known_hosts})"
    )]
    HostKey {
        /// The host's name.
        host: String,
        /// `address:port`.
        endpoint: String,
        /// Unknown, changed or revoked, with the fingerprint.
        problem: HostKeyProblem,
        /// The files consulted.
        known_hosts: String,
    },
    /// The server refused our key.
    #[error("authentication as {user} on {host} ({endpoint}) failed with key {identity}")]
    Auth {
        /// The host's name.
        host: String,
        /// `address:port`.
        endpoint: String,
        /// The login user.
        user: String,
        /// The key file.
        identity: String,
    },
    /// The host failed recently; it is not retried before its backoff expires.
    #[error("{host} is unreachable (next attempt in {retry_in:.1?}): {last}")]
    Backoff {
        /// The host's name.
        host: String,
        /// Time left before the next connection attempt.
        retry_in: Duration,
        /// The last connection error.
        last: String,
    },
    /// A channel could not be opened or broke.
    #[error("SSH channel to {host}: {message}")]
    Channel {
        /// The host's name.
        host: String,
        /// Why.
        message: String,
        /// Whether the connection itself is gone (nothing started; a new connection may work).
        connection_lost: bool,
    },
    /// The agent could not be started, installed or spoken to.
    #[error("onehem-agent on {host}: {message}")]
    Agent {
        /// The host's name.
        host: String,
        /// Why.
        message: String,
    },
    /// The command is outside the host's hook directory.
    #[error(transparent)]
    Refused(#[from] CommandRefused),
    /// The executor was shut down.
    #[error("remote executor is shut down")]
    ShutDown,
}

/// An I/O error as the reference prints it, without Rust's `(os error N)` suffix.
pub(crate) fn io_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    }
}
