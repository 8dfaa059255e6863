//! What travels between the driver's threads: the channels' message types, each owned here
//! rather than by its receiver, so that no thread module imports another for a type.

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use nix::fcntl::OFlag;

use crate::journal::{JournalEvent, JournalResult, PendingResult};

/// Messages to the writer.
#[derive(Debug)]
pub enum WriterMsg {
    /// New events from oned, in order, and the event id of the last line they were read up to
    /// (for delivery acknowledgement), if it had one.
    Events {
        /// The events to journal.
        events: Vec<JournalEvent>,
        /// Every line up to the one with this event id is handled once these are committed.
        handled: Option<u64>,
    },
    /// A result to store before it is acknowledged.
    Result(AcceptedResult),
    /// Results up to this id were delivered to oned: written, or acknowledged with a `STORED`
    /// line by a front-end that acknowledges results.
    Forwarded(u64),
    /// Shutdown: commit what is queued, then stop publishing and forwarding.
    Finish,
}

/// A well-formed result waiting for its commit.
#[derive(Debug)]
pub struct AcceptedResult {
    /// The result.
    pub result: JournalResult,
    /// Where the outcome goes (the results thread waits on it).
    pub reply: ResultReply,
}

/// What became of a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultOutcome {
    /// Stored; it will be forwarded.
    Stored,
    /// A result with the same EXECUTION_UID was stored before; not forwarded again.
    Duplicate,
    /// Not stored.
    Failed(String),
}

/// What the output thread writes.
#[derive(Debug)]
pub enum ToOned {
    /// Answer INIT.
    InitReply,
    /// `LOG E 0 <text>`.
    Log(String),
    /// Stored results to forward, in id order.
    Results(Vec<PendingResult>),
    /// `JOURNALED SUCCESS <id> -` (delivery acknowledgement, [`one_proto::mad`]).
    Journaled(u64),
    /// The front-end acknowledges results (`STORED` lines, [`one_proto::mad`]): result lines
    /// are followed by a `FORWARDED` marker, and writing one no longer counts as delivering
    /// it.
    AckingFront,
}

/// Ends the journal writer's wait for more results (`journal_writer::ResultPace`) as soon as
/// events or the shutdown come. Results share the writer's channel with events, and a receive
/// on it wakes the writer for every result that arrives; while results wait to share a commit
/// the writer sleeps to the end of that wait instead, and only a ring (from the senders of
/// events and of `Finish`) wakes it sooner. Results arriving meanwhile cost no wake-up.
#[derive(Clone, Debug, Default)]
pub struct WriterWake {
    inner: Arc<WakeInner>,
}

#[derive(Debug, Default)]
struct WakeInner {
    /// Set while the writer sleeps, or is about to.
    sleeping: AtomicBool,
    writer: OnceLock<Thread>,
}

impl WriterWake {
    /// Wakes the writer if it sleeps; call after sending it events or `Finish`.
    pub fn ring(&self) {
        // Orders the caller's send before the look at the flag, as `arm` orders the flag
        // before the writer's look at its channel: one of the two sees the other.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.inner.sleeping.load(Ordering::SeqCst)
            && let Some(writer) = self.inner.writer.get()
        {
            writer.unpark();
        }
    }

    /// Makes the calling thread the one [`Self::ring`] wakes (the writer, once, at its start).
    pub fn register(&self) {
        let _ = self.inner.writer.set(std::thread::current());
    }

    /// Announces a sleep. The caller then looks at its channel once more (a ring from a send
    /// it missed is not lost: the sleep that follows returns at once) and either sleeps with
    /// [`Self::sleep`] or calls [`Self::disarm`].
    pub fn arm(&self) {
        self.inner.sleeping.store(true, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
    }

    /// No sleep after all.
    pub fn disarm(&self) {
        self.inner.sleeping.store(false, Ordering::SeqCst);
    }

    /// Sleeps at most `limit`, less when rung (or spuriously woken).
    pub fn sleep(&self, limit: Duration) {
        std::thread::park_timeout(limit);
        self.disarm();
    }
}

/// Wakes the results thread when the writer has decided on a result (a non-blocking pipe the
/// thread polls next to its socket).
#[derive(Clone, Debug)]
pub struct Doorbell {
    write: Arc<File>,
}

impl Doorbell {
    fn ring(&self) {
        // A full pipe already means "wake up"; nothing else can go wrong that matters here.
        let _ = (&*self.write).write(&[1]);
    }
}

/// Where the writer sends the outcome of one result.
#[derive(Debug)]
pub struct ResultReply {
    tx: SyncSender<ResultOutcome>,
    bell: Doorbell,
}

impl ResultReply {
    /// Hands the outcome to the waiting request and wakes the results thread.
    pub fn send(self, outcome: ResultOutcome) {
        if self.tx.send(outcome).is_ok() {
            self.bell.ring();
        }
    }

    /// Hands each outcome to its waiting request, then wakes the results thread once per
    /// doorbell instead of once per result: a group commit decides many results at once, and
    /// one wake-up lets the results thread answer them all.
    pub fn send_all(outcomes: impl IntoIterator<Item = (ResultReply, ResultOutcome)>) {
        let mut pending: Option<Doorbell> = None;
        for (reply, outcome) in outcomes {
            if reply.tx.send(outcome).is_err() {
                continue;
            }
            match &pending {
                Some(bell) if Arc::ptr_eq(&bell.write, &reply.bell.write) => {}
                _ => {
                    if let Some(bell) = pending.replace(reply.bell) {
                        bell.ring();
                    }
                }
            }
        }
        if let Some(bell) = pending {
            bell.ring();
        }
    }

    /// A reply handle and the receiving end, for callers that wait themselves.
    pub fn channel(bell: Doorbell) -> (ResultReply, Receiver<ResultOutcome>) {
        let (tx, rx) = mpsc::sync_channel(1);
        (ResultReply { tx, bell }, rx)
    }
}

/// A pipe pair: the doorbell and the end the results thread polls.
pub fn doorbell() -> std::io::Result<(Doorbell, File)> {
    let (read, write) =
        nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
    Ok((
        Doorbell {
            write: Arc::new(File::from(write)),
        },
        File::from(read),
    ))
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    /// The bytes waiting in a doorbell's pipe.
    fn rings(read: &mut File) -> usize {
        let mut buf = [0u8; 64];
        match read.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(e) => panic!("read doorbell: {e}"),
        }
    }

    #[test]
    fn a_batch_of_outcomes_rings_each_doorbell_once() {
        let (bell, mut read) = doorbell().expect("pipe");
        let (other, mut other_read) = doorbell().expect("pipe");
        let (a, a_rx) = ResultReply::channel(bell.clone());
        let (b, b_rx) = ResultReply::channel(bell.clone());
        let (c, c_rx) = ResultReply::channel(other);
        let (gone, gone_rx) = ResultReply::channel(bell);
        drop(gone_rx);
        ResultReply::send_all([
            (a, ResultOutcome::Stored),
            (gone, ResultOutcome::Stored),
            (b, ResultOutcome::Duplicate),
            (c, ResultOutcome::Failed("no".into())),
        ]);
        assert_eq!(a_rx.try_recv(), Ok(ResultOutcome::Stored));
        assert_eq!(b_rx.try_recv(), Ok(ResultOutcome::Duplicate));
        assert_eq!(c_rx.try_recv(), Ok(ResultOutcome::Failed("no".into())));
        assert_eq!(
            rings(&mut read),
            1,
            "one wake-up for the two results waiting on it"
        );
        assert_eq!(rings(&mut other_read), 1);
    }

    #[test]
    fn a_ring_wakes_an_armed_sleeper() {
        let wake = WriterWake::default();
        let (armed_tx, armed_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let sleeper = {
            let wake = wake.clone();
            std::thread::spawn(move || {
                wake.register();
                wake.arm();
                armed_tx.send(()).expect("send");
                // Whether the ring comes before the sleep starts or during it, it ends it.
                wake.sleep(Duration::from_secs(600));
                done_tx.send(()).expect("send");
            })
        };
        armed_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("armed");
        wake.ring();
        done_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the ring ended the sleep");
        sleeper.join().expect("sleeper");
        assert!(
            !wake.inner.sleeping.load(Ordering::SeqCst),
            "disarmed after the sleep"
        );
    }

    #[test]
    fn a_ring_without_a_sleeper_does_nothing() {
        let wake = WriterWake::default();
        wake.ring();
        wake.register();
        wake.ring();
        assert!(!wake.inner.sleeping.load(Ordering::SeqCst));
    }

    #[test]
    fn no_outcome_delivered_rings_nothing() {
        let (bell, mut read) = doorbell().expect("pipe");
        let (gone, gone_rx) = ResultReply::channel(bell);
        drop(gone_rx);
        ResultReply::send_all([(gone, ResultOutcome::Stored)]);
        ResultReply::send_all([]);
        assert_eq!(rings(&mut read), 0);
    }
}
