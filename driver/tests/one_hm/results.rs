//! The results socket with a Python REQ client, and with a DEALER like the HEM's.

use serde_json::json;

use crate::fixture::*;

#[test]
fn results_are_acked_then_forwarded_in_order_and_duplicates_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut driver = Driver::start(dir.path(), &[]);
    driver.init();
    let ok = result_body("/bin/true", 0, Some("uid-1"));
    let failed = result_body("/bin/false", 1, None);
    let killed = result_body("/bin/sleep 9", -1, Some("uid-2"));
    let last = result_body("/bin/echo", 0, None);
    let replies = request(
        &driver.endpoints.logger,
        &[
            json!([format!("0 3 {ok}")]),
            json!([format!("1 4 {failed}")]),
            json!([format!("-1 5 {killed}")]),
            // The same execution sent again (a sender that lost the first ACK).
            json!([format!("0 3 {ok}")]),
            json!([format!("0 6 {last}")]),
        ],
    );
    assert_eq!(replies, vec![vec!["ACK".to_owned()]; 5]);
    assert_eq!(driver.next_line(), format!("EXECUTE SUCCESS 3 0 {ok}"));
    assert_eq!(driver.next_line(), format!("EXECUTE FAILURE 4 1 {failed}"));
    assert_eq!(driver.next_line(), format!("EXECUTE FAILURE 5 -1 {killed}"));
    // The duplicate was acknowledged but not forwarded: the next line is the last result.
    assert_eq!(driver.next_line(), format!("EXECUTE SUCCESS 6 0 {last}"));
    driver.send("FINALIZE");
    assert!(driver.wait().success());
    assert!(driver.rest_of_stdout().is_empty());
    assert!(driver.stderr().contains("duplicate result acknowledged"));
}

#[test]
fn malformed_results_are_answered_logged_and_not_forwarded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut driver = Driver::start(dir.path(), &[]);
    driver.init();
    let good = result_body("/bin/true", 0, None);
    let malformed = [
        json!([""]),
        json!(["garbage"]),
        json!([format!("abc 3 {good}")]),
        json!([format!("12x 3 {good}")]),
        json!([format!("0 -3 {good}")]),
        json!(["0 3 not-base64!"]),
        json!([format!("0 3 {good} extra")]),
        json!(["0", "3", good.clone()]),
        json!([{"hex": "fffe00ff"}]),
    ];
    let mut requests = malformed.to_vec();
    requests.push(json!([format!("0 7 {good}")]));
    let replies = request(&driver.endpoints.logger, &requests);
    assert_eq!(replies.len(), requests.len(), "every request got a reply");
    for (reply, sent) in replies.iter().zip(&malformed) {
        assert_eq!(reply.len(), 1, "one reply frame for {sent}");
        assert!(reply[0].starts_with("ERR "), "{sent} answered {reply:?}");
    }
    assert_eq!(replies.last(), Some(&vec!["ACK".to_owned()]));
    // Nothing malformed reached oned: the first result line is the good one.
    assert_eq!(driver.next_line(), format!("EXECUTE SUCCESS 7 0 {good}"));
    driver.send("FINALIZE");
    assert!(driver.wait().success());
    assert!(driver.rest_of_stdout().is_empty());
    let log = driver.stderr();
    assert_eq!(
        log.matches("malformed result refused").count(),
        malformed.len()
    );
    assert!(
        log.contains(r#"return code "abc" is not an integer"#),
        "{log}"
    );
    assert!(log.contains("result body is not strict base64"));
}

#[test]
fn results_stored_before_a_stop_are_forwarded_after_the_next_init() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = result_body("/bin/true", 0, None);
    let second = result_body("/bin/false", 2, None);
    {
        // No INIT: nothing may be written to oned, but results are stored and ACKed.
        let mut driver = Driver::start(dir.path(), &[]);
        let replies = request(
            &driver.endpoints.logger,
            &[
                json!([format!("0 1 {first}")]),
                json!([format!("2 2 {second}")]),
            ],
        );
        assert_eq!(replies, vec![vec!["ACK".to_owned()]; 2]);
        driver.close_stdin();
        assert!(driver.wait().success());
        assert!(driver.rest_of_stdout().is_empty());
    }
    {
        let mut driver = Driver::start(dir.path(), &[]);
        driver.init();
        assert_eq!(driver.next_line(), format!("EXECUTE SUCCESS 1 0 {first}"));
        assert_eq!(driver.next_line(), format!("EXECUTE FAILURE 2 2 {second}"));
        driver.send("FINALIZE");
        assert!(driver.wait().success());
        assert!(driver.rest_of_stdout().is_empty());
    }
    {
        // Forwarded results are not forwarded again.
        let mut driver = Driver::start(dir.path(), &[]);
        driver.init();
        let third = result_body("/bin/echo", 0, None);
        let replies = request(&driver.endpoints.logger, &[json!([format!("0 9 {third}")])]);
        assert_eq!(replies, vec![vec!["ACK".to_owned()]]);
        assert_eq!(driver.next_line(), format!("EXECUTE SUCCESS 9 0 {third}"));
        driver.send("FINALIZE");
        assert!(driver.wait().success());
    }
}

#[test]
fn concurrent_senders_are_all_acked_and_forwarded_in_their_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut driver = Driver::start(dir.path(), &[]);
    driver.init();
    let senders = 4;
    let per_sender = 50;
    let mut peers = Vec::new();
    for s in 0..senders {
        let mut peer = Peer::start("req.py", &[&driver.endpoints.logger]);
        for i in 0..per_sender {
            let body = result_body(&format!("/bin/s{s}-r{i}"), 0, Some(&format!("u{s}-{i}")));
            peer.send(&json!([format!("0 {s} {body}")]).to_string());
        }
        peers.push(peer);
    }
    for peer in peers {
        let replies = peer.finish();
        assert_eq!(replies.len(), per_sender);
        assert!(replies.iter().all(|r| r == r#"["ACK"]"#), "{replies:?}");
    }
    let mut next = vec![0; senders];
    for _ in 0..senders * per_sender {
        let line = driver.next_line();
        let words: Vec<&str> = line.split(' ').collect();
        assert_eq!(words[..2], ["EXECUTE", "SUCCESS"], "{line}");
        let s: usize = words[2].parse().expect("hook id");
        let body = words[4];
        assert_eq!(
            body,
            result_body(
                &format!("/bin/s{s}-r{}", next[s]),
                0,
                Some(&format!("u{s}-{}", next[s]))
            ),
            "sender {s} out of order"
        );
        next[s] += 1;
    }
    assert_eq!(next, vec![per_sender; senders]);
    driver.send("FINALIZE");
    assert!(driver.wait().success());
    assert!(driver.rest_of_stdout().is_empty());
}

/// Result lines up to the next `FORWARDED` marker: `(results, marker id)`.
fn results_until_marker(driver: &Driver) -> (Vec<String>, u64) {
    let mut results = Vec::new();
    loop {
        let line = driver.next_line();
        if let Some(id) = one_proto::mad::parse_forwarded_line(&line) {
            return (results, id);
        }
        assert!(line.starts_with("EXECUTE "), "unexpected line {line:?}");
        results.push(line);
    }
}

#[test]
fn results_a_front_end_did_not_acknowledge_are_forwarded_again_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bodies: Vec<String> = (1..=4)
        .map(|i| result_body("/bin/true", 0, Some(&format!("uid-{i}"))))
        .collect();
    let line = |i: usize| format!("EXECUTE SUCCESS {i} 0 {}", bodies[i - 1]);
    {
        let mut driver = Driver::start(dir.path(), &[]);
        // The announcement comes before INIT; the INIT reply is still the first line.
        driver.send("STORED  0 -");
        driver.init();
        let replies = request(
            &driver.endpoints.logger,
            &(1..=3)
                .map(|i| json!([format!("0 {i} {}", bodies[i - 1])]))
                .collect::<Vec<_>>(),
        );
        assert_eq!(replies, vec![vec!["ACK".to_owned()]; 3]);
        let mut written = Vec::new();
        let mut marker = 0;
        while written.len() < 3 {
            let (lines, id) = results_until_marker(&driver);
            assert!(id > marker, "markers grow");
            written.extend(lines);
            marker = id;
        }
        assert_eq!(written, [line(1), line(2), line(3)]);
        // The front-end stored the first one only, then went away (kill -9: the pipes close).
        driver.send("STORED  1 -");
        driver.close_stdin();
        assert!(driver.wait().success());
    }
    {
        let mut driver = Driver::start(dir.path(), &[]);
        driver.send("STORED  0 -");
        driver.init();
        let (again, _) = results_until_marker(&driver);
        assert_eq!(
            again,
            [line(2), line(3)],
            "the unacknowledged ones, in order"
        );
        let replies = request(
            &driver.endpoints.logger,
            &[json!([format!("0 4 {}", bodies[3])])],
        );
        assert_eq!(replies, vec![vec!["ACK".to_owned()]]);
        let (new, marker) = results_until_marker(&driver);
        assert_eq!(new, [line(4)]);
        driver.send(&format!("STORED  {marker} -"));
        driver.send("FINALIZE");
        assert!(driver.wait().success());
    }
    {
        // A front-end that does not announce itself (the reference oned) gets no marker, and
        // what the previous one acknowledged is not written again.
        let mut driver = Driver::start(dir.path(), &[]);
        driver.init();
        let fifth = result_body("/bin/true", 0, Some("uid-5"));
        let replies = request(&driver.endpoints.logger, &[json!([format!("0 5 {fifth}")])]);
        assert_eq!(replies, vec![vec!["ACK".to_owned()]]);
        assert_eq!(driver.next_line(), format!("EXECUTE SUCCESS 5 0 {fifth}"));
        driver.send("FINALIZE");
        assert!(driver.wait().success());
        assert!(driver.rest_of_stdout().is_empty());
    }
}

#[test]
fn a_dealer_with_many_results_in_flight_gets_each_reply_under_its_request_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut driver = Driver::start(dir.path(), &[]);
    driver.init();
    let bodies = [
        result_body("/bin/true", 0, Some("uid-a")),
        result_body("/bin/false", 1, Some("uid-b")),
        result_body("/bin/echo", 0, Some("uid-c")),
    ];
    // The HEM's sender: one DEALER, every request as [request id, empty, frame], all sent
    // before any reply is read; the last one resends the first result under a new id.
    let ctx = zmq::Context::new();
    let dealer = ctx.socket(zmq::DEALER).unwrap();
    dealer.set_linger(0).unwrap();
    dealer.connect(&driver.endpoints.logger).unwrap();
    let frames = [
        (b"id-1", format!("0 3 {}", bodies[0])),
        (b"id-2", format!("1 4 {}", bodies[1])),
        (b"id-3", format!("0 5 {}", bodies[2])),
        (b"id-4", format!("0 3 {}", bodies[0])),
    ];
    for (id, frame) in &frames {
        dealer
            .send_multipart([&id[..], b"", frame.as_bytes()], 0)
            .unwrap();
    }
    let mut replies = Vec::new();
    while replies.len() < frames.len() {
        assert!(
            dealer.poll(zmq::POLLIN, 30_000).unwrap() > 0,
            "replies missing after {replies:?}"
        );
        replies.push(dealer.recv_multipart(0).unwrap());
    }
    replies.sort();
    let expected: Vec<Vec<Vec<u8>>> = frames
        .iter()
        .map(|(id, _)| vec![id.to_vec(), vec![], b"ACK".to_vec()])
        .collect();
    assert_eq!(
        replies, expected,
        "each reply carries its request's envelope"
    );
    assert_eq!(
        driver.next_line(),
        format!("EXECUTE SUCCESS 3 0 {}", bodies[0])
    );
    assert_eq!(
        driver.next_line(),
        format!("EXECUTE FAILURE 4 1 {}", bodies[1])
    );
    assert_eq!(
        driver.next_line(),
        format!("EXECUTE SUCCESS 5 0 {}", bodies[2])
    );
    driver.send("FINALIZE");
    assert!(driver.wait().success());
    // The resend was acknowledged and not forwarded again.
    assert!(driver.rest_of_stdout().is_empty());
    assert!(driver.stderr().contains("duplicate result acknowledged"));
}
