//! Reading one output pipe of a hook up to a cap.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;
use tokio::time::Instant;

/// Largest single read: the kept bytes grow by at most this much per read, and this is the
/// size of the buffer that bytes past the cap are read into and dropped.
const READ_SIZE: usize = 16 * 1024;
/// Room for the first read: a line or two, small enough for the allocator's per-thread cache.
const FIRST_READ_SIZE: usize = 1024;

/// What a process wrote on one pipe, up to the cap.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Captured {
    /// The first `output_cap` bytes.
    pub bytes: Vec<u8>,
    /// Whether more than `output_cap` bytes were written (and read before the pipe closed or
    /// the drain period ended).
    pub truncated: bool,
}

/// Reads `pipe` to its end, keeping the first `cap` bytes and reading the rest into a scratch
/// buffer so that the writer never blocks on a full pipe. Once `exited` turns true (or its
/// sender is gone), reading goes on for at most `drain`.
pub(crate) async fn read_capped<R: AsyncRead + Unpin>(
    pipe: Option<R>,
    cap: usize,
    mut exited: watch::Receiver<bool>,
    drain: Duration,
) -> Captured {
    let mut out = Captured::default();
    let Some(mut pipe) = pipe else {
        return out;
    };
    // Kept bytes are read straight into `out.bytes`; this is allocated only once the cap is
    // reached.
    let mut discard = Vec::new();
    let mut drain_deadline: Option<Instant> = None;
    enum Step {
        Read(Option<std::io::Result<usize>>),
        Exited,
    }
    loop {
        let step = {
            let deadline = drain_deadline;
            let read = async {
                let room = cap.saturating_sub(out.bytes.len());
                if room > 0 {
                    // The first read gets a small room: most hooks write nothing or a line,
                    // and a 16 KiB reservation for each of their two pipes was a measurable
                    // share of the HEM's allocator time.
                    let size = if out.bytes.is_empty() {
                        FIRST_READ_SIZE
                    } else {
                        READ_SIZE
                    };
                    out.bytes.reserve(room.min(size));
                    let limit = u64::try_from(room).unwrap_or(u64::MAX);
                    (&mut pipe).take(limit).read_buf(&mut out.bytes).await
                } else {
                    if discard.is_empty() {
                        discard.resize(READ_SIZE, 0);
                    }
                    let n = pipe.read(&mut discard).await?;
                    out.truncated |= n > 0;
                    Ok(n)
                }
            };
            let read = async {
                match deadline {
                    Some(d) => tokio::time::timeout_at(d, read).await.ok(),
                    None => Some(read.await),
                }
            };
            tokio::select! {
                r = read => Step::Read(r),
                // Either the process exited or the sender is gone: start the drain period.
                _ = exited.wait_for(|e| *e), if deadline.is_none() => Step::Exited,
            }
        };
        match step {
            Step::Read(Some(Ok(0)) | None) => break,
            Step::Read(Some(Ok(_))) => {}
            Step::Read(Some(Err(e))) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Step::Read(Some(Err(_))) => break,
            Step::Exited => drain_deadline = Some(Instant::now() + drain),
        }
    }
    out
}
