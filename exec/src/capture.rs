//! Reading one output pipe of a hook up to a cap.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::watch;
use tokio::time::Instant;

/// Largest single read: the kept bytes grow by at most this much per read, and this is the
/// size of the buffer that bytes past the cap are read into and dropped.
const READ_SIZE: usize = 16 * 1024;
/// Room for the first read: a line or two, small enough for the allocator's per-thread cache.
const FIRST_READ_SIZE: usize = 1024;
/// How long a pipe is left unwatched while its process runs. Most hooks exit sooner with their
/// few bytes still in the pipe, which is then read without registering it with the runtime at
/// all (each registration and its removal are two `epoll_ctl` calls, two `fcntl` calls and a
/// read that finds nothing, per pipe). A process that fills the pipe before then waits at most
/// this long for its reader.
const WATCH_AFTER: Duration = Duration::from_millis(20);

/// What a process wrote on one pipe, up to the cap.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Captured {
    /// The first `output_cap` bytes.
    pub bytes: Vec<u8>,
    /// Whether more than `output_cap` bytes were written (and read before the pipe closed or
    /// the drain period ended).
    pub truncated: bool,
}

/// Reads `pipe` (non-blocking) to its end, keeping the first `cap` bytes and reading the rest
/// into a scratch buffer so that the writer never blocks on a full pipe for long. Once `exited`
/// turns true (or its sender is gone), reading goes on for at most `drain`.
///
/// The pipe is first left alone until the process exits or [`WATCH_AFTER`] passes; what the
/// process left in it is then read at once, and only a pipe that is still open (a background
/// child holds it, or the process still runs) is registered with the runtime and read as it
/// fills.
pub(crate) async fn read_capped(
    pipe: Option<OwnedFd>,
    cap: usize,
    mut exited: watch::Receiver<bool>,
    drain: Duration,
) -> Captured {
    let mut out = Captured::default();
    let Some(pipe) = pipe else {
        return out;
    };
    let mut discard = Vec::new();
    let exited_first = tokio::select! {
        _ = exited.wait_for(|e| *e) => true,
        () = tokio::time::sleep(WATCH_AFTER) => false,
    };
    let mut file = File::from(pipe);
    if exited_first && read_ready(&mut file, cap, &mut out, &mut discard) == Ready::End {
        return out;
    }
    let Ok(mut pipe) = pipe::Receiver::from_owned_fd_unchecked(OwnedFd::from(file)) else {
        return out;
    };
    let mut drain_deadline = exited_first.then(|| Instant::now() + drain);
    enum Step {
        Read(Option<std::io::Result<usize>>),
        Exited,
    }
    loop {
        let step = {
            let deadline = drain_deadline;
            let read = async {
                let keep = keep_size(&out, cap);
                if keep > 0 {
                    out.bytes.reserve(keep);
                    let limit = u64::try_from(keep).unwrap_or(u64::MAX);
                    (&mut pipe).take(limit).read_buf(&mut out.bytes).await
                } else {
                    let n = pipe.read(scratch(&mut discard)).await?;
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

/// How many bytes the next read may keep: none at the cap. The first read gets a small room:
/// most hooks write nothing or a line, and a 16 KiB reservation for each of their two pipes
/// was a measurable share of the HEM's allocator time.
fn keep_size(out: &Captured, cap: usize) -> usize {
    let size = if out.bytes.is_empty() {
        FIRST_READ_SIZE
    } else {
        READ_SIZE
    };
    cap.saturating_sub(out.bytes.len()).min(size)
}

/// The buffer that bytes past the cap are read into and dropped, allocated only once the cap
/// is reached.
fn scratch(discard: &mut Vec<u8>) -> &mut [u8] {
    if discard.is_empty() {
        discard.resize(READ_SIZE, 0);
    }
    discard
}

/// Whether a pipe read without waiting has ended.
#[derive(Debug, PartialEq, Eq)]
enum Ready {
    /// End of file (or an error): nothing more will come.
    End,
    /// Empty for now, with a writer still holding it.
    More,
}

/// Reads what `pipe` (non-blocking) holds now, within the cap as [`read_capped`] does.
fn read_ready(pipe: &mut File, cap: usize, out: &mut Captured, discard: &mut Vec<u8>) -> Ready {
    loop {
        let keep = keep_size(out, cap);
        let read = if keep > 0 {
            let start = out.bytes.len();
            out.bytes.resize(start + keep, 0);
            let read = pipe.read(&mut out.bytes[start..]);
            out.bytes.truncate(start + *read.as_ref().unwrap_or(&0));
            read
        } else {
            let read = pipe.read(scratch(discard));
            out.truncated |= read.as_ref().is_ok_and(|n| *n > 0);
            read
        };
        match read {
            Ok(0) => return Ready::End,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ready::More,
            Err(_) => return Ready::End,
        }
    }
}
