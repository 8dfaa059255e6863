//! The whole stack with CURVE on the driver's sockets: oned-lite starts one_hm with the keys
//! from HM_MAD's ARGUMENTS, the HEM connects with its own, hooks run and their records reach
//! the hook log, a pyzmq subscriber without a key sees no event, and `one-events` replays only
//! with a key.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use one_e2e::stack::{PUBLISHER_PORT, REPLAY_PORT, Stack, StackOptions, python};

/// A pyzmq SUB on every key, with CURVE when given the driver's public certificate and a
/// client secret certificate. Prints READY, GOT at its first message, and the number of
/// messages it received when a line arrives on stdin (or after 60 s).
const SUBSCRIBER: &str = r#"
import sys, zmq, zmq.auth
ctx = zmq.Context()
sub = ctx.socket(zmq.SUB)
sub.setsockopt(zmq.LINGER, 0)
if len(sys.argv) > 2:
    sub.curve_serverkey = zmq.auth.load_certificate(sys.argv[2])[0]
    sub.curve_publickey, sub.curve_secretkey = zmq.auth.load_certificate(sys.argv[3])
sub.setsockopt(zmq.SUBSCRIBE, b"")
sub.connect(sys.argv[1])
poller = zmq.Poller()
poller.register(sub, zmq.POLLIN)
poller.register(sys.stdin.fileno(), zmq.POLLIN)
print("READY", flush=True)
n = 0
for _ in range(600):
    ready = dict(poller.poll(100))
    if sub in ready:
        sub.recv_multipart()
        n += 1
        if n == 1:
            print("GOT", flush=True)
    if sys.stdin.fileno() in ready:
        break
print(n, flush=True)
"#;

struct Subscriber {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Subscriber {
    fn start(endpoint: &str, keys: &[String]) -> anyhow::Result<Subscriber> {
        let mut child = Command::new(python()?)
            .arg("-c")
            .arg(SUBSCRIBER)
            .arg(endpoint)
            .args(keys)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let sub = Subscriber {
            stdin: child.stdin.take(),
            child,
            lines,
        };
        assert_eq!(sub.line(Duration::from_secs(30)).as_deref(), Some("READY"));
        Ok(sub)
    }

    fn line(&self, wait: Duration) -> Option<String> {
        self.lines.recv_timeout(wait).ok()
    }

    /// How many messages it received in all.
    fn stop(mut self) -> u64 {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "STOP");
        }
        let count = loop {
            let line = self
                .line(Duration::from_secs(30))
                .expect("subscriber count");
            if line != "GOT" {
                break line.parse().expect("a count");
            }
        };
        let _ = self.child.wait();
        count
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn curve_stack_runs_hooks_and_keyless_subscribers_see_nothing() -> anyhow::Result<()> {
    let stack = Stack::start_with(StackOptions {
        curve: true,
        ..StackOptions::default()
    })?;
    let endpoint = format!("tcp://{}:{PUBLISHER_PORT}", stack.ip);
    let keyless = Subscriber::start(&endpoint, &[])?;
    let curve = stack.curve_dir();
    let keyed = Subscriber::start(
        &endpoint,
        &[
            curve.join("one_hm.key").display().to_string(),
            curve.join("hem/hem.key_secret").display().to_string(),
        ],
    )?;
    stack.write_hook("pending.sh", "#!/bin/sh\necho ran\n")?;
    let hook = stack.client().hook_allocate(
        "NAME = curve\nTYPE = state\nCOMMAND = pending.sh\nON = CUSTOM\nRESOURCE = VM\n\
         STATE = PENDING\nLCM_STATE = LCM_INIT\n",
    )?;
    // Events flow until the listed subscriber has one (its connection completes in the
    // background); every allocation runs the hook.
    let mut allocated = 0;
    while keyed.line(Duration::from_millis(200)).is_none() {
        allocated += 1;
        assert!(
            allocated < 150,
            "the keyed subscriber never received an event"
        );
        stack.vm_allocate("NAME = c\nCPU = 1\nMEMORY = 2\n")?;
    }
    let records = stack.wait_records(hook, allocated, Duration::from_secs(60))?;
    for record in &records {
        let result = record.result.as_ref().expect("a result");
        assert_eq!(
            (
                result.code,
                String::from_utf8_lossy(&result.stdout).as_ref()
            ),
            (0, "ran\n")
        );
    }
    assert!(keyed.stop() > 0);
    assert_eq!(
        keyless.stop(),
        0,
        "a subscriber without a key received events"
    );
    // The shipped replay tool: answered with the HEM's keys (from the environment), not without.
    let endpoint = format!("tcp://{}:{REPLAY_PORT}", stack.ip);
    let keyless = stack.cli(
        "one-events",
        &["--endpoint", &endpoint, "--head", "--timeout-ms", "1000"],
    )?;
    assert!(!keyless.status.success());
    let refused = String::from_utf8_lossy(&keyless.stderr);
    assert!(refused.contains("no reply within"), "{refused}");
    let keyed = Command::new(one_e2e::stack::bin("one-events")?)
        .args(["--endpoint", &endpoint, "--head"])
        .env("ONE_EVENTS_CURVE_SERVER_KEY", curve.join("one_hm.key"))
        .env(
            "ONE_EVENTS_CURVE_CLIENT_KEY",
            curve.join("hem/hem.key_secret"),
        )
        .output()?;
    assert!(
        keyed.status.success(),
        "{}",
        String::from_utf8_lossy(&keyed.stderr)
    );
    let head: u64 = String::from_utf8_lossy(&keyed.stdout).trim().parse()?;
    assert!(head >= allocated as u64, "head {head}");
    let driver_log = std::fs::read_to_string(stack.log_path("oned"))?;
    assert!(
        driver_log.contains("CURVE on: only listed clients may connect"),
        "{driver_log}"
    );
    assert!(!driver_log.contains("without CURVE"), "{driver_log}");
    Ok(())
}
