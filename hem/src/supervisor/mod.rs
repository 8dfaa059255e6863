//! Local hooks run under a per-HEM supervisor process that outlives the HEM (ARCHITECTURE.md,
//! "The hook supervisor").
//!
//! The supervisor is this binary re-executed in a hidden mode ([`server::serve`]); the HEM
//! talks to it over a Unix socket next to its state DB ([`client::Supervised`]) with the frames
//! of [`frame`]. After a crash of the HEM the hooks go on under the supervisor, which keeps
//! their outcomes until the restarted HEM has taken them into its state DB. In the distributed
//! mode it finishes a dead HEM's executions itself ([`caretaker`]).

pub mod caretaker;
pub mod client;
pub mod frame;
pub mod server;

use std::path::{Path, PathBuf};

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// The line a new supervisor prints on its stdout once it listens.
pub(crate) const READY: &str = "ready";
/// The line it prints instead when another supervisor already serves the socket.
pub(crate) const BUSY: &str = "busy";

/// The supervisor's socket of the HEM whose state DB is `state_db`: beside it, so two HEMs
/// never share one. Its lock file and its log share the name with other extensions.
pub fn socket_path(state_db: &Path) -> PathBuf {
    let mut name = state_db.as_os_str().to_owned();
    name.push(".hooks.sock");
    PathBuf::from(name)
}

/// The log file of the supervisor (its stderr) serving `socket`.
pub fn log_path(socket: &Path) -> PathBuf {
    socket.with_extension("log")
}

/// A frame to write, and who waits until it is written.
#[derive(Debug)]
pub(crate) struct Outgoing {
    bytes: Vec<u8>,
    written: Option<oneshot::Sender<()>>,
}

impl From<Vec<u8>> for Outgoing {
    fn from(bytes: Vec<u8>) -> Outgoing {
        Outgoing {
            bytes,
            written: None,
        }
    }
}

/// Writes a connection's frames, all those queued in one write, until the queue closes or a
/// write fails.
pub(crate) async fn write_frames(
    mut write: impl AsyncWrite + Unpin,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    let mut buf = Vec::new();
    let mut written = Vec::new();
    while let Some(first) = rx.recv().await {
        buf.clear();
        let mut next = Some(first);
        while let Some(out) = next {
            buf.extend_from_slice(&out.bytes);
            written.extend(out.written);
            next = rx.try_recv().ok();
        }
        if write.write_all(&buf).await.is_err() {
            return;
        }
        for w in written.drain(..) {
            let _ = w.send(());
        }
    }
}
