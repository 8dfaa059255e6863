//! The distributed mode's [`Ledger`]: start markers in the HEMs' bucket, results in the
//! results stream, and the event acknowledged once all its executions have their records.

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use bytes::Bytes;
use one_bus::MSG_ID;
use one_proto::hook_log::ExecutionResult;
use one_proto::subjects::result_subject;

use super::markers::{Created, Marker, MarkerError, Markers, State};
use super::tickets::Tickets;
use crate::execution::{Execution, Target};
use crate::runner::{Ledger, Start, outbox_entry};
use crate::supervisor::client::Supervised;

/// Longest pause between attempts at a write the bus refused (it is down or electing a leader).
const RETRY_MAX: Duration = Duration::from_secs(2);

pub struct BusLedger {
    pub js: jetstream::Context,
    pub markers: Markers,
    pub tickets: Arc<Tickets>,
    pub prefix: String,
    /// How long a start marker of another HEM must stay unchanged before it is taken for
    /// abandoned.
    pub takeover: Duration,
    /// Told when a local execution's record is in place, so that it forgets the outcome.
    pub supervised: Supervised,
}

impl Ledger for BusLedger {
    async fn start(&self, exec: &Execution) -> Start {
        let key = Markers::key(&exec.uid);
        // One identity per write, kept across retries: a write whose acknowledgement was lost
        // is found there afterwards and recognised as ours.
        let started = self.markers.mine(State::Started);
        let mut claim: Option<(Marker, String)> = None;
        let mut delay = Duration::from_millis(50);
        loop {
            let outcome = match self.markers.create(&key, &started).await {
                Ok(Created::Mine(marker, revision)) => {
                    self.tickets.note_marker(&exec.uid, &key, revision, marker);
                    return Start::Run;
                }
                Ok(Created::Taken(found, revision)) => match &claim {
                    Some((ours, owner)) if *ours == found => {
                        return self.report(exec, &key, found, revision, owner.clone());
                    }
                    _ => self.taken(exec, &key, found, revision, &mut claim).await,
                },
                Err(e) => Err(e),
            };
            match outcome {
                Ok(start) => return start,
                Err(MarkerError::Conflict) => continue,
                Err(MarkerError::Bus(e)) => {
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64,
                        "cannot settle the start marker; the hook waits");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        }
    }

    async fn finish(&self, exec: &Execution, result: ExecutionResult) {
        self.publish(exec, &result).await;
        let key = Markers::key(&exec.uid);
        if let Some((
            mut revision,
            started @ Marker {
                state: State::Started,
                ..
            },
        )) = self.tickets.marker_of(&exec.uid, &key)
        {
            let done = self.markers.mine(State::Done(result.code.to_string()));
            let mut delay = Duration::from_millis(50);
            for _ in 0..5 {
                match self.markers.set(&key, &done, revision).await {
                    Ok(revision) => {
                        self.tickets.note_marker(&exec.uid, &key, revision, done);
                        break;
                    }
                    Err(MarkerError::Conflict) => match self.markers.read(&key).await {
                        // Our own renewal got there first: end it at its new revision.
                        Ok(Some((found, now))) if found == started => revision = now,
                        _ => {
                            tracing::warn!(
                                "another HEM took this execution over while it ran; the first record stored wins"
                            );
                            break;
                        }
                    },
                    // Left as started, a delivery of the event again would report the
                    // execution as interrupted under its uid, which the results stream drops
                    // as a duplicate of the record already published.
                    Err(MarkerError::Bus(e)) => {
                        tracing::warn!(error = %e, "cannot mark the execution done; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(RETRY_MAX);
                    }
                }
            }
        }
        if exec.plan.target == Target::Local {
            self.supervised.taken(vec![exec.uid.clone()]);
        }
        self.tickets.recorded(&exec.uid).await;
    }
}

impl BusLedger {
    /// What to do with an execution whose marker somebody else wrote.
    async fn taken(
        &self,
        exec: &Execution,
        key: &str,
        found: Marker,
        revision: u64,
        claim: &mut Option<(Marker, String)>,
    ) -> Result<Start, MarkerError> {
        let owner = match found.state {
            State::Done(outcome) => {
                tracing::info!(owner = %found.owner, outcome = %outcome,
                    "already recorded; not run again");
                self.tickets.recorded(&exec.uid).await;
                return Ok(Start::Recorded);
            }
            State::Started => found.owner,
        };
        // The event came back: the HEM that started this hook stopped holding it. It died (its
        // hook supervisor then renews the marker of a local hook while it runs, and reports
        // it), or it lost the bus for a while and still runs the hook, renewing the marker:
        // only a marker left unchanged for the take-over time is claimed.
        tokio::time::sleep(self.takeover).await;
        match self.markers.read(key).await? {
            Some((
                Marker {
                    state: State::Started,
                    ..
                },
                now,
            )) if now == revision => {}
            _ => return Err(MarkerError::Conflict),
        }
        let (ours, _) = claim.get_or_insert_with(|| {
            let marker = self
                .markers
                .mine(State::Done(format!("interrupted-{owner}")));
            (marker, owner.clone())
        });
        let ours = ours.clone();
        let revision = self.markers.set(key, &ours, revision).await?;
        Ok(self.report(exec, key, ours, revision, owner))
    }

    /// Our claim on an execution another HEM started is in place: report it interrupted.
    fn report(
        &self,
        exec: &Execution,
        key: &str,
        claim: Marker,
        revision: u64,
        owner: String,
    ) -> Start {
        tracing::warn!(owner = %owner,
            "started by a HEM that stopped before reporting; recorded as interrupted (retryable)");
        self.tickets.note_marker(&exec.uid, key, revision, claim);
        Start::Report(exec.taken_over(&owner))
    }

    /// Publishes the result until the results stream has it. The execution uid is the message
    /// id, so a result published twice (a retry, or a HEM that took over) is stored once.
    async fn publish(&self, exec: &Execution, result: &ExecutionResult) {
        let frame = outbox_entry(exec, result).frame;
        let subject = result_subject(&self.prefix, exec.hook_id);
        let mut delay = Duration::from_millis(50);
        loop {
            match publish_result(&self.js, &subject, &exec.uid, &frame).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64,
                        "cannot publish the result; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        }
    }
}

/// One attempt at publishing a result frame to the results stream under the execution uid as
/// its message id; `Ok` once the stream has it (stored now, or before as a duplicate).
pub async fn publish_result(
    js: &jetstream::Context,
    subject: &str,
    uid: &str,
    frame: &str,
) -> Result<(), String> {
    let mut headers = HeaderMap::new();
    headers.insert(MSG_ID, uid);
    let ack = js
        .publish_with_headers(subject.to_string(), headers, Bytes::from(frame.to_string()))
        .await
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    if ack.duplicate {
        tracing::info!("the results stream had this execution's record already");
    }
    Ok(())
}
