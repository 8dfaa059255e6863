//! CURVE authentication and encryption for the driver's ZeroMQ sockets (ARCHITECTURE.md
//! "CURVE"): certificate files in CZMQ's and pyzmq's format ([`cert`]), the ZAP handler that
//! admits only listed client keys ([`zap`]), the monitors that report handshakes failing before it
//! is asked ([`handshakes`]), and the socket options of each end.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod cert;
pub mod handshakes;
pub mod rate_limit;
pub mod z85;
pub mod zap;

use std::path::Path;

pub use cert::{AllowList, CertError, Key, SecretCert};
pub use zap::{ZapHandler, ZapThread};

/// Fails when the linked libzmq was built without CURVE (libsodium or tweetnacl).
pub fn check_available() -> Result<(), String> {
    if zmq::has("curve") == Some(true) {
        Ok(())
    } else {
        let (major, minor, patch) = zmq::version();
        Err(format!(
            "the linked libzmq {major}.{minor}.{patch} was built without CURVE support; \
             install a libzmq built with libsodium (Debian's libzmq5 is) or turn CURVE off"
        ))
    }
}

/// A server's side: its certificate and the clients it admits.
#[derive(Debug, Clone)]
pub struct ServerKeys {
    pub cert: SecretCert,
    pub clients: AllowList,
}

impl ServerKeys {
    /// Makes `socket` a CURVE server whose ZAP requests carry `domain` (the socket's name in
    /// denial logs). Call before binding.
    pub fn apply(&self, socket: &zmq::Socket, domain: &str) -> zmq::Result<()> {
        socket.set_curve_server(true)?;
        socket.set_curve_secretkey(&self.cert.secret.0)?;
        socket.set_zap_domain(domain)
    }
}

/// A client's side: its own certificate and the server's public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKeys {
    pub server: Key,
    pub cert: SecretCert,
}

impl ClientKeys {
    /// Loads the server's public certificate and the client's secret one.
    pub fn load(server_file: &Path, client_secret_file: &Path) -> Result<ClientKeys, CertError> {
        Ok(ClientKeys {
            server: cert::load_public(server_file)?,
            cert: cert::load_secret(client_secret_file)?,
        })
    }

    /// Makes `socket` a CURVE client of the server. Call before connecting.
    pub fn apply(&self, socket: &zmq::Socket) -> zmq::Result<()> {
        socket.set_curve_serverkey(&self.server.0)?;
        socket.set_curve_publickey(&self.cert.public.0)?;
        socket.set_curve_secretkey(&self.cert.secret.0)
    }
}

/// Applies optional client keys: `None` leaves the socket on ZeroMQ's NULL mechanism.
pub fn apply_client(keys: Option<&ClientKeys>, socket: &zmq::Socket) -> zmq::Result<()> {
    keys.map_or(Ok(()), |k| k.apply(socket))
}
