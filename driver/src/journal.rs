//! The durable event log the driver writes before it publishes, behind a small interface so that
//! another log (for example NATS JetStream) can stand beside the SQLite journal.
//!
//! One writer ([`EventLog`]) makes batches durable; any number of readers ([`EventReader`]) serve
//! replay. A batch holds new events, new results and the forwarding watermark, and is made durable
//! as a whole (group commit).

/// An event to journal and publish: its keys (reference form, without sequence token) and frame 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEvent {
    /// Assigned by [`EventLog::commit`]; 0 before.
    pub seq: u64,
    /// Frame-1 keys in publication order, without the sequence token.
    pub keys: Vec<String>,
    /// Frame 2, exactly as published.
    pub content: String,
    /// The decoded message when `content` is canonical base64 (strict, re-encodes to the same
    /// text): a journal may store these bytes instead of the text, a quarter smaller.
    pub decoded: Option<Vec<u8>>,
    /// The front-end's event id, for delivery acknowledgement ([`one_proto::mad`]).
    pub source: Option<u64>,
    /// The message id a journal that de-duplicates by id gave the event at its first commit
    /// attempt, so that a retried commit repeats it.
    pub msg_id: Option<String>,
}

impl JournalEvent {
    /// An event not yet journaled.
    pub fn new(keys: Vec<String>, content: String) -> JournalEvent {
        JournalEvent {
            seq: 0,
            keys,
            content,
            decoded: None,
            source: None,
            msg_id: None,
        }
    }

    /// An event whose content is canonical base64 of `decoded`.
    pub fn canonical(keys: Vec<String>, content: String, decoded: Vec<u8>) -> JournalEvent {
        JournalEvent {
            decoded: Some(decoded),
            ..JournalEvent::new(keys, content)
        }
    }

    /// Rough size in bytes, for bounding replies.
    pub fn size(&self) -> usize {
        self.content.len() + self.keys.iter().map(|k| k.len() + 24).sum::<usize>()
    }
}

/// A hook result accepted on the REP socket, to store before it is ACKed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalResult {
    /// Assigned by [`EventLog::commit`] (0 before, and for a duplicate).
    pub id: u64,
    /// The hook id.
    pub hook_id: i64,
    /// The return code.
    pub rc: i64,
    /// Strict-base64 body.
    pub body: String,
    /// The decoded body when `body` is canonical base64 (re-encodes to the same text): a
    /// journal may store these bytes instead of the text, a quarter smaller.
    pub decoded: Option<Vec<u8>>,
    /// EXECUTION_UID from the body, if any.
    pub uid: Option<String>,
    /// Set by [`EventLog::commit`]: a result with this uid was stored before, so this one is
    /// acknowledged but not forwarded again.
    pub duplicate: bool,
}

impl JournalResult {
    /// A result not yet stored: its frame's words, the body's strict-base64 decoding and
    /// the uid read from it. The decoded bytes are kept only when the body is canonical.
    pub fn new(
        hook_id: i64,
        rc: i64,
        body: String,
        decoded: Vec<u8>,
        uid: Option<String>,
    ) -> JournalResult {
        let decoded = is_canonical(&body, &decoded).then_some(decoded);
        JournalResult {
            id: 0,
            hook_id,
            rc,
            body,
            decoded,
            uid,
            duplicate: false,
        }
    }
}

/// Whether `decoded`, the strict-base64 decoding of `b64`, encodes back to exactly `b64`.
/// Whole groups of four characters map one to one onto three bytes; only a padded last group
/// can carry stray low bits, so that group alone is encoded again.
fn is_canonical(b64: &str, decoded: &[u8]) -> bool {
    let tail = match decoded.len() % 3 {
        0 => return true,
        n => n,
    };
    let (Some(bytes), Some(text)) = (
        decoded.get(decoded.len() - tail..),
        b64.len().checked_sub(4).and_then(|at| b64.get(at..)),
    ) else {
        return false;
    };
    one_proto::encoding::b64_encode(bytes) == text
}

/// What one group commit makes durable.
#[derive(Debug, Default)]
pub struct Batch {
    /// New events, in arrival order; they get consecutive sequence numbers.
    pub events: Vec<JournalEvent>,
    /// New results, in arrival order.
    pub results: Vec<JournalResult>,
    /// Every result with an id up to this one has been written to oned.
    pub forwarded: Option<u64>,
}

impl Batch {
    /// Nothing to commit.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.results.is_empty() && self.forwarded.is_none()
    }
}

/// A stored result not yet written to oned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingResult {
    /// Result id (forwarding order).
    pub id: u64,
    /// The hook id.
    pub hook_id: i64,
    /// The return code.
    pub rc: i64,
    /// Strict-base64 body.
    pub body: String,
}

/// One page of replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayPage {
    /// Oldest retained sequence number (`head + 1` when the journal holds none).
    pub oldest: u64,
    /// Newest assigned sequence number.
    pub head: u64,
    /// Events after the requested one, in order.
    pub events: Vec<JournalEvent>,
}

/// What a trim pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trimmed {
    /// Events removed.
    pub events: u64,
    /// Results removed from the dedupe window.
    pub results: u64,
}

/// A journal failure, with the operation that failed.
#[derive(Debug, thiserror::Error)]
#[error("journal {operation} failed: {source}")]
pub struct JournalError {
    /// What the journal was doing.
    pub operation: &'static str,
    /// The underlying error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl JournalError {
    /// Wraps an error with the operation it interrupted.
    pub fn new(
        operation: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> JournalError {
        JournalError {
            operation,
            source: source.into(),
        }
    }
}

/// The writer side of a durable event log. Used from one thread.
pub trait EventLog: Send {
    /// Makes the batch durable in one commit: events get consecutive sequence numbers after the
    /// current head, results get ids (or are flagged duplicate), the watermark is recorded. On
    /// error nothing of the batch is durable and no number is consumed.
    fn commit(&mut self, batch: &mut Batch) -> Result<(), JournalError>;

    /// Removes what the retention settings no longer keep, at most `budget` events per call.
    fn trim(&mut self, budget: u64) -> Result<Trimmed, JournalError>;

    /// Stored results not yet written to oned, in id order.
    fn pending_results(&mut self) -> Result<Vec<PendingResult>, JournalError>;

    /// The newest assigned sequence number.
    fn head(&self) -> u64;

    /// A reader for another thread.
    fn reader(&self) -> Result<Box<dyn EventReader>, JournalError>;

    /// Whether committed results reach oned through the log itself (a consumer of its own)
    /// rather than from the commit: then the writer forwards none of the results it commits.
    fn delivers_results(&self) -> bool {
        false
    }

    /// `(seq, source)` of the newest events that carry a front-end event id, at most `limit`,
    /// oldest first.
    fn recent_sources(&mut self, limit: usize) -> Result<Vec<(u64, u64)>, JournalError>;

    /// Whether the journaled event `seq` has exactly the content of `event`.
    fn same_content(&mut self, seq: u64, event: &JournalEvent) -> Result<bool, JournalError>;

    /// Frees caches that can be rebuilt from the log (called when the writer goes idle).
    fn release_memory(&mut self) {}
}

/// The reader side, for replay.
pub trait EventReader: Send {
    /// Events with a sequence number greater than `after`, in order: at most `max_events`, and
    /// no more than `max_bytes` in total unless that would return none.
    fn read_after(
        &mut self,
        after: u64,
        max_events: u32,
        max_bytes: usize,
    ) -> Result<ReplayPage, JournalError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use one_proto::encoding::{b64_decode_strict, b64_encode};

    #[test]
    fn only_canonical_bodies_keep_their_decoding() {
        for data in [
            &b""[..],
            b"a",
            b"ab",
            b"abc",
            b"abcd",
            b"<RESULT>x</RESULT>",
        ] {
            let text = b64_encode(data);
            let decoded = b64_decode_strict(&text).expect("canonical decodes");
            assert!(is_canonical(&text, &decoded), "{text}");
        }
        // Stray bits in the padded last group: strict decoding accepts them, the text is not
        // what encoding the bytes gives.
        for text in ["QR==", "QUJ=", "YWJjQR=="] {
            let decoded = b64_decode_strict(text).expect("strict accepts stray bits");
            assert!(!is_canonical(text, &decoded), "{text}");
            let result = JournalResult::new(1, 0, text.into(), decoded, None);
            assert_eq!(result.decoded, None);
            assert_eq!(result.body, text);
        }
    }
}
