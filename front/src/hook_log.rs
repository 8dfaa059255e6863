//! The hook log: one HOOK_EXECUTION_RECORD per execution result (reference §6.4).
//!
//! Execution ids are per hook, start at 0 and are never reused while the hook has rows; only the
//! last LOG_RETENTION records of a hook are kept; records outlive their hook, and deleting a hook
//! deletes its rows. Results carrying an EXECUTION_UID already stored for the hook are duplicates
//! (a crash between storing and acknowledging) and are dropped.

use base64::Engine as _;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::db::Cached;
use one_proto::hook_log::{ExecutionResult, record_xml, wrap_record};

#[derive(Debug, thiserror::Error)]
pub enum HookLogError {
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
}

/// A result decoded and checked before its transaction, so that the write lock is held only
/// for the database work.
#[derive(Debug)]
pub struct PreparedResult {
    hook_id: i64,
    rc: i64,
    /// The decoded body; empty when it was not strict base64 (a record without a result).
    body: String,
    exec_uid: Option<String>,
}

/// Decodes and checks one result. `body_b64` is the strict base64 of the HEM result body.
/// `None` when the result is dropped: its body is not UTF-8, or not well-formed XML.
pub fn prepare_result(hook_id: i64, rc: i64, body_b64: &str) -> Option<PreparedResult> {
    // oned decodes strictly; an undecodable body still yields a record, without a result.
    let body = match base64::engine::general_purpose::STANDARD.decode(body_b64.as_bytes()) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(_) => {
                tracing::warn!(hook_id, rc, "dropped a hook result whose body is not UTF-8");
                return None;
            }
        },
        Err(e) => {
            tracing::warn!(hook_id, rc, error = %e, "hook result body is not strict base64; storing an empty record");
            String::new()
        }
    };
    // Checked as a record under placeholder numbers: the real execution id is known only inside
    // the transaction, and numbers never change whether a record is well-formed.
    if let Err(e) = record_xml(hook_id, 0, 0, &body) {
        tracing::warn!(hook_id, rc, error = %e, "dropped a hook result that is not well-formed XML");
        return None;
    }
    let exec_uid = if body.is_empty() {
        None
    } else {
        ExecutionResult::parse(&body)
            .ok()
            .and_then(|r| r.execution_uid)
            .filter(|u| !u.is_empty())
    };
    Some(PreparedResult {
        hook_id,
        rc,
        body,
        exec_uid,
    })
}

/// Stores one result. `body_b64` is the strict base64 of the HEM result body. Returns the new
/// execution id, or `None` when the result was dropped (ill-formed XML or a duplicate).
pub fn add_result(
    tx: &Transaction<'_>,
    hook_id: i64,
    rc: i64,
    body_b64: &str,
    retention: u32,
    now: i64,
) -> Result<Option<i64>, HookLogError> {
    match prepare_result(hook_id, rc, body_b64) {
        Some(result) => add_prepared(tx, &result, retention, now),
        None => Ok(None),
    }
}

/// Stores one prepared result. Returns the new execution id, or `None` when it was a
/// duplicate (or `retention` is 0).
pub fn add_prepared(
    tx: &Transaction<'_>,
    result: &PreparedResult,
    retention: u32,
    now: i64,
) -> Result<Option<i64>, HookLogError> {
    let PreparedResult {
        hook_id,
        rc,
        ref body,
        ref exec_uid,
    } = *result;
    let last: i64 = tx.one(
        "SELECT COALESCE(MAX(exeid), -1) FROM hook_log WHERE hkid = ?1",
        [hook_id],
        |r| r.get(0),
    )?;
    let exeid = last + 1;
    let record = wrap_record(hook_id, exeid, now, body);
    // The unique index on (hkid, exec_uid) finds a duplicate as part of the insert, with no
    // read of its own before it.
    let inserted = tx.run(
        "INSERT INTO hook_log (hkid, exeid, timestamp, rc, body, exec_uid) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (hkid, exec_uid) WHERE exec_uid IS NOT NULL DO NOTHING",
        params![hook_id, exeid, now, rc, record, exec_uid],
    )?;
    if inserted == 0 {
        tracing::info!(
            hook_id,
            exec_uid = exec_uid.as_deref().unwrap_or_default(),
            "dropped a duplicate hook result"
        );
        return Ok(None);
    }
    // Execution ids of a hook are contiguous, so this keeps exactly the last `retention` rows
    // (the reference deletes the same range once the count reaches the retention).
    tx.run(
        "DELETE FROM hook_log WHERE hkid = ?1 AND exeid <= ?2",
        params![hook_id, exeid - i64::from(retention)],
    )?;
    if retention == 0 {
        return Ok(None);
    }
    Ok(Some(exeid))
}

/// The records of one hook, by ascending execution id.
pub fn records_of(c: &Connection, hook_id: i64) -> rusqlite::Result<Vec<String>> {
    let mut stmt =
        c.prepare_cached("SELECT body FROM hook_log WHERE hkid = ?1 ORDER BY exeid ASC")?;
    let rows = stmt.query_map([hook_id], |r| r.get(0))?;
    rows.collect()
}

/// What `one.hooklog.info` filters on; negative values mean "no filter".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogFilter {
    /// `timestamp > min_ts`.
    pub min_ts: i64,
    /// `timestamp < max_ts`.
    pub max_ts: i64,
    pub hook_id: i64,
    /// -1: failures only (rc <> 0); 1: successes only (rc = 0); anything else: all.
    pub rc: i64,
}

/// The records matching `filter`, by descending hook id then ascending execution id.
pub fn query(c: &Connection, filter: &LogFilter) -> rusqlite::Result<Vec<String>> {
    let mut sql = String::from("SELECT body FROM hook_log WHERE 1");
    let mut args: Vec<i64> = Vec::new();
    if filter.min_ts >= 0 {
        args.push(filter.min_ts);
        sql.push_str(&format!(" AND timestamp > ?{}", args.len()));
    }
    if filter.max_ts >= 0 {
        args.push(filter.max_ts);
        sql.push_str(&format!(" AND timestamp < ?{}", args.len()));
    }
    if filter.hook_id >= 0 {
        args.push(filter.hook_id);
        sql.push_str(&format!(" AND hkid = ?{}", args.len()));
    }
    match filter.rc {
        -1 => sql.push_str(" AND rc <> 0"),
        1 => sql.push_str(" AND rc = 0"),
        _ => {}
    }
    sql.push_str(" ORDER BY hkid DESC, exeid ASC");
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| r.get(0))?;
    rows.collect()
}

/// The record retried by `one.hook.retry(hook_id, exec_id)`; -1 selects the oldest retained one.
pub fn record_for_retry(
    c: &Connection,
    hook_id: i64,
    exec_id: i64,
) -> rusqlite::Result<Option<String>> {
    if exec_id == -1 {
        c.one(
            "SELECT body FROM hook_log WHERE hkid = ?1 ORDER BY exeid ASC LIMIT 1",
            [hook_id],
            |r| r.get(0),
        )
        .optional()
    } else {
        c.one(
            "SELECT body FROM hook_log WHERE hkid = ?1 AND exeid = ?2",
            params![hook_id, exec_id],
            |r| r.get(0),
        )
        .optional()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn body(args: &str, code: i32, uid: Option<&str>) -> String {
        let r = ExecutionResult {
            arguments: args.into(),
            command: "/bin/true".into(),
            stdout: b"out".to_vec(),
            stderr: Vec::new(),
            code,
            remote_host: None,
            retry: false,
            execution_uid: uid.map(str::to_string),
        };
        b64(&r.to_xml())
    }

    fn open() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("one.db")).unwrap();
        (dir, db)
    }

    fn add(db: &Db, hook: i64, rc: i64, b: &str, retention: u32, now: i64) -> Option<i64> {
        db.write(|tx| add_result(tx, hook, rc, b, retention, now))
            .unwrap()
    }

    #[test]
    fn ids_grow_and_retention_keeps_the_last_records() {
        let (_d, db) = open();
        for i in 0..25 {
            assert_eq!(add(&db, 3, 0, &body("a", 0, None), 20, 1000 + i), Some(i));
        }
        let recs = db.read(|c| records_of(c, 3)).unwrap();
        assert_eq!(recs.len(), 20);
        assert!(
            recs[0].contains("<EXECUTION_ID>5</EXECUTION_ID>"),
            "{}",
            recs[0]
        );
        assert!(recs[19].contains("<EXECUTION_ID>24</EXECUTION_ID>"));
    }

    #[test]
    fn duplicates_by_execution_uid_are_dropped() {
        let (_d, db) = open();
        assert_eq!(add(&db, 1, 0, &body("a", 0, Some("u-1")), 10, 5), Some(0));
        assert_eq!(add(&db, 1, 0, &body("a", 0, Some("u-1")), 10, 6), None);
        assert_eq!(add(&db, 2, 0, &body("a", 0, Some("u-1")), 10, 6), Some(0));
        assert_eq!(add(&db, 1, 0, &body("a", 0, Some("u-2")), 10, 7), Some(1));
    }

    #[test]
    fn bad_bodies_follow_the_reference() {
        let (_d, db) = open();
        // Not strict base64: an empty record is kept.
        assert_eq!(add(&db, 1, 0, "not base64!", 10, 5), Some(0));
        let rec = db.read(|c| records_of(c, 1)).unwrap();
        assert!(!rec[0].contains("ARGUMENTS"));
        // Ill-formed XML: dropped.
        assert_eq!(add(&db, 1, 0, &b64("<ARGUMENTS>a</X>"), 10, 5), None);
        assert_eq!(db.read(|c| records_of(c, 1)).unwrap().len(), 1);
    }

    #[test]
    fn filters_are_strict_and_rc_is_mapped() {
        let (_d, db) = open();
        add(&db, 1, 0, &body("a", 0, None), 10, 100);
        add(&db, 1, 1, &body("a", 1, None), 10, 200);
        add(&db, 2, 0, &body("a", 0, None), 10, 300);
        let n = |f: LogFilter| db.read(|c| query(c, &f)).unwrap().len();
        let all = LogFilter {
            min_ts: -1,
            max_ts: -1,
            hook_id: -1,
            rc: 0,
        };
        assert_eq!(n(all), 3);
        assert_eq!(n(LogFilter { min_ts: 100, ..all }), 2);
        assert_eq!(n(LogFilter { max_ts: 300, ..all }), 2);
        assert_eq!(
            n(LogFilter {
                min_ts: 100,
                max_ts: 300,
                ..all
            }),
            1
        );
        assert_eq!(n(LogFilter { hook_id: 1, ..all }), 2);
        assert_eq!(n(LogFilter { rc: -1, ..all }), 1);
        assert_eq!(n(LogFilter { rc: 1, ..all }), 2);
        assert_eq!(n(LogFilter { rc: 7, ..all }), 3);
        let order = db.read(|c| query(c, &all)).unwrap();
        assert!(order[0].contains("<HOOK_ID>2</HOOK_ID>"));
    }

    /// The filtered reads and the per-hook reads use an index, so they stay fast with a large log.
    #[test]
    fn filtered_reads_use_indexes() {
        let (_d, db) = open();
        let plan = |sql: &str| -> String {
            db.read(|c| {
                let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
                let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
                rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("; ")
            })
        };
        let by_hook = plan("SELECT body FROM hook_log WHERE hkid = 3 ORDER BY exeid ASC");
        assert!(
            by_hook.contains("USING PRIMARY KEY") || by_hook.contains("USING INDEX"),
            "{by_hook}"
        );
        let by_time = plan(
            "SELECT body FROM hook_log WHERE 1 AND timestamp > 5 AND timestamp < 9 ORDER BY hkid DESC, exeid ASC",
        );
        assert!(by_time.contains("hook_log_timestamp"), "{by_time}");
        let by_uid = plan("SELECT exeid FROM hook_log WHERE hkid = 1 AND exec_uid = 'x'");
        assert!(by_uid.contains("USING"), "{by_uid}");
        let trim = plan("DELETE FROM hook_log WHERE hkid = 1 AND exeid <= 5");
        assert!(trim.contains("USING"), "{trim}");
    }

    #[test]
    fn retry_minus_one_picks_the_oldest_retained() {
        let (_d, db) = open();
        for i in 0..4 {
            add(&db, 1, 0, &body(&format!("arg{i}"), 0, None), 2, 100 + i);
        }
        let r = db.read(|c| record_for_retry(c, 1, -1)).unwrap().unwrap();
        assert!(r.contains("<EXECUTION_ID>2</EXECUTION_ID>"));
        assert!(db.read(|c| record_for_retry(c, 1, 0)).unwrap().is_none());
    }
}
