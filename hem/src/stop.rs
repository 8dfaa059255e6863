//! The HEM's stop switch: one request, seen at once by everything that waits. Async tasks await
//! it, OS threads sleep on it (a stop ends the sleep), and a thread waiting on ZeroMQ sockets
//! polls its file descriptor, which turns readable when the stop is requested. Nothing has to
//! look at a flag on a timer to notice it.

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::bell::Bell;

/// A cloneable handle to one stop switch.
#[derive(Clone, Debug)]
pub struct Stop {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    requested: AtomicBool,
    watch: watch::Sender<bool>,
    /// Taken by the requester between setting `requested` and notifying, so a sleeper cannot
    /// miss the request between its check and its wait.
    sleepers: (Mutex<()>, Condvar),
    /// Rung at the request and never drained: readable for every later poll.
    bell: Bell,
}

impl Stop {
    /// A new switch (fails only if the system refuses a pipe).
    pub fn new() -> io::Result<Stop> {
        Ok(Stop {
            inner: Arc::new(Inner {
                requested: AtomicBool::new(false),
                watch: watch::Sender::new(false),
                sleepers: (Mutex::new(()), Condvar::new()),
                bell: Bell::new()?,
            }),
        })
    }

    /// Requests the stop (idempotent) and wakes every waiter.
    pub fn request(&self) {
        if self.inner.requested.swap(true, Ordering::SeqCst) {
            return;
        }
        self.inner.watch.send_replace(true);
        let (lock, cond) = &self.inner.sleepers;
        drop(lock.lock());
        cond.notify_all();
        self.inner.bell.ring();
    }

    /// Whether the stop was requested.
    pub fn is_requested(&self) -> bool {
        self.inner.requested.load(Ordering::SeqCst)
    }

    /// Completes once the stop is requested.
    pub async fn requested(&self) {
        let mut rx = self.inner.watch.subscribe();
        // The sender lives in `inner`, which this handle keeps alive: the wait cannot fail.
        let _ = rx.wait_for(|stopped| *stopped).await;
    }

    /// Sleeps for `total` unless the stop is requested first; true if it slept it all.
    pub fn sleep(&self, total: Duration) -> bool {
        let (lock, cond) = &self.inner.sleepers;
        let deadline = Instant::now() + total;
        let Ok(mut guard) = lock.lock() else {
            // A poisoned lock means a panic elsewhere; fall back to a plain sleep.
            std::thread::sleep(total);
            return !self.is_requested();
        };
        while !self.is_requested() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            guard = match cond.wait_timeout(guard, left) {
                Ok((guard, _)) => guard,
                Err(_) => return !self.is_requested(),
            };
        }
        false
    }

    /// A file descriptor that is readable once the stop is requested, to poll beside the
    /// sockets a thread waits on.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inner.bell.fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_ends_a_sleep_at_once() {
        let stop = Stop::new().unwrap();
        let waker = stop.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            waker.request();
        });
        let started = Instant::now();
        assert!(!stop.sleep(Duration::from_secs(30)));
        assert!(started.elapsed() < Duration::from_secs(10));
        t.join().unwrap();
        assert!(
            !stop.sleep(Duration::from_secs(30)),
            "a later sleep ends at once too"
        );
    }

    #[test]
    fn a_sleep_without_a_request_runs_its_length() {
        let stop = Stop::new().unwrap();
        let started = Instant::now();
        assert!(stop.sleep(Duration::from_millis(30)));
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert!(!stop.is_requested());
    }

    #[test]
    fn the_fd_turns_readable_on_request_and_stays_so() {
        let stop = Stop::new().unwrap();
        assert!(!crate::bell::readable(&[stop.fd()]));
        stop.request();
        stop.request();
        assert!(crate::bell::readable(&[stop.fd()]));
        assert!(crate::bell::readable(&[stop.clone().fd()]));
    }

    #[tokio::test]
    async fn async_waiters_wake_on_request() {
        let stop = Stop::new().unwrap();
        let waiter = tokio::spawn({
            let stop = stop.clone();
            async move { stop.requested().await }
        });
        tokio::task::yield_now().await;
        stop.request();
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("woken")
            .unwrap();
        stop.requested().await;
    }
}
