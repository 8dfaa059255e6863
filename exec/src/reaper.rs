//! One reaper for every child of a process whose only children are the processes it spawns
//! through it (the HEM's hook supervisor).
//!
//! Tokio waits for each child on a pidfd of its own: `pidfd_open`, two `epoll_ctl` calls and a
//! `close` per process, besides the wait itself. Here SIGCHLD is blocked and read from one
//! signalfd, registered once; each time it is readable, every child that has ended is reaped
//! with `waitpid(-1, WNOHANG)` (one signal may stand for several exits) and its status goes to
//! whoever waits for that pid. Because it reaps any child, nothing else in the process may wait
//! for children of its own.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;

/// Those waiting for an exit, by pid.
pub(crate) type Waiting = HashMap<i32, oneshot::Sender<ExitStatus>>;

/// The process's reaper; clones share it.
#[derive(Clone)]
pub struct Reaper {
    shared: Arc<Shared>,
}

struct Shared {
    /// Held while a child is spawned and registered, and while children are reaped: a child
    /// is never reaped before its waiter is registered.
    waiting: Mutex<Waiting>,
    /// Taken by [`Reaper::run`].
    signals: Mutex<Option<SignalFd>>,
}

impl std::fmt::Debug for Reaper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reaper").finish_non_exhaustive()
    }
}

impl Reaper {
    /// Blocks SIGCHLD in the calling thread and opens the signalfd that receives it instead.
    /// Call it before the process starts any other thread (threads inherit the mask; one that
    /// does not block SIGCHLD would take the signal and drop it), then spawn the loop of
    /// [`watch`](Self::watch) on the runtime. The processes spawned still start with an empty
    /// signal mask.
    pub fn new() -> std::io::Result<Reaper> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(Reaper {
            shared: Arc::new(Shared {
                waiting: Mutex::new(HashMap::new()),
                signals: Mutex::new(Some(signals)),
            }),
        })
    }

    /// Registers the signalfd with the current runtime and returns the loop that reaps
    /// children as they end, to be spawned on it. Fails if that cannot be done (then nothing
    /// would be reaped), or if the reaper is watched already.
    #[allow(unsafe_code)]
    pub fn watch(&self) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
        let signals = self
            .shared
            .signals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| std::io::Error::other("the reaper is watched already"))?;
        // SAFETY: the `SignalFd` owns its descriptor, which stays open and the same until the
        // `AsyncFd` (its only owner from here on) is dropped.
        let registered = unsafe { AsyncFd::register_with_interest(signals, Interest::READABLE) };
        let signals = registered.map_err(std::io::Error::from)?;
        let reaper = self.clone();
        Ok(async move {
            while let Ok(mut ready) = signals.readable().await {
                // Read every queued signal first: an exit after this reading raises the next one.
                while let Ok(Some(_)) | Err(Errno::EINTR) = signals.get_ref().read_signal() {}
                ready.clear_ready();
                reaper.reap();
            }
        })
    }

    /// The registry, locked; the spawning code holds it from the spawn until the new child's
    /// waiter is in.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.shared
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Reaps every child that has ended and hands each status to its waiter.
    fn reap(&self) {
        let mut waiting = self.lock();
        loop {
            let (pid, status) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => {
                    (pid, ExitStatus::from_raw((code & 0xff) << 8))
                }
                Ok(WaitStatus::Signaled(pid, signal, core)) => (
                    pid,
                    ExitStatus::from_raw(signal as i32 | if core { 0x80 } else { 0 }),
                ),
                Err(Errno::EINTR) => continue,
                // Nothing more has ended (or no child is left).
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                // Stops and continues are not asked for; nothing to report.
                Ok(_) => continue,
            };
            // A waiter that is gone (its execution dropped) does not want it.
            if let Some(waiter) = waiting.remove(&pid.as_raw()) {
                let _ = waiter.send(status);
            }
        }
    }
}
