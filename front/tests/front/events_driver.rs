//! Events between oned-lite and its HM_MAD driver: API and STATE HOOK_MESSAGEs written as MAD
//! lines, in order, kept while the driver is down, the driver restarted when it dies and
//! finalized on shutdown, and its result lines stored in the hook log.

use std::path::Path;
use std::time::Instant;

use crate::api_common::{Front, NO_DRIVER_CONF};
use crate::cloud_common::*;
use one_proto::encoding::{b64_decode_strict, b64_encode};
use one_proto::event::{ApiEvent, HookMessage, ObjectKind, ParamDir};
use one_proto::retry::RetryMessage;
use oned_lite::db::Db;
use oned_lite::events::EventBus;

fn api_events(driver: &FakeDriver, call: &str) -> Vec<ApiEvent> {
    driver
        .events()
        .into_iter()
        .filter_map(|(_, m)| match m {
            HookMessage::Api(a) if a.call == call => Some(a),
            _ => None,
        })
        .collect()
}

#[test]
fn api_events_carry_in_and_out_parameters_with_the_session_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let driver = FakeDriver::new(dir.path());
    let front = Front::start(dir.path(), &driver.conf(ZERO_SIM));
    let c = front.client();
    let template = "NAME = api-vm\nCPU = 1\nMEMORY = 64";
    let vid = int(c.call("one.vm.allocate", vec![template.into()]).unwrap());
    c.call("one.vm.info", vec![vid.into()]).unwrap();
    let (code, message) = failure(&c, "one.vm.action", vec!["poweroff".into(), vid.into()]);

    let got = wait_until("the failed action's API event", || {
        let events = api_events(&driver, "one.vm.action");
        (!events.is_empty()).then_some(events)
    });
    let alloc = &api_events(&driver, "one.vm.allocate")[0];
    assert!(alloc.success);
    assert_eq!(
        alloc.param(ParamDir::In, 1),
        Some("****"),
        "the session is hidden"
    );
    assert_eq!(alloc.param(ParamDir::In, 2), Some(template));
    assert_eq!(alloc.param(ParamDir::Out, 1), Some("true"));
    assert_eq!(
        alloc.param(ParamDir::Out, 2),
        Some(vid.to_string().as_str())
    );
    assert_eq!(alloc.param(ParamDir::Out, 3), Some("0"));
    assert!(
        alloc.extra.starts_with(&format!("<VM><ID>{vid}</ID>")),
        "EXTRA is the new VM: {}",
        alloc.extra
    );

    let action = &got[0];
    assert!(!action.success);
    assert_eq!(action.param(ParamDir::In, 1), Some("****"));
    assert_eq!(action.param(ParamDir::In, 2), Some("poweroff"));
    assert_eq!(
        action.param(ParamDir::In, 3),
        Some(vid.to_string().as_str())
    );
    assert_eq!(action.param(ParamDir::Out, 1), Some("false"));
    assert_eq!(action.param(ParamDir::Out, 2), Some(message.as_str()));
    assert_eq!(
        action.param(ParamDir::Out, 3),
        Some(code.to_string().as_str())
    );
    assert_eq!(
        action.param(ParamDir::Out, 4),
        Some(vid.to_string().as_str())
    );
    assert!(
        api_events(&driver, "one.vm.info").is_empty(),
        "info calls emit nothing"
    );

    // The STATE event is written with the allocation, before the call's API event.
    let order: Vec<String> = driver
        .events()
        .into_iter()
        .filter_map(|(_, m)| match m {
            HookMessage::Api(a) if a.call == "one.system.version" => None,
            HookMessage::Api(a) => Some(a.call),
            HookMessage::State(s) => Some(format!("STATE {} {}", s.object.name(), s.state)),
        })
        .collect();
    assert_eq!(
        order[..3],
        ["STATE VM PENDING", "one.vm.allocate", "one.vm.action"]
    );
    front.stop().unwrap();
}

#[test]
fn events_made_while_the_driver_is_down_are_delivered_in_order_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let driver = FakeDriver::new(dir.path());
    driver.refuse(true);
    let front = Front::start(dir.path(), &driver.conf(ZERO_SIM));
    let c = front.client();
    driver.wait("a refused start", |l| l.iter().any(|l| l.text == "EXIT 3"));
    let ids: Vec<i64> = (0..5)
        .map(|i| {
            int(c
                .call(
                    "one.vm.allocate",
                    vec![format!("NAME=v{i}\nCPU=1\nMEMORY=8").into()],
                )
                .unwrap())
        })
        .collect();
    assert!(
        driver.events().is_empty(),
        "nothing can reach a driver that is down"
    );
    let bus = EventBus::new(Db::open(&dir.path().join("one.db")).unwrap());
    assert!(
        bus.pending().unwrap() >= 10,
        "the events wait in the outbox"
    );

    driver.refuse(false);
    // The fixture's readiness probe (one.system.version) is an event too; leave it out.
    let cloud_events = || -> Vec<(u32, HookMessage)> {
        driver
            .events()
            .into_iter()
            .filter(|(_, m)| !matches!(m, HookMessage::Api(a) if a.call == "one.system.version"))
            .collect()
    };
    let events = wait_until("the ten events", || {
        let events = cloud_events();
        (events.len() >= 10).then_some(events)
    });
    let lines = driver.lines();
    assert_eq!(events.len(), 10);
    let mut expected = Vec::new();
    for id in &ids {
        expected.push(format!("STATE VM {id} PENDING"));
        expected.push(format!("API one.vm.allocate {id}"));
    }
    let got: Vec<String> = events
        .iter()
        .map(|(_, m)| match m {
            HookMessage::State(s) => format!("STATE VM {} {}", s.resource_id, s.state),
            HookMessage::Api(a) => {
                format!("API {} {}", a.call, a.param(ParamDir::Out, 2).unwrap_or(""))
            }
        })
        .collect();
    assert_eq!(got, expected);
    let pid = events[0].0;
    assert!(
        events.iter().all(|(p, _)| *p == pid),
        "one driver got them all"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.pid == pid && l.text == "ANSWERED INIT SUCCESS"),
        "delivered only after INIT"
    );
    wait_until("an empty outbox", || {
        (bus.pending().unwrap() == 0).then_some(())
    });
    front.stop().unwrap();
}

#[test]
fn a_driver_that_dies_is_restarted_and_gets_the_later_events() {
    let dir = tempfile::tempdir().unwrap();
    let driver = FakeDriver::new(dir.path());
    let front = Front::start(dir.path(), &driver.conf(ZERO_SIM));
    let c = front.client();
    wait_until("the driver initialized", || {
        (driver.initialized().len() == 1).then_some(())
    });
    let first = driver.initialized()[0];
    driver.crash(7);
    driver.wait("the crash", |l| {
        l.iter().any(|l| l.pid == first && l.text == "EXIT 7")
    });
    let second = wait_until("a new driver", || driver.initialized().get(1).copied());
    assert_ne!(first, second);
    let vid = int(c
        .call("one.vm.allocate", vec!["CPU=1\nMEMORY=8".into()])
        .unwrap());
    let got = wait_until("the event after the restart", || {
        driver
            .events()
            .into_iter()
            .find(|(_, m)| matches!(m, HookMessage::State(s) if s.resource_id == vid && s.object == ObjectKind::Vm))
    });
    assert_eq!(got.0, second, "the new driver got it");
    front.stop().unwrap();
}

#[test]
fn a_driver_that_fails_init_is_killed_and_started_again() {
    let dir = tempfile::tempdir().unwrap();
    let driver = FakeDriver::new(dir.path());
    driver.fail_init(true);
    let front = Front::start(dir.path(), &driver.conf(ZERO_SIM));
    let lines = driver.wait("a failed INIT", |l| {
        l.iter().any(|l| l.text == "ANSWERED INIT FAILURE")
    });
    let refused = lines
        .iter()
        .find(|l| l.text == "ANSWERED INIT FAILURE")
        .unwrap()
        .pid;
    driver.fail_init(false);
    let pid = wait_until("a driver that answered INIT SUCCESS", || {
        driver.initialized().first().copied()
    });
    assert_ne!(pid, refused);
    // The refused driver got nothing but INIT, and was killed (it never exits by itself).
    let refused_lines: Vec<String> = driver
        .lines()
        .into_iter()
        .filter(|l| l.pid == refused)
        .map(|l| l.text)
        .collect();
    assert_eq!(
        refused_lines,
        ["START", "STORED  0 -", "INIT", "ANSWERED INIT FAILURE"]
    );
    let vid = int(c_allocate(&front));
    wait_until("the event at the new driver", || {
        driver
            .events()
            .into_iter()
            .find(|(p, m)| *p == pid && matches!(m, HookMessage::State(s) if s.resource_id == vid))
    });
    front.stop().unwrap();
}

fn c_allocate(front: &Front) -> one_client::Value {
    front
        .client()
        .call("one.vm.allocate", vec!["CPU=1\nMEMORY=8".into()])
        .unwrap()
}

#[test]
fn driver_results_land_in_the_hook_log_and_retries_go_back_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let driver = FakeDriver::new(dir.path());
    let front = Front::start(dir.path(), &driver.conf(ZERO_SIM));
    let c = front.client();
    let hook = c
        .hook_allocate("NAME = on-alloc\nTYPE = api\nCOMMAND = /bin/true\nCALL = one.vm.allocate")
        .unwrap();
    wait_until("the driver initialized", || {
        (!driver.initialized().is_empty()).then_some(())
    });
    let body = |code: i32| {
        b64_encode(
            format!(
                "<ARGUMENTS>a b</ARGUMENTS><EXECUTION_RESULT><COMMAND>/bin/true a b</COMMAND><STDOUT></STDOUT>\
                 <STDERR></STDERR><CODE>{code}</CODE></EXECUTION_RESULT><REMOTE_HOST>node7</REMOTE_HOST>"
            )
            .as_bytes(),
        )
    };
    driver.send(&format!("EXECUTE SUCCESS {hook} 0 {}", body(0)));
    driver.send("LOG I 0 a log line from the driver");
    driver.send("SOMETHING undefined");
    driver.send(&format!("EXECUTE FAILURE {hook} 3 {}", body(3)));
    let info = wait_until("two execution records", || {
        let info = c.hook_info(hook).unwrap();
        info.contains("<EXECUTION_ID>1</EXECUTION_ID>")
            .then_some(info)
    });
    assert!(info.contains("<EXECUTION_ID>0</EXECUTION_ID>"), "{info}");
    assert!(
        info.contains("<ARGUMENTS>a b</ARGUMENTS>") && info.contains("<CODE>3</CODE>"),
        "{info}"
    );

    c.hook_retry(hook, 0).unwrap();
    let lines = driver.wait("the RETRY line", |l| {
        l.iter().any(|l| l.text.starts_with("RETRY  "))
    });
    let line = lines
        .iter()
        .find(|l| l.text.starts_with("RETRY  "))
        .unwrap();
    // `RETRY  <outbox id> <b64>`.
    let b64 = line.text.split_whitespace().nth(2).unwrap();
    let retry =
        RetryMessage::parse(&String::from_utf8(b64_decode_strict(b64).unwrap()).unwrap()).unwrap();
    assert_eq!((retry.hook_id, retry.arguments.as_str()), (hook, "a b"));
    assert_eq!(retry.remote_host.as_deref(), Some("node7"));
    front.stop().unwrap();
}

#[test]
fn shutdown_finalizes_the_driver() {
    let dir = tempfile::tempdir().unwrap();
    let driver = FakeDriver::new(dir.path());
    let front = Front::start(dir.path(), &driver.conf(ZERO_SIM));
    let pid = wait_until("the driver initialized", || {
        driver.initialized().first().copied()
    });
    front.stop().unwrap();
    let lines = driver.lines();
    let mine: Vec<&str> = lines
        .iter()
        .filter(|l| l.pid == pid)
        .map(|l| l.text.as_str())
        .collect();
    assert_eq!(mine.first(), Some(&"START"));
    assert_eq!(mine[mine.len() - 2..], ["FINALIZE", "EXIT 0"]);
}

fn run_with(conf: &str, var_dir: &Path) -> anyhow::Result<()> {
    let config = oned_lite::Config::from_text(conf, Path::new("test-oned.conf")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        oned_lite::run(
            config,
            var_dir.to_path_buf(),
            listener,
            std::future::pending(),
        )
        .await
    })
}

#[test]
fn a_missing_driver_executable_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = run_with(
        "HM_MAD = [ EXECUTABLE = \"/nonexistent/mads/one_hm\" ]\n",
        dir.path(),
    )
    .unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("/nonexistent/mads/one_hm") && text.contains("not found"),
        "{text}"
    );
    let err = run_with(
        "HM_MAD = [ EXECUTABLE = \"no-such-hm-driver\" ]\n",
        dir.path(),
    )
    .unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("\"no-such-hm-driver\" not found (looked in "),
        "{text}"
    );
}

#[test]
fn the_outbox_keeps_the_newest_events_within_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let conf = format!("{NO_DRIVER_CONF}EVENT_OUTBOX = [ LIMIT = 20 ]\n");
    let front = Front::start(dir.path(), &conf);
    let c = front.client();
    let mut last = 0;
    for _ in 0..15 {
        last = int(c
            .call("one.vm.allocate", vec!["CPU=1\nMEMORY=8".into()])
            .unwrap());
    }
    let bus = EventBus::new(Db::open(&dir.path().join("one.db")).unwrap());
    let entries = bus.fetch(0, 1000).unwrap();
    assert!(entries.len() <= 20, "{} events kept", entries.len());
    match decode(&entries.last().unwrap().payload) {
        HookMessage::Api(a) => {
            assert_eq!(a.param(ParamDir::Out, 2), Some(last.to_string().as_str()))
        }
        other => panic!("the newest event is kept: {other:?}"),
    }
    front.stop().unwrap();
}

#[test]
fn thousands_of_events_flow_to_the_driver_in_order() {
    const N: usize = 3000;
    let dir = tempfile::tempdir().unwrap();
    let driver = FakeDriver::new(dir.path());
    let front = Front::start(dir.path(), &driver.conf(ZERO_SIM));
    wait_until("the driver initialized", || {
        (!driver.initialized().is_empty()).then_some(())
    });
    let bus = EventBus::new(Db::open(&dir.path().join("one.db")).unwrap());
    let started = Instant::now();
    for i in 0..N {
        let event = ApiEvent::success("one.vm.update", vec!["s".into(), i.to_string()], "0", "");
        bus.emit_api(&event).unwrap();
    }
    let written = started.elapsed();
    driver.wait("every event", |l| {
        l.iter().filter(|l| l.text.starts_with("EXECUTE")).count() >= N
    });
    let elapsed = started.elapsed();
    let got: Vec<String> = driver
        .events()
        .into_iter()
        .filter_map(|(_, m)| match m {
            HookMessage::Api(a) if a.call == "one.vm.update" => {
                a.param(ParamDir::In, 2).map(str::to_string)
            }
            _ => None,
        })
        .collect();
    let expected: Vec<String> = (0..N).map(|i| i.to_string()).collect();
    assert_eq!(got, expected, "every event once, in order");
    eprintln!(
        "{N} events: stored in {:.2} s, all at the driver after {:.2} s ({:.0} events/s end to end)",
        written.as_secs_f64(),
        elapsed.as_secs_f64(),
        N as f64 / elapsed.as_secs_f64()
    );
    front.stop().unwrap();
}
