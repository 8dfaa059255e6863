//! Names and shapes of what the distributed mode keeps in JetStream:
//!
//! - the events stream (`ONE_EVENTS`): every event, under the subjects of
//!   [`one_proto::subjects`]; the driver creates it with the partition count in its metadata,
//!   so every HEM reads the same count;
//! - the results stream (`ONE_RESULTS`): every hook result, read back by the driver;
//! - the HEMs' key-value bucket (`ONE_HEM`): start markers of executions and the members' heartbeats.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use one_proto::subjects::{PARTITIONS_METADATA, event_stream_subjects, result_stream_subjects};
use sha2::{Digest, Sha256};

use crate::BusError;

/// Names shared by the driver and the HEMs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Subject prefix ([`one_proto::subjects::DEFAULT_PREFIX`]).
    pub prefix: String,
    pub events_stream: String,
    pub results_stream: String,
    /// The HEMs' key-value bucket.
    pub bucket: String,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            prefix: one_proto::subjects::DEFAULT_PREFIX.to_string(),
            events_stream: "ONE_EVENTS".to_string(),
            results_stream: "ONE_RESULTS".to_string(),
            bucket: "ONE_HEM".to_string(),
        }
    }
}

/// Replication and retention of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    pub replicas: usize,
    /// Oldest message kept; `None` keeps messages of any age.
    pub max_age: Option<Duration>,
    /// Most messages kept; `None` keeps any number.
    pub max_messages: Option<u64>,
    /// How long a message id is remembered: a message published again with the same id
    /// within this time is stored once.
    pub duplicate_window: Duration,
}

/// The name of the durable consumer the driver reads results with.
pub const RESULTS_CONSUMER: &str = "one_hm";

impl Layout {
    /// The durable consumer of events partition `n`.
    pub fn partition_consumer(&self, n: u32) -> String {
        format!("hem-p{n}")
    }

    /// The events stream's configuration.
    pub fn events_config(&self, limits: StreamLimits, partitions: u32) -> stream::Config {
        stream::Config {
            name: self.events_stream.clone(),
            description: Some("OpenNebula hook events (one_hm)".to_string()),
            subjects: event_stream_subjects(&self.prefix),
            metadata: HashMap::from([(PARTITIONS_METADATA.to_string(), partitions.to_string())]),
            ..base_config(limits)
        }
    }

    /// The results stream's configuration.
    pub fn results_config(&self, limits: StreamLimits) -> stream::Config {
        stream::Config {
            name: self.results_stream.clone(),
            description: Some("OpenNebula hook results (onehem-server)".to_string()),
            subjects: result_stream_subjects(&self.prefix),
            ..base_config(limits)
        }
    }
}

fn base_config(limits: StreamLimits) -> stream::Config {
    stream::Config {
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        num_replicas: limits.replicas.max(1),
        max_age: limits.max_age.unwrap_or_default(),
        max_messages: limits
            .max_messages
            .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX)),
        duplicate_window: limits.duplicate_window,
        allow_direct: true,
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    }
}

/// The partition count a stream's metadata holds.
pub fn partitions_of(info: &stream::Info) -> Option<u32> {
    info.config
        .metadata
        .get(PARTITIONS_METADATA)
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
}

/// A short tag of one incarnation of a stream (its creation time): execution uids carry it, so a
/// stream deleted and created again never gives an old execution's uid to a new one.
pub fn stream_tag(info: &stream::Info) -> String {
    let created = info.created.unix_timestamp_nanos();
    let digest = Sha256::digest(format!("{}:{created}", info.config.name).as_bytes());
    hex::encode(&digest[..4])
}

/// Creates `wanted` or brings an existing stream of that name to it. A stream whose partition
/// count differs is refused: events already in it were placed on partitions by the old count, so
/// the per-resource order could not hold across the change.
pub async fn ensure_stream(
    js: &jetstream::Context,
    wanted: stream::Config,
) -> Result<stream::Info, BusError> {
    let name = wanted.name.clone();
    match js.get_stream(&name).await {
        Ok(mut existing) => {
            let info = existing
                .info()
                .await
                .map_err(|e| BusError::jetstream(format!("stream {name} info"), e))?
                .clone();
            let have = info.config.metadata.get(PARTITIONS_METADATA);
            let want = wanted.metadata.get(PARTITIONS_METADATA);
            if want.is_some() && have.is_some() && have != want {
                return Err(BusError::jetstream(
                    format!("stream {name}"),
                    format!(
                        "it holds events on {} partitions, configured {}; events already placed \
                         cannot be moved: keep the stream's count, or delete the stream once \
                         every HEM has caught up",
                        have.map_or("?", String::as_str),
                        want.map_or("?", String::as_str)
                    ),
                ));
            }
            if differs(&info.config, &wanted) {
                tracing::info!(stream = %name, "updating the stream's configuration");
                return js
                    .update_stream(wanted)
                    .await
                    .map_err(|e| BusError::jetstream(format!("stream {name} update"), e));
            }
            Ok(info)
        }
        Err(e)
            if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(ref j)
                if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
        {
            tracing::info!(stream = %name, replicas = wanted.num_replicas, "creating the stream");
            let mut stream = js
                .create_stream(wanted)
                .await
                .map_err(|e| BusError::jetstream(format!("stream {name} create"), e))?;
            stream
                .info()
                .await
                .cloned()
                .map_err(|e| BusError::jetstream(format!("stream {name} info"), e))
        }
        Err(e) => Err(BusError::jetstream(format!("stream {name}"), e)),
    }
}

/// Whether the settings this project manages differ.
fn differs(have: &stream::Config, want: &stream::Config) -> bool {
    have.subjects != want.subjects
        || have.num_replicas != want.num_replicas
        || have.max_age != want.max_age
        || have.max_messages != want.max_messages
        || have.duplicate_window != want.duplicate_window
        || have.metadata.get(PARTITIONS_METADATA) != want.metadata.get(PARTITIONS_METADATA)
        || !have.allow_direct
}

/// The message id of an event. With the front-end's event id (oned-lite's outbox id) it names
/// the event itself, so the same event sent again (a driver restart, another front-end's driver)
/// is stored once; the content hash keeps two front-ends whose ids collide from hiding each
/// other's events. Without one (the reference oned sends -1) it names this driver run's line,
/// which makes a retried publish idempotent.
pub fn event_msg_id(source: Option<u64>, content: &str, run: &str, line: u64) -> String {
    match source {
        Some(id) => {
            let digest = Sha256::digest(content.as_bytes());
            format!("ev-{id}-{}", hex::encode(&digest[..8]))
        }
        None => format!("run-{run}-{line}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_name_the_event_or_the_line() {
        let a = event_msg_id(Some(7), "QUJD", "r1", 1);
        assert_eq!(a, event_msg_id(Some(7), "QUJD", "r2", 99));
        assert_ne!(a, event_msg_id(Some(7), "QUJE", "r1", 1));
        assert_ne!(a, event_msg_id(Some(8), "QUJD", "r1", 1));
        assert_eq!(event_msg_id(None, "QUJD", "r1", 5), "run-r1-5");
    }

    #[test]
    fn the_events_stream_carries_its_partition_count() {
        let limits = StreamLimits {
            replicas: 3,
            max_age: Some(Duration::from_secs(60)),
            max_messages: None,
            duplicate_window: Duration::from_secs(120),
        };
        let layout = Layout::default();
        let c = layout.events_config(limits, 8);
        assert_eq!(c.subjects, ["one.event.>", "one.retry.>"]);
        assert_eq!(
            c.metadata.get(PARTITIONS_METADATA).map(String::as_str),
            Some("8")
        );
        assert_eq!((c.num_replicas, c.max_messages), (3, -1));
        assert!(!differs(&c, &layout.events_config(limits, 8)));
        assert!(differs(&c, &layout.events_config(limits, 4)));
        assert_eq!(layout.results_config(limits).subjects, ["one.result.>"]);
    }
}
