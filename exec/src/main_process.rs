//! The main process of an execution, waited for by tokio or by the process's
//! [`Reaper`](crate::Reaper): what the group's kill and the supervision both wait on.

use std::process::ExitStatus;

use tokio::process::Child;
use tokio::sync::oneshot;

/// The main process, waited for by tokio or by the process's reaper.
#[derive(Debug)]
pub(crate) enum Main {
    Tokio {
        child: Child,
        pid: i32,
    },
    Reaped {
        pid: i32,
        exit: oneshot::Receiver<ExitStatus>,
        /// Once received: the status, or `None` if the reaper went away.
        status: Option<Option<ExitStatus>>,
    },
}

impl Main {
    pub(crate) fn pid(&self) -> i32 {
        match self {
            Main::Tokio { pid, .. } | Main::Reaped { pid, .. } => *pid,
        }
    }

    /// Waits until the process has ended and been reaped; again and again, the same status.
    pub(crate) async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        match self {
            Main::Tokio { child, .. } => child.wait().await,
            Main::Reaped { exit, status, .. } => {
                let received = match status {
                    Some(received) => *received,
                    None => *status.insert((&mut *exit).await.ok()),
                };
                received.ok_or_else(|| std::io::Error::other("the reaper stopped"))
            }
        }
    }
}
