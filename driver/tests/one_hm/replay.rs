//! The replay socket answers every request, even one it cannot read, and keeps serving: a REQ
//! peer left without an answer could send nothing more.

use serde_json::json;

use crate::fixture::*;

/// On one REQ socket: an 8 KiB request, a large binary one, two requests of several frames,
/// binary garbage and an empty frame, each answered with one `ERR` frame; then `REPLAY 0 10`,
/// whose reply frames are returned.
pub fn bad_requests_are_refused_then_replay_works(endpoint: &str) -> Vec<String> {
    let oversized = format!("REPLAY 0 10 {}", "x".repeat(8 * 1024));
    let bad = [
        (
            json!([oversized]),
            "ERR request of 8204 bytes is over the limit of 4096",
        ),
        (
            json!([{"hex": "ab".repeat(100 * 1024)}]),
            "ERR request of 102400 bytes is over the limit of 4096",
        ),
        (
            json!(["REPLAY 0 10", "REPLAY 0 10"]),
            "ERR expected one frame, got 2",
        ),
        (
            json!([oversized, "", {"hex": "00ff"}]),
            "ERR expected one frame, got 3",
        ),
        (
            json!([{"hex": "fffe00ff0a52455041"}]),
            "ERR malformed replay frame: frame is not text",
        ),
        (
            json!([""]),
            "ERR malformed replay frame: expected REPLAY <after> <max>",
        ),
    ];
    let mut requests: Vec<serde_json::Value> = bad.iter().map(|(r, _)| r.clone()).collect();
    requests.push(json!(["REPLAY 0 10"]));
    let mut replies = request(endpoint, &requests);
    assert_eq!(replies.len(), requests.len(), "every request got a reply");
    let valid = replies.pop().expect("the valid request's reply");
    for (reply, (_, expected)) in replies.iter().zip(&bad) {
        assert_eq!(reply, &[expected.to_string()]);
    }
    valid
}

#[test]
fn every_replay_request_is_answered_and_the_socket_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut driver = Driver::start(dir.path(), &[]);
    driver.init();
    let sent: Vec<String> = (0..3)
        .map(|i| api_event("one.vm.deploy", true, &format!("vm-{i}")))
        .collect();
    for (id, content) in (1..).zip(&sent) {
        driver.send(&one_proto::mad::oned_execute_line_with_id(id, content));
    }
    // Acknowledgements are cumulative: the last one says all three are journaled.
    let journaled = (0..3).any(|_| driver.next_line() == "JOURNALED SUCCESS 3 -");
    assert!(journaled, "the events were not journaled");

    let reply = bad_requests_are_refused_then_replay_works(&driver.endpoints.replay);
    assert_eq!(reply[0], "OK 1 3 3");
    let contents: Vec<&String> = reply[1..].iter().skip(1).step_by(2).collect();
    assert_eq!(contents, sent.iter().collect::<Vec<_>>());
    assert_eq!(
        reply[1..].iter().step_by(2).cloned().collect::<Vec<_>>(),
        [
            "EVENT API one.vm.deploy 1 #1",
            "EVENT API one.vm.deploy 1 #2",
            "EVENT API one.vm.deploy 1 #3"
        ]
    );
    // Still serving, and each refusal was logged.
    let (events, _, head) = replay_all(&driver.endpoints.replay, 0, 2);
    assert_eq!((events.len(), head), (3, 3));
    driver.send("FINALIZE");
    assert!(driver.wait().success());
    assert_eq!(driver.stderr().matches("replay request refused").count(), 6);
}
