//! The ZAP handler (ZeroMQ RFC 27): libzmq asks it, over `inproc://zeromq.zap.01` in the
//! server sockets' context, whether a client that completed the CURVE handshake may go on. It
//! allows the keys of an [`AllowList`] and nothing else.
//!
//! libzmq lets a CURVE client in without asking anybody when no handler is bound, so the
//! handler is bound before any server socket and must outlive them all: [`ZapThread::stop`] is
//! called after every CURVE socket of the context is closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use tracing::{debug, warn};

use crate::cert::{AllowList, Key};
use crate::handshakes::{self, HandshakeFailure, Monitor};
use crate::rate_limit::RateLimit;

/// Where libzmq looks for the handler.
pub const ZAP_ENDPOINT: &str = "inproc://zeromq.zap.01";
/// How often the idle handler looks at its stop switch.
const POLL_MS: i64 = 100;

/// A bound ZAP socket, not yet served.
pub struct ZapHandler {
    socket: zmq::Socket,
    allowed: AllowList,
    monitors: Vec<Monitor>,
}

impl ZapHandler {
    /// Binds the handler in `ctx`. Bind it before the server sockets of `ctx`.
    pub fn bind(ctx: &zmq::Context, allowed: AllowList) -> Result<ZapHandler, zmq::Error> {
        let socket = ctx.socket(zmq::REP)?;
        socket.set_linger(0)?;
        socket.bind(ZAP_ENDPOINT)?;
        Ok(ZapHandler {
            socket,
            allowed,
            monitors: Vec::new(),
        })
    }

    /// Also reports the failed handshakes of `socket` (a CURVE server socket of `ctx`, named
    /// `name`) that never reach the handler ([`crate::handshakes`]). Call before [`spawn`].
    ///
    /// [`spawn`]: ZapHandler::spawn
    pub fn watch(
        &mut self,
        ctx: &zmq::Context,
        socket: &zmq::Socket,
        name: &str,
    ) -> zmq::Result<()> {
        self.monitors.push(Monitor::attach(ctx, socket, name)?);
        Ok(())
    }

    /// Serves requests on a thread of its own until stopped.
    pub fn spawn(self) -> std::io::Result<ZapThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("zap".into())
            .spawn(move || self.serve(&flag))?;
        Ok(ZapThread {
            stop,
            handle: Some(handle),
        })
    }

    fn serve(self, stop: &AtomicBool) {
        // Two budgets: a keyless client reconnecting in a loop must not hide the denials.
        let mut denials = RateLimit::default();
        let mut failures = RateLimit::default();
        while !stop.load(Ordering::Relaxed) {
            let ready = {
                let mut items: Vec<zmq::PollItem<'_>> = std::iter::once(&self.socket)
                    .chain(self.monitors.iter().map(|m| &m.socket))
                    .map(|s| s.as_poll_item(zmq::POLLIN))
                    .collect();
                match zmq::poll(&mut items, POLL_MS) {
                    Ok(0) => continue,
                    Ok(_) => items
                        .iter()
                        .map(zmq::PollItem::is_readable)
                        .collect::<Vec<_>>(),
                    Err(zmq::Error::EINTR) => continue,
                    Err(e) => {
                        warn!(error = %e, "ZAP socket poll failed; CURVE clients can no longer connect");
                        return;
                    }
                }
            };
            if ready.first() == Some(&true) {
                self.answer(&mut denials);
            }
            for (monitor, _) in self
                .monitors
                .iter()
                .zip(ready.iter().skip(1))
                .filter(|(_, ready)| **ready)
            {
                if let Ok(frames) = monitor.socket.recv_multipart(zmq::DONTWAIT)
                    && let Some(failure) = HandshakeFailure::parse(&frames)
                {
                    handshakes::record(&mut failures, Instant::now(), &monitor.name, &failure);
                }
            }
        }
        debug!("ZAP handler stopped");
    }

    /// Answers one ZAP request, if one is waiting.
    fn answer(&self, refusals: &mut RateLimit) {
        let frames = match self.socket.recv_multipart(zmq::DONTWAIT) {
            Ok(frames) => frames,
            Err(zmq::Error::EAGAIN | zmq::Error::EINTR) => return,
            Err(e) => {
                warn!(error = %e, "ZAP socket receive failed");
                return;
            }
        };
        let request = ZapRequest::parse(&frames);
        let verdict = decide(&request, &self.allowed);
        match &verdict {
            Verdict::Allow { name } => debug!(
                socket = %request.domain,
                peer = %request.address,
                client = %name,
                "CURVE client allowed"
            ),
            Verdict::Deny { reason } => {
                record_denial(refusals, Instant::now(), &request, reason);
            }
        }
        if let Err(e) = self.socket.send_multipart(reply(&request, &verdict), 0) {
            warn!(error = %e, "ZAP reply failed");
        }
    }
}

/// The running handler. Dropping it stops it too.
pub struct ZapThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl ZapThread {
    /// Stops the handler and waits for it (at most one poll interval).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take()
            && handle.join().is_err()
        {
            warn!("ZAP thread panicked");
        }
    }
}

impl Drop for ZapThread {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The parts of a ZAP request the handler looks at. Frames: version, request id, domain,
/// address, identity, mechanism, then the mechanism's credentials (CURVE: the client's key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZapRequest {
    pub version: Vec<u8>,
    pub request_id: Vec<u8>,
    pub domain: String,
    pub address: String,
    pub mechanism: String,
    pub credentials: Vec<Vec<u8>>,
}

impl ZapRequest {
    /// Reads any frames; missing ones are empty, so a malformed request is denied, not dropped
    /// (a REP socket must answer before it can read the next request).
    pub fn parse(frames: &[Vec<u8>]) -> ZapRequest {
        let text = |i: usize| {
            frames
                .get(i)
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .unwrap_or_default()
        };
        ZapRequest {
            version: frames.first().cloned().unwrap_or_default(),
            request_id: frames.get(1).cloned().unwrap_or_default(),
            domain: text(2),
            address: text(3),
            mechanism: text(5),
            credentials: frames.iter().skip(6).cloned().collect(),
        }
    }

    /// The client's key, if the request carries one.
    pub fn client_key(&self) -> Option<Key> {
        match self.credentials.as_slice() {
            [key] => <[u8; 32]>::try_from(key.as_slice()).ok().map(Key),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow { name: String },
    Deny { reason: &'static str },
}

/// Only CURVE clients whose key is on the list get in.
pub fn decide(request: &ZapRequest, allowed: &AllowList) -> Verdict {
    if request.version != b"1.0" {
        return Verdict::Deny {
            reason: "not a ZAP 1.0 request",
        };
    }
    if request.mechanism != "CURVE" {
        return Verdict::Deny {
            reason: "not a CURVE client",
        };
    }
    match request.client_key() {
        None => Verdict::Deny {
            reason: "no client key in the request",
        },
        Some(key) => match allowed.name_of(&key) {
            Some(name) => Verdict::Allow {
                name: name.to_string(),
            },
            None => Verdict::Deny {
                reason: "client key not in the allowed directory",
            },
        },
    }
}

/// The reply frames: version, request id, status code, status text, user id, metadata.
fn reply(request: &ZapRequest, verdict: &Verdict) -> Vec<Vec<u8>> {
    let (code, text, user): (&[u8], &str, &str) = match verdict {
        Verdict::Allow { name } => (b"200", "OK", name),
        Verdict::Deny { reason } => (b"400", reason, ""),
    };
    vec![
        b"1.0".to_vec(),
        request.request_id.clone(),
        code.to_vec(),
        text.as_bytes().to_vec(),
        user.as_bytes().to_vec(),
        Vec::new(),
    ]
}

/// Logs one ZAP denial within `limit`; returns whether it was logged.
pub fn record_denial(
    limit: &mut RateLimit,
    now: Instant,
    request: &ZapRequest,
    reason: &str,
) -> bool {
    if !limit.admit(now) {
        return false;
    }
    let key = request
        .client_key()
        .map_or_else(|| "-".to_string(), |k| k.z85());
    warn!(
        socket = %request.domain,
        peer = %request.address,
        key = %key,
        mechanism = %request.mechanism,
        reason,
        "CURVE client denied"
    );
    true
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn request(mechanism: &str, key: &[u8]) -> ZapRequest {
        ZapRequest::parse(&[
            b"1.0".to_vec(),
            b"7".to_vec(),
            b"publisher".to_vec(),
            b"127.0.0.1".to_vec(),
            Vec::new(),
            mechanism.as_bytes().to_vec(),
            key.to_vec(),
        ])
    }

    fn allowed_pair() -> (AllowList, Key) {
        let dir = tempfile::tempdir().expect("tempdir");
        let pair = crate::cert::generate(dir.path(), "hem").expect("pair");
        (AllowList::load_dir(dir.path()).expect("list"), pair.public)
    }

    #[test]
    fn only_listed_curve_keys_are_allowed() {
        let (list, key) = allowed_pair();
        assert_eq!(
            decide(&request("CURVE", &key.0), &list),
            Verdict::Allow { name: "hem".into() }
        );
        let stranger = zmq::CurveKeyPair::new().expect("pair").public_key;
        assert!(matches!(
            decide(&request("CURVE", &stranger), &list),
            Verdict::Deny { .. }
        ));
        assert!(matches!(
            decide(&request("NULL", &[]), &list),
            Verdict::Deny { .. }
        ));
        assert!(matches!(
            decide(&request("CURVE", &key.0[..31]), &list),
            Verdict::Deny { .. }
        ));
        let mut old = request("CURVE", &key.0);
        old.version = b"0.9".to_vec();
        assert!(matches!(decide(&old, &list), Verdict::Deny { .. }));
        assert!(matches!(
            decide(&ZapRequest::parse(&[]), &list),
            Verdict::Deny { .. }
        ));
        let frames = reply(
            &request("CURVE", &key.0),
            &Verdict::Allow { name: "hem".into() },
        );
        assert_eq!(
            frames[..3],
            [b"1.0".to_vec(), b"7".to_vec(), b"200".to_vec()]
        );
    }

    #[test]
    fn denials_are_logged_a_few_a_minute() {
        let mut log = RateLimit::default();
        let start = Instant::now();
        let denied = request("CURVE", &[0; 32]);
        let logged = (0..50)
            .filter(|i| {
                record_denial(
                    &mut log,
                    start + Duration::from_millis(i * 100),
                    &denied,
                    "test",
                )
            })
            .count();
        assert_eq!(logged, crate::rate_limit::PER_WINDOW as usize);
        assert_eq!(log.suppressed, 40);
        assert!(record_denial(
            &mut log,
            start + crate::rate_limit::WINDOW,
            &denied,
            "test"
        ));
        assert_eq!(log.suppressed, 0);
    }
}
