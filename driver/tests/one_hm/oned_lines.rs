//! The MAD side: handshake, garbage on stdin, shutdown paths, start-up failures.

use std::process::{Command, Stdio};

use nix::sys::signal::Signal;

use crate::fixture::*;

#[test]
fn init_reply_is_the_first_bytes_on_stdout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut driver = Driver::start(dir.path(), &[]);
    // Events before INIT are published and journaled, but nothing is written before the reply.
    driver.send(&execute(&api_event("one.vm.allocate", true, "x")));
    driver.send(&execute(&encode(
        "<HOOK_MESSAGE><HOOK_TYPE>API</HOOK_TYPE></HOOK_MESSAGE>",
    )));
    driver.send("INIT");
    assert_eq!(driver.next_line(), "INIT SUCCESS - -");
    assert_eq!(
        driver.next_line(),
        "LOG E 0 Event not published: API HOOK_MESSAGE has no CALL element"
    );
    driver.close_stdin();
    assert!(driver.wait().success());
}

#[test]
fn garbage_on_stdin_is_logged_and_survived() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut driver = Driver::start(dir.path(), &[]);
    driver.init();
    let sub = subscriber(&mut driver, 4, &["EVENT"]);
    driver.send("BOGUS line from nowhere");
    driver.send("");
    driver.send_bytes(b"\xff\xfe\x00 binary\n");
    driver.send("EXECUTE  -1");
    driver.send("RETRY");
    // Not base64 and not XML: published under the bare key, as the reference does.
    driver.send("EXECUTE  -1 !!!not-base64!!!");
    let missing = encode(
        "<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>VM</HOOK_OBJECT><STATE>ACTIVE</STATE></HOOK_MESSAGE>",
    );
    driver.send(&execute(&missing));
    let huge = "A".repeat(3 * 1024 * 1024);
    driver.send(&execute(&huge));
    // Garbage XML: unknown type.
    driver.send(&execute(&encode("<<<not xml>>>")));
    let good = vm_event(5, "ACTIVE", "RUNNING", None, 0);
    driver.send(&execute(&good));

    assert_eq!(
        driver.next_line(),
        "LOG E 0 EXECUTE message without a payload"
    );
    assert_eq!(
        driver.next_line(),
        "LOG E 0 RETRY message without a payload"
    );
    assert_eq!(
        driver.next_line(),
        "LOG E 0 Event not published: STATE HOOK_MESSAGE has no LCM_STATE element"
    );
    let got: Vec<Received> = sub.finish().iter().map(|l| received(l)).collect();
    let keys: Vec<String> = got
        .iter()
        .map(|g| g.key.rsplit_once(" #").expect("token").0.to_owned())
        .collect();
    assert_eq!(
        keys,
        ["EVENT", "EVENT", "EVENT", "EVENT VM 5/ACTIVE/RUNNING"]
    );
    assert_eq!(got[0].content, "!!!not-base64!!!");
    assert_eq!(got[1].content.len(), huge.len());
    assert_eq!(got[3].content, good);
    driver.send("FINALIZE");
    assert!(driver.wait().success());
    let log = driver.stderr();
    assert!(log.contains("undefined message from oned ignored"), "{log}");
    assert!(log.contains("BOGUS line from nowhere"));
}

#[test]
fn finalize_eof_and_sigterm_stop_cleanly_with_everything_journaled() {
    let dir = tempfile::tempdir().expect("tempdir");
    type Stop = (&'static str, fn(&mut Driver));
    let stops: [Stop; 3] = [
        ("FINALIZE", |d| d.send("FINALIZE")),
        ("EOF", |d| d.close_stdin()),
        ("SIGTERM", |d| d.signal(Signal::SIGTERM)),
    ];
    let mut sent = Vec::new();
    for (round, (name, stop)) in stops.iter().enumerate() {
        let mut driver = Driver::start(dir.path(), &[]);
        driver.init();
        for i in 0..5 {
            let content = api_event("one.vm.deploy", true, &format!("{name}-{i}"));
            driver.send(&execute(&content));
            sent.push(content);
        }
        // The events are journaled before the stop is handled: FINALIZE and EOF come after
        // them on stdin, and SIGTERM is only sent once the journal shows them.
        if *name == "SIGTERM" {
            let (events, _, _) = replay_all(&driver.endpoints.replay, 0, 1000);
            assert_eq!(events.len(), sent.len());
        }
        stop(&mut driver);
        let status = driver.wait();
        assert!(status.success(), "{name}: {status}");
        assert!(driver.rest_of_stdout().is_empty(), "{name}");
        assert!(
            driver.stderr().contains("one_hm stopped"),
            "round {round} ({name}) did not stop cleanly"
        );
    }
    let driver = Driver::start(dir.path(), &[]);
    let (events, oldest, head) = replay_all(&driver.endpoints.replay, 0, 4);
    assert_eq!((oldest, head), (1, 15));
    let contents: Vec<&str> = events.iter().map(|e| e.content.as_str()).collect();
    assert_eq!(
        contents,
        sent.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=15).collect::<Vec<_>>());
}

#[test]
fn runs_with_stderr_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut driver = Driver::start_without_stderr(dir.path(), &[]);
    driver.init();
    let sub = subscriber(&mut driver, 1, &["EVENT VM"]);
    let content = vm_event(8, "ACTIVE", "RUNNING", None, 0);
    driver.send(&execute(&content));
    let got = received(&sub.finish()[0]);
    assert_eq!(got.content, content);
    driver.send("FINALIZE");
    assert!(driver.wait().success());
    // The journal was not written over by log lines.
    let driver = Driver::start(dir.path(), &[]);
    let (events, _, head) = replay_all(&driver.endpoints.replay, 0, 100);
    assert_eq!(events.len() as u64, head);
    assert_eq!(
        events.last().map(|e| e.content.as_str()),
        Some(content.as_str())
    );
}

#[test]
fn bad_flags_and_busy_ports_exit_255_before_init() {
    let dir = tempfile::tempdir().expect("tempdir");
    let binary = env!("CARGO_BIN_EXE_one_hm");
    for args in [
        vec!["--bogus"],
        vec!["-p", "notaport"],
        vec!["--journal-retention", "7w"],
    ] {
        let out = Command::new(binary)
            .args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run one_hm");
        assert_eq!(out.status.code(), Some(255), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let first = Driver::start(dir.path(), &[]);
    let port = first
        .endpoints
        .publisher
        .rsplit_once(':')
        .expect("port")
        .1
        .to_owned();
    let out = Command::new(binary)
        .args([
            "-p",
            &port,
            "-l",
            "0",
            "--replay-port",
            "0",
            "--journal",
            "other.db",
        ])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .output()
        .expect("run one_hm");
    assert_eq!(out.status.code(), Some(255));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Failed to bind publisher socket to tcp://127.0.0.1:"),
        "{stderr}"
    );
}

#[test]
fn one_argument_with_all_flags_is_split_like_the_reference_wrapper() {
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoints = dir.path().join("ep");
    let args = format!(
        "-p 0 -l 0 --replay-port 0 --journal j.db --endpoints-file {}",
        endpoints.display()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_one_hm"))
        .arg(args)
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run one_hm");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"INIT\nFINALIZE\n").expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    assert_eq!(out.stdout, b"INIT SUCCESS - -\n");
    assert!(endpoints.exists());
    assert!(dir.path().join("j.db").exists());
}
