//! Finishes what a distributed-mode HEM started when that HEM dies (its connection ends
//! without `Bye`): the supervisor keeps the executions' start markers alive, as the HEM did, so
//! that the HEM taking the events over waits instead of recording them interrupted, and
//! reports each outcome as the HEM would have: the result under the execution uid, then the
//! marker `done` (ARCHITECTURE.md "The hook supervisor", "What each failure does").
//!
//! Hand-over rule: an execution is reported by whoever its start marker names. The caretaker
//! writes only markers that still say `started <dead member>`; a HEM that got the execution's
//! event reports only executions whose marker it created. So exactly one reports, and a marker
//! somebody else wrote ends the caretaker's part.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use one_proto::subjects::result_subject;
use tokio::sync::mpsc;

use super::frame::BusContext;
use crate::distributed::ledger::publish_result;
use crate::distributed::markers::{Marker, MarkerError, Markers, State};
use crate::execution::ResultContext;
use crate::executor::ExecOutcome;
use crate::runner::result_frame;

/// How long a JetStream request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest pause between attempts while the bus does not answer.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// An execution of a dead HEM: its record context, and its outcome once the hook ended.
pub struct Orphan {
    pub record: ResultContext,
    pub outcome: Option<ExecOutcome>,
}

/// Cares for the orphans of one dead HEM until each is reported, or left to another HEM, or
/// the bus has refused every attempt at reporting for `give_up` (the takeover HEM then records
/// them interrupted, as when nobody cares for them). Outcomes of the hooks still running
/// arrive on `outcomes`. Markers are renewed while their hooks run, however long.
pub async fn care(
    bus: BusContext,
    orphans: Vec<Orphan>,
    mut outcomes: mpsc::UnboundedReceiver<(String, ExecOutcome)>,
    give_up: Duration,
) {
    let member = bus.member.clone();
    let mut pending: HashMap<String, Orphan> = orphans
        .into_iter()
        .map(|o| (o.record.uid.clone(), o))
        .collect();
    tracing::info!(member = %member, executions = pending.len(),
        "the HEM died: the hook supervisor keeps its executions' markers alive and reports them");
    let period = (bus.takeover / 4).max(Duration::from_millis(50));
    let mut bus_link: Option<(jetstream::Context, Markers)> = None;
    let mut renewed: Option<Instant> = None;
    let mut failing_since: Option<Instant> = None;
    let mut delay = Duration::from_millis(200);
    while !pending.is_empty() {
        let mut failed = false;
        if bus_link.is_none() {
            match connect(&bus).await {
                Ok(link) => bus_link = Some(link),
                Err(e) => {
                    tracing::warn!(member = %member, error = %e, "cannot reach NATS to finish the dead HEM's executions; retrying");
                    failed = true;
                }
            }
        }
        if let Some((js, markers)) = &bus_link {
            for uid in uids(&pending, Phase::Ended) {
                let Some(orphan) = pending.get(&uid) else {
                    continue;
                };
                match report(js, markers, &bus, orphan).await {
                    Ok(()) => {
                        pending.remove(&uid);
                    }
                    Err(e) => {
                        tracing::warn!(%uid, error = %e, "cannot report the outcome yet; retrying");
                        failed = true;
                    }
                }
            }
            if renewed.is_none_or(|at| at.elapsed() >= period) {
                renewed = Some(Instant::now());
                for uid in uids(&pending, Phase::Running) {
                    match renew(markers, &member, &uid).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(%uid, "another HEM recorded this execution while its hook ran; its outcome is not reported here");
                            pending.remove(&uid);
                        }
                        Err(e) => {
                            tracing::warn!(%uid, error = %e, "cannot renew the start marker");
                            failed = true;
                        }
                    }
                }
            }
        }
        if failed {
            let since = *failing_since.get_or_insert_with(Instant::now);
            let all_ended = pending.values().all(|o| o.outcome.is_some());
            if all_ended && since.elapsed() >= give_up {
                tracing::error!(member = %member, executions = pending.len(),
                    "NATS refused every attempt to report these outcomes; the HEM taking the events over records them interrupted");
                return;
            }
        } else {
            failing_since = None;
            delay = Duration::from_millis(200);
        }
        if pending.is_empty() {
            break;
        }
        let wait = if failed {
            let d = delay;
            delay = (delay * 2)
                .min(RETRY_MAX)
                .min(period.max(Duration::from_millis(200)));
            d
        } else {
            period.saturating_sub(renewed.map_or(Duration::ZERO, |at| at.elapsed()))
        };
        tokio::select! {
            Some((uid, outcome)) = outcomes.recv() => {
                if let Some(orphan) = pending.get_mut(&uid) {
                    orphan.outcome = Some(outcome);
                }
            }
            () = tokio::time::sleep(wait) => {}
        }
    }
    tracing::info!(member = %member, "every execution of the dead HEM is settled");
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Ended,
}

/// The orphans whose hooks are in `phase`.
fn uids(pending: &HashMap<String, Orphan>, phase: Phase) -> Vec<String> {
    pending
        .iter()
        .filter(|(_, o)| o.outcome.is_some() == (phase == Phase::Ended))
        .map(|(uid, _)| uid.clone())
        .collect()
}

async fn connect(bus: &BusContext) -> Result<(jetstream::Context, Markers), String> {
    let client = one_bus::connect(&bus.settings)
        .await
        .map_err(|e| e.to_string())?;
    let mut js = jetstream::new(client);
    js.set_timeout(REQUEST_TIMEOUT);
    let markers = Markers::open(&js, &bus.bucket, bus.replicas, bus.marker_ttl, &bus.member)
        .await
        .map_err(|e| e.to_string())?;
    Ok((js, markers))
}

/// The marker of `uid` while it still says `started <member>`, with its revision.
async fn still_started(
    markers: &Markers,
    member: &str,
    key: &str,
) -> Result<Result<(Marker, u64), Option<Marker>>, MarkerError> {
    Ok(match markers.read(key).await? {
        Some((m, revision)) if m.state == State::Started && m.owner == member => Ok((m, revision)),
        Some((m, _)) => Err(Some(m)),
        None => Err(None),
    })
}

/// Writes the marker again, as the HEM's renewal did, so that it keeps changing; `false` when
/// it no longer says `started <member>`.
async fn renew(markers: &Markers, member: &str, uid: &str) -> Result<bool, MarkerError> {
    let key = Markers::key(uid);
    match still_started(markers, member, &key).await? {
        Ok((marker, revision)) => match markers.set(&key, &marker, revision).await {
            Ok(_) | Err(MarkerError::Conflict) => Ok(true),
            Err(e) => Err(e),
        },
        Err(_) => Ok(false),
    }
}

/// Publishes the outcome as the HEM would have, then marks the execution done; nothing when
/// the marker no longer names the dead HEM (whoever it names reports).
async fn report(
    js: &jetstream::Context,
    markers: &Markers,
    bus: &BusContext,
    orphan: &Orphan,
) -> Result<(), MarkerError> {
    let Some(outcome) = &orphan.outcome else {
        return Ok(());
    };
    let record = &orphan.record;
    let key = Markers::key(&record.uid);
    let (started, revision) = match still_started(markers, &bus.member, &key).await? {
        Ok(found) => found,
        Err(found) => {
            // The HEM recorded it before it died, or another HEM took it over.
            tracing::info!(uid = %record.uid, marker = ?found,
                "the execution's marker no longer names its dead HEM; not reported here");
            return Ok(());
        }
    };
    let result = record.result(outcome);
    let frame = result_frame(record.hook_id, &result);
    let subject = result_subject(&bus.prefix, record.hook_id);
    publish_result(js, &subject, &record.uid, &frame)
        .await
        .map_err(MarkerError::Bus)?;
    // The started marker's write number: unique to this execution's start, so a retry of this
    // write that finds it there counts as done.
    let done = Marker {
        owner: bus.member.clone(),
        write: started.write,
        state: State::Done(result.code.to_string()),
    };
    match markers.set(&key, &done, revision).await {
        Ok(_) => tracing::info!(uid = %record.uid, hook_id = record.hook_id, code = result.code,
            "reported the outcome of a hook whose HEM died"),
        Err(MarkerError::Conflict) => tracing::warn!(uid = %record.uid,
            "another HEM took this execution over while its result was published; the first record stored wins"),
        Err(e) => return Err(e),
    }
    Ok(())
}
