//! The one shutdown switch every thread of the driver watches.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Why the driver stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// oned sent FINALIZE.
    Finalize,
    /// stdin reached end of file.
    StdinClosed,
    /// A signal (SIGTERM, SIGINT).
    Signal(String),
    /// Writing to oned failed: it is gone.
    StdoutClosed,
    /// A thread failed and the driver cannot go on.
    Fatal(String),
}

/// A cloneable handle: any clone can trigger, every clone sees it. The first reason wins.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    triggered: AtomicBool,
    reason: Mutex<Option<StopReason>>,
    changed: Condvar,
}

impl Shutdown {
    /// A switch that is off.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Turns the switch on (once; later reasons are ignored).
    pub fn trigger(&self, reason: StopReason) {
        let mut slot = self
            .inner
            .reason
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if slot.is_none() {
            *slot = Some(reason);
        }
        self.inner.triggered.store(true, Ordering::SeqCst);
        self.inner.changed.notify_all();
    }

    /// Whether the switch is on.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::SeqCst)
    }

    /// Blocks until the switch is on and returns the reason.
    pub fn wait(&self) -> StopReason {
        let mut slot = self
            .inner
            .reason
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            if let Some(reason) = slot.as_ref() {
                return reason.clone();
            }
            slot = self
                .inner
                .changed
                .wait_timeout(slot, Duration::from_secs(1))
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
    }
}

/// Blocks SIGTERM and SIGINT in the calling thread (and so in every thread it starts later) and
/// turns them into the shutdown switch from a dedicated thread. A second signal exits at once.
/// Call before any other thread is started.
pub fn watch_signals(shutdown: Shutdown) -> std::io::Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.thread_block().map_err(std::io::Error::from)?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut received = 0u32;
            while let Ok(signal) = set.wait() {
                received += 1;
                if received == 1 {
                    tracing::info!(signal = signal.as_str(), "signal received, shutting down");
                    shutdown.trigger(StopReason::Signal(signal.as_str().to_owned()));
                } else {
                    tracing::warn!(signal = signal.as_str(), "second signal, exiting now");
                    std::process::exit(1);
                }
            }
        })?;
    Ok(())
}
