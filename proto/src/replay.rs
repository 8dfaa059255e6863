//! Frames of the driver's replay endpoint (ARCHITECTURE.md "Replay").
//!
//! A subscriber that missed events asks the driver's REP socket (default port 2103) for the events
//! after the last sequence number it processed:
//!
//! - request, one frame: `REPLAY <after> <max>`;
//! - reply: a first frame `OK <oldest> <head> <n>`, then for each of the `n` events, in sequence
//!   order, one pair of frames (key with sequence token, content) per key the event was published
//!   under; or a single frame `ERR <reason>`.
//!
//! `oldest` is the oldest sequence number still in the journal (`head + 1` when it holds none),
//! `head` the newest assigned one (0 before the first event). Events `after + 1 .. oldest - 1`
//! were trimmed by retention and cannot be replayed. `max` bounds the number of events in one
//! reply; the driver may return fewer (it also bounds the reply size), so a client repeats with the
//! last sequence number it got until it reaches `head`. `max = 0` asks only for the header.

/// Why a replay frame could not be read, or the driver's refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The frame is not what the protocol allows here.
    #[error("malformed replay frame: {0}")]
    Malformed(String),
    /// The driver answered `ERR <reason>`.
    #[error("replay refused: {0}")]
    Refused(String),
}

/// `REPLAY <after> <max>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayRequest {
    /// Replay the events with a sequence number greater than this.
    pub after: u64,
    /// At most this many events in the reply (0: header only).
    pub max: u32,
}

impl ReplayRequest {
    /// Parses a request: exactly the word `REPLAY` and two unsigned decimal integers, separated
    /// by whitespace.
    pub fn parse(frame: &[u8]) -> Result<ReplayRequest, ReplayError> {
        let words = words(frame)?;
        match words[..] {
            ["REPLAY", after, max] => Ok(ReplayRequest {
                after: number(after, "after")?,
                max: number(max, "max")?,
            }),
            _ => Err(ReplayError::Malformed(
                "expected REPLAY <after> <max>".to_owned(),
            )),
        }
    }

    /// The request frame.
    pub fn to_frame(&self) -> String {
        format!("REPLAY {} {}", self.after, self.max)
    }
}

/// `OK <oldest> <head> <n>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayHeader {
    /// Oldest sequence number retained (`head + 1` when none is).
    pub oldest: u64,
    /// Newest sequence number assigned (0 before the first event).
    pub head: u64,
    /// Number of events in this reply.
    pub count: u32,
}

impl ReplayHeader {
    /// Parses the first frame of a reply; an `ERR <reason>` frame gives [`ReplayError::Refused`].
    pub fn parse(frame: &[u8]) -> Result<ReplayHeader, ReplayError> {
        if let Some(reason) = frame.strip_prefix(b"ERR") {
            let reason = String::from_utf8_lossy(reason);
            return Err(ReplayError::Refused(reason.trim().to_owned()));
        }
        let words = words(frame)?;
        match words[..] {
            ["OK", oldest, head, count] => Ok(ReplayHeader {
                oldest: number(oldest, "oldest")?,
                head: number(head, "head")?,
                count: number(count, "count")?,
            }),
            _ => Err(ReplayError::Malformed(
                "expected OK <oldest> <head> <n> or ERR <reason>".to_owned(),
            )),
        }
    }

    /// The header frame.
    pub fn to_frame(&self) -> String {
        format!("OK {} {} {}", self.oldest, self.head, self.count)
    }
}

/// The refusal frame `ERR <reason>` (line breaks in the reason become spaces).
pub fn err_frame(reason: &str) -> String {
    format!("ERR {}", reason.replace(['\r', '\n'], " "))
}

fn words(frame: &[u8]) -> Result<Vec<&str>, ReplayError> {
    let text = std::str::from_utf8(frame)
        .map_err(|_| ReplayError::Malformed("frame is not text".to_owned()))?;
    Ok(text.split_ascii_whitespace().collect())
}

fn number<T: std::str::FromStr>(word: &str, what: &str) -> Result<T, ReplayError> {
    let digits_only = !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit());
    digits_only
        .then(|| word.parse().ok())
        .flatten()
        .ok_or_else(|| {
            let shown: String = word.chars().take(24).collect();
            ReplayError::Malformed(format!("{what} {shown:?} is not an unsigned integer"))
        })
}
