//! The journal across kill -9, restarts and retention.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use crate::fixture::*;

#[test]
fn kill_9_during_a_stream_loses_nothing_that_was_journaled_or_published() {
    let dir = tempfile::tempdir().expect("tempdir");
    let total = 20_000;
    let sent: Vec<String> = (0..total)
        .map(|i| api_event("one.vm.action", true, &format!("resume-{i}")))
        .collect();
    let mut driver = Driver::start(dir.path(), &[]);
    driver.init();
    let sub = subscriber(&mut driver, usize::MAX >> 1, &["EVENT API one.vm.action"]);

    // A writer streams the events while the test kills the driver halfway through.
    let mut stdin = driver.take_stdin();
    let lines: Vec<String> = sent.iter().map(|c| execute(c)).collect();
    let writer = std::thread::spawn(move || {
        let mut written = 0usize;
        for line in &lines {
            if stdin.write_all(format!("{line}\n").as_bytes()).is_err() {
                break;
            }
            written += 1;
        }
        written
    });
    // Wait until the driver has published a good part of the stream, then kill it.
    let mut live: Vec<Received> = Vec::new();
    while live.len() < total / 4 {
        live.push(received(&sub.next_line()));
    }
    driver.kill9();
    let written = writer.join().expect("writer");
    assert!(written > total / 4);
    // Whatever else the subscriber got before the kill.
    while let Some(line) = sub.try_line(Duration::from_millis(500)) {
        live.push(received(&line));
    }
    drop(sub);

    let mut driver = Driver::start(dir.path(), &[]);
    let (events, oldest, head) = replay_all(&driver.endpoints.replay, 0, 1000);
    eprintln!(
        "kill -9 after {written} of {total} lines written, {} received live, {head} journaled",
        live.len()
    );
    assert_eq!(oldest, 1);
    assert_eq!(events.len() as u64, head, "no gap");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1, "sequence without gap or duplicate");
    }
    // The journal is the stream in oned's order: probes first, then a prefix of the events.
    let journaled: Vec<&Replayed> = events
        .iter()
        .filter(|e| e.keys[0].starts_with("EVENT API one.vm.action "))
        .collect();
    assert!(journaled.len() >= live.len());
    for (e, content) in journaled.iter().zip(&sent) {
        assert_eq!(&e.content, content);
    }
    // Every event a subscriber saw was journaled first, under the same sequence number.
    let by_seq: HashMap<u64, &Replayed> = events.iter().map(|e| (e.seq, e)).collect();
    for r in &live {
        let seq: u64 = r
            .key
            .rsplit_once('#')
            .expect("token")
            .1
            .parse()
            .expect("seq");
        let e = by_seq.get(&seq).expect("published event is in the journal");
        assert_eq!(e.content, r.content);
        assert_eq!(e.keys, std::slice::from_ref(&r.key));
    }

    // Numbering continues after the restart.
    driver.init();
    let next = api_event("one.vm.action", true, "after-restart");
    driver.send(&execute(&next));
    driver.send("FINALIZE");
    assert!(driver.wait().success());
    let driver = Driver::start(dir.path(), &[]);
    let (events, _, new_head) = replay_all(&driver.endpoints.replay, head, 1000);
    assert_eq!(new_head, head + 1);
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].seq, events[0].content.as_str()),
        (head + 1, next.as_str())
    );
}

#[test]
fn retention_trims_the_oldest_events_and_replay_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut driver = Driver::start(dir.path(), &["--journal-retention", "100"]);
    driver.init();
    let sent: Vec<String> = (0..250)
        .map(|i| host_event(i, "MONITORED", &format!("node{i}")))
        .collect();
    for content in &sent {
        driver.send(&execute(content));
    }
    // Trimming runs once a second; wait for it to reach the limit.
    let (events, oldest, head) = replay_with(
        &driver.endpoints.replay,
        &["100", "1000", "--wait-oldest", "151"],
    );
    assert_eq!((oldest, head), (151, 250));
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (151..=250).collect::<Vec<_>>());
    let contents: Vec<&str> = events.iter().map(|e| e.content.as_str()).collect();
    assert_eq!(
        contents,
        sent[150..].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(
        events[0].keys,
        [
            "EVENT HOST 150/MONITORED/ #151",
            "EVENT STATE HOST/MONITORED//150 #151"
        ]
    );
    driver.send("FINALIZE");
    assert!(driver.wait().success());
}

/// A front-end that numbers its events (delivery acknowledgement, `one_proto::mad`): the driver
/// acknowledges what it journaled, and after a kill -9 the front-end sends again everything it
/// holds; every event ends in the journal exactly once.
#[test]
fn acknowledged_delivery_survives_kill_9_without_loss_or_duplicate() {
    use one_proto::mad::{oned_execute_line_with_id, parse_journaled_line};
    let dir = tempfile::tempdir().expect("tempdir");
    let total: u64 = 3_000;
    let sent: Vec<String> = (1..=total)
        .map(|i| api_event("one.vm.action", true, &format!("ack-{i}")))
        .collect();
    let lines: Vec<String> = sent
        .iter()
        .zip(1..)
        .map(|(c, id)| oned_execute_line_with_id(id, c))
        .collect();

    let mut driver = Driver::start(dir.path(), &[]);
    driver.init();
    let mut stdin = driver.take_stdin();
    let first = lines.clone();
    let writer = std::thread::spawn(move || {
        for line in &first {
            if stdin.write_all(format!("{line}\n").as_bytes()).is_err() {
                break;
            }
        }
    });
    // Acknowledgements only grow; kill the driver once a third is acknowledged.
    let mut acked = 0;
    while acked < total / 3 {
        let line = driver.next_line();
        let id = parse_journaled_line(&line).unwrap_or_else(|| panic!("not an ack: {line}"));
        assert!(id > acked, "acknowledgements go forward");
        acked = id;
    }
    driver.kill9();
    writer.join().expect("writer");

    // The front-end sends everything again, acknowledged or not.
    let mut driver = Driver::start(dir.path(), &[]);
    driver.init();
    for line in &lines {
        driver.send(line);
    }
    // The first driver may have acknowledged everything before the kill; this one still
    // acknowledges what it was sent (redeliveries included), last of all the last line.
    let mut acked = 0;
    while acked < total {
        let line = driver.next_line();
        acked = parse_journaled_line(&line).unwrap_or_else(|| panic!("not an ack: {line}"));
    }
    assert_eq!(acked, total);
    // A front-end whose ids started over: id 1 again, with new content, is a new event.
    let fresh = api_event("one.vm.action", true, "fresh-1");
    driver.send(&oned_execute_line_with_id(1, &fresh));
    assert_eq!(parse_journaled_line(&driver.next_line()), Some(1));
    driver.send("FINALIZE");
    assert!(driver.wait().success());

    let driver = Driver::start(dir.path(), &[]);
    let (events, _, head) = replay_all(&driver.endpoints.replay, 0, 1000);
    let contents: Vec<&str> = events.iter().map(|e| e.content.as_str()).collect();
    let mut want: Vec<&str> = sent.iter().map(String::as_str).collect();
    want.push(fresh.as_str());
    assert_eq!(contents, want, "every event once, in order");
    assert_eq!(head, total + 1);
    let log = driver.stderr();
    assert!(
        log.contains("redelivered events already journaled, dropped"),
        "{log}"
    );
}
