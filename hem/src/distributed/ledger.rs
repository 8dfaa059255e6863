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

use super::markers::{Created, Marker, MarkerError, Markers, State};
use super::tickets::Tickets;
use crate::execution::Execution;
use crate::runner::{Ledger, Start, outbox_entry};

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
}

impl Ledger for BusLedger {
    async fn start(&self, exec: &Execution) -> Start {
        let key = Markers::key(&exec.uid);
        let mut delay = Duration::from_millis(50);
        loop {
            match self.markers.create_started(&key).await {
                Ok(Created::Mine(marker, revision)) => {
                    self.tickets.note_marker(&exec.uid, &key, revision, marker);
                    return Start::Run;
                }
                Ok(Created::Taken(
                    Marker {
                        owner,
                        state: State::Done(outcome),
                        ..
                    },
                    _,
                )) => {
                    tracing::info!(owner = %owner, outcome = %outcome,
                        "already recorded; not run again");
                    self.tickets.recorded(&exec.uid).await;
                    return Start::Recorded;
                }
                Ok(Created::Taken(
                    Marker {
                        owner,
                        state: State::Started,
                        ..
                    },
                    revision,
                )) => {
                    // The event came back: the HEM that started this hook stopped holding it.
                    // It died, or it lost the bus for a while and still runs the hook, renewing
                    // the marker: only a marker left unchanged for the take-over time is
                    // claimed.
                    tokio::time::sleep(self.takeover).await;
                    match self.markers.read(&key).await {
                        Ok(Some((
                            Marker {
                                state: State::Started,
                                ..
                            },
                            now,
                        ))) if now == revision => {}
                        Ok(_) => continue,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot read a start marker; retrying");
                            continue;
                        }
                    }
                    match self
                        .markers
                        .finish(&key, format!("interrupted-{owner}"), revision)
                        .await
                    {
                        Ok((marker, revision)) => {
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
        if let Some((
            revision,
            Marker {
                state: State::Started,
                ..
            },
        )) = self.tickets.marker_of(&exec.uid, &key)
        {
            let mut delay = Duration::from_millis(50);
            for _ in 0..5 {
                match self
                    .markers
                    .finish(&key, result.code.to_string(), revision)
                    .await
                {
                    Ok((marker, revision)) => {
                        self.tickets.note_marker(&exec.uid, &key, revision, marker);
                        break;
                    }
                    Err(MarkerError::Conflict) => {
                        tracing::warn!(
                            "another HEM took this execution over while it ran; the first record stored wins"
                        );
                        break;
                    }
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
