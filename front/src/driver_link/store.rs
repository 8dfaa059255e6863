//! Storing the driver's results in the hook log in batched transactions, and the
//! acknowledgements (`STORED`) of what is stored.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use super::RESULT_BATCH;
use super::from_driver::FromDriver;
use crate::db::Db;
use crate::hook_log::{PreparedResult, add_prepared, prepare_result};

/// The shortest time between two commits of results while they keep coming. Results wait at
/// most this long for their record (and the driver for their `STORED` line); the hook start,
/// which a result comes long after, is not held up.
const STORE_PERIOD: Duration = Duration::from_millis(10);

/// Stores results in batches: one transaction for whatever arrived while the previous batch
/// was being written, and under a steady stream of results at most one every
/// [`STORE_PERIOD`], so that the hook log, whose every commit writes the pages it touched to
/// the WAL again, costs one commit per period rather than one per few results. After each
/// commit, the newest `FORWARDED` marker whose results are all stored goes to `stored`, which
/// the sender writes to the driver as `STORED  <id> -`.
///
/// Runs on a blocking thread of its own for the whole driver session, so that a result goes
/// from the reader to its transaction with one wake-up and no task hand-off per batch.
pub(super) fn store_results(
    db: Db,
    retention: u32,
    results: mpsc::Receiver<FromDriver>,
    stored: watch::Sender<u64>,
) {
    store_results_every(db, retention, results, stored, STORE_PERIOD);
}

/// [`store_results`] with at most one commit every `period`: a result that arrives sooner after
/// the last commit waits for the rest of the period, and the results that arrive meanwhile go
/// into the same transaction. A result after a quiet spell is stored at once.
fn store_results_every(
    db: Db,
    retention: u32,
    mut results: mpsc::Receiver<FromDriver>,
    stored: watch::Sender<u64>,
    period: Duration,
) {
    // Cleared by a result that could not be stored: acknowledging later markers would cover it,
    // so the rest of this session is left for the next driver to forward again.
    let mut acking = true;
    let mut last_commit: Option<Instant> = None;
    while let Some(first) = results.blocking_recv() {
        if let Some(wait) =
            last_commit.and_then(|at| (at + period).checked_duration_since(Instant::now()))
        {
            std::thread::sleep(wait);
        }
        let mut batch = vec![first];
        while batch.len() < RESULT_BATCH {
            match results.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let outcome = store_batch(&db, &batch, retention);
        last_commit = Some(Instant::now());
        let stored_upto = match outcome {
            Ok(first_failed) => first_failed.unwrap_or(batch.len()),
            Err(e) => {
                let count = batch
                    .iter()
                    .filter(|r| matches!(r, FromDriver::Result(_)))
                    .count();
                tracing::error!(count, error = %e, "cannot store hook results");
                0
            }
        };
        if !acking {
            continue;
        }
        let marker = batch[..stored_upto]
            .iter()
            .filter_map(|r| match r {
                FromDriver::Forwarded(id) => Some(*id),
                FromDriver::Result(_) => None,
            })
            .max();
        if let Some(id) = marker {
            stored.send_if_modified(|v| {
                let newer = id > *v;
                *v = (*v).max(id);
                newer
            });
        }
        if stored_upto < batch.len() {
            acking = false;
            tracing::error!(
                "a hook result was not stored; results of this driver are no longer acknowledged, \
                 so that the next driver forwards them again"
            );
        }
    }
}

/// Stores the results of `batch` in one transaction. Returns the position of the first result
/// that could not be stored (`None`: all were stored, or dropped on purpose as duplicates or
/// ill-formed); an error when the transaction failed (nothing stored).
pub(super) fn store_batch(
    db: &Db,
    batch: &[FromDriver],
    retention: u32,
) -> rusqlite::Result<Option<usize>> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    // Decoded and checked before the transaction: the write lock, which API calls wait for,
    // is held only for the inserts.
    let prepared: Vec<Option<(&_, PreparedResult)>> = batch
        .iter()
        .map(|item| match item {
            FromDriver::Result(r) => prepare_result(r.hook_id, r.rc, &r.body).map(|p| (r, p)),
            FromDriver::Forwarded(_) => None,
        })
        .collect();
    let write = || {
        db.write(|tx| {
            let mut first_failed = None;
            let mut stored = 0u64;
            for (i, item) in prepared.iter().enumerate() {
                let Some((r, result)) = item else {
                    continue;
                };
                match add_prepared(tx, result, retention, now) {
                    Ok(Some(execution_id)) => {
                        stored += 1;
                        if r.success {
                            tracing::debug!(hook_id = r.hook_id, execution_id, rc = r.rc, "Success executing Hook");
                        } else {
                            tracing::info!(hook_id = r.hook_id, execution_id, rc = r.rc, "Error executing Hook");
                        }
                    }
                    Ok(None) => tracing::warn!(
                        hook_id = r.hook_id,
                        rc = r.rc,
                        "hook result not kept (a duplicate, or LOG_RETENTION is 0)"
                    ),
                    Err(e) => {
                        tracing::error!(hook_id = r.hook_id, rc = r.rc, error = %e, "cannot store hook result");
                        first_failed.get_or_insert(i);
                    }
                }
            }
            Ok::<_, rusqlite::Error>((first_failed, stored))
        })
    };
    // One retry covers a transient lock by another writer.
    let (first_failed, stored) = write().or_else(|e| {
        tracing::warn!(error = %e, "storing hook results failed; retrying once");
        std::thread::sleep(Duration::from_millis(100));
        write()
    })?;
    // Counted once committed.
    crate::metrics::METRICS.hooklog_stored.add(stored);
    Ok(first_failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver_link::from_driver::DriverResult;

    fn result(n: u32) -> FromDriver {
        let body =
            format!("<EXECUTION_RESULT><CODE>0</CODE><STDOUT>{n}</STDOUT></EXECUTION_RESULT>");
        FromDriver::Result(DriverResult {
            success: true,
            hook_id: 1,
            rc: 0,
            body: one_proto::encoding::b64_encode(body.as_bytes()),
        })
    }

    fn records(db: &Db) -> i64 {
        db.committed(|c| c.query_row("SELECT COUNT(*) FROM hook_log", [], |r| r.get(0)))
            .unwrap()
    }

    /// Results that come within the period after a commit wait for its end and are committed
    /// together in one transaction, and their newest marker is acknowledged.
    #[test]
    fn results_close_together_share_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("one.db")).unwrap();
        let (tx, rx) = mpsc::channel(16);
        let (stored_tx, mut stored) = watch::channel(0u64);
        let period = Duration::from_millis(300);
        let store = {
            let db = db.clone();
            std::thread::spawn(move || store_results_every(db, 100, rx, stored_tx, period))
        };
        let wait_stored = |stored: &mut watch::Receiver<u64>, id: u64| {
            let deadline = Instant::now() + Duration::from_secs(30);
            while *stored.borrow_and_update() < id {
                assert!(Instant::now() < deadline, "STORED {id} never came");
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        // Before the first commit, so the next one is at least a period after it.
        let sent = Instant::now();
        tx.blocking_send(result(0)).unwrap();
        tx.blocking_send(FromDriver::Forwarded(1)).unwrap();
        wait_stored(&mut stored, 1);
        assert_eq!(records(&db), 1);
        for n in 1..=3 {
            tx.blocking_send(result(n)).unwrap();
            tx.blocking_send(FromDriver::Forwarded(1 + u64::from(n)))
                .unwrap();
        }
        // Seen by another connection: nothing until the period is over, then all three at once.
        let mut seen = vec![records(&db)];
        let deadline = Instant::now() + Duration::from_secs(30);
        while *seen.last().unwrap() < 4 {
            assert!(Instant::now() < deadline, "the results were never stored");
            std::thread::sleep(Duration::from_millis(1));
            let n = records(&db);
            if n != *seen.last().unwrap() {
                seen.push(n);
            }
        }
        assert!(
            sent.elapsed() >= period,
            "the second commit waited for the period"
        );
        assert_eq!(seen, [1, 4], "one transaction for the three");
        wait_stored(&mut stored, 4);
        drop(tx);
        store.join().unwrap();
    }
}
