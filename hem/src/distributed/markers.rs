//! The HEMs' key-value bucket: start markers of executions and members' heartbeats.
//!
//! A start marker (`x.<uid>`) is created, if absent, right before a hook is spawned: whoever
//! creates it runs the hook, and a HEM that finds it already there does not. Its value says who
//! started it and whether it ended (`started <member> <write>`, `done <member> <write>
//! <outcome>`); every change is a compare-and-set on the revision the writer last saw, so of two
//! HEMs that both think an execution is theirs (one was taken for dead), only one records its
//! end. `<write>` numbers the writes of one HEM: a write whose acknowledgement was lost (a NATS
//! node died) and that was sent again finds itself there and counts as done, not as a marker
//! somebody else wrote. Markers carry a
//! time to live (JetStream per-message TTL): they matter only while their event may still be
//! delivered again, and the HEM holding an event renews them while it is pending.
//!
//! A member's heartbeat (`m.<member>`) lives for the take-over time unless renewed; when it
//! expires the server leaves a delete marker, which is how the others learn that it stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::header::{NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, NATS_MESSAGE_TTL};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::kv::{self, Operation};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;

use one_bus::BusError;

use crate::uids::UidKey;

/// How long the server keeps the delete marker of an expired key (members see the expiry).
const DELETE_MARKER_TTL: Duration = Duration::from_secs(60);

/// What a start marker records: who wrote it, with which write (so that a writer whose
/// acknowledgement was lost recognises its own write), and whether the execution ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub owner: String,
    /// Unique per write of this owner.
    pub write: u64,
    pub state: State,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Started,
    /// Ended; the outcome is the exit code, or `interrupted-<owner>` for an execution another
    /// HEM had started.
    Done(String),
}

impl Marker {
    fn to_bytes(&self) -> Bytes {
        Bytes::from(match &self.state {
            State::Started => format!("started {} {}", self.owner, self.write),
            State::Done(outcome) => format!("done {} {} {outcome}", self.owner, self.write),
        })
    }

    fn parse(value: &[u8]) -> Option<Marker> {
        let text = std::str::from_utf8(value).ok()?;
        let mut words = text.splitn(4, ' ');
        let (kind, owner, write) = (words.next()?, words.next()?, words.next()?);
        let state = match kind {
            "started" => State::Started,
            "done" => State::Done(words.next().unwrap_or("").to_string()),
            _ => return None,
        };
        Some(Marker {
            owner: owner.to_string(),
            write: write.parse().ok()?,
            state,
        })
    }
}

/// What a create found.
#[derive(Debug)]
pub enum Created {
    /// Ours, at this revision.
    Mine(Marker, u64),
    /// Somebody's (or an earlier write of ours), at this revision.
    Taken(Marker, u64),
}

/// The bucket key of the HEMs' uid key (markers are `x.<uid>`, heartbeats `m.<member>`).
const UID_KEY: &str = "k.uid";

#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    #[error("the marker changed meanwhile")]
    Conflict,
    #[error("{0}")]
    Bus(String),
}

/// The bucket, written through raw JetStream publishes so that every write can carry both an
/// expected revision and a time to live.
#[derive(Clone)]
pub struct Markers {
    js: jetstream::Context,
    kv: kv::Store,
    /// `$KV.<bucket>.`
    subject_prefix: String,
    ttl: Duration,
    /// This HEM's member name, the owner of what it writes.
    owner: String,
    writes: Arc<AtomicU64>,
}

impl Markers {
    /// Opens the bucket, creating it (with per-key TTL enabled) if it does not exist.
    pub async fn open(
        js: &jetstream::Context,
        bucket: &str,
        replicas: usize,
        ttl: Duration,
        owner: &str,
    ) -> Result<Markers, BusError> {
        // Several HEMs starting together may each find no bucket; all but one then fail to
        // create it and find it on the next attempt.
        let mut attempt = 0;
        let kv = loop {
            attempt += 1;
            let created = match js.get_key_value(bucket).await {
                Ok(kv) => break kv,
                Err(e) if e.kind() == jetstream::context::KeyValueErrorKind::GetBucket => {
                    tracing::info!(bucket, replicas, "creating the HEMs' key-value bucket");
                    js.create_key_value(kv::Config {
                        bucket: bucket.to_string(),
                        description: "onehem-server: start markers and members".to_string(),
                        history: 1,
                        num_replicas: replicas.max(1),
                        storage: stream::StorageType::File,
                        limit_markers: Some(DELETE_MARKER_TTL),
                        ..Default::default()
                    })
                    .await
                }
                Err(e) => return Err(BusError::jetstream(format!("bucket {bucket}"), e)),
            };
            match created {
                Ok(kv) => break kv,
                Err(e) if attempt >= 3 => {
                    return Err(BusError::jetstream(format!("bucket {bucket} create"), e));
                }
                Err(e) => tracing::debug!(error = %e, "bucket create failed; looking again"),
            }
        };
        let mut stream = js
            .get_stream(format!("KV_{bucket}"))
            .await
            .map_err(|e| BusError::jetstream(format!("bucket {bucket}"), e))?;
        let info = stream
            .info()
            .await
            .map_err(|e| BusError::jetstream(format!("bucket {bucket} info"), e))?;
        if !info.config.allow_message_ttl {
            return Err(BusError::jetstream(
                format!("bucket {bucket}"),
                "it does not allow per-key TTL (created by something else?); delete it and \
                 let the HEM create it",
            ));
        }
        Ok(Markers {
            js: js.clone(),
            kv,
            subject_prefix: format!("$KV.{bucket}."),
            ttl,
            owner: owner.to_string(),
            writes: Arc::default(),
        })
    }

    /// The secret the HEMs tag execution uids with (`crate::uids`): made by the first HEM and
    /// read by every other, so that all give an event's execution the same uid. It is written
    /// without a TTL and never changes; only the HEMs may read the bucket.
    pub async fn uid_key(&self) -> Result<UidKey, MarkerError> {
        for _ in 0..3 {
            let entry = self
                .kv
                .entry(UID_KEY)
                .await
                .map_err(|e| MarkerError::Bus(e.to_string()))?;
            if let Some(e) = entry.filter(|e| e.operation == Operation::Put) {
                let text = String::from_utf8_lossy(&e.value);
                return UidKey::from_hex(&text).ok_or_else(|| {
                    MarkerError::Bus(format!(
                        "bucket key {UID_KEY} holds no valid uid key (64 hex digits); \
                         delete it while no HEM runs and a HEM makes a new one"
                    ))
                });
            }
            match self
                .kv
                .create(UID_KEY, Bytes::from(UidKey::generate().to_hex()))
                .await
            {
                // Read back, whether ours or another HEM's won the race.
                Ok(_) => {}
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
                Err(e) => return Err(MarkerError::Bus(e.to_string())),
            }
        }
        Err(MarkerError::Bus(format!(
            "bucket key {UID_KEY} kept changing while it was read"
        )))
    }

    /// The store, for watching keys.
    pub fn store(&self) -> &kv::Store {
        &self.kv
    }

    /// The marker key of an execution.
    pub fn key(uid: &str) -> String {
        format!("x.{uid}")
    }

    /// The heartbeat key of a member.
    pub fn member_key(member: &str) -> String {
        format!("m.{member}")
    }

    /// Writes `value` under `key` if its last revision is `expected` (0: absent), living for
    /// `ttl`; `None` writes whatever is there.
    async fn write(
        &self,
        key: &str,
        value: Bytes,
        expected: Option<u64>,
        ttl: Duration,
    ) -> Result<u64, MarkerError> {
        let mut headers = HeaderMap::new();
        if let Some(revision) = expected {
            headers.insert(
                NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
                revision.to_string().as_str(),
            );
        }
        headers.insert(NATS_MESSAGE_TTL, ttl.as_secs().max(1).to_string().as_str());
        let ack = self
            .js
            .publish_with_headers(format!("{}{key}", self.subject_prefix), headers, value)
            .await
            .map_err(|e| MarkerError::Bus(e.to_string()))?
            .await;
        match ack {
            Ok(ack) => Ok(ack.sequence),
            Err(e) if wrong_last_sequence(&e) => Err(MarkerError::Conflict),
            Err(e) => Err(MarkerError::Bus(e.to_string())),
        }
    }

    /// A marker of this HEM with a write number of its own. A caller that retries a write
    /// (its acknowledgement was lost) retries with the same marker, so that finding it there
    /// counts as success.
    pub fn mine(&self, state: State) -> Marker {
        Marker {
            owner: self.owner.clone(),
            write: self.writes.fetch_add(1, Ordering::Relaxed),
            state,
        }
    }

    /// Writes `marker` over `expected` (0: absent); a conflict that turns out to be this very
    /// marker (written by an earlier attempt whose acknowledgement was lost) is a success.
    pub async fn set(&self, key: &str, marker: &Marker, expected: u64) -> Result<u64, MarkerError> {
        let value = marker.to_bytes();
        match self
            .write(key, value.clone(), Some(expected), self.ttl)
            .await
        {
            Err(MarkerError::Conflict) => match self.kv.entry(key).await {
                Ok(Some(e)) if e.operation == Operation::Put && e.value == value => Ok(e.revision),
                Ok(_) => Err(MarkerError::Conflict),
                Err(e) => Err(MarkerError::Bus(e.to_string())),
            },
            other => other,
        }
    }

    /// Creates `key` holding `marker` unless it exists (an expired or deleted key counts as
    /// absent); returns what is there otherwise.
    pub async fn create(&self, key: &str, marker: &Marker) -> Result<Created, MarkerError> {
        for _ in 0..3 {
            match self.set(key, marker, 0).await {
                Ok(revision) => return Ok(Created::Mine(marker.clone(), revision)),
                Err(MarkerError::Conflict) => {}
                Err(e) => return Err(e),
            }
            match self.read(key).await? {
                Some((found, revision)) => return Ok(Created::Taken(found, revision)),
                None => {
                    // Only a delete marker is there: take its place.
                    let revision = self.last_revision(key).await?;
                    match self.set(key, marker, revision).await {
                        Ok(revision) => return Ok(Created::Mine(marker.clone(), revision)),
                        Err(MarkerError::Conflict) => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Err(MarkerError::Bus(format!(
            "marker {key} kept changing while it was created"
        )))
    }

    /// The marker under `key` and its revision; `None` when absent, deleted or expired.
    pub async fn read(&self, key: &str) -> Result<Option<(Marker, u64)>, MarkerError> {
        let entry = self
            .kv
            .entry(key)
            .await
            .map_err(|e| MarkerError::Bus(e.to_string()))?;
        Ok(match entry {
            Some(e) if e.operation == Operation::Put => {
                Marker::parse(&e.value).map(|m| (m, e.revision))
            }
            _ => None,
        })
    }

    async fn last_revision(&self, key: &str) -> Result<u64, MarkerError> {
        let entry = self
            .kv
            .entry(key)
            .await
            .map_err(|e| MarkerError::Bus(e.to_string()))?;
        Ok(entry.map_or(0, |e| e.revision))
    }

    /// Renews a member's heartbeat for `ttl`.
    pub async fn heartbeat(
        &self,
        member: &str,
        value: Bytes,
        ttl: Duration,
    ) -> Result<(), MarkerError> {
        self.write(&Self::member_key(member), value, None, ttl)
            .await
            .map(|_| ())
    }

    /// Removes a member's heartbeat (a clean stop).
    pub async fn leave(&self, member: &str) -> Result<(), MarkerError> {
        self.kv
            .delete(Self::member_key(member))
            .await
            .map_err(|e| MarkerError::Bus(e.to_string()))
    }
}

/// Whether a publish was refused because the key changed since the expected revision. The
/// server answers with one of two codes (10071, or 10164 when the expected revision is
/// checked before the message is stored); the client names only the first.
fn wrong_last_sequence(e: &jetstream::context::PublishError) -> bool {
    if e.kind() == PublishErrorKind::WrongLastSequence {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        if let Some(js) = inner.downcast_ref::<jetstream::Error>() {
            return js.error_code() == jetstream::ErrorCode(10164);
        }
        source = inner.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_read_back_what_they_write() {
        for m in [
            Marker {
                owner: "host-1".into(),
                write: 7,
                state: State::Started,
            },
            Marker {
                owner: "host-2".into(),
                write: 0,
                state: State::Done("interrupted-host-1".into()),
            },
            Marker {
                owner: "h".into(),
                write: 3,
                state: State::Done("".into()),
            },
        ] {
            assert_eq!(Marker::parse(&m.to_bytes()), Some(m));
        }
        assert_eq!(Marker::parse(b"garbage"), None);
        assert_eq!(Marker::parse(b"started h x"), None);
        assert_eq!(Marker::parse(b"\xff\xfe"), None);
    }
}
