//! A doorbell an OS thread can wait on beside its ZeroMQ sockets: a pipe whose read end is
//! readable from a [`Bell::ring`] until the next [`Bell::drain`]. Whoever hands the thread work
//! through a channel rings it, so the thread sleeps until something happens instead of waking
//! on a timer to look.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use nix::fcntl::OFlag;

/// A cloneable handle to one doorbell.
#[derive(Clone, Debug)]
pub struct Bell {
    pipe: Arc<(OwnedFd, OwnedFd)>,
}

impl Bell {
    pub fn new() -> io::Result<Bell> {
        let pair = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        Ok(Bell {
            pipe: Arc::new(pair),
        })
    }

    /// Makes the read end readable. A full pipe is already readable, so a failed write changes
    /// nothing that matters.
    pub fn ring(&self) {
        let _ = nix::unistd::write(&self.pipe.1, &[1]);
    }

    /// Empties the pipe: the next wait sleeps until the next ring.
    pub fn drain(&self) {
        let mut buf = [0u8; 256];
        while let Ok(n) = nix::unistd::read(&self.pipe.0, &mut buf) {
            if n < buf.len() {
                break;
            }
        }
    }

    /// The end to poll for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.pipe.0.as_fd()
    }
}

/// Whether any of `fds` is readable now.
pub fn readable(fds: &[BorrowedFd<'_>]) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut polled: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .collect();
    matches!(poll(&mut polled, PollTimeout::ZERO), Ok(n) if n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_until_drained() {
        let bell = Bell::new().unwrap();
        assert!(!readable(&[bell.fd()]));
        bell.ring();
        bell.ring();
        assert!(readable(&[bell.fd()]));
        assert!(readable(&[bell.clone().fd()]), "clones share the pipe");
        bell.drain();
        assert!(!readable(&[bell.fd()]));
        for _ in 0..100_000 {
            bell.ring();
        }
        bell.drain();
        assert!(!readable(&[bell.fd()]), "a full pipe drains too");
    }
}
