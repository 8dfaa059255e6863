//! Failed CURVE handshakes that never reach the ZAP handler: a client on ZeroMQ's NULL
//! mechanism, or one whose handshake is garbled, is dropped by libzmq before any ZAP request.
//! Each CURVE server socket gets a monitor (an inproc PAIR) that reports those failures, and
//! the ZAP thread logs them beside its denials, rate-limited the same way but on a budget of
//! their own.
//!
//! Failures the ZAP handler decided (`HANDSHAKE_FAILED_AUTH`) are not watched: the handler
//! logs them already, with the client's key.

use std::time::Instant;

use tracing::warn;

use crate::rate_limit::RateLimit;

/// The events watched: protocol errors and failures without detail.
pub const WATCHED_EVENTS: i32 = zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL as i32
    | zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL as i32;

/// One socket's monitor: the PAIR end that receives its events.
pub struct Monitor {
    pub name: String,
    pub socket: zmq::Socket,
}

impl Monitor {
    /// Starts monitoring `watched` (a CURVE server socket named `name`) in `ctx`.
    pub fn attach(ctx: &zmq::Context, watched: &zmq::Socket, name: &str) -> zmq::Result<Monitor> {
        let endpoint = format!("inproc://one-curve-handshakes-{name}");
        watched.monitor(&endpoint, WATCHED_EVENTS)?;
        let socket = ctx.socket(zmq::PAIR)?;
        socket.set_linger(0)?;
        socket.connect(&endpoint)?;
        Ok(Monitor {
            name: name.to_string(),
            socket,
        })
    }
}

/// A monitor event: its kind, value (a protocol error code) and the socket's endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeFailure {
    pub event: u16,
    pub value: u32,
    pub endpoint: String,
}

impl HandshakeFailure {
    /// Reads libzmq's two-frame monitor message (event and value, then the endpoint);
    /// anything else is `None`.
    pub fn parse(frames: &[Vec<u8>]) -> Option<HandshakeFailure> {
        let [head, endpoint] = frames else {
            return None;
        };
        let event = u16::from_le_bytes(head.get(..2)?.try_into().ok()?);
        let value = u32::from_le_bytes(head.get(2..6)?.try_into().ok()?);
        Some(HandshakeFailure {
            event,
            value,
            endpoint: String::from_utf8_lossy(endpoint).into_owned(),
        })
    }

    /// What went wrong, in words an operator can act on.
    pub fn reason(&self) -> &'static str {
        if self.event == zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL as u16 {
            return "the connection ended during the handshake (as a client that does not use CURVE ends it)";
        }
        match self.value {
            0x1100_0002 => "the client does not use CURVE (mechanism mismatch)",
            0x1100_0001 => "the client's CURVE handshake failed to decrypt (wrong server key?)",
            0x1000_0003 => "the key exchange failed",
            v if v & 0xF000_0000 == 0x1000_0000 => "the client broke the ZMTP handshake",
            _ => "protocol error in the handshake",
        }
    }
}

/// Logs one failure on socket `name`, within `limit`; returns whether it was
/// logged.
pub fn record(limit: &mut RateLimit, now: Instant, name: &str, failure: &HandshakeFailure) -> bool {
    if !limit.admit(now) {
        return false;
    }
    warn!(
        socket = %name,
        endpoint = %failure.endpoint,
        code = format_args!("{:#x}", failure.value),
        reason = failure.reason(),
        "CURVE handshake failed before authentication"
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(event: u16, value: u32, endpoint: &str) -> Vec<Vec<u8>> {
        let mut head = event.to_le_bytes().to_vec();
        head.extend_from_slice(&value.to_le_bytes());
        vec![head, endpoint.as_bytes().to_vec()]
    }

    #[test]
    fn monitor_messages_are_read_and_explained() {
        let protocol = zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL as u16;
        let failure =
            HandshakeFailure::parse(&frames(protocol, 0x1100_0002, "tcp://127.0.0.1:2101"))
                .expect("parsed");
        assert_eq!(failure.endpoint, "tcp://127.0.0.1:2101");
        assert!(failure.reason().contains("does not use CURVE"));
        let quiet = zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL as u16;
        let failure = HandshakeFailure::parse(&frames(quiet, 0, "x")).expect("parsed");
        assert!(failure.reason().contains("ended during the handshake"));
        assert_eq!(HandshakeFailure::parse(&[vec![1, 2]]), None);
        assert_eq!(HandshakeFailure::parse(&[vec![1, 2], vec![]]), None);
        assert_eq!(HandshakeFailure::parse(&[]), None);
    }

    #[test]
    fn a_null_client_is_reported_by_the_monitor() {
        let ctx = zmq::Context::new();
        let server = ctx.socket(zmq::PUB).expect("socket");
        let pair = zmq::CurveKeyPair::new().expect("keys");
        server.set_curve_server(true).expect("curve");
        server.set_curve_secretkey(&pair.secret_key).expect("key");
        server.set_linger(0).expect("linger");
        server.bind("tcp://127.0.0.1:*").expect("bind");
        let endpoint = server
            .get_last_endpoint()
            .expect("endpoint")
            .expect("utf-8");
        let monitor = Monitor::attach(&ctx, &server, "publisher").expect("monitor");
        monitor.socket.set_rcvtimeo(10_000).expect("timeout");

        let client = ctx.socket(zmq::SUB).expect("socket");
        client.set_linger(0).expect("linger");
        client.connect(&endpoint).expect("connect");

        let message = monitor.socket.recv_multipart(0).expect("an event");
        let failure = HandshakeFailure::parse(&message).expect("parsed");
        assert_eq!(
            failure.event,
            zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL as u16
        );
        assert!(
            failure.reason().contains("does not use CURVE"),
            "{failure:?}"
        );
    }
}
