//! The result sender against real ZeroMQ sockets: a lost ACK leads to a reconnect and a resend,
//! and later results keep flowing meanwhile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use onehem_server::result_sender::{ResultSender, SenderConfig};
use onehem_server::state_db::OutboxEntry;

fn entry(n: usize) -> OutboxEntry {
    OutboxEntry {
        uid: format!("u{n}"),
        hook_id: n as i64,
        frame: format!("0 {n} UEFZTE9BRA=="),
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < end, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Result senders with `sockets` sockets to `endpoint`, and the uids they saw acknowledged.
fn started(
    ctx: &zmq::Context,
    endpoint: String,
    sockets: usize,
    ack_timeout: Duration,
) -> (ResultSender, Arc<Mutex<Vec<String>>>) {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let a = acked.clone();
    let sender = ResultSender::start(
        ctx.clone(),
        SenderConfig {
            endpoint,
            sockets,
            ack_timeout,
            curve: None,
        },
        Arc::new(move |e: &OutboxEntry| a.lock().unwrap().push(e.uid.clone())),
    )
    .expect("result senders");
    (sender, acked)
}

#[test]
fn every_result_is_acknowledged_on_a_healthy_driver() {
    let ctx = zmq::Context::new();
    let rep = ctx.socket(zmq::REP).unwrap();
    rep.bind("tcp://127.0.0.1:*").unwrap();
    let endpoint = rep.get_last_endpoint().unwrap().unwrap();
    let (sender, acked) = started(&ctx, endpoint, 3, Duration::from_secs(5));
    let queue = sender.queue();
    for n in 0..50 {
        queue.send(entry(n));
    }
    let mut received = Vec::new();
    while received.len() < 50 {
        let frame = rep.recv_string(0).unwrap().unwrap();
        rep.send("ACK", 0).unwrap();
        received.push(frame);
    }
    wait_until("50 acks", || acked.lock().unwrap().len() == 50);
    sender.stop(Duration::from_secs(1));
    let mut frames = received.clone();
    frames.sort();
    frames.dedup();
    assert_eq!(frames.len(), 50);
    assert!(
        received
            .iter()
            .all(|f| f.starts_with("0 ") && f.ends_with(" UEFZTE9BRA=="))
    );
}

#[test]
fn a_lost_ack_reconnects_resends_and_does_not_block_later_results() {
    let ctx = zmq::Context::new();
    // A ROUTER plays the driver so that it can leave one request unanswered while answering
    // the others, as a driver that lost a reply would.
    let router = ctx.socket(zmq::ROUTER).unwrap();
    router.bind("tcp://127.0.0.1:*").unwrap();
    let endpoint = router.get_last_endpoint().unwrap().unwrap();
    let (sender, acked) = started(&ctx, endpoint, 2, Duration::from_millis(300));
    let queue = sender.queue();
    for n in 0..20 {
        queue.send(entry(n));
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut dropped_one = false;
    let end = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 20 {
        assert!(
            Instant::now() < end,
            "results stopped flowing: {:?}",
            acked.lock().unwrap()
        );
        if router.poll(zmq::POLLIN, 50).unwrap() == 0 {
            continue;
        }
        // REQ over ROUTER: identity, empty delimiter, body.
        let parts = router.recv_multipart(0).unwrap();
        let body = String::from_utf8(parts[2].clone()).unwrap();
        *seen.entry(body.clone()).or_default() += 1;
        if body.starts_with("0 0 ") && !dropped_one {
            dropped_one = true;
            continue;
        }
        router
            .send_multipart([parts[0].as_slice(), b"", b"ACK"], 0)
            .unwrap();
    }
    sender.stop(Duration::from_secs(1));
    let acked = acked.lock().unwrap();
    let mut uids = acked.clone();
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), 20, "{acked:?}");
    // Result 0 lost its ACK, so it was sent again; the others went through meanwhile.
    assert_eq!(seen["0 0 UEFZTE9BRA=="], 2);
    assert!(
        acked.iter().position(|u| u == "u0").unwrap() > 0,
        "result 0 blocked the others"
    );
}

#[test]
fn results_wait_for_a_driver_that_is_not_there_yet() {
    let ctx = zmq::Context::new();
    // Reserve a port by binding, hand the endpoint to the sender, and only then start answering.
    let rep = ctx.socket(zmq::REP).unwrap();
    rep.bind("tcp://127.0.0.1:*").unwrap();
    let endpoint = rep.get_last_endpoint().unwrap().unwrap();
    let acked = Arc::new(Mutex::new(0usize));
    let a = acked.clone();
    let sender = ResultSender::start(
        ctx.clone(),
        SenderConfig {
            endpoint,
            sockets: 1,
            ack_timeout: Duration::from_millis(200),
            curve: None,
        },
        Arc::new(move |_: &OutboxEntry| *a.lock().unwrap() += 1),
    )
    .expect("result senders");
    sender.queue().send(entry(1));
    // Let several timeouts and reconnects happen before the first answer.
    std::thread::sleep(Duration::from_millis(700));
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < end, "the result never arrived");
        if rep.poll(zmq::POLLIN, 100).unwrap() > 0 {
            let _ = rep.recv_bytes(0).unwrap();
            rep.send("ACK", 0).unwrap();
        }
        if *acked.lock().unwrap() == 1 {
            break;
        }
    }
    sender.stop(Duration::from_secs(1));
}
