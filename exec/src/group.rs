//! The process group a hook runs in: signals, the kill sequence, and the kill on drop.

use std::process::ExitStatus;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::time::Instant;

use crate::main_process::Main;

/// How often the group is checked while it is being killed.
const POLL: Duration = Duration::from_millis(10);

/// How long the kill sequence waits for the kernel to tear the group down after SIGKILL, so that
/// a result only arrives once nothing of the hook runs any more.
const SETTLE: Duration = Duration::from_secs(1);

/// The group of one spawned process, whose id is the process's pid. Killed with SIGKILL when
/// dropped while armed, that is before the main process was reaped, so an execution that is
/// abandoned (its future dropped) leaves nothing behind.
#[derive(Debug)]
pub(crate) struct Group {
    pgid: Pid,
    armed: bool,
}

impl Group {
    pub(crate) fn new(pid: i32) -> Group {
        Group {
            pgid: Pid::from_raw(pid),
            armed: true,
        }
    }

    pub(crate) fn id(&self) -> i32 {
        self.pgid.as_raw()
    }

    /// Called once the main process is reaped: from then on, processes the hook left running
    /// are its own business unless the kill sequence is under way.
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }

    fn signal(&self, sig: Signal) {
        let _ = killpg(self.pgid, sig);
    }

    /// Whether any process of the group still exists.
    fn alive(&self) -> bool {
        killpg(self.pgid, None) != Err(Errno::ESRCH)
    }

    /// SIGTERM to the group, SIGKILL after `grace` to whatever is left of it (the main process
    /// or its descendants), then a bounded wait until the group is gone. Reaps the main
    /// process and returns its status.
    pub(crate) async fn kill(
        &mut self,
        child: &mut Main,
        grace: Duration,
    ) -> std::io::Result<ExitStatus> {
        let deadline = Instant::now() + grace;
        self.signal(Signal::SIGTERM);
        let status = match tokio::time::timeout_at(deadline, child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                self.signal(Signal::SIGKILL);
                child.wait().await
            }
        };
        // Descendants that ignored SIGTERM get the rest of the grace period, then SIGKILL.
        while self.alive() {
            if Instant::now() >= deadline {
                self.signal(Signal::SIGKILL);
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        // SIGKILL is asynchronous: wait (bounded) until the kernel has removed the group.
        let settle = Instant::now() + SETTLE;
        while self.alive() && Instant::now() < settle {
            tokio::time::sleep(POLL).await;
        }
        self.disarm();
        status
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.armed {
            self.signal(Signal::SIGKILL);
        }
    }
}

/// Sends SIGKILL to process group `pgid` (ignored unless positive), for a supervisor that
/// exits while executions still run and cannot wait for their futures to be dropped.
pub fn kill_group_now(pgid: i32) {
    if pgid > 0 {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}
