//! Reference subscribers (pyzmq, the reference's filters) against the real driver.

use one_proto::keys::with_seq;

use crate::fixture::*;

/// The events of the test, each with its content on the bus and its reference keys (§5.3).
fn events() -> Vec<(String, String, Vec<&'static str>)> {
    let e = |line: String, content: String, keys: Vec<&'static str>| (line, content, keys);
    let api_ok = api_event("one.vm.allocate", true, "NAME=a");
    let api_fail = api_event("one.vm.allocate", false, "NAME=b");
    let vm = vm_event(42, "PENDING", "LCM_INIT", Some(4), 0);
    let vm412 = vm_event(412, "PENDING", "LCM_INIT", None, 0);
    let host = host_event(3, "ERROR", "node1");
    let image = image_event(7, "READY");
    let updateconf = api_event("one.vm.updateconf", true, "x");
    let again = retry_event(3, "PFZNPjwvVk0+ pending", Some("node1"));
    vec![
        e(
            execute(&api_ok),
            api_ok.clone(),
            vec!["EVENT API one.vm.allocate 1"],
        ),
        e(
            execute(&api_fail),
            api_fail.clone(),
            vec!["EVENT API one.vm.allocate 0"],
        ),
        e(
            execute(&vm),
            vm.clone(),
            vec![
                "EVENT VM 42/PENDING/LCM_INIT ",
                "EVENT STATE VM/PENDING/LCM_INIT/42 ",
                "EVENT SERVICE 4 ",
            ],
        ),
        e(
            execute(&vm412),
            vm412.clone(),
            vec![
                "EVENT VM 412/PENDING/LCM_INIT ",
                "EVENT STATE VM/PENDING/LCM_INIT/412 ",
            ],
        ),
        e(
            execute(&host),
            host.clone(),
            vec!["EVENT HOST 3/ERROR/ ", "EVENT STATE HOST/ERROR//3 "],
        ),
        e(
            execute(&image),
            image.clone(),
            vec!["EVENT IMAGE 7/READY/ ", "EVENT STATE IMAGE/READY//7 "],
        ),
        e(
            execute(&updateconf),
            updateconf.clone(),
            vec!["EVENT API one.vm.updateconf 1"],
        ),
        // The retry content keeps the reference's trailing space.
        e(retry(&again), format!("{again} "), vec!["RETRY"]),
    ]
}

/// What a subscriber with `filters` must receive: (event index, reference key, content).
fn expected(filters: &[&str]) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    for (i, (_, content, keys)) in events().into_iter().enumerate() {
        for key in keys {
            if filters.iter().any(|f| key.starts_with(f)) {
                out.push((i, key.to_owned(), content.clone()));
            }
        }
    }
    out
}

#[test]
fn reference_filters_receive_exactly_the_reference_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut driver = Driver::start(dir.path(), &[]);
    driver.init();
    // The seed's "Subscriber Script Example" subscribes to EVENT; the HEM to its static reload
    // filters, one filter per hook and RETRY (§5.4).
    let seed_filters = ["EVENT"];
    let hem_filters = [
        "EVENT API one.hook.allocate 1",
        "EVENT API one.vm.allocate",
        "EVENT STATE VM/PENDING/LCM_INIT",
        "EVENT STATE HOST/ERROR/",
        "EVENT STATE IMAGE/READY/",
        "RETRY",
    ];
    let seed_expected = expected(&seed_filters);
    let hem_expected = expected(&hem_filters);
    assert_eq!(seed_expected.len(), 12);
    assert_eq!(hem_expected.len(), 7);
    let seed = subscriber(&mut driver, seed_expected.len(), &seed_filters);
    let hem = subscriber(&mut driver, hem_expected.len(), &hem_filters);

    for (line, _, _) in events() {
        driver.send(&line);
    }

    let mut first_seq = None;
    for (sub, expected) in [(seed, seed_expected), (hem, hem_expected)] {
        let got: Vec<Received> = sub.finish().iter().map(|l| received(l)).collect();
        assert_eq!(got.len(), expected.len());
        // All keys of one event share its sequence number, and events are numbered in order.
        let base = *first_seq.get_or_insert_with(|| {
            let token = got[0].key.rsplit_once('#').expect("token").1;
            token.parse::<u64>().expect("seq")
        });
        for (g, (index, key, content)) in got.iter().zip(expected) {
            assert_eq!(
                g.key,
                with_seq(&key, base + index as u64),
                "key of event {index}"
            );
            assert!(g.key.starts_with(&key), "the reference key is a prefix");
            assert_eq!(g.content, content, "content of event {index}");
        }
    }
    driver.send("FINALIZE");
    assert!(driver.wait().success());
}

#[test]
fn no_sequence_publishes_the_bare_reference_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut driver = Driver::start(dir.path(), &["--no-sequence"]);
    driver.init();
    let all = expected(&["EVENT", "RETRY"]);
    let sub = subscriber(&mut driver, all.len(), &["EVENT", "RETRY"]);
    for (line, _, _) in events() {
        driver.send(&line);
    }
    let got: Vec<Received> = sub.finish().iter().map(|l| received(l)).collect();
    let keys: Vec<&str> = got.iter().map(|g| g.key.as_str()).collect();
    let want: Vec<&str> = all.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(keys, want);
    // Replay still numbers every pair.
    let (replayed, _, head) = replay_all(&driver.endpoints.replay, 0, 100);
    assert_eq!(replayed.len() as u64, head);
    let last = replayed.last().expect("events");
    assert_eq!(last.keys, [with_seq("RETRY", head)]);
    driver.close_stdin();
    assert!(driver.wait().success());
}

#[test]
fn replay_recovers_what_the_high_water_mark_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut driver = Driver::start(dir.path(), &["--hwm", "1"]);
    driver.init();
    let endpoints = driver.endpoints.clone();
    let mut sub = Peer::start("gap_sub.py", &[&endpoints.publisher, &endpoints.replay]);
    assert_eq!(sub.next_line(), "READY");
    let probes = sync(&mut driver, &sub, "SYNCED");
    // The subscriber stopped reading: its queues (1 message each side, a 4 KiB socket buffer)
    // overflow long before these ~20 MB are through, so the PUB socket drops messages.
    let mut sent = Vec::new();
    for i in 0..2_000 {
        let content = vm_event(i, "ACTIVE", "RUNNING", None, 8_000);
        driver.send(&execute(&content));
        sent.push(content);
    }
    let total = probes + sent.len() as u64;
    sub.send(&format!("GO {total}"));
    let lines = sub.finish();
    let (summary, events) = lines.split_last().expect("output");
    let summary: serde_json::Value = serde_json::from_str(summary).expect("summary");
    assert_eq!(events.len() as u64, total);
    for (n, line) in events.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).expect("event");
        assert_eq!(
            v["seq"].as_u64(),
            Some(n as u64 + 1),
            "events in order, none missing"
        );
        if let Some(i) = (n as u64).checked_sub(probes) {
            assert_eq!(v["content"].as_str(), Some(sent[i as usize].as_str()));
        }
    }
    eprintln!("gap recovery: {summary}");
    assert!(
        summary["gaps"].as_u64() > Some(0),
        "the high-water mark dropped nothing: {summary}"
    );
    assert!(summary["live"].as_u64() > Some(0), "{summary}");
    assert!(summary["replayed"].as_u64() > Some(0), "{summary}");
    driver.send("FINALIZE");
    assert!(driver.wait().success());
}
