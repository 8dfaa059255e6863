//! The NATS mode's journal: events and results in JetStream streams instead of SQLite
//! (ARCHITECTURE.md "Distributed mode").
//!
//! [`NatsJournal`] is the [`EventLog`] the journal writer commits to. A commit publishes every
//! event of the batch to the events stream, under the subject and partition of
//! [`one_proto::subjects`] with a message id ([`one_bus::layout::event_msg_id`]), and waits for
//! every acknowledgement: only then is the batch durable (replicated, when the stream has
//! replicas), the events go out on the ZeroMQ PUB socket under the stream's sequence numbers,
//! and oned gets `JOURNALED`. An event the stream already held under its id (sent again after a
//! driver restart) is acknowledged with its first sequence number and not published again.
//! Results that reference HEMs send to the ZeroMQ result socket are published to the results
//! stream the same way.
//!
//! Results reach oned from the results stream only ([`ResultsFeed`]): a durable consumer reads
//! them, the output thread writes them as MAD lines under forwarding ids of this driver's own,
//! and each is acknowledged in the stream when the forwarding watermark passes its id, that is
//! once oned-lite answered `STORED` (or, for the reference oned, once written). A driver that
//! dies before that leaves them unacknowledged, and JetStream delivers them to the next driver.
//!
//! The ZeroMQ replay socket reads the events stream ([`NatsReader`]), so a ZeroMQ-mode HEM works
//! against a NATS-mode driver.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer, stream};
use bytes::Bytes;
use futures_util::StreamExt as _;
use one_bus::layout::{RESULTS_CONSUMER, ensure_stream, event_msg_id, partitions_of};
use one_bus::{Layout, MSG_ID, StreamLimits};
use one_proto::encoding::b64_decode_lenient;
use one_proto::event::HookMessage;
use one_proto::keys::{RETRY_KEY, UNKNOWN_EVENT_KEY, event_keys};
use one_proto::mad::ResultFrame;
use one_proto::subjects::{
    KEY_HEADER, Partition, event_partition, event_subject, partition_of, result_subject,
};
use tokio::runtime::Runtime;
use tracing::{debug, info, warn};

use crate::config::{NatsConfig, Retention};
use crate::journal::{
    Batch, EventLog, EventReader, JournalError, JournalEvent, PendingResult, ReplayPage, Trimmed,
};
use crate::messages::ToOned;

/// How long the first connection and the stream set-up may take at start.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a JetStream request (a publish acknowledgement among them) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Publishes in flight at once within a commit.
const IN_FLIGHT: usize = 4096;
/// Results the driver may hold forwarded but unacknowledged by oned.
const MAX_RESULTS_PENDING: i64 = 10_000;
/// Results stream retention: long enough for any driver outage worth surviving.
const RESULTS_MAX_AGE: Duration = Duration::from_secs(7 * 86_400);

/// Results forwarded to oned and not yet acknowledged.
///
/// oned acknowledges results cumulatively (`STORED <id>` covers every id up to it), while
/// JetStream delivers results again in any order (a result a dead driver had forwarded comes
/// back after newer ones). So results get ids of this driver's own, rising in the order they are
/// forwarded, and each is acknowledged in the stream on its own once oned's mark passes its id.
#[derive(Default)]
struct Forwarded {
    last_id: u64,
    /// Forwarding id -> (stream sequence, newest delivery).
    by_id: BTreeMap<u64, (u64, jetstream::Message)>,
    /// Stream sequence -> forwarding id, for the deliveries again of a result still pending.
    id_of: HashMap<u64, u64>,
}

impl Forwarded {
    /// The forwarding id of a new result, or `None` when it is pending already (its newest
    /// delivery replaces the one kept).
    fn accept(&mut self, seq: u64, message: jetstream::Message) -> Option<u64> {
        if let Some(id) = self.id_of.get(&seq) {
            if let Some(entry) = self.by_id.get_mut(id) {
                entry.1 = message;
            }
            return None;
        }
        self.last_id += 1;
        self.id_of.insert(seq, self.last_id);
        self.by_id.insert(self.last_id, (seq, message));
        Some(self.last_id)
    }

    /// Takes the results with forwarding ids up to `through`.
    fn take_through(&mut self, through: u64) -> Vec<jetstream::Message> {
        let mut taken = Vec::new();
        while let Some(entry) = self.by_id.first_entry() {
            if *entry.key() > through {
                break;
            }
            let (seq, message) = entry.remove();
            self.id_of.remove(&seq);
            taken.push(message);
        }
        taken
    }
}

/// The events and results streams, as the journal writer's [`EventLog`].
pub struct NatsJournal {
    rt: Arc<Runtime>,
    js: jetstream::Context,
    layout: Layout,
    partitions: u32,
    result_ack_wait: Duration,
    /// Names this driver run in the message ids of events without a front-end id.
    run: String,
    lines: u64,
    head: u64,
    forwarded: Arc<Mutex<Forwarded>>,
}

impl NatsJournal {
    /// Connects and creates (or checks) the two streams, retrying for up to 30 seconds.
    pub fn open(config: &NatsConfig, retention: Retention) -> anyhow::Result<NatsJournal> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("nats-io")
            .enable_all()
            .build()
            .context("starting the NATS runtime")?;
        let (js, head) = rt.block_on(async {
            let deadline = Instant::now() + START_DEADLINE;
            loop {
                match set_up(config, retention).await {
                    Ok(done) => return Ok(done),
                    Err(e) if Instant::now() < deadline => {
                        warn!(error = %format!("{e:#}"), "NATS not ready; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        })?;
        info!(
            servers = %config.bus.server_list(),
            events = %config.layout.events_stream,
            results = %config.layout.results_stream,
            partitions = config.partitions,
            replicas = config.replicas,
            head,
            "journaling in NATS JetStream"
        );
        Ok(NatsJournal {
            rt: Arc::new(rt),
            js,
            layout: config.layout.clone(),
            partitions: config.partitions,
            result_ack_wait: config.result_ack_wait,
            run: run_id(),
            lines: 0,
            head,
            forwarded: Arc::default(),
        })
    }

    /// The consumer that brings results back to oned; start it once the output thread runs.
    pub fn results_feed(&self) -> ResultsFeed {
        ResultsFeed {
            rt: self.rt.clone(),
            js: self.js.clone(),
            stream: self.layout.results_stream.clone(),
            ack_wait: self.result_ack_wait,
            forwarded: self.forwarded.clone(),
        }
    }

    async fn publish_events(&mut self, events: &mut Vec<JournalEvent>) -> Result<(), JournalError> {
        for event in events.iter_mut() {
            if event.msg_id.is_none() {
                self.lines += 1;
                event.msg_id = Some(event_msg_id(
                    event.source,
                    &event.content,
                    &self.run,
                    self.lines,
                ));
            }
        }
        let mut duplicates = vec![false; events.len()];
        for (chunk, dup) in events
            .chunks_mut(IN_FLIGHT)
            .zip(duplicates.chunks_mut(IN_FLIGHT))
        {
            let mut acks = Vec::with_capacity(chunk.len());
            for event in chunk.iter() {
                let partition = self.partition(event);
                let subject = event_subject(&self.layout.prefix, &event.keys, partition);
                let mut headers = HeaderMap::new();
                headers.insert(MSG_ID, event.msg_id.as_deref().unwrap_or_default());
                for (i, key) in event.keys.iter().enumerate() {
                    match i {
                        0 => headers.insert(KEY_HEADER, key.trim_end()),
                        n => headers
                            .insert(format!("{KEY_HEADER}-{}", n + 1).as_str(), key.trim_end()),
                    }
                }
                let payload = Bytes::from(event.content.clone().into_bytes());
                let ack = self
                    .js
                    .publish_with_headers(subject, headers, payload)
                    .await
                    .map_err(|e| JournalError::new("publish", e))?;
                acks.push(ack);
            }
            for ((event, dup), ack) in chunk.iter_mut().zip(dup.iter_mut()).zip(acks) {
                let ack = ack.await.map_err(|e| JournalError::new("publish", e))?;
                if ack.stream != self.layout.events_stream {
                    return Err(JournalError::new(
                        "publish",
                        format!(
                            "event stored by stream {} instead of {}: another stream takes the \
                             same subjects",
                            ack.stream, self.layout.events_stream
                        ),
                    ));
                }
                event.seq = ack.sequence;
                *dup = ack.duplicate;
            }
        }
        let mut flags = duplicates.into_iter();
        let before = events.len();
        events.retain(|_| !flags.next().unwrap_or(false));
        if events.len() < before {
            info!(
                events = before - events.len(),
                "events the stream already held (sent again), not published again"
            );
        }
        // A retried commit can get its numbers out of batch order; subscribers want them rising.
        events.sort_by_key(|e| e.seq);
        if let Some(last) = events.last() {
            self.head = self.head.max(last.seq);
        }
        Ok(())
    }

    /// The partition of an event: by the resource it is about, which the HEM orders executions
    /// by; a RETRY (not ordered) by its content.
    fn partition(&self, event: &JournalEvent) -> Partition {
        if event.keys.first().map(String::as_str) == Some(RETRY_KEY) {
            return Partition::Of(partition_of(&event.content, self.partitions));
        }
        let message = match &event.decoded {
            Some(xml) => HookMessage::parse(&String::from_utf8_lossy(xml)),
            None => HookMessage::from_content(event.content.as_bytes()),
        };
        let resource = message.map(|m| m.resource()).unwrap_or_default();
        event_partition(&event.keys, &resource, self.partitions)
    }

    async fn publish_results(&mut self, batch: &mut Batch) -> Result<(), JournalError> {
        let mut acks = Vec::with_capacity(batch.results.len());
        for result in &batch.results {
            let mut headers = HeaderMap::new();
            let id = match &result.uid {
                Some(uid) => uid.clone(),
                None => {
                    self.lines += 1;
                    format!("zres-{}-{}", self.run, self.lines)
                }
            };
            headers.insert(MSG_ID, id.as_str());
            let frame = format!("{} {} {}", result.rc, result.hook_id, result.body);
            let ack = self
                .js
                .publish_with_headers(
                    result_subject(&self.layout.prefix, result.hook_id),
                    headers,
                    Bytes::from(frame.into_bytes()),
                )
                .await
                .map_err(|e| JournalError::new("publish result", e))?;
            acks.push(ack);
        }
        for (result, ack) in batch.results.iter_mut().zip(acks) {
            let ack = ack
                .await
                .map_err(|e| JournalError::new("publish result", e))?;
            result.id = ack.sequence;
            result.duplicate = ack.duplicate;
        }
        Ok(())
    }

    async fn acknowledge_forwarded(&self, through: u64) {
        let stored = match self.forwarded.lock() {
            Ok(mut f) => f.take_through(through),
            Err(_) => Vec::new(),
        };
        for message in stored {
            if let Err(e) = message.ack().await {
                // Unacknowledged results come again after the ack wait; oned-lite drops them
                // by uid.
                warn!(error = %e, through, "cannot acknowledge a delivered result");
            }
        }
    }
}

async fn set_up(
    config: &NatsConfig,
    retention: Retention,
) -> anyhow::Result<(jetstream::Context, u64)> {
    let client = one_bus::connect(&config.bus).await?;
    let mut js = jetstream::new(client);
    js.set_timeout(REQUEST_TIMEOUT);
    let events = StreamLimits {
        replicas: config.replicas,
        max_age: retention.max_age,
        max_messages: retention.max_events,
        duplicate_window: config.dedupe_window,
    };
    let info = ensure_stream(&js, config.layout.events_config(events, config.partitions)).await?;
    let partitions = partitions_of(&info);
    if partitions != Some(config.partitions) {
        anyhow::bail!(
            "stream {} has no usable partition count in its metadata ({partitions:?})",
            config.layout.events_stream
        );
    }
    let results = StreamLimits {
        max_age: Some(RESULTS_MAX_AGE),
        max_messages: None,
        ..events
    };
    ensure_stream(&js, config.layout.results_config(results)).await?;
    Ok((js, info.state.last_sequence))
}

/// A random name for this driver run.
fn run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!("{:016x}", h.finish())
}

impl EventLog for NatsJournal {
    fn commit(&mut self, batch: &mut Batch) -> Result<(), JournalError> {
        let rt = self.rt.clone();
        rt.block_on(async {
            if !batch.events.is_empty() {
                self.publish_events(&mut batch.events).await?;
            }
            if !batch.results.is_empty() {
                self.publish_results(batch).await?;
            }
            if let Some(through) = batch.forwarded {
                self.acknowledge_forwarded(through).await;
            }
            Ok(())
        })
    }

    fn trim(&mut self, _budget: u64) -> Result<Trimmed, JournalError> {
        // The streams' own limits apply the retention.
        Ok(Trimmed::default())
    }

    fn pending_results(&mut self) -> Result<Vec<PendingResult>, JournalError> {
        // Unacknowledged results come again from the results consumer.
        Ok(Vec::new())
    }

    fn head(&self) -> u64 {
        self.head
    }

    fn reader(&self) -> Result<Box<dyn EventReader>, JournalError> {
        let stream = self
            .rt
            .block_on(self.js.get_stream(&self.layout.events_stream))
            .map_err(|e| JournalError::new("reader", e))?;
        Ok(Box::new(NatsReader {
            rt: self.rt.clone(),
            stream,
            retry_prefix: format!("{}.retry.", self.layout.prefix),
        }))
    }

    fn delivers_results(&self) -> bool {
        true
    }

    fn recent_sources(&mut self, _limit: usize) -> Result<Vec<(u64, u64)>, JournalError> {
        // The stream drops events sent again by their message id; nothing to recognise here.
        Ok(Vec::new())
    }

    fn same_content(&mut self, seq: u64, event: &JournalEvent) -> Result<bool, JournalError> {
        let rt = self.rt.clone();
        rt.block_on(async {
            let stream = self
                .js
                .get_stream(&self.layout.events_stream)
                .await
                .map_err(|e| JournalError::new("compare", e))?;
            match stream.direct_get(seq).await {
                Ok(message) => Ok(message.payload == event.content.as_bytes()),
                Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => Ok(false),
                Err(e) => Err(JournalError::new("compare", e)),
            }
        })
    }
}

/// Replay from the events stream, for ZeroMQ subscribers.
pub struct NatsReader {
    rt: Arc<Runtime>,
    stream: stream::Stream,
    retry_prefix: String,
}

impl EventReader for NatsReader {
    fn read_after(
        &mut self,
        after: u64,
        max_events: u32,
        max_bytes: usize,
    ) -> Result<ReplayPage, JournalError> {
        let rt = self.rt.clone();
        rt.block_on(async {
            let info = self
                .stream
                .get_info()
                .await
                .map_err(|e| JournalError::new("replay info", e))?;
            let head = info.state.last_sequence;
            let oldest = if info.state.messages == 0 {
                head + 1
            } else {
                info.state.first_sequence
            };
            let mut events = Vec::new();
            let mut bytes = 0usize;
            let mut seq = after.saturating_add(1).max(oldest);
            while seq <= head && events.len() < max_events as usize {
                match self.stream.direct_get(seq).await {
                    Ok(message) => {
                        let event = self.event_of(&message);
                        bytes += event.size();
                        events.push(event);
                        if bytes >= max_bytes {
                            break;
                        }
                    }
                    Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => {}
                    Err(e) => return Err(JournalError::new("replay read", e)),
                }
                seq += 1;
            }
            Ok(ReplayPage {
                oldest,
                head,
                events,
            })
        })
    }
}

impl NatsReader {
    /// The journal event of a stream message: its keys are derived again from the content, as
    /// the driver derived them when it journaled the event.
    fn event_of(&self, message: &jetstream::message::StreamMessage) -> JournalEvent {
        let content = String::from_utf8_lossy(&message.payload).into_owned();
        let keys = if message.subject.starts_with(&self.retry_prefix) {
            vec![RETRY_KEY.to_string()]
        } else {
            let xml = b64_decode_lenient(&content);
            event_keys(&String::from_utf8_lossy(&xml))
                .unwrap_or_else(|_| vec![UNKNOWN_EVENT_KEY.to_string()])
        };
        JournalEvent {
            seq: message.sequence,
            ..JournalEvent::new(keys, content)
        }
    }
}

/// Reads the results stream and hands results to the output thread.
pub struct ResultsFeed {
    rt: Arc<Runtime>,
    js: jetstream::Context,
    stream: String,
    ack_wait: Duration,
    forwarded: Arc<Mutex<Forwarded>>,
}

/// The running feed; dropping it stops the feed.
pub struct FeedTask {
    handle: tokio::task::JoinHandle<()>,
    /// Keeps the runtime alive while the task runs.
    _rt: Arc<Runtime>,
}

impl Drop for FeedTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

impl ResultsFeed {
    pub fn start(self, oned: Sender<ToOned>) -> FeedTask {
        let rt = self.rt.clone();
        let handle = rt.spawn(self.run(oned));
        FeedTask { handle, _rt: rt }
    }

    async fn run(self, oned: Sender<ToOned>) {
        let mut delay = Duration::from_millis(200);
        loop {
            match self.consume(&oned).await {
                Ok(()) => return,
                Err(e) => {
                    warn!(error = %format!("{e:#}"), retry_in_ms = delay.as_millis() as u64,
                        "results consumer failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Returns `Ok` only when the output thread is gone.
    async fn consume(&self, oned: &Sender<ToOned>) -> anyhow::Result<()> {
        let stream = self.js.get_stream(&self.stream).await?;
        let consumer: consumer::PullConsumer = stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(RESULTS_CONSUMER.to_string()),
                description: Some("one_hm: results to oned".to_string()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: self.ack_wait,
                max_ack_pending: MAX_RESULTS_PENDING,
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await?;
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(256)
            .expires(Duration::from_secs(5))
            .heartbeat(Duration::from_secs(2))
            .messages()
            .await?;
        debug!(stream = %self.stream, "reading results");
        while let Some(message) = messages.next().await {
            let message = message?;
            let Some(result) = self.accept(message).await else {
                continue;
            };
            if oned.send(ToOned::Results(vec![result])).is_err() {
                return Ok(());
            }
        }
        anyhow::bail!("the results consumer ended")
    }

    /// The result a message holds, unless it was forwarded already in this run (JetStream
    /// delivers again what waits longer than the ack wait) or is malformed (dropped for good).
    async fn accept(&self, message: jetstream::Message) -> Option<PendingResult> {
        let seq = message.info().ok()?.stream_sequence;
        let frame = match ResultFrame::parse(&message.payload) {
            Ok(frame) => frame,
            Err(e) => {
                warn!(seq, reason = %e, "malformed result in the results stream dropped");
                if let Err(e) = message.ack_with(AckKind::Term).await {
                    warn!(error = %e, seq, "cannot drop a malformed result");
                }
                return None;
            }
        };
        let id = self.forwarded.lock().ok()?.accept(seq, message)?;
        Some(PendingResult {
            id,
            hook_id: frame.hook_id,
            rc: frame.rc,
            body: frame.body,
        })
    }
}
