//! State DB recovery: what a restart finds after a clean stop and after an abandoned writer.

use onehem_server::execution::{Execution, Plan, Target};
use onehem_server::state_db::{OutboxEntry, StateDb};

fn exec(seq: u64, hook: i64, target: Target) -> Execution {
    Execution {
        uid: format!("i-1-{seq}-{hook}"),
        seq,
        hook_id: hook,
        lane: format!("{hook}|VM/{seq}"),
        resource: format!("VM/{seq}"),
        event_key: "EVENT STATE VM/PENDING/LCM_INIT/1".into(),
        plan: Plan {
            command: "/var/lib/one/remotes/hooks/x.rb".into(),
            arguments: format!("PFZNPg== {seq}"),
            stdin: seq.is_multiple_of(2),
            timeout_secs: Some(seq),
            target,
            report_host: Some("node1".into()),
            retry: hook == 9,
        },
    }
}

fn entry(uid: &str) -> OutboxEntry {
    OutboxEntry {
        uid: uid.into(),
        hook_id: 3,
        frame: format!("0 3 {uid}").into(),
    }
}

#[tokio::test]
async fn recovery_sorts_pending_started_and_unacknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/hem.db");

    let (db, thread, rec) = StateDb::open(&path).unwrap();
    assert_eq!(rec.watermark, None);
    assert_eq!(rec.boot, 1);
    let instance = rec.instance.clone();
    assert!(!instance.is_empty());

    let a = exec(1, 3, Target::Local);
    let b = exec(
        2,
        3,
        Target::Remote {
            host: "node1".into(),
        },
    );
    let c = exec(
        3,
        9,
        Target::Refused {
            reason: "No remote host specified for a remote hook.".into(),
        },
    );
    let d = exec(4, 3, Target::Local);
    accept(&db, vec![a.clone(), b.clone()], Some(2)).await;
    accept(&db, vec![c.clone(), d.clone()], Some(4)).await;
    // a finished and acknowledged, b finished not acknowledged, c started, d never started.
    db.started(&a.uid).await.unwrap();
    db.finished(entry(&a.uid)).unwrap();
    db.acked(&a.uid);
    db.started(&b.uid).await.unwrap();
    db.finished(entry(&b.uid)).unwrap();
    db.started(&c.uid).await.unwrap();
    db.set_watermark(9).unwrap();
    thread.stop();

    let (_db, thread, rec) = StateDb::open(&path).unwrap();
    assert_eq!(rec.instance, instance);
    assert_eq!(rec.boot, 2);
    assert_eq!(rec.watermark, Some(9));
    assert_eq!(rec.pending, vec![d]);
    assert_eq!(rec.interrupted, vec![c]);
    assert_eq!(rec.outbox, vec![entry(&b.uid)]);
    thread.stop();
}

use std::time::Duration;

fn file_contains(path: &std::path::Path, needle: &[u8]) -> bool {
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_result_acknowledged_while_held_is_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hem.db");
    // A grace far longer than the test: the ACK surely comes within it.
    let (db, thread, _) = StateDb::open_with(&path, Duration::from_secs(60)).unwrap();
    let a = exec(1, 3, Target::Local);
    accept(&db, vec![a.clone()], Some(1)).await;
    db.started(&a.uid).await.unwrap();
    let marker = "Q".repeat(4000);
    db.finished(OutboxEntry {
        frame: format!("0 3 {marker}").into(),
        ..entry(&a.uid)
    })
    .unwrap();
    // Acknowledged after a later commit, which without the hold would have written it.
    let later = exec(2, 3, Target::Local);
    accept(&db, vec![later.clone()], Some(2)).await;
    db.started(&later.uid).await.unwrap();
    db.acked(&a.uid);
    thread.stop();
    for file in ["hem.db", "hem.db-wal"] {
        assert!(
            // A page is 1 KiB, so a shorter run than the whole marker.
            !file_contains(&dir.path().join(file), &marker.as_bytes()[..500]),
            "the result reached {file}"
        );
    }
    let (_db, thread, rec) = StateDb::open(&path).unwrap();
    assert!(rec.outbox.is_empty() && rec.pending.is_empty());
    assert_eq!(rec.interrupted, vec![later]);
    thread.stop();
}

#[tokio::test]
async fn an_unacknowledged_result_is_stored_once_the_grace_is_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hem.db");
    let grace = Duration::from_millis(50);
    let (db, thread, _) = StateDb::open_with(&path, grace).unwrap();
    let b = exec(2, 3, Target::Local);
    accept(&db, vec![b.clone()], Some(2)).await;
    db.started(&b.uid).await.unwrap();
    db.finished(entry(&b.uid)).unwrap();
    tokio::time::sleep(grace * 8).await;
    // Like kill -9 after the grace: the writer is never told to stop.
    std::mem::forget(thread);
    std::mem::forget(db);

    let (_db, thread, rec) = StateDb::open(&path).unwrap();
    assert_eq!(rec.outbox, vec![entry(&b.uid)]);
    assert!(rec.interrupted.is_empty(), "{:?}", rec.interrupted);
    thread.stop();
}

#[tokio::test]
async fn committed_state_survives_an_abandoned_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hem.db");
    let (db, thread, _) = StateDb::open(&path).unwrap();
    let a = exec(10, 3, Target::Local);
    accept(&db, vec![a.clone()], Some(10)).await;
    db.started(&a.uid).await.unwrap();
    // Like kill -9: the writer is never told to stop and the connection is never closed.
    std::mem::forget(thread);
    std::mem::forget(db);

    let (_db, thread, rec) = StateDb::open(&path).unwrap();
    assert_eq!(rec.watermark, Some(10));
    assert_eq!(rec.interrupted, vec![a]);
    assert!(rec.pending.is_empty());
    thread.stop();
}

#[test]
fn blocking_accept_and_duplicate_uids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hem.db");
    let (db, thread, _) = StateDb::open(&path).unwrap();
    let a = exec(5, 3, Target::Local);
    db.accept(vec![a.clone()], Some(5)).unwrap();
    // The same uid accepted again (a replay overlap) is ignored, not duplicated.
    db.accept(vec![a.clone()], Some(5)).unwrap();
    thread.stop();
    let (_db, thread, rec) = StateDb::open(&path).unwrap();
    assert_eq!(rec.pending, vec![a]);
    thread.stop();
}

/// The ingest thread's call; its commit precedes that of any later request.
async fn accept(db: &StateDb, execs: Vec<Execution>, watermark: Option<u64>) {
    db.accept(execs, watermark).unwrap();
}

#[test]
fn an_unusable_path_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let err = StateDb::open(&file.join("hem.db")).unwrap_err();
    assert!(err.to_string().contains("hem.db"), "{err}");
}

#[test]
fn a_version_1_state_db_keeps_its_started_executions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hem.db");
    // The layout version 1 wrote: a started execution is a flag in its row.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE executions (
             id INTEGER PRIMARY KEY AUTOINCREMENT, uid TEXT NOT NULL UNIQUE,
             seq INTEGER NOT NULL, hook_id INTEGER NOT NULL, lane TEXT NOT NULL,
             resource TEXT NOT NULL, event_key TEXT NOT NULL, command TEXT NOT NULL,
             arguments TEXT NOT NULL, stdin INTEGER NOT NULL, timeout_secs INTEGER,
             target TEXT NOT NULL, target_value TEXT, report_host TEXT, retry INTEGER NOT NULL,
             started INTEGER NOT NULL DEFAULT 0);
         CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, uid TEXT NOT NULL UNIQUE,
             hook_id INTEGER NOT NULL, frame TEXT NOT NULL);
         INSERT INTO executions (uid, seq, hook_id, lane, resource, event_key, command,
             arguments, stdin, timeout_secs, target, target_value, report_host, retry, started)
         VALUES ('u-1', 1, 3, '3|VM/1', 'VM/1', 'EVENT STATE VM/PENDING/LCM_INIT/1', '/bin/x',
                 'a', 0, NULL, 'local', NULL, NULL, 0, 1),
                ('u-2', 2, 3, '3|VM/2', 'VM/2', 'EVENT STATE VM/PENDING/LCM_INIT/2', '/bin/x',
                 'b', 0, NULL, 'local', NULL, NULL, 0, 0);
         PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(conn);

    let (db, thread, rec) = StateDb::open(&path).unwrap();
    let uids = |v: &[Execution]| v.iter().map(|e| e.uid.clone()).collect::<Vec<_>>();
    assert_eq!(uids(&rec.interrupted), ["u-1"]);
    assert_eq!(uids(&rec.pending), ["u-2"]);
    // The interrupted one is reported; once finished it is gone for good.
    db.finished(entry("u-1")).unwrap();
    db.acked("u-1");
    thread.stop();
    let (_db, thread, rec) = StateDb::open(&path).unwrap();
    assert!(rec.interrupted.is_empty());
    assert!(rec.outbox.is_empty());
    assert_eq!(uids(&rec.pending), ["u-2"]);
    thread.stop();
}

/// Accepts and starts `e`, then reports it finished and acknowledged.
async fn run_to_ack(db: &StateDb, e: &Execution) {
    accept(db, vec![e.clone()], Some(e.seq)).await;
    db.started(&e.uid).await.unwrap();
    db.finished(entry(&e.uid)).unwrap();
    db.acked(&e.uid);
}

#[tokio::test]
async fn forgetting_an_acknowledged_execution_rides_with_the_next_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hem.db");
    let (db, thread, _) = StateDb::open_with(&path, Duration::from_secs(60)).unwrap();
    let (a, b) = (exec(1, 3, Target::Local), exec(2, 3, Target::Local));
    run_to_ack(&db, &a).await;
    // b's start mark is committed (and awaited) after a's ACK was queued.
    accept(&db, vec![b.clone()], Some(2)).await;
    db.started(&b.uid).await.unwrap();
    // Like kill -9 right after that commit: the writer is never told to stop.
    std::mem::forget(thread);
    std::mem::forget(db);

    let (_db, thread, rec) = StateDb::open(&path).unwrap();
    assert_eq!(rec.interrupted, vec![b], "a was forgotten in b's commit");
    assert!(rec.outbox.is_empty() && rec.pending.is_empty());
    thread.stop();
}

/// An ACK does not wake a writer that holds a result (it wakes by the grace deadline anyway), so
/// the grace here is short; the forget must then commit without any other request coming.
#[tokio::test]
async fn forgetting_an_acknowledged_execution_is_committed_alone_when_nothing_else_comes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hem.db");
    let (db, thread, _) = StateDb::open_with(&path, Duration::from_millis(300)).unwrap();
    run_to_ack(&db, &exec(3, 3, Target::Local)).await;
    let reader = rusqlite::Connection::open(&path).unwrap();
    let rows = |table: &str| -> i64 {
        reader
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    let since = std::time::Instant::now();
    while rows("executions") > 0 && since.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rows("executions"), 0, "the forget was never committed");
    assert_eq!(rows("outbox"), 0, "an acknowledged result was written out");
    drop(reader);
    std::mem::forget(thread);
    std::mem::forget(db);

    let (_db, thread, rec) = StateDb::open(&path).unwrap();
    assert!(rec.interrupted.is_empty(), "{:?}", rec.interrupted);
    assert!(rec.outbox.is_empty() && rec.pending.is_empty());
    thread.stop();
}

/// A start mark is written only once its execution's acceptance is committed: a kill -9 right
/// after the mark must find the execution's row, never a mark without it (a restart would
/// accept that event again under another uid and run the hook a second time).
#[tokio::test]
async fn a_start_mark_waits_for_its_acceptance_to_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hem.db");
    let marks = dir.path().join("hem.db-started");
    let (db, thread, _) = StateDb::open(&path).unwrap();
    // Another connection holds the write lock, so the acceptance cannot commit yet.
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let a = exec(1, 3, Target::Local);
    db.accept(vec![a.clone()], Some(1)).unwrap();
    let marking = tokio::spawn({
        let (db, uid) = (db.clone(), a.uid.clone());
        async move { db.started(&uid).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !marking.is_finished(),
        "marked before the acceptance committed"
    );
    assert_eq!(std::fs::read_to_string(&marks).unwrap(), "");
    blocker.execute_batch("ROLLBACK").unwrap();
    tokio::time::timeout(Duration::from_secs(30), marking)
        .await
        .expect("the mark follows the commit")
        .unwrap()
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&marks).unwrap(),
        format!("{}\n", a.uid)
    );
    // Like kill -9: the writer is never told to stop.
    std::mem::forget(thread);
    std::mem::forget(db);
    let (_db, thread, rec) = StateDb::open(&path).unwrap();
    assert_eq!(rec.interrupted, vec![a]);
    thread.stop();
}

/// Start marks live in their own file beside the state DB; those of executions that left the
/// state DB are dropped from it at the next start.
#[tokio::test]
async fn start_marks_are_a_file_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hem.db");
    let marks = dir.path().join("hem.db-started");
    let (db, thread, _) = StateDb::open_with(&path, Duration::from_millis(1)).unwrap();
    let (a, b) = (exec(1, 3, Target::Local), exec(2, 3, Target::Local));
    accept(&db, vec![a.clone(), b.clone()], Some(2)).await;
    db.started(&a.uid).await.unwrap();
    db.started(&b.uid).await.unwrap();
    let text = std::fs::read_to_string(&marks).unwrap();
    assert_eq!(text, format!("{}\n{}\n", a.uid, b.uid));
    db.finished(entry(&a.uid)).unwrap();
    thread.stop();

    let (_db, thread, rec) = StateDb::open(&path).unwrap();
    assert_eq!(rec.interrupted, vec![b.clone()]);
    assert_eq!(
        std::fs::read_to_string(&marks).unwrap(),
        format!("{}\n", b.uid)
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&marks).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    thread.stop();
}

/// Acknowledgements reach the writer beside its queue, not through it; however they interleave
/// with more results than one commit takes, each finds its held result, so nothing acknowledged
/// is left in the outbox or the state DB.
#[tokio::test]
async fn acknowledgements_beside_the_queue_each_find_their_result() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hem.db");
    // Held far longer than the test: a result leaves the state DB only through its ACK.
    let (db, thread, _) = StateDb::open_with(&path, Duration::from_secs(60)).unwrap();
    let execs: Vec<Execution> = (1..=3000).map(|s| exec(s, 3, Target::Local)).collect();
    db.accept(execs.clone(), Some(3000)).unwrap();
    for e in &execs {
        db.started(&e.uid).await.unwrap();
    }
    // Another thread acknowledges each result once it is queued, as the result senders do.
    let (sent, to_ack) = std::sync::mpsc::channel::<String>();
    let acker = std::thread::spawn({
        let db = db.clone();
        move || {
            for uid in to_ack {
                db.acked(&uid);
            }
        }
    });
    for e in &execs {
        db.finished(entry(&e.uid)).unwrap();
        sent.send(e.uid.clone()).unwrap();
    }
    drop(sent);
    acker.join().unwrap();
    thread.stop();
    let (_db, thread, rec) = StateDb::open(&path).unwrap();
    assert!(rec.outbox.is_empty(), "{} results left", rec.outbox.len());
    assert!(rec.interrupted.is_empty() && rec.pending.is_empty());
    thread.stop();
}

/// A finished result reaches the writer beside its queue. A writer sleeping until a clean-up is
/// due (later than the result's hold) is woken for it, so the result is in the outbox once its
/// grace is over, and a kill -9 then finds it there.
#[tokio::test]
async fn a_result_finished_while_the_writer_waits_for_a_cleanup_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hem.db");
    let grace = Duration::from_millis(20);
    let (db, thread, _) = StateDb::open_with(&path, grace).unwrap();
    let (a, b) = (exec(1, 3, Target::Local), exec(2, 3, Target::Local));
    accept(&db, vec![a.clone(), b.clone()], Some(2)).await;
    db.started(&a.uid).await.unwrap();
    db.started(&b.uid).await.unwrap();
    // a's acknowledgement leaves a clean-up that waits for a commit to ride along with, so
    // the writer sleeps until that clean-up is due, later than b's hold ends.
    db.finished(entry(&a.uid)).unwrap();
    db.acked(&a.uid);
    db.finished(entry(&b.uid)).unwrap();
    let reader = rusqlite::Connection::open(&path).unwrap();
    let stored = || -> i64 {
        reader
            .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))
            .unwrap()
    };
    let since = std::time::Instant::now();
    while stored() == 0 && since.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(reader);
    // Like kill -9: the writer is never told to stop.
    std::mem::forget(thread);
    std::mem::forget(db);

    let (_db, thread, rec) = StateDb::open(&path).unwrap();
    assert_eq!(rec.outbox, vec![entry(&b.uid)]);
    assert!(
        rec.interrupted.is_empty() && rec.pending.is_empty(),
        "{rec:?}"
    );
    thread.stop();
}
