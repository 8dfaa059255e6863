//! Against a driver like OpenNebula's (no sequence tokens, no replay endpoint) the HEM runs
//! live-only, says so in its log, and still runs every hook it receives.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::fake_cloud::{FakeDriver, FakeFrontEnd, hem_config, hook, vm_state, wait_for};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use one_proto::hook::HookType;

struct HemProcess(Child);

impl Drop for HemProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn log_has(log: &Path, text: &str) -> bool {
    std::fs::read_to_string(log).is_ok_and(|l| l.contains(text))
}

#[test]
fn live_only_against_a_reference_driver() {
    let dir = tempfile::tempdir().unwrap();
    let front = FakeFrontEnd::start();
    front.set(hook(2, HookType::State, "NAME=p\nTYPE=state\nRESOURCE=VM\nSTATE=PENDING\nLCM_STATE=LCM_INIT\nCOMMAND=/bin/echo\nARGUMENTS=\"$TEMPLATE ok\"\n"));
    let driver = FakeDriver::start_reference();
    let conf = hem_config(dir.path(), &front, &driver, "replay_timeout: 1\n");
    let log = dir.path().join("onehem.log");
    let mut hem = HemProcess(
        Command::new(env!("CARGO_BIN_EXE_onehem-server"))
            .arg("--config")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(
        "the journal probe to give up",
        Duration::from_secs(30),
        || log_has(&log, "replay endpoint not answering"),
    );
    // Without a journal the HEM only sees what is published after its SUB is connected, so
    // publish until a first result shows the connection is up.
    let mut sent = 0;
    wait_for("a first result", Duration::from_secs(30), || {
        driver.publish(&vm_state(sent, "PENDING", "LCM_INIT", None));
        sent += 1;
        std::thread::sleep(Duration::from_millis(50));
        !driver.results().is_empty()
    });
    let before = driver.results().len();
    for vm in 100..110 {
        driver.publish(&vm_state(vm, "PENDING", "LCM_INIT", None));
    }
    let results = driver.wait_results(before + 10);
    assert!(
        results
            .iter()
            .all(|(f, r)| f.rc == 0 && r.stdout.ends_with(b" ok\n"))
    );
    let mut uids: Vec<_> = results
        .iter()
        .map(|(_, r)| r.execution_uid.clone().unwrap())
        .collect();
    let n = uids.len();
    uids.sort();
    uids.dedup();
    assert_eq!(
        uids.len(),
        n,
        "uids must be unique without sequence numbers"
    );
    assert!(
        log_has(&log, "publishes no sequence numbers"),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );

    kill(Pid::from_raw(hem.0.id() as i32), Signal::SIGINT).unwrap();
    let status = hem.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
