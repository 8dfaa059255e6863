//! One partition held by this HEM: its durable consumer, its events in order, its hook map.
//!
//! Every HEM that should hold a partition (by the members' assignment) pulls from its consumer
//! in the priority group [`GROUP`]; the consumer is pinned to one of them at a time, so exactly
//! one HEM receives the partition's events, and when that HEM stops pulling (it died, or gave
//! the partition up) the pin moves to the next puller after the consumer's pin timeout.
//!
//! A new holder may not run anything yet: the previous holder's unacknowledged events come back
//! to it only after their acknowledgement wait (in no particular order), and a previous holder
//! that is alive (it gave the partition up) still runs hooks of events it took. So right after it
//! gets the pin, a holder keeps every delivery aside until the consumer holds no unacknowledged
//! event that is not among them or its own, then handles them in stream order. The hooks of one
//! resource thus keep their event order across holders.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use async_nats::header::NATS_PIN_ID;
use async_nats::jetstream::{self, AckKind, consumer, stream};
use futures_util::StreamExt as _;
use one_proto::encoding::b64_decode_lenient;
use one_proto::event::HookMessage;
use one_proto::keys::{RETRY_KEY, UNKNOWN_EVENT_KEY, event_keys, parse_key};
use one_proto::subjects::{Partition, partition_filters, partition_of};
use tokio::sync::{broadcast, watch};

use super::tickets::Tickets;
use crate::config::ReplayFrom;
use crate::execution::Execution;
use crate::hook_source::XmlRpcHookSource;
use crate::journal::BusMessage;
use crate::matcher::{Apply, Matcher, Snapshot, is_primary};
use crate::scheduler::Submitter;
use crate::uids::{StreamUids, UidKey};

/// The priority group every HEM pulls in.
pub const GROUP: &str = "hem";
/// Events asked for per pull request.
const BATCH: usize = 64;
/// How often a new holder checks whether the previous holder's events are settled.
const HOLD_CHECK: Duration = Duration::from_millis(250);

/// What every partition shares.
#[derive(Clone)]
pub struct Shared {
    pub stream: stream::Stream,
    pub layout: one_bus::Layout,
    pub partitions: u32,
    /// The events stream's tag in execution uids.
    pub tag: String,
    /// The HEMs' shared secret execution uids are tagged with (kept in their bucket).
    pub uid_key: UidKey,
    pub takeover: Duration,
    pub in_flight: usize,
    pub replicas: usize,
    pub replay_from: ReplayFrom,
    pub tickets: Arc<Tickets>,
    pub submitter: Submitter,
    pub resync_now: std_mpsc::Sender<()>,
}

/// Creates the partition's durable consumer, or updates the settings an existing one may
/// change; where a new one starts reading follows `replay_from`.
pub async fn ensure_consumer(
    shared: &Shared,
    n: u32,
) -> Result<consumer::PullConsumer, one_bus::BusError> {
    let name = shared.layout.partition_consumer(n);
    let existing = shared
        .stream
        .get_consumer::<consumer::pull::Config>(&name)
        .await
        .ok()
        .map(|c| c.cached_info().config.clone());
    let deliver_policy = match &existing {
        Some(config) => config.deliver_policy,
        None => match shared.replay_from {
            ReplayFrom::Head => consumer::DeliverPolicy::New,
            ReplayFrom::Oldest => consumer::DeliverPolicy::All,
            ReplayFrom::After(n) => consumer::DeliverPolicy::ByStartSequence {
                start_sequence: n.saturating_add(1),
            },
        },
    };
    let config = consumer::pull::Config {
        durable_name: Some(name.clone()),
        description: Some(format!("onehem-server: events of partition {n}")),
        filter_subjects: partition_filters(&shared.layout.prefix, n),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: shared.takeover,
        max_ack_pending: i64::try_from(shared.in_flight).unwrap_or(i64::MAX),
        max_deliver: -1,
        deliver_policy,
        num_replicas: shared.replicas,
        priority_policy: consumer::PriorityPolicy::PinnedClient,
        priority_groups: vec![GROUP.to_string()],
        priority_timeout: shared.takeover,
        ..Default::default()
    };
    shared
        .stream
        .create_consumer(config)
        .await
        .map_err(|e| one_bus::BusError::jetstream(format!("consumer {name}"), e))
}

/// One held partition.
pub struct PartitionWorker {
    n: u32,
    shared: Shared,
    consumer: consumer::PullConsumer,
    matcher: Matcher<XmlRpcHookSource>,
    uids: StreamUids,
    snapshots: broadcast::Receiver<Snapshot>,
    retry_prefix: String,
    /// The pin this HEM holds on the consumer, as the server named it.
    pin: Option<String>,
    /// Since when first deliveries wait for the previous holder's events to settle.
    holding: Option<Instant>,
    warned_hold: bool,
    /// Deliveries kept aside while holding, by stream sequence (a delivery again replaces the
    /// one kept), and when they were last kept from coming back.
    held_back: BTreeMap<u64, jetstream::Message>,
    held_back_alive: Instant,
}

impl PartitionWorker {
    pub fn new(
        n: u32,
        shared: Shared,
        consumer: consumer::PullConsumer,
        matcher: Matcher<XmlRpcHookSource>,
        snapshots: broadcast::Receiver<Snapshot>,
    ) -> PartitionWorker {
        PartitionWorker {
            n,
            uids: StreamUids {
                key: shared.uid_key.clone(),
                tag: shared.tag.clone(),
            },
            retry_prefix: format!("{}.retry.", shared.layout.prefix),
            shared,
            consumer,
            matcher,
            snapshots,
            pin: None,
            holding: None,
            warned_hold: false,
            held_back: BTreeMap::new(),
            held_back_alive: Instant::now(),
        }
    }

    /// Pulls and handles events until `stop` changes, then gives the pin up.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let n = self.n;
        let mut delay = Duration::from_millis(200);
        let expires = (self.shared.takeover / 3).max(Duration::from_millis(500));
        let mut resyncing = true;
        'pull: loop {
            let messages = self
                .consumer
                .stream()
                .group(GROUP)
                .max_messages_per_batch(BATCH)
                .expires(expires)
                .heartbeat(expires / 4)
                .messages()
                .await;
            let mut messages = match messages {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(partition = n, error = %e, "cannot pull events; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.changed() => break 'pull,
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            delay = Duration::from_millis(200);
            let mut check = tokio::time::interval(HOLD_CHECK);
            loop {
                tokio::select! {
                    biased;
                    _ = stop.changed() => break 'pull,
                    snapshot = self.snapshots.recv(), if resyncing => match snapshot {
                        Ok(snapshot) => {
                            self.matcher.apply_snapshot(snapshot);
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => resyncing = false,
                    },
                    _ = check.tick(), if self.holding.is_some() => self.check_hold().await,
                    message = messages.next() => match message {
                        Some(Ok(message)) => self.on_message(message).await,
                        Some(Err(e)) => {
                            tracing::debug!(partition = n, error = %e, "pull status");
                        }
                        None => {
                            tracing::warn!(partition = n, "the pull ended; pulling again");
                            break;
                        }
                    },
                }
            }
        }
        if self.pin.is_some() {
            // The next holder gets the pin at once instead of after the pin timeout.
            let name = self.shared.layout.partition_consumer(n);
            if let Err(e) = self.shared.stream.unpin_consumer(&name, GROUP).await {
                tracing::debug!(partition = n, error = %e, "cannot give the pin up; it times out");
            }
        }
        tracing::info!(partition = n, "partition released");
    }

    async fn on_message(&mut self, message: jetstream::Message) {
        let Ok(info) = message.info() else {
            return;
        };
        let seq = info.stream_sequence;
        let pin = message
            .headers
            .as_ref()
            .and_then(|h| h.get(NATS_PIN_ID))
            .map(|v| v.as_str().to_string());
        if pin.is_some() && pin != self.pin {
            tracing::info!(partition = self.n, "holding partition {} now", self.n);
            self.pin = pin;
            self.holding = Some(Instant::now());
            self.warned_hold = false;
        }
        if self.shared.tickets.redelivered(self.n, seq, &message) {
            return;
        }
        if self.holding.is_some() {
            // Deliveries of the previous holder's events come back in the order their
            // acknowledgement waits ran out, which is not their event order: all wait, and go in
            // stream order once the previous holder's events are all here or settled.
            let first = self.held_back.is_empty();
            self.held_back.insert(seq, message);
            if first {
                self.check_hold().await;
            }
            return;
        }
        self.handle(message, seq).await;
    }

    /// Ends the hold once the consumer's unacknowledged events are all this HEM's own.
    async fn check_hold(&mut self) {
        let Some(since) = self.holding else { return };
        let pending = match self.consumer.get_info().await {
            Ok(info) => info.num_ack_pending,
            Err(e) => {
                tracing::debug!(partition = self.n, error = %e, "cannot read the consumer");
                return;
            }
        };
        let own = self.shared.tickets.held(self.n) + self.held_back.len();
        if pending > own {
            // What waits here is this HEM's now: keep it from being delivered again meanwhile.
            if self.held_back_alive.elapsed() >= self.shared.takeover / 4 {
                self.held_back_alive = Instant::now();
                for message in self.held_back.values() {
                    let _ = message.ack_with(AckKind::Progress).await;
                }
            }
            if !self.warned_hold && since.elapsed() > self.shared.takeover * 3 {
                tracing::warn!(
                    partition = self.n,
                    others = pending - own,
                    "new events of this partition wait for events another HEM still holds \
                     (hooks it still runs); they keep their order"
                );
                self.warned_hold = true;
            }
            return;
        }
        self.holding = None;
        let waited = std::mem::take(&mut self.held_back);
        tracing::debug!(
            partition = self.n,
            waited = waited.len(),
            waited_ms = since.elapsed().as_millis() as u64,
            "previous holder's events settled"
        );
        for (seq, message) in waited {
            if self.shared.tickets.redelivered(self.n, seq, &message) {
                continue;
            }
            self.handle(message, seq).await;
        }
    }

    /// Plans the event's executions and hands them to the scheduler; an event without any is
    /// acknowledged at once.
    async fn handle(&mut self, message: jetstream::Message, seq: u64) {
        let content = String::from_utf8_lossy(&message.payload).into_owned();
        let key = if message.subject.starts_with(&self.retry_prefix) {
            RETRY_KEY.to_string()
        } else {
            primary_key(&content)
        };
        let parsed = parse_key(&key);
        let mut execs: Vec<Execution> = Vec::new();
        if is_primary(&parsed) {
            let apply = match Partition::from_subject(&message.subject) {
                Some(Partition::All) => {
                    let resource = HookMessage::from_content(content.as_bytes())
                        .map(|m| m.resource())
                        .unwrap_or_default();
                    if partition_of(&resource, self.shared.partitions) == self.n {
                        Apply::All
                    } else {
                        Apply::ReloadOnly
                    }
                }
                _ => Apply::All,
            };
            let msg = BusMessage {
                key: key.clone(),
                content,
            };
            if Matcher::<XmlRpcHookSource>::may_reload(&parsed) {
                // A reload asks the front-end for the hook: a blocking call.
                tokio::task::block_in_place(|| {
                    self.matcher
                        .handle(seq, &parsed, &msg, apply, &mut self.uids, &mut execs)
                });
                if self.matcher.take_resync_wanted() {
                    let _ = self.shared.resync_now.send(());
                }
            } else {
                self.matcher
                    .handle(seq, &parsed, &msg, apply, &mut self.uids, &mut execs);
            }
        }
        if execs.is_empty() {
            if let Err(e) = message.ack().await {
                tracing::debug!(partition = self.n, seq, error = %e, "cannot acknowledge an event without hooks");
            }
            return;
        }
        let uids: Vec<String> = execs.iter().map(|e| e.uid.clone()).collect();
        self.shared.tickets.hold(self.n, seq, message, &uids);
        for exec in execs {
            if self.shared.submitter.submit(exec).await.is_err() {
                // Stopping: the event stays unacknowledged and is delivered to the next holder.
                return;
            }
        }
    }
}

/// The key the HEM matches an event by, derived from its content as the driver derived the
/// event's keys: the API key, or the `EVENT STATE …` key of a state event.
fn primary_key(content: &str) -> String {
    let xml = b64_decode_lenient(content);
    match event_keys(&String::from_utf8_lossy(&xml)) {
        Ok(keys) => {
            let primary = keys
                .iter()
                .find(|k| k.starts_with("EVENT API ") || k.starts_with("EVENT STATE "));
            primary
                .or(keys.first())
                .cloned()
                .unwrap_or_else(|| UNKNOWN_EVENT_KEY.to_string())
        }
        Err(_) => UNKNOWN_EVENT_KEY.to_string(),
    }
}

/// Which partitions run: a stop switch and the task of each.
#[derive(Default)]
pub struct Running {
    workers: HashMap<u32, (watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
}

impl Running {
    pub fn holds(&self, n: u32) -> bool {
        self.workers.contains_key(&n)
    }

    pub fn held(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.workers.keys().copied().collect();
        v.sort_unstable();
        v
    }

    pub fn add(&mut self, n: u32, stop: watch::Sender<bool>, task: tokio::task::JoinHandle<()>) {
        self.workers.insert(n, (stop, task));
    }

    /// Stops a partition's worker and waits until it gave the pin up.
    pub async fn remove(&mut self, n: u32) {
        if let Some((stop, task)) = self.workers.remove(&n) {
            let _ = stop.send(true);
            let _ = task.await;
        }
    }

    pub async fn remove_all(&mut self) {
        let all: Vec<u32> = self.workers.keys().copied().collect();
        for (_, (stop, _)) in self.workers.iter() {
            let _ = stop.send(true);
        }
        for n in all {
            self.remove(n).await;
        }
    }
}
