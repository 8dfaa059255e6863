//! `one_hm --nats` against a real three-node NATS JetStream cluster: events are in the stream
//! when the driver says JOURNALED, an event sent again is stored once, and a result stays
//! unacknowledged in the stream until oned says it stored it, so a driver killed before that
//! loses nothing.

use std::time::{Duration, Instant};

use one_e2e::nats::{ClusterOptions, NatsCluster};

use crate::fixture::{Driver, python, result_body, vm_event};
use crate::replay::bad_requests_are_refused_then_replay_works;

/// Runs a nats-py snippet (`urls` is `sys.argv[1]`) and returns its standard output.
fn nats_py(nats: &NatsCluster, body: &str, args: &[&str]) -> String {
    let script = format!(
        "import asyncio, sys, nats\nasync def main():\n    nc = await nats.connect(sys.argv[1].split(','))\n    js = nc.jetstream(timeout=30)\n{}\n    await nc.close()\nasyncio.run(main())\n",
        body.lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let out = std::process::Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(nats.url_list())
        .args(args)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "nats-py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn nats_flags(nats: &NatsCluster) -> Vec<String> {
    vec![
        "--nats".into(),
        nats.url_list(),
        "--nats-replicas".into(),
        "3".into(),
        "--nats-result-ack-wait".into(),
        "2s".into(),
    ]
}

fn start(dir: &std::path::Path, nats: &NatsCluster, acking_front: bool) -> Driver {
    let flags = nats_flags(nats);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut driver = Driver::start(dir, &flags);
    if acking_front {
        driver.send("STORED  0 -");
    }
    driver.init();
    driver
}

/// Waits for `JOURNALED SUCCESS <id> -`. Earlier acknowledgements may come first, and so may
/// the one `LOG E` line a driver writes when the cluster is slower than its request timeout and
/// it holds the events to publish them again; any other line is a failure.
fn wait_journaled(driver: &Driver, id: u64) {
    let want = format!("JOURNALED SUCCESS {id} -");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = driver.next_line();
        if line == want {
            return;
        }
        assert!(
            line.starts_with("JOURNALED SUCCESS ")
                || line.starts_with("LOG E 0 Event journal unavailable"),
            "unexpected line while waiting for {want:?}: {line}"
        );
        assert!(Instant::now() < deadline, "no {want:?}");
    }
}

/// A first driver (its front-end does not acknowledge results) that journaled one event, VM 42
/// PENDING as outbox id 1; returns the driver and the event's content.
fn journaled_one_event(dir: &std::path::Path, nats: &NatsCluster) -> (Driver, String) {
    let event = vm_event(42, "PENDING", "LCM_INIT", None, 0);
    let mut driver = start(dir, nats, false);
    driver.send(&format!("EXECUTE  1 {event}"));
    wait_journaled(&driver, 1);
    (driver, event)
}

#[test]
fn events_are_in_the_stream_when_journaled_and_an_event_sent_again_is_stored_once() {
    let nats = NatsCluster::start(ClusterOptions::default()).expect("cluster");
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut driver, event) = journaled_one_event(dir.path(), &nats);
    // Acknowledged by a quorum of the three replicas before the line was written.
    let stored = nats_py(
        &nats,
        "m = await js.get_msg('ONE_EVENTS', 1)\nprint(m.subject, m.headers['Nats-Msg-Id'], m.data.decode() == sys.argv[2])",
        &[&event],
    );
    let words: Vec<&str> = stored.split_whitespace().collect();
    assert!(
        words[0].starts_with("one.event.state.VM.PENDING.LCM_INIT.42."),
        "{stored}"
    );
    assert!(words[1].starts_with("ev-1-"), "{stored}");
    assert_eq!(words[2], "True", "{stored}");

    // A driver killed and started again is sent what was not acknowledged, and more.
    driver.kill9();
    let mut driver = start(dir.path(), &nats, false);
    driver.send(&format!("EXECUTE  1 {event}"));
    driver.send(&format!(
        "EXECUTE  2 {}",
        vm_event(43, "PENDING", "LCM_INIT", None, 0)
    ));
    wait_journaled(&driver, 2);
    let count = nats_py(
        &nats,
        "print((await js.stream_info('ONE_EVENTS')).state.messages)",
        &[],
    );
    assert_eq!(count, "2", "the event sent again was stored twice");
}

#[test]
fn a_result_stays_in_the_stream_until_oned_stored_it() {
    let nats = NatsCluster::start(ClusterOptions::default()).expect("cluster");
    let dir = tempfile::tempdir().expect("tempdir");
    // The driver creates the streams; a first driver run does that.
    drop(start(dir.path(), &nats, true));
    let body = result_body("/bin/true", 0, Some("uid-1"));
    nats_py(
        &nats,
        "await js.publish('one.result.5', ('0 5 ' + sys.argv[2]).encode(), headers={'Nats-Msg-Id': 'uid-1'})",
        &[&body],
    );
    let ack_floor = || {
        nats_py(
            &nats,
            "print((await js.consumer_info('ONE_RESULTS', 'one_hm')).ack_floor.stream_seq)",
            &[],
        )
    };
    let expected = format!("EXECUTE SUCCESS 5 0 {body}");

    // Forwarded, but oned never says it stored it: the driver dies.
    let mut driver = start(dir.path(), &nats, true);
    assert_eq!(driver.next_line(), expected);
    assert_eq!(driver.next_line(), "FORWARDED SUCCESS 1 -");
    driver.kill9();
    assert_eq!(ack_floor(), "0");

    // The next driver gets it again once the acknowledgement wait is over, and oned stores it.
    let mut driver = start(dir.path(), &nats, true);
    assert_eq!(driver.next_line(), expected);
    assert_eq!(driver.next_line(), "FORWARDED SUCCESS 1 -");
    assert_eq!(ack_floor(), "0");
    driver.send("STORED  1 -");
    let deadline = Instant::now() + Duration::from_secs(30);
    while ack_floor() != "1" {
        assert!(
            Instant::now() < deadline,
            "the result was never acknowledged"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_replay_socket_answers_every_request_in_the_nats_mode_too() {
    let nats = NatsCluster::start(ClusterOptions::default()).expect("cluster");
    let dir = tempfile::tempdir().expect("tempdir");
    let (driver, event) = journaled_one_event(dir.path(), &nats);
    let reply = bad_requests_are_refused_then_replay_works(&driver.endpoints.replay);
    assert_eq!(
        reply,
        [
            "OK 1 1 1",
            "EVENT VM 42/PENDING/LCM_INIT #1",
            event.as_str(),
            "EVENT STATE VM/PENDING/LCM_INIT/42 #1",
            event.as_str(),
        ]
    );
}

#[test]
fn health_is_503_while_the_bus_refuses_events_and_200_once_it_takes_them() {
    let mut nats = NatsCluster::start(ClusterOptions::default()).expect("cluster");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut flags = nats_flags(&nats);
    flags.extend(["--metrics-listen".to_string(), "127.0.0.1:0".to_string()]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut driver = Driver::start(dir.path(), &flags);
    driver.init();
    let metrics = driver.endpoints.metrics.expect("metrics endpoint");
    let health = || one_e2e::metrics::http_get(metrics, "/health").expect("health");
    assert_eq!(health().0, 200, "{:?}", health());

    // Two of three nodes gone: no quorum, so the stream cannot store the event.
    nats.stop_node(1).expect("stop");
    nats.stop_node(2).expect("stop");
    driver.send(&format!(
        "EXECUTE  1 {}",
        vm_event(42, "PENDING", "LCM_INIT", None, 0)
    ));
    let (_, body) = one_e2e::stack::wait_for("503 from /health", Duration::from_secs(60), || {
        let (status, body) = health();
        (status == 503).then_some(((), body))
    })
    .expect("unhealthy while the bus refuses events");
    assert!(body.contains("journal unavailable"), "{body}");

    nats.start_node(1).expect("start");
    nats.start_node(2).expect("start");
    wait_journaled(&driver, 1);
    one_e2e::stack::wait_for("200 from /health", Duration::from_secs(60), || {
        (health().0 == 200).then_some(())
    })
    .expect("healthy again");
}
