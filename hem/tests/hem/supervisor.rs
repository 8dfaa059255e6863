//! The hook supervisor process (`onehem-server --supervisor`) on its socket, driven frame by
//! frame: bad frames close only their connection, an execution that outlives its connection is
//! reported to the next one without running twice, TIMEOUT is enforced, and `Bye` ends it.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use onehem_server::supervisor::frame::{FromSupervisor, SpawnRequest, ToSupervisor};

use crate::local_executor::live_group_members;

/// The supervisor process; killed if the test fails.
struct Supervisor {
    child: Child,
    socket: PathBuf,
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path) -> Supervisor {
    let socket = dir.join("hem.db.hooks.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_onehem-server"))
        .args(["--supervisor", "--linger", "30", "--socket"])
        .arg(&socket)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("supervisor.log")).unwrap())
        .spawn()
        .expect("start the supervisor");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    Supervisor { child, socket }
}

fn connect(s: &Supervisor) -> UnixStream {
    let stream = UnixStream::connect(&s.socket).unwrap();
    // A bound on each read: a hang fails the test instead of blocking it.
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

fn send(stream: &mut UnixStream, frame: &ToSupervisor) {
    stream.write_all(&frame.encode()).unwrap();
}

/// The next frame, or `None` at the end of the stream.
fn receive(stream: &mut UnixStream) -> Option<FromSupervisor> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
        Err(e) => panic!("reading from the supervisor: {e}"),
    }
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).unwrap();
    Some(FromSupervisor::decode(&body).unwrap())
}

fn hello(stream: &mut UnixStream) -> (Vec<String>, Vec<String>) {
    send(
        stream,
        &ToSupervisor::Hello {
            env: Vec::new(),
            bus: None,
        },
    );
    match receive(stream) {
        Some(FromSupervisor::Welcome {
            running, finished, ..
        }) => (running, finished),
        other => panic!("expected a welcome, got {other:?}"),
    }
}

fn spawn(uid: &str, argv: &[&str], timeout: Option<Duration>) -> ToSupervisor {
    ToSupervisor::Spawn(SpawnRequest {
        uid: uid.into(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        stdin: None,
        timeout,
        kill_grace: Duration::from_millis(200),
        output_cap: 1 << 16,
        record: None,
    })
}

fn finished(stream: &mut UnixStream) -> (String, onehem_server::executor::ExecOutcome) {
    match receive(stream) {
        Some(FromSupervisor::Finished { uid, outcome }) => (uid, outcome),
        other => panic!("expected an outcome, got {other:?}"),
    }
}

#[test]
fn bad_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    let garbage: [&[u8]; 3] = [
        // An unknown tag.
        &[0, 0, 0, 1, 99],
        // A frame longer than the supervisor reads.
        &[0xff, 0xff, 0xff, 0xff],
        // A spawn cut short.
        &[0, 0, 0, 3, 2, 0, 0],
    ];
    for bytes in garbage {
        let mut bad = connect(&s);
        bad.write_all(bytes).unwrap();
        assert_eq!(receive(&mut bad), None, "{bytes:?}");
    }
    let mut good = connect(&s);
    hello(&mut good);
    send(&mut good, &spawn("u1", &["/bin/echo", "hi"], None));
    let (uid, outcome) = finished(&mut good);
    assert_eq!((uid.as_str(), outcome.code), ("u1", 0));
    assert_eq!(outcome.stdout, b"hi\n");
    let log = std::fs::read_to_string(dir.path().join("supervisor.log")).unwrap();
    assert_eq!(log.matches("bad frame from the HEM").count(), 3, "{log}");
}

#[test]
fn an_execution_outlives_its_connection_and_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    let runs = dir.path().join("runs");
    let script = format!("echo run >> {}; sleep 0.5; echo out", runs.display());
    let mut first = connect(&s);
    hello(&mut first);
    send(
        &mut first,
        &spawn("long", &["/bin/sh", "-c", &script], None),
    );
    send(
        &mut first,
        &spawn(
            "slow",
            &["/bin/sleep", "30"],
            Some(Duration::from_millis(300)),
        ),
    );
    // The HEM dies.
    drop(first);

    let mut second = connect(&s);
    let (running, finished_uids) = hello(&mut second);
    let mut known: Vec<String> = running.into_iter().chain(finished_uids).collect();
    known.sort();
    assert_eq!(known, ["long", "slow"]);
    send(
        &mut second,
        &spawn("long", &["/bin/sh", "-c", &script], None),
    );
    send(&mut second, &spawn("slow", &["/bin/sleep", "30"], None));
    let mut outcomes: Vec<_> = (0..2).map(|_| finished(&mut second)).collect();
    outcomes.sort_by(|a, b| a.0.cmp(&b.0));
    let (_, long) = &outcomes[0];
    assert_eq!((long.code, long.stdout.as_slice()), (0, &b"out\n"[..]));
    let (_, slow) = &outcomes[1];
    assert!(slow.timed_out, "{slow:?}");
    assert_eq!(std::fs::read_to_string(&runs).unwrap(), "run\n", "ran once");

    // Taken outcomes are forgotten; Bye ends the supervisor.
    send(
        &mut second,
        &ToSupervisor::Taken {
            uids: vec!["long".into(), "slow".into()],
        },
    );
    // Frames of one connection are handled in order: this greeting comes after the Taken.
    assert_eq!(hello(&mut second), (vec![], vec![]));
    send(&mut second, &ToSupervisor::Bye);
    let mut s = s;
    let status = s.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!s.socket.exists(), "the socket is removed at exit");
}

/// Many spawns arriving together are handled in one wake-up and spawned in one batch: each
/// ends as exactly one outcome, its own, and the reports the supervisor gives at once (spawns
/// of executions it has finished) come back in the order they were asked for.
#[test]
fn a_burst_of_spawns_ends_as_one_outcome_each_in_order() {
    const N: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    let mut hem = connect(&s);
    hello(&mut hem);
    let uids: Vec<String> = (0..N).map(|i| format!("burst-{i}")).collect();
    let burst: Vec<u8> = uids
        .iter()
        .flat_map(|uid| spawn(uid, &["/bin/echo", uid], None).encode())
        .collect();
    hem.write_all(&burst).unwrap();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..N {
        let (uid, outcome) = finished(&mut hem);
        assert_eq!(outcome.code, 0, "{uid}: {outcome:?}");
        assert_eq!(
            outcome.stdout,
            format!("{uid}\n").into_bytes(),
            "its own output"
        );
        assert!(seen.insert(uid.clone()), "{uid} reported twice");
    }
    assert_eq!(seen.len(), N);

    // Asked again, in another order, in one write: answered from the outcomes kept, in that
    // order, nothing run a second time.
    let asked: Vec<&String> = uids.iter().rev().collect();
    let again: Vec<u8> = asked
        .iter()
        .flat_map(|uid| spawn(uid, &["/bin/false"], None).encode())
        .collect();
    hem.write_all(&again).unwrap();
    for uid in asked {
        let (got, outcome) = finished(&mut hem);
        assert_eq!(&got, uid);
        assert_eq!(outcome.stdout, format!("{uid}\n").into_bytes());
    }
}

/// Many hooks running at once under the supervisor's one reaper, ending in any order, each
/// reported with its own exit code or signal and its own output; one whose background child
/// still holds its output pipes is reported once it exits, with what it wrote. (The signals are
/// ones a test runner does not ignore: hooks inherit ignored signals, as under `nohup` SIGHUP.)
#[test]
fn concurrent_hooks_are_each_reaped_with_their_own_code() {
    const N: usize = 120;
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    let mut hem = connect(&s);
    hello(&mut hem);
    let script = |i: usize| match i % 4 {
        0 => format!("sleep 0.0{}; exit {}", i % 10, i % 256),
        1 => format!(
            "echo out{i}; echo err{i} >&2; kill -{} $$",
            [9, 15, 10][i % 3]
        ),
        2 => format!("sleep 300 >/dev/null 2>&1 & echo child$!; exit {}", i % 5),
        _ => format!("(sleep 2 &) ; echo held{i}; exit 4"),
    };
    let burst: Vec<u8> = (0..N)
        .flat_map(|i| spawn(&format!("c{i}"), &["/bin/sh", "-c", &script(i)], None).encode())
        .collect();
    hem.write_all(&burst).unwrap();
    let mut seen = std::collections::HashMap::new();
    for _ in 0..N {
        let (uid, outcome) = finished(&mut hem);
        let i: usize = uid.trim_start_matches('c').parse().unwrap();
        match i % 4 {
            0 => assert_eq!(
                (outcome.code, outcome.signal),
                ((i % 256) as i32, None),
                "{uid}"
            ),
            1 => {
                assert_eq!(
                    (outcome.code, outcome.signal),
                    (255, Some([9, 15, 10][i % 3])),
                    "{uid}"
                );
                assert_eq!(outcome.stdout, format!("out{i}\n").into_bytes());
                assert_eq!(outcome.stderr, format!("err{i}\n").into_bytes());
            }
            2 => {
                assert_eq!(outcome.code, (i % 5) as i32, "{uid}");
                let text = String::from_utf8_lossy(&outcome.stdout).into_owned();
                let child: i32 = text.trim().trim_start_matches("child").parse().unwrap();
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(child),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            _ => {
                // The background child holds stdout and stderr: the outcome comes after the
                // drain period, with the main process's own output.
                assert_eq!(outcome.code, 4, "{uid}");
                assert_eq!(outcome.stdout, format!("held{i}\n").into_bytes());
            }
        }
        assert!(
            seen.insert(uid.clone(), ()).is_none(),
            "{uid} reported twice"
        );
    }
    assert_eq!(seen.len(), N);
}

/// A hook that outlives its TIMEOUT, spawned in a batch with others, is killed with its whole
/// process group (a background child that ignores SIGTERM included), while the others end
/// normally.
#[test]
fn a_hook_past_its_timeout_in_a_batch_is_killed_with_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    let mut hem = connect(&s);
    hello(&mut hem);
    let pid_file = dir.path().join("group");
    // The shell leads the group; the background child stays in it and only SIGKILL ends it.
    let script = format!(
        "(trap '' TERM; sleep 300) & echo $$ > {}; sleep 300",
        pid_file.display()
    );
    let mut burst = Vec::new();
    for i in 0..10 {
        burst.extend(spawn(&format!("quick-{i}"), &["/bin/true"], None).encode());
    }
    burst.extend(
        spawn(
            "slow",
            &["/bin/sh", "-c", &script],
            Some(Duration::from_millis(500)),
        )
        .encode(),
    );
    for i in 10..20 {
        burst.extend(spawn(&format!("quick-{i}"), &["/bin/true"], None).encode());
    }
    hem.write_all(&burst).unwrap();
    let mut quick = 0;
    let mut slow = None;
    for _ in 0..21 {
        let (uid, outcome) = finished(&mut hem);
        if uid == "slow" {
            slow = Some(outcome);
        } else {
            assert_eq!((outcome.code, outcome.timed_out), (0, false), "{uid}");
            quick += 1;
        }
    }
    assert_eq!(quick, 20);
    let slow = slow.expect("the slow hook's outcome");
    assert!(slow.timed_out, "{slow:?}");
    assert_eq!(slow.code, 255);
    let pgid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The kill was sent before the outcome; the kernel may still be tearing processes down.
    let mut members = live_group_members(pgid);
    for _ in 0..200 {
        if members.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
        members = live_group_members(pgid);
    }
    assert!(
        members.is_empty(),
        "processes of group {pgid} survive: {members:?}"
    );
}
