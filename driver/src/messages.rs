//! What travels between the driver's threads: the channels' message types, each owned here
//! rather than by its receiver, so that no thread module imports another for a type.

use std::fs::File;
use std::io::Write;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, SyncSender};

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
