//! The distributed mode's [`Ledger`]: start markers in the HEMs' bucket, results in the
//! results stream, and the event acknowledged once all its executions have their records.

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use bytes::Bytes;
use one_bus::MSG_ID;
use one_proto::hook_log::ExecResult;
use one_proto::subjects::result_subject;

use super::markers::{Created, Marker, MarkerError, Markers};
use super::tickets::Tickets;
use crate::execution::Execution;
use crate::runner::{Ledger, Start, outbox_entry};

/// Longest pause between attempts at a write the bus refused (it is down or electing a leader).
const RETRY_MAX: Duration = Duration::from_secs(2);

pub struct BusLedger {
    pub js: jetstream::Context,
    pub markers: Markers,
    pub tickets: Arc<Tickets>,
    /// This HEM's member name, written into the markers it creates.
    pub member: String,
    pub prefix: String,
}

impl Ledger for BusLedger {
    async fn start(&self, exec: &Execution) -> Start {
        let key = Markers::key(&exec.uid);
        let mut delay = Duration::from_millis(50);
        loop {
            match self.markers.create_started(&key, &self.member).await {
                Ok(Created::Mine(revision)) => {
                    let marker = Marker::Started {
                        owner: self.member.clone(),
                    };
                    self.tickets.note_marker(&exec.uid, &key, revision, marker);
                    return Start::Run;
                }
                Ok(Created::Taken(Marker::Done { owner, outcome }, _)) => {
                    tracing::info!(owner = %owner, outcome = %outcome,
                        "already recorded by another HEM; not run again");
                    self.tickets.recorded(&exec.uid).await;
                    return Start::Recorded;
                }
                Ok(Created::Taken(Marker::Started { owner }, revision)) => {
                    // The event came back: the HEM that started this hook stopped holding it
                    // (it died, or lost the bus for longer than the take-over time).
                    let marker = Marker::Done {
                        owner: self.member.clone(),
                        outcome: format!("interrupted-{owner}"),
                    };
                    match self.markers.set(&key, &marker, revision).await {
                        Ok(revision) => {
                            tracing::warn!(owner = %owner,
                                "started by a HEM that stopped before reporting; recorded as interrupted (retryable)");
                            self.tickets.note_marker(&exec.uid, &key, revision, marker);
                            return Start::Report(exec.taken_over(&owner));
                        }
                        // Someone else settled it meanwhile: read it again.
                        Err(MarkerError::Conflict) => continue,
                        Err(MarkerError::Bus(e)) => {
                            tracing::warn!(error = %e, "cannot claim an interrupted execution; retrying");
                        }
                    }
                }
                Err(MarkerError::Conflict) => continue,
                Err(MarkerError::Bus(e)) => {
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64,
                        "cannot write the start marker; the hook waits");
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RETRY_MAX);
        }
    }

    async fn finish(&self, exec: &Execution, result: ExecResult) {
        self.publish(exec, &result).await;
        let key = Markers::key(&exec.uid);
        if let Some((revision, Marker::Started { .. })) = self.tickets.marker_of(&exec.uid, &key) {
            let done = Marker::Done {
                owner: self.member.clone(),
                outcome: result.code.to_string(),
            };
            match self.markers.set(&key, &done, revision).await {
                Ok(revision) => self.tickets.note_marker(&exec.uid, &key, revision, done),
                Err(MarkerError::Conflict) => tracing::warn!(
                    "another HEM took this execution over while it ran; the first record stored wins"
                ),
                // The event stays held until acknowledged; delivered again, the marker still
                // says started and the next holder reports it, and the result stream keeps the
                // record already published (same message id).
                Err(MarkerError::Bus(e)) => {
                    tracing::warn!(error = %e, "cannot mark the execution done")
                }
            }
        }
        self.tickets.recorded(&exec.uid).await;
    }
}

impl BusLedger {
    /// Publishes the result until the results stream has it. The execution uid is the message
    /// id, so a result published twice (a retry, or a HEM that took over) is stored once.
    async fn publish(&self, exec: &Execution, result: &ExecResult) {
        let frame = outbox_entry(exec, result).frame;
        let subject = result_subject(&self.prefix, exec.hook_id);
        let mut delay = Duration::from_millis(50);
        loop {
            let mut headers = HeaderMap::new();
            headers.insert(MSG_ID, exec.uid.as_str());
            let sent = match self
                .js
                .publish_with_headers(subject.clone(), headers, Bytes::from(frame.clone()))
                .await
            {
                Ok(ack) => ack.await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match sent {
                Ok(ack) => {
                    if ack.duplicate {
                        tracing::info!("the results stream had this execution's record already");
                    }
                    return;
                }
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
