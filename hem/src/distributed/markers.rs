//! The HEMs' key-value bucket: start markers of executions and members' heartbeats.
//!
//! A start marker (`x.<uid>`) is created, if absent, right before a hook is spawned: whoever
//! creates it runs the hook, and a HEM that finds it already there does not. Its value says who
//! started it and whether it ended (`started <member>`, `done <member> <outcome>`); every change
//! is a compare-and-set on the revision the writer last saw, so of two HEMs that both think an
//! execution is theirs (one was taken for dead), only one records its end. Markers carry a
//! time to live (JetStream per-message TTL): they matter only while their event may still be
//! delivered again, and the HEM holding an event renews them while it is pending.
//!
//! A member's heartbeat (`m.<member>`) lives for the take-over time unless renewed; when it
//! expires the server leaves a delete marker, which is how the others learn that it stopped.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::header::{NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, NATS_MESSAGE_TTL};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::kv::{self, Operation};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;

use one_bus::BusError;

/// How long the server keeps the delete marker of an expired key (members see the expiry).
const DELETE_MARKER_TTL: Duration = Duration::from_secs(60);

/// The state a start marker records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    Started { owner: String },
    Done { owner: String, outcome: String },
}

impl Marker {
    fn to_bytes(&self) -> Bytes {
        Bytes::from(match self {
            Marker::Started { owner } => format!("started {owner}"),
            Marker::Done { owner, outcome } => format!("done {owner} {outcome}"),
        })
    }

    fn parse(value: &[u8]) -> Option<Marker> {
        let text = std::str::from_utf8(value).ok()?;
        let mut words = text.splitn(3, ' ');
        match (words.next()?, words.next()?) {
            ("started", owner) => Some(Marker::Started {
                owner: owner.to_string(),
            }),
            ("done", owner) => Some(Marker::Done {
                owner: owner.to_string(),
                outcome: words.next().unwrap_or("").to_string(),
            }),
            _ => None,
        }
    }
}

/// What a create found.
#[derive(Debug)]
pub enum Created {
    /// Ours, at this revision.
    Mine(u64),
    /// Somebody's, at this revision.
    Taken(Marker, u64),
}

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
}

impl Markers {
    /// Opens the bucket, creating it (with per-key TTL enabled) if it does not exist.
    pub async fn open(
        js: &jetstream::Context,
        bucket: &str,
        replicas: usize,
        ttl: Duration,
    ) -> Result<Markers, BusError> {
        let kv = match js.get_key_value(bucket).await {
            Ok(kv) => kv,
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
                .map_err(|e| BusError::jetstream(format!("bucket {bucket} create"), e))?
            }
            Err(e) => return Err(BusError::jetstream(format!("bucket {bucket}"), e)),
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
        })
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
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Err(MarkerError::Conflict),
            Err(e) => Err(MarkerError::Bus(e.to_string())),
        }
    }

    /// Creates `key` as started by `owner`, unless it exists (an expired or deleted key counts
    /// as absent).
    pub async fn create_started(&self, key: &str, owner: &str) -> Result<Created, MarkerError> {
        let value = Marker::Started {
            owner: owner.to_string(),
        }
        .to_bytes();
        for _ in 0..3 {
            match self.write(key, value.clone(), Some(0), self.ttl).await {
                Ok(revision) => return Ok(Created::Mine(revision)),
                Err(MarkerError::Conflict) => {}
                Err(e) => return Err(e),
            }
            match self.read(key).await? {
                Some((marker, revision)) => return Ok(Created::Taken(marker, revision)),
                None => {
                    // Only a delete marker is there: take its place.
                    let revision = self.last_revision(key).await?;
                    match self
                        .write(key, value.clone(), Some(revision), self.ttl)
                        .await
                    {
                        Ok(revision) => return Ok(Created::Mine(revision)),
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

    /// Replaces the marker at `revision` with `marker`; returns the new revision.
    pub async fn set(&self, key: &str, marker: &Marker, revision: u64) -> Result<u64, MarkerError> {
        self.write(key, marker.to_bytes(), Some(revision), self.ttl)
            .await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_read_back_what_they_write() {
        for m in [
            Marker::Started {
                owner: "host-1".into(),
            },
            Marker::Done {
                owner: "host-2".into(),
                outcome: "interrupted".into(),
            },
            Marker::Done {
                owner: "h".into(),
                outcome: "".into(),
            },
        ] {
            assert_eq!(Marker::parse(&m.to_bytes()), Some(m));
        }
        assert_eq!(Marker::parse(b"garbage"), None);
        assert_eq!(Marker::parse(b"\xff\xfe"), None);
    }
}
