//! systemd's readiness protocol (`sd_notify`): a daemon started by a `Type=notify` unit sends
//! `READY=1` once it serves and `STOPPING=1` when it begins to shut down, as one datagram to the
//! Unix socket named by `$NOTIFY_SOCKET`. A path starting with `@` names a socket in the
//! abstract namespace. Without the variable (a daemon started by hand or by a test) every call
//! does nothing, so the daemons call these functions unconditionally.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// The daemon is serving: its sockets are bound and requests are handled.
pub const READY: &str = "READY=1";

/// The daemon has begun its orderly shutdown.
pub const STOPPING: &str = "STOPPING=1";

/// Tells the service manager the daemon is ready. A failure is logged, not returned: the
/// daemon serves either way, and systemd reports the missing notification by its start timeout.
pub fn ready() {
    announce(READY);
}

/// Tells the service manager the daemon is stopping (a failure is logged).
pub fn stopping() {
    announce(STOPPING);
}

fn announce(state: &str) {
    match notify(state) {
        Ok(true) => tracing::debug!(state, "service manager notified"),
        Ok(false) => {}
        Err(e) => tracing::warn!(state, error = %e, "cannot notify the service manager"),
    }
}

/// Sends `state` (newline-separated `KEY=VALUE` assignments) to `$NOTIFY_SOCKET`; `Ok(false)`
/// when the variable is unset or empty.
pub fn notify(state: &str) -> io::Result<bool> {
    match std::env::var_os(NOTIFY_SOCKET) {
        Some(path) if !path.is_empty() => {
            let path = path.into_string().map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "NOTIFY_SOCKET is not UTF-8")
            })?;
            send_to(&path, state)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Sends `state` as one datagram to the socket at `path` (`@name`: the abstract namespace).
pub fn send_to(path: &str, state: &str) -> io::Result<()> {
    let address = socket_address(path)?;
    let socket = UnixDatagram::unbound()?;
    let sent = socket.send_to_addr(state.as_bytes(), &address)?;
    if sent != state.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("notification truncated to {sent} of {} bytes", state.len()),
        ));
    }
    Ok(())
}

fn socket_address(path: &str) -> io::Result<SocketAddr> {
    match path.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt as _;
            SocketAddr::from_abstract_name(name.as_bytes())
        }
        None if path.starts_with('/') => SocketAddr::from_pathname(path),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("NOTIFY_SOCKET {path:?} is neither an absolute path nor an abstract name"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn receive(socket: &UnixDatagram) -> String {
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).expect("a datagram");
        String::from_utf8(buf[..n].to_vec()).expect("UTF-8")
    }

    #[test]
    fn ready_and_stopping_reach_a_path_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let receiver = UnixDatagram::bind(&path).expect("bind");
        let path = path.to_str().expect("UTF-8 path");
        send_to(path, READY).expect("send ready");
        send_to(path, STOPPING).expect("send stopping");
        assert_eq!(receive(&receiver), "READY=1");
        assert_eq!(receive(&receiver), "STOPPING=1");
    }

    #[test]
    fn abstract_names_are_reached() {
        let name = format!("one-notify-test-{}", std::process::id());
        let receiver =
            UnixDatagram::bind_addr(&socket_address(&format!("@{name}")).expect("address"))
                .expect("bind abstract");
        send_to(&format!("@{name}"), READY).expect("send");
        assert_eq!(receive(&receiver), "READY=1");
    }

    #[test]
    fn a_relative_path_or_a_missing_socket_is_an_error() {
        let err = send_to("notify.sock", READY).expect_err("relative path");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("absent.sock");
        assert!(send_to(missing.to_str().expect("UTF-8"), READY).is_err());
    }
}
