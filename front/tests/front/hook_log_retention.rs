//! Hook log records, written the way the driver link writes them (`hook_log::add_result` in a
//! transaction on the same SQLite file), read back through the XML-RPC API.

use crate::api_common::Front;
use base64::Engine as _;
use one_client::ClientError;
use one_proto::hook_log::{ExecutionResult, parse_hooklog};
use oned_lite::db::Db;
use oned_lite::hook_log::add_result;

fn body(args: &str, code: i32, uid: &str) -> String {
    let r = ExecutionResult {
        arguments: args.into(),
        command: format!("/bin/hook {args}"),
        stdout: b"out\n".to_vec(),
        stderr: Vec::new(),
        code,
        remote_host: Some("node1".into()),
        retry: false,
        execution_uid: Some(uid.into()),
    };
    base64::engine::general_purpose::STANDARD.encode(r.to_xml())
}

fn exec_ids(xml: &str, hook: i64) -> Vec<i64> {
    parse_hooklog(xml)
        .unwrap()
        .into_iter()
        .filter(|r| r.hook_id == hook)
        .map(|r| r.execution_id)
        .collect()
}

#[test]
fn retention_filters_retry_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let front = Front::start(dir.path(), "HOOK_LOG_CONF = [ LOG_RETENTION = 3 ]\n");
    let c = front.client();
    let hook = c
        .hook_allocate("NAME=h\nTYPE=state\nCOMMAND=/bin/hook\nRESOURCE=HOST\nSTATE=ERROR")
        .unwrap();
    let db = Db::open(&dir.path().join("one.db")).unwrap();
    // Five results for the hook at t=100..104 (odd ones fail), one for a hook that never existed.
    for i in 0..5i64 {
        let rc = i % 2;
        let id = db
            .write(|tx| {
                add_result(
                    tx,
                    hook,
                    rc,
                    &body(&format!("a{i}"), rc as i32, &format!("u{i}")),
                    3,
                    100 + i,
                )
            })
            .unwrap();
        assert_eq!(id, Some(i));
    }
    // The same execution uid again (a redelivery after a crash) is recorded once.
    assert_eq!(
        db.write(|tx| add_result(tx, hook, 0, &body("a4", 0, "u4"), 3, 200))
            .unwrap(),
        None
    );
    assert_eq!(
        db.write(|tx| add_result(tx, 77, 0, &body("x", 0, "v0"), 3, 150))
            .unwrap(),
        Some(0)
    );

    // Retention keeps the last three, in ascending order inside one.hook.info.
    let info = c.hook_info(hook).unwrap();
    let hooklog = &info[info.find("<HOOKLOG>").unwrap()..info.find("</HOOK>").unwrap()];
    assert_eq!(exec_ids(hooklog, hook), vec![2, 3, 4]);

    // one.hooklog.info: strict bounds, hook filter, rc -1 (failures), 1 (successes), 0 (all).
    let ids = |min, max, h, rc| exec_ids(&c.hooklog_info(min, max, h, rc).unwrap(), hook);
    assert_eq!(ids(-1, -1, -1, 0), vec![2, 3, 4]);
    assert_eq!(ids(102, -1, -1, 0), vec![3, 4]);
    assert_eq!(ids(-1, 104, -1, 0), vec![2, 3]);
    assert_eq!(ids(102, 104, hook, 0), vec![3]);
    assert_eq!(ids(-1, -1, hook, -1), vec![3]);
    assert_eq!(ids(-1, -1, hook, 1), vec![2, 4]);
    assert_eq!(ids(-1, -1, hook, 5), vec![2, 3, 4]);
    let all = parse_hooklog(&c.hooklog_info(-1, -1, -1, 0).unwrap()).unwrap();
    let hooks: Vec<i64> = all.iter().map(|r| r.hook_id).collect();
    assert_eq!(hooks, vec![77, hook, hook, hook], "descending hook id");
    assert_eq!(
        exec_ids(&c.hooklog_info(-1, -1, 77, 0).unwrap(), 77),
        vec![0]
    );

    // Retry of a retained record is accepted; of a trimmed one it is refused.
    assert_eq!(c.hook_retry(hook, 3).unwrap(), hook);
    assert_eq!(c.hook_retry(hook, -1).unwrap(), hook);
    match c.hook_retry(hook, 0) {
        Err(ClientError::Api {
            code: 0x2000,
            message,
        }) => {
            assert_eq!(
                message,
                format!(
                    "[one.hook.retry] Invalid HookLog body. Arguments not found: execution 0 \
                     of hook {hook} does not exist."
                )
            )
        }
        other => panic!("unexpected {other:?}"),
    }

    // Deleting the hook deletes its records; records of other ids stay.
    c.hook_delete(hook).unwrap();
    assert!(exec_ids(&c.hooklog_info(-1, -1, -1, 0).unwrap(), hook).is_empty());
    assert_eq!(
        exec_ids(&c.hooklog_info(-1, -1, -1, 0).unwrap(), 77),
        vec![0]
    );
    // A late result of the deleted hook starts again at 0.
    assert_eq!(
        db.write(|tx| add_result(tx, hook, 0, &body("late", 0, "u9"), 3, 300))
            .unwrap(),
        Some(0)
    );
    front.stop().unwrap();
}
