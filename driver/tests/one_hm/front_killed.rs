//! Result acknowledgement end to end: the built `oned-lite` binary supervising the real
//! `one_hm`, and results sent to the driver's logger port as the HEM sends them. oned-lite is
//! frozen while results flow (the driver keeps forwarding into the pipe), killed with SIGKILL,
//! and started again on the same database and journal: every execution must end as exactly one
//! hook-log record.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use one_proto::encoding::b64_encode;

/// Liveness bound for anything the test waits for.
const PATIENCE: Duration = Duration::from_secs(60);
/// How long the sender waits for an ACK before it reconnects and sends again.
const REQUEST_TIMEOUT_MS: i32 = 1000;
const HOOK: i64 = 4;

/// A running oned-lite child.
struct Front {
    child: Child,
}

impl Front {
    fn start(dir: &Path) -> Front {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("oned-lite.log"))
            .expect("log file");
        let binary = one_e2e::stack::bin("oned-lite").unwrap_or_else(|e| panic!("{e:#}"));
        let child = Command::new(binary)
            .arg("--config")
            .arg(dir.join("oned.conf"))
            .arg("--var-dir")
            .arg(dir.join("var"))
            .env("ONE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start oned-lite");
        Front { child }
    }

    fn signal(&self, signal: Signal) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        kill(Pid::from_raw(pid), signal).expect("signal oned-lite");
    }

    fn kill9(&mut self) {
        self.signal(Signal::SIGKILL);
        self.child.wait().expect("reap oned-lite");
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends results as the HEM does: one REQ at a time, and on a lost reply a new socket to the
/// driver named by the endpoints file, with the same result again (the driver and oned-lite
/// drop the duplicates by EXECUTION_UID).
struct Sender {
    ctx: zmq::Context,
    socket: Option<zmq::Socket>,
    endpoints: PathBuf,
}

impl Sender {
    fn connect(&mut self) -> Option<()> {
        let text = std::fs::read_to_string(&self.endpoints).ok()?;
        let logger = text.lines().find_map(|l| l.strip_prefix("logger="))?;
        let socket = self.ctx.socket(zmq::REQ).expect("socket");
        socket.set_linger(0).expect("linger");
        socket.set_rcvtimeo(REQUEST_TIMEOUT_MS).expect("timeout");
        socket.connect(logger).expect("connect");
        self.socket = Some(socket);
        Some(())
    }

    fn send(&mut self, frame: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            assert!(Instant::now() < deadline, "no ACK for {frame:.40}");
            if self.socket.is_none() && self.connect().is_none() {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            let Some(socket) = &self.socket else {
                continue;
            };
            let reply = socket.send(frame, 0).and_then(|()| socket.recv_string(0));
            match reply {
                Ok(Ok(reply)) if reply == "ACK" => return,
                Ok(other) => panic!("the driver answered {other:?}"),
                // A lost reply: a REQ socket cannot send again, so start over.
                Err(_) => self.socket = None,
            }
        }
    }
}

fn result_frame(uid: &str) -> String {
    let xml = format!(
        "<ARGUMENTS>{uid}</ARGUMENTS><EXECUTION_RESULT><COMMAND>/bin/true</COMMAND><STDOUT></STDOUT>\
         <STDERR></STDERR><CODE>0</CODE></EXECUTION_RESULT><EXECUTION_UID>{uid}</EXECUTION_UID>"
    );
    format!("0 {HOOK} {}", b64_encode(xml.as_bytes()))
}

/// `(exec_uid, records)` of the hook log.
fn records(db: &Path) -> Vec<(String, i64)> {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return Vec::new();
    };
    let _ = conn.busy_timeout(Duration::from_secs(5));
    let Ok(mut stmt) =
        conn.prepare("SELECT exec_uid, COUNT(*) FROM hook_log GROUP BY exec_uid ORDER BY exec_uid")
    else {
        return Vec::new();
    };
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .unwrap_or_default()
}

#[test]
fn every_result_is_stored_once_when_oned_lite_is_killed_while_results_flow() {
    const COUNT: usize = 600;
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    std::fs::create_dir_all(dir.join("var")).expect("var dir");
    let endpoints = dir.join("endpoints");
    std::fs::write(
        dir.join("oned.conf"),
        format!(
            "PORT = 0\nLISTEN_ADDRESS = 127.0.0.1\n\
             HM_MAD = [ EXECUTABLE = \"{}\", ARGUMENTS = \"-p 0 -l 0 --replay-port 0 -b 127.0.0.1 \
             --journal {} --endpoints-file {}\" ]\nHOOK_LOG_CONF = [ LOG_RETENTION = 100000 ]\n",
            env!("CARGO_BIN_EXE_one_hm"),
            dir.join("journal.db").display(),
            endpoints.display()
        ),
    )
    .expect("oned.conf");
    let mut front = Front::start(dir);
    let mut sender = Sender {
        ctx: zmq::Context::new(),
        socket: None,
        endpoints: endpoints.clone(),
    };
    let uid = |i: usize| format!("exec-{i:04}");
    let db = dir.join("var/one.db");
    let wait_records = |count: usize| {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let got = records(&db);
            if got.len() >= count {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} executions recorded; oned-lite log:\n{}",
                got.len(),
                std::fs::read_to_string(dir.join("oned-lite.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // More results while frozen than the pipe holds (64 KiB, about 180 result lines).
    let (running, frozen) = (100, 300);
    for i in 0..COUNT {
        if i == running {
            // Results flow through to the hook log; now oned-lite stops reading, and the driver
            // keeps acknowledging results and writing them into the pipe.
            wait_records(running);
            front.signal(Signal::SIGSTOP);
        }
        if i == running + frozen {
            // Give the driver a moment to fill the pipe; the kill loses whatever is in it.
            std::thread::sleep(Duration::from_millis(500));
            front.kill9();
            let _ = std::fs::remove_file(&endpoints);
            front = Front::start(dir);
        }
        sender.send(&result_frame(&uid(i)));
    }
    let got = wait_records(COUNT);
    let expected: Vec<(String, i64)> = (0..COUNT).map(|i| (uid(i), 1)).collect();
    assert_eq!(got, expected, "exactly one record per execution");
    drop(front);
}
