//! Acknowledgements between oned-lite and its driver (`one_proto::mad`), against a fake driver
//! that says exactly what a test makes it say: events stay in the outbox until a `JOURNALED`
//! line covers them and go again to the next driver; a driver that never acknowledges gets
//! delete-on-write; results are acknowledged with `STORED` only once they are in the hook log.

use std::path::Path;
use std::time::Duration;

use crate::api_common::Front;
use crate::cloud_common::*;
use one_proto::encoding::b64_encode;
use one_proto::event::HookMessage;
use one_proto::hook_log::ExecutionResult;
use oned_lite::db::Db;
use oned_lite::events::EventBus;

/// `(id, whole line)` of the EXECUTE lines driver process `pid` received, in order.
fn execute_lines(driver: &FakeDriver, pid: u32) -> Vec<(i64, String)> {
    driver
        .lines()
        .into_iter()
        .filter(|l| l.pid == pid && l.text.starts_with("EXECUTE "))
        .filter_map(|l| {
            let id = l.text.split_whitespace().nth(1)?.parse().ok()?;
            Some((id, l.text))
        })
        .collect()
}

fn outbox(dir: &Path) -> EventBus {
    EventBus::new(Db::open(&dir.join("one.db")).unwrap())
}

/// The sequence numbers still in the outbox.
fn kept(bus: &EventBus) -> Vec<i64> {
    bus.fetch(0, 100_000)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect()
}

fn allocate(front: &Front, name: &str) -> i64 {
    int(front
        .client()
        .call(
            "one.vm.allocate",
            vec![format!("NAME={name}\nCPU=1\nMEMORY=8").into()],
        )
        .unwrap())
}

/// Whether `lines` hold the STATE event of VM `vm`.
fn has_vm_event(lines: &[(i64, String)], vm: i64) -> bool {
    lines.iter().any(|(_, text)| {
        let b64 = text.split_whitespace().nth(2).unwrap_or("");
        matches!(decode(b64), HookMessage::State(s) if s.resource_id == vm)
    })
}

#[test]
fn unacknowledged_events_go_again_to_the_next_driver_in_order_with_their_ids() {
    let dir = tempfile::tempdir().unwrap();
    let driver = FakeDriver::new(dir.path());
    // A long acknowledgement timeout: this driver answers only when the test says so.
    let conf = driver.conf(&format!("{ZERO_SIM}EVENT_OUTBOX = [ ACK_TIMEOUT = 600 ]\n"));
    let front = Front::start(dir.path(), &conf);
    let first = wait_until("the driver initialized", || {
        driver.initialized().first().copied()
    });
    let vms: Vec<i64> = (0..3).map(|i| allocate(&front, &format!("a{i}"))).collect();
    let bus = outbox(dir.path());
    // Until the driver has read the newest event in the outbox: a VM's STATE event is not the
    // last one its allocation commits, and the lines reach the driver one by one.
    let sent = wait_until("the events of three VMs, up to the newest", || {
        let lines = execute_lines(&driver, first);
        let newest = kept(&bus).last().copied();
        (vms.iter().all(|vm| has_vm_event(&lines, *vm))
            && lines.last().map(|(id, _)| *id) == newest)
            .then_some(lines)
    });
    let ids: Vec<i64> = sent.iter().map(|(id, _)| *id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids grow in the order sent: {ids:?}"
    );
    assert_eq!(kept(&bus), ids, "written events stay until acknowledged");

    // The driver journals the first half, then dies with the rest in its pipe.
    let acked = ids[ids.len() / 2];
    driver.send(&format!("JOURNALED SUCCESS {acked} -"));
    wait_until("the acknowledged events deleted", || {
        (kept(&bus).first() == Some(&(acked + 1))).then_some(())
    });
    driver.crash(9);
    let second = wait_until("a second driver", || driver.initialized().get(1).copied());
    let expected: Vec<(i64, String)> = sent.iter().filter(|(id, _)| *id > acked).cloned().collect();
    let resent = wait_until("the unacknowledged events again", || {
        let lines = execute_lines(&driver, second);
        (lines.len() >= expected.len()).then_some(lines)
    });
    assert_eq!(
        resent[..expected.len()],
        expected[..],
        "the same lines, ids and order, and none already acknowledged"
    );

    // The new driver acknowledges everything, new events included.
    let vm = allocate(&front, "after");
    let lines = wait_until("the new VM's event", || {
        let lines = execute_lines(&driver, second);
        has_vm_event(&lines, vm).then_some(lines)
    });
    let newest = lines.iter().map(|(id, _)| *id).max().unwrap();
    driver.send(&format!("JOURNALED SUCCESS {newest} -"));
    wait_until("everything acknowledged deleted", || {
        kept(&bus).iter().all(|seq| *seq > newest).then_some(())
    });
    front.stop().unwrap();
}

/// Once the driver acknowledges, committers write events to its pipe themselves: a driver that
/// stops reading must not hold up API calls, and when it reads again it gets every event once,
/// in order.
#[test]
fn a_driver_that_stops_reading_holds_up_no_call_and_then_gets_every_event_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let driver = FakeDriver::new(dir.path());
    let conf = driver.conf(&format!("{ZERO_SIM}EVENT_OUTBOX = [ ACK_TIMEOUT = 600 ]\n"));
    let front = Front::start(dir.path(), &conf);
    let pid = wait_until("the driver initialized", || {
        driver.initialized().first().copied()
    });
    let first = allocate(&front, "first");
    let bus = outbox(dir.path());
    let newest = wait_until("the first VM's events", || {
        let lines = execute_lines(&driver, pid);
        let newest = kept(&bus).last().copied();
        (has_vm_event(&lines, first) && lines.last().map(|(id, _)| *id) == newest).then_some(newest)
    })
    .unwrap();
    driver.send(&format!("JOURNALED SUCCESS {newest} -"));
    wait_until("the acknowledged events deleted", || {
        kept(&bus).iter().all(|seq| *seq > newest).then_some(())
    });

    driver.hold(true);
    // Far more event bytes than a pipe holds.
    const CALLS: usize = 200;
    let (done, calls_done) = std::sync::mpsc::channel();
    let client = front.client();
    let caller = std::thread::spawn(move || {
        let mut vms = Vec::new();
        for i in 0..CALLS {
            let id = client
                .call(
                    "one.vm.allocate",
                    vec![format!("NAME=held{i}\nCPU=1\nMEMORY=8").into()],
                )
                .unwrap();
            vms.push(int(id));
        }
        let _ = done.send(());
        vms
    });
    calls_done
        .recv_timeout(Duration::from_secs(300))
        .expect("API calls go on while the driver does not read");
    let vms = caller.join().unwrap();
    let waiting = kept(&bus).len();
    assert!(waiting > CALLS, "every call's events wait: {waiting}");

    driver.hold(false);
    let ids: Vec<i64> = wait_until("every event up to the newest", || {
        let ids: Vec<i64> = execute_lines(&driver, pid)
            .iter()
            .map(|(id, _)| *id)
            .collect();
        let newest = kept(&bus).last().copied();
        (ids.last().copied() == newest).then_some(ids)
    });
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "every event once, in outbox order: {ids:?}"
    );
    let lines = execute_lines(&driver, pid);
    assert!(vms.iter().all(|vm| has_vm_event(&lines, *vm)));
    front.stop().unwrap();
}

#[test]
fn a_driver_that_never_acknowledges_gets_delete_on_write() {
    let dir = tempfile::tempdir().unwrap();
    let driver = FakeDriver::new(dir.path());
    let conf = driver.conf(&format!("{ZERO_SIM}EVENT_OUTBOX = [ ACK_TIMEOUT = 1 ]\n"));
    let front = Front::start(dir.path(), &conf);
    let first = wait_until("the driver initialized", || {
        driver.initialized().first().copied()
    });
    let before = allocate(&front, "before");
    wait_until("the first VM's event", || {
        has_vm_event(&execute_lines(&driver, first), before).then_some(())
    });
    let bus = outbox(dir.path());
    wait_until("the outbox emptied without any acknowledgement", || {
        kept(&bus).is_empty().then_some(())
    });
    driver.crash(9);
    let second = wait_until("a second driver", || driver.initialized().get(1).copied());
    let after = allocate(&front, "after");
    let lines = wait_until("the second VM's event", || {
        let lines = execute_lines(&driver, second);
        has_vm_event(&lines, after).then_some(lines)
    });
    assert!(
        !has_vm_event(&lines, before),
        "events written to the silent driver are not sent again"
    );
    // The learnt mode carries over: written events are deleted at once.
    wait_until("the outbox emptied again", || {
        kept(&bus).is_empty().then_some(())
    });
    front.stop().unwrap();
}

fn result_line(hook: i64, uid: &str) -> String {
    let body = ExecutionResult {
        arguments: uid.into(),
        command: "/bin/true".into(),
        stdout: Vec::new(),
        stderr: Vec::new(),
        code: 0,
        remote_host: None,
        retry: false,
        execution_uid: Some(uid.into()),
    };
    format!(
        "EXECUTE SUCCESS {hook} 0 {}",
        b64_encode(body.to_xml().as_bytes())
    )
}

/// The EXECUTION_UIDs in the hook log, one per record.
fn stored_uids(dir: &Path) -> Vec<String> {
    let db = Db::open(&dir.join("one.db")).unwrap();
    db.read(|c| {
        let mut stmt = c
            .prepare("SELECT exec_uid FROM hook_log ORDER BY exeid")
            .unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    })
}

#[test]
fn results_are_acknowledged_once_stored_and_redelivered_ones_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let driver = FakeDriver::new(dir.path());
    let front = Front::start(dir.path(), &driver.conf(ZERO_SIM));
    let pid = wait_until("the driver initialized", || {
        driver.initialized().first().copied()
    });
    let mine: Vec<String> = driver
        .lines()
        .into_iter()
        .filter(|l| l.pid == pid)
        .map(|l| l.text)
        .take(3)
        .collect();
    assert_eq!(
        mine,
        ["START", "STORED  0 -", "INIT"],
        "the announcement comes before INIT"
    );
    let hook = 7;
    for uid in ["u1", "u2", "u3"] {
        driver.send(&result_line(hook, uid));
    }
    driver.send("FORWARDED SUCCESS 3 -");
    driver.wait("STORED 3", |l| l.iter().any(|l| l.text == "STORED  3 -"));
    // The acknowledgement follows the commit.
    assert_eq!(stored_uids(dir.path()), ["u1", "u2", "u3"]);

    // A restarted driver forwards the unacknowledged ones again (here 2 and 3) with a new one.
    for uid in ["u2", "u3", "u4"] {
        driver.send(&result_line(hook, uid));
    }
    driver.send("FORWARDED SUCCESS 4 -");
    driver.wait("STORED 4", |l| l.iter().any(|l| l.text == "STORED  4 -"));
    assert_eq!(stored_uids(dir.path()), ["u1", "u2", "u3", "u4"]);
    front.stop().unwrap();
}
