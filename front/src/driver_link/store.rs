//! Storing the driver's results in the hook log in batched transactions, and the
//! acknowledgements (`STORED`) of what is stored.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use super::RESULT_BATCH;
use super::from_driver::FromDriver;
use crate::db::Db;
use crate::hook_log::{PreparedResult, add_prepared, prepare_result};

/// Stores results in batches: one transaction for whatever arrived while the previous batch
/// was being written. After each commit, the newest `FORWARDED` marker whose results are all
/// stored goes to `stored`, which the sender writes to the driver as `STORED  <id> -`.
///
/// Runs on a blocking thread of its own for the whole driver session, so that a result goes
/// from the reader to its transaction with one wake-up and no task hand-off per batch.
pub(super) fn store_results(
    db: Db,
    retention: u32,
    mut results: mpsc::Receiver<FromDriver>,
    stored: watch::Sender<u64>,
) {
    // Cleared by a result that could not be stored: acknowledging later markers would cover it,
    // so the rest of this session is left for the next driver to forward again.
    let mut acking = true;
    while let Some(first) = results.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < RESULT_BATCH {
            match results.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let outcome = store_batch(&db, &batch, retention);
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
