//! The periodic full reload of the hook pool, a safety net for the event-driven reloads: a
//! thread that fetches the pool every `resync_interval` (or sooner when a reload failed) and
//! hands it to the event readers.

use std::sync::mpsc;
use std::time::Duration;

use crate::hook_source::XmlRpcHookSource;
use crate::matcher::{HookSource, Snapshot};

/// Reloads the whole hook pool every `interval` (or sooner on request) and hands it to the
/// event readers (`deliver` returns false once nobody listens), which apply it unless an
/// event-driven reload happened meanwhile. Ends when every request sender is gone, `stopping`
/// says so, or nobody listens.
pub fn resync_loop(
    source: XmlRpcHookSource,
    interval: Duration,
    requests: mpsc::Receiver<()>,
    stopping: impl Fn() -> bool,
    deliver: impl Fn(Snapshot) -> bool,
) {
    loop {
        match requests.recv_timeout(interval) {
            Ok(()) => {
                // Let a burst of failures settle before asking the front-end again.
                std::thread::sleep(Duration::from_secs(2));
                while requests.try_recv().is_ok() {}
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        if stopping() {
            return;
        }
        let fetched_at = std::time::Instant::now();
        match source.pool() {
            Ok(hooks) => {
                crate::memory::release_free_memory();
                tracing::debug!(hooks = hooks.len(), "hook pool resync fetched");
                if !deliver(Snapshot { fetched_at, hooks }) {
                    return;
                }
            }
            Err(e) => tracing::error!("Cannot get hook information: {e}"),
        }
    }
}
