//! The result sender against real ZeroMQ sockets: many results in flight on one socket, answered
//! in any order by a ROUTER (the driver's side) or one at a time by a REP (the reference
//! driver's); a lost ACK leads to a resend while later results keep flowing; a restarted peer
//! gets everything that was in flight again.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use onehem_server::result_sender::{ResultSender, SenderConfig};
use onehem_server::state_db::OutboxEntry;

fn entry(n: usize) -> OutboxEntry {
    OutboxEntry {
        uid: format!("u{n}"),
        hook_id: n as i64,
        frame: format!("0 {n} UEFZTE9BRA==").into(),
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
            in_flight: sockets,
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
fn a_lost_ack_is_resent_and_does_not_block_later_results() {
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
        // The sender's envelope: ROUTER identity, request id, empty delimiter; then the body.
        let mut parts = router.recv_multipart(0).unwrap();
        let body = String::from_utf8(parts.pop().unwrap()).unwrap();
        *seen.entry(body.clone()).or_default() += 1;
        if body.starts_with("0 0 ") && !dropped_one {
            dropped_one = true;
            continue;
        }
        parts.push(b"ACK".to_vec());
        router.send_multipart(parts, 0).unwrap();
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
            in_flight: 1,
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

/// A peer written in Python with pyzmq: prints its endpoint first, then `key=value` lines when
/// it is done. Its own deadline bounds it; dropping it kills it.
struct PyPeer {
    child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

impl PyPeer {
    fn start(script: &str, args: &[&str]) -> (PyPeer, String) {
        let python = one_e2e::stack::python().unwrap_or_else(|e| panic!("{e:#}"));
        let mut child = Command::new(python)
            .arg("-c")
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python");
        let stdout = child.stdout.take().unwrap();
        let mut peer = PyPeer {
            child,
            lines: BufReader::new(stdout).lines(),
        };
        let endpoint = peer.line();
        assert!(endpoint.starts_with("tcp://127.0.0.1:"), "{endpoint}");
        (peer, endpoint)
    }

    fn line(&mut self) -> String {
        self.lines
            .next()
            .expect("the Python peer ended early")
            .unwrap()
    }

    /// The peer's report: its `key=value` lines, read until it exits.
    fn report(mut self) -> HashMap<String, String> {
        let report = self
            .lines
            .by_ref()
            .map_while(Result::ok)
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect();
        assert!(
            self.child.wait().unwrap().success(),
            "the Python peer failed"
        );
        report
    }
}

impl Drop for PyPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A ROUTER that holds requests until `batch` are waiting, then answers them newest first;
/// every request must carry the sender's envelope (request id, empty delimiter, body).
const PY_ROUTER: &str = r#"
import sys, time, zmq
total, batch = int(sys.argv[1]), int(sys.argv[2])
ctx = zmq.Context()
r = ctx.socket(zmq.ROUTER)
r.linger = 0
port = r.bind_to_random_port("tcp://127.0.0.1")
print(f"tcp://127.0.0.1:{port}", flush=True)
held, answered, most, bad = [], set(), 0, 0
end = time.monotonic() + 60
while len(answered) < total and time.monotonic() < end:
    if r.poll(100):
        while True:
            try:
                msg = r.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            if len(msg) != 4 or len(msg[1]) == 0 or msg[2] != b"":
                bad += 1
                continue
            held.append(msg)
    most = max(most, len(held))
    if len(held) >= batch or (held and len(answered) + len(held) >= total):
        for ident, rid, delim, body in reversed(held):
            r.send_multipart([ident, rid, delim, b"ACK"])
            answered.add(body)
        held = []
print(f"answered={len(answered)}", flush=True)
print(f"most={most}", flush=True)
print(f"bad={bad}", flush=True)
"#;

#[test]
fn many_results_in_flight_are_matched_to_replies_out_of_order() {
    let (peer, endpoint) = PyPeer::start(PY_ROUTER, &["64", "16"]);
    let ctx = zmq::Context::new();
    let (sender, acked) = started(&ctx, endpoint, 16, Duration::from_secs(20));
    let queue = sender.queue();
    for n in 0..64 {
        queue.send(entry(n));
    }
    wait_until("64 acks", || acked.lock().unwrap().len() == 64);
    let report = peer.report();
    sender.stop(Duration::from_secs(1));
    assert_eq!(report["answered"], "64");
    assert_eq!(report["bad"], "0", "requests without the sender's envelope");
    // The peer held a whole batch before answering: exactly the bound was in flight at once.
    assert_eq!(report["most"], "16");
    let acked = acked.lock().unwrap();
    let mut uids = acked.clone();
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), 64, "each result acknowledged once: {acked:?}");
    // Each reply settled the result it named, in the order the replies came.
    let first: Vec<&str> = acked[..16].iter().map(String::as_str).collect();
    let expected: Vec<String> = (0..16).rev().map(|n| format!("u{n}")).collect();
    assert_eq!(
        first,
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
}

/// A ROUTER that keeps the driver's duplicate rule (a uid stored once, every copy answered
/// `ACK`) and holds back the reply to the first copy of result 0 until its resend arrives, then
/// answers both: the late reply and the resend's.
const PY_ROUTER_LATE: &str = r#"
import sys, time, zmq
total = int(sys.argv[1])
ctx = zmq.Context()
r = ctx.socket(zmq.ROUTER)
r.linger = 0
port = r.bind_to_random_port("tcp://127.0.0.1")
print(f"tcp://127.0.0.1:{port}", flush=True)
stored, copies, held, dups = set(), {}, None, 0
end = time.monotonic() + 60
while len(stored) < total or held is not None:
    if time.monotonic() > end:
        sys.exit("gave up")
    if not r.poll(100):
        continue
    ident, rid, delim, body = r.recv_multipart()
    copies[body] = copies.get(body, 0) + 1
    if body in stored:
        dups += 1
    stored.add(body)
    if body.startswith(b"0 0 ") and copies[body] == 1:
        held = (ident, rid, delim)
        continue
    if held is not None and body.startswith(b"0 0 "):
        r.send_multipart([*held, b"ACK"])
        held = None
    r.send_multipart([ident, rid, delim, b"ACK"])
print(f"stored={len(stored)}", flush=True)
print(f"duplicates={dups}", flush=True)
print(f"copies_of_0={copies[b'0 0 UEFZTE9BRA==']}", flush=True)
"#;

#[test]
fn a_late_reply_and_its_resend_settle_the_result_once() {
    let (peer, endpoint) = PyPeer::start(PY_ROUTER_LATE, &["21"]);
    let ctx = zmq::Context::new();
    let (sender, acked) = started(&ctx, endpoint, 8, Duration::from_millis(300));
    let queue = sender.queue();
    for n in 0..20 {
        queue.send(entry(n));
    }
    wait_until("20 acks", || acked.lock().unwrap().len() >= 20);
    // Replies come back in the order the peer sent them, so once this later result is
    // acknowledged the sender has read both replies to result 0.
    queue.send(entry(20));
    wait_until("21 acks", || acked.lock().unwrap().len() >= 21);
    let report = peer.report();
    sender.stop(Duration::from_secs(1));
    assert_eq!(report["stored"], "21");
    assert_eq!(
        report["copies_of_0"], "2",
        "result 0 was sent again after its timeout"
    );
    assert_eq!(
        report["duplicates"], "1",
        "the resend was a duplicate to the peer"
    );
    let acked = acked.lock().unwrap();
    assert_eq!(
        acked.len(),
        21,
        "two replies, one acknowledgement: {acked:?}"
    );
    assert_eq!(acked.iter().filter(|u| *u == "u0").count(), 1);
    assert!(
        acked.iter().position(|u| u == "u0").unwrap() > 0,
        "result 0 blocked the others"
    );
}

#[test]
fn a_peer_restarted_mid_stream_gets_what_was_in_flight() {
    let ctx = zmq::Context::new();
    let first = ctx.socket(zmq::ROUTER).unwrap();
    first.set_linger(0).unwrap();
    first.bind("tcp://127.0.0.1:*").unwrap();
    let endpoint = first.get_last_endpoint().unwrap().unwrap();
    let (sender, acked) = started(&ctx, endpoint.clone(), 8, Duration::from_millis(300));
    let queue = sender.queue();
    for n in 0..30 {
        queue.send(entry(n));
    }
    // The first peer answers ten requests, reads the ones in flight after them without
    // answering, and goes away.
    let mut answered = 0;
    let mut unanswered = 0;
    let end = Instant::now() + Duration::from_secs(30);
    while unanswered == 0 || answered < 10 {
        assert!(Instant::now() < end, "the first peer got too little");
        if first.poll(zmq::POLLIN, 50).unwrap() == 0 {
            continue;
        }
        let mut parts = first.recv_multipart(0).unwrap();
        if answered < 10 {
            parts.pop();
            parts.push(b"ACK".to_vec());
            first.send_multipart(parts, 0).unwrap();
            answered += 1;
        } else {
            unanswered += 1;
        }
    }
    wait_until("ten acks", || acked.lock().unwrap().len() >= 10);
    drop(first);
    // The same endpoint again, as a restarted driver binds it; the port may take a moment to
    // be released.
    let second = ctx.socket(zmq::ROUTER).unwrap();
    second.set_linger(0).unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while let Err(e) = second.bind(&endpoint) {
        assert!(Instant::now() < end, "cannot bind {endpoint} again: {e}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut received = 0;
    let end = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 30 {
        assert!(
            Instant::now() < end,
            "results stopped after the restart: {:?}",
            acked.lock().unwrap()
        );
        if second.poll(zmq::POLLIN, 50).unwrap() == 0 {
            continue;
        }
        let mut parts = second.recv_multipart(0).unwrap();
        parts.pop();
        parts.push(b"ACK".to_vec());
        second.send_multipart(parts, 0).unwrap();
        received += 1;
    }
    sender.stop(Duration::from_secs(1));
    let acked = acked.lock().unwrap();
    let mut uids = acked.clone();
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), 30, "{acked:?}");
    assert!(received >= 20, "the restarted peer got {received} requests");
}

/// A REP, as the reference driver binds: one request at a time, each answered `ACK`.
const PY_REP: &str = r#"
import sys, time, zmq
total = int(sys.argv[1])
ctx = zmq.Context()
r = ctx.socket(zmq.REP)
r.linger = 0
port = r.bind_to_random_port("tcp://127.0.0.1")
print(f"tcp://127.0.0.1:{port}", flush=True)
bodies, frames = set(), set()
end = time.monotonic() + 60
while len(bodies) < total and time.monotonic() < end:
    if not r.poll(100):
        continue
    msg = r.recv_multipart()
    frames.add(len(msg))
    bodies.add(msg[-1])
    r.send(b"ACK")
print(f"received={len(bodies)}", flush=True)
print(f"frames={sorted(frames)}", flush=True)
"#;

#[test]
fn a_rep_peer_like_the_reference_driver_gets_every_result() {
    let (peer, endpoint) = PyPeer::start(PY_REP, &["100"]);
    let ctx = zmq::Context::new();
    let (sender, acked) = started(&ctx, endpoint, 16, Duration::from_secs(20));
    let queue = sender.queue();
    for n in 0..100 {
        queue.send(entry(n));
    }
    wait_until("100 acks", || acked.lock().unwrap().len() == 100);
    let report = peer.report();
    sender.stop(Duration::from_secs(1));
    assert_eq!(report["received"], "100");
    // The REP hands its application the body alone, as the reference driver reads it.
    assert_eq!(report["frames"], "[1]");
    let mut uids = acked.lock().unwrap().clone();
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), 100);
}
