//! kill -9 of the HEM binary with one hook running and one waiting: after the restart the
//! running one is recorded with its real outcome, taken from the hook supervisor that outlived
//! the HEM (or as interrupted when the supervisor was killed too), never run again; the waiting
//! one and the events published while the HEM was down run once each.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::fake_cloud::{FakeDriver, FakeFrontEnd, hem_config, hook, vm_state, wait_for};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use one_proto::hook::HookType;

/// The HEM process; killed if the test fails, so that nothing outlives it.
struct HemProcess(Child);

impl Drop for HemProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_hem(conf: &Path) -> HemProcess {
    HemProcess(
        Command::new(env!("CARGO_BIN_EXE_onehem-server"))
            .arg("--config")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start onehem-server"),
    )
}

/// Kills the process groups of the hooks listed in a pid file when the test ends.
struct HookReaper(std::path::PathBuf);

impl Drop for HookReaper {
    fn drop(&mut self) {
        for pid in lines(&self.0) {
            if let Ok(pid) = pid.parse::<i32>() {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

fn log_has(log: &Path, text: &str) -> bool {
    std::fs::read_to_string(log).is_ok_and(|l| l.contains(text))
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A hook that records its argument and pid, then waits (at most a minute) while `block`
/// exists, and prints `done`.
fn blocking_hook(d: &Path, started: &Path, pids: &Path, block: &Path) {
    std::fs::create_dir_all(d.join("hooks")).unwrap();
    let script = d.join("hooks/slow.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$1\" >> {s}\necho $$ >> {p}\ni=0\n\
             while [ -e {b} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\necho done\n",
            s = started.display(),
            p = pids.display(),
            b = block.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The pid of the hook supervisor the HEM connected to last, from its log.
fn supervisor_pid(log: &Path) -> i32 {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("hook supervisor connected"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("supervisor_pid="))
                .and_then(|p| p.parse().ok())
        })
        .next_back()
        .unwrap_or_else(|| panic!("no supervisor pid in the log:\n{text}"))
}

/// A HEM with one slot, one hook running (blocked) and one execution waiting, killed with
/// SIGKILL; one more event arrives while it is down. Returns what the test needs next.
struct Crashed {
    dir: tempfile::TempDir,
    _reaper: HookReaper,
    driver: FakeDriver,
    _front: FakeFrontEnd,
    conf: std::path::PathBuf,
    log: std::path::PathBuf,
    started: std::path::PathBuf,
    block: std::path::PathBuf,
    /// The argument of the execution that was running at the kill.
    running: String,
}

fn crash_with_one_running() -> Crashed {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let started = d.join("started");
    let pids = d.join("pids");
    let block = d.join("block");
    blocking_hook(d, &started, &pids, &block);
    std::fs::write(&block, "").unwrap();
    let reaper = HookReaper(pids.clone());

    let front = FakeFrontEnd::start();
    front.set(hook(1, HookType::State, "NAME=slow\nTYPE=state\nRESOURCE=VM\nSTATE=PENDING\nLCM_STATE=LCM_INIT\nCOMMAND=slow.sh\nARGUMENTS=$TEMPLATE\n"));
    let driver = FakeDriver::start();
    let conf = hem_config(d, &front, &driver, "concurrency: 1\n");
    let log = d.join("onehem.log");

    let hem = spawn_hem(&conf);
    wait_for("the HEM's start position", Duration::from_secs(30), || {
        log_has(
            &log,
            "first start: reading events after the journal position",
        )
    });
    driver.publish(&vm_state(1, "PENDING", "LCM_INIT", None));
    driver.publish(&vm_state(2, "PENDING", "LCM_INIT", None));
    wait_for("the first hook to start", Duration::from_secs(30), || {
        lines(&started).len() == 1
    });
    // The other execution is accepted too but waits for the only slot. Which of the two got
    // the slot is not defined (different VMs); the one that runs is the one the kill catches.
    std::thread::sleep(Duration::from_millis(300));
    let running = lines(&started)[0].clone();
    drop(hem); // SIGKILL
    assert!(driver.results().is_empty());

    // While the HEM is down.
    driver.publish(&vm_state(3, "PENDING", "LCM_INIT", None));
    Crashed {
        dir,
        _reaper: reaper,
        driver,
        _front: front,
        conf,
        log,
        started,
        block,
        running,
    }
}

/// kill -9 of the HEM while a hook runs: the hook goes on under the supervisor, and after the
/// restart its real outcome is the record; the waiting execution and the event published
/// while the HEM was down run once each.
#[test]
fn kill_9_then_restart_records_the_real_outcome_and_runs_the_rest_once() {
    let c = crash_with_one_running();
    // The hook ends while the HEM is down.
    std::fs::remove_file(&c.block).unwrap();

    let mut hem = spawn_hem(&c.conf);
    let results = c.driver.wait_results(3);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(c.driver.results().len(), 3, "duplicate or extra results");

    assert!(
        results
            .iter()
            .all(|(f, r)| f.rc == 0 && r.stdout == b"done\n"),
        "{results:?}"
    );
    let caught = results
        .iter()
        .find(|(_, r)| r.arguments == c.running)
        .expect("a record of the execution the kill caught");
    assert_eq!(caught.0.hook_id, 1);
    let mut uids: Vec<String> = results
        .iter()
        .map(|(_, r)| r.execution_uid.clone().unwrap())
        .collect();
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), 3);
    // The caught hook ran once (before the kill), the two others once after the restart.
    let runs = lines(&c.started);
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert_eq!(runs.iter().filter(|l| **l == c.running).count(), 1);

    // SIGTERM stops the HEM in order, with status 0, and its supervisor with it.
    let supervisor = supervisor_pid(&c.log);
    kill(Pid::from_raw(hem.0.id() as i32), Signal::SIGTERM).unwrap();
    let status = hem.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    wait_for("the supervisor to exit", Duration::from_secs(30), || {
        kill(Pid::from_raw(supervisor), None).is_err()
            || std::fs::read_to_string(format!("/proc/{supervisor}/stat"))
                .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
    });
    drop(c.dir);
}

/// kill -9 of the HEM and of its supervisor: the execution that was running is reported as
/// interrupted, saying that the supervisor was gone too; nothing else is.
#[test]
fn kill_9_of_hem_and_supervisor_reports_that_execution_interrupted() {
    let c = crash_with_one_running();
    let supervisor = supervisor_pid(&c.log);
    kill(Pid::from_raw(supervisor), Signal::SIGKILL).unwrap();
    std::fs::remove_file(&c.block).unwrap();

    let mut hem = spawn_hem(&c.conf);
    let results = c.driver.wait_results(3);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(c.driver.results().len(), 3, "duplicate or extra results");
    let interrupted: Vec<_> = results.iter().filter(|(f, _)| f.rc != 0).collect();
    assert_eq!(interrupted.len(), 1, "{results:?}");
    let (frame, r) = interrupted[0];
    assert_eq!((frame.rc, frame.hook_id), (255, 1));
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(
        stderr.starts_with(
            "Internal error interrupted by HEM restart: the hook supervisor was not running either"
        ),
        "{stderr}"
    );
    // The interrupted record keeps what is needed to retry it.
    assert_eq!(r.arguments, c.running);
    assert!(
        results
            .iter()
            .filter(|(f, _)| f.rc == 0)
            .all(|(_, r)| r.stdout == b"done\n" && r.arguments != c.running),
        "{results:?}"
    );
    let runs = lines(&c.started);
    assert_eq!(runs.len(), 3, "{runs:?}");

    kill(Pid::from_raw(hem.0.id() as i32), Signal::SIGTERM).unwrap();
    assert!(hem.0.wait().unwrap().success());
}

/// Executions accepted before a restart run under the configuration of the restart: one whose
/// command is outside `hook_allowed_paths` now (accepted by a HEM with a wider list, or
/// without confinement) gets a failure record and never runs; one inside runs.
#[test]
fn recovered_executions_are_confined_by_the_current_configuration() {
    use onehem_server::execution::{Execution, Plan, Target};
    use onehem_server::state_db::StateDb;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let front = FakeFrontEnd::start();
    let driver = FakeDriver::start();
    let conf = hem_config(d, &front, &driver, "");
    let script = |path: &Path, marker: &Path| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("#!/bin/sh\ntouch '{}'\n", marker.display())).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let outside = d.join("outside/run.sh");
    let inside = d.join("hooks/run.sh");
    script(&outside, &d.join("ran-outside"));
    script(&inside, &d.join("ran-inside"));
    let exec = |seq: u64, command: String| Execution {
        uid: format!("old-1-{seq}-3"),
        seq,
        hook_id: 3,
        lane: format!("3|VM/{seq}"),
        resource: format!("VM/{seq}"),
        event_key: "EVENT STATE VM/PENDING/LCM_INIT/".into(),
        plan: Plan {
            command,
            arguments: String::new(),
            stdin: false,
            timeout_secs: Some(10),
            target: Target::Local,
            report_host: None,
            retry: false,
        },
    };
    let (db, thread, _) = StateDb::open(&d.join("hem.db")).unwrap();
    db.accept(
        vec![
            exec(1, outside.display().to_string()),
            exec(2, inside.display().to_string()),
            exec(
                3,
                format!("{}/../outside/run.sh", d.join("hooks").display()),
            ),
        ],
        None,
    )
    .unwrap();
    thread.stop();

    let _hem = spawn_hem(&conf);
    let results = driver.wait_results(3);
    let by_uid = |uid: &str| {
        results
            .iter()
            .find(|(_, r)| r.execution_uid.as_deref() == Some(uid))
            .unwrap_or_else(|| panic!("no result for {uid}: {results:?}"))
    };
    let (frame, r) = by_uid("old-1-2-3");
    assert_eq!(frame.rc, 0, "{r:?}");
    for uid in ["old-1-1-3", "old-1-3-3"] {
        let (frame, r) = by_uid(uid);
        assert_eq!(frame.rc, 255, "{r:?}");
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert!(
            stderr.starts_with(&format!("Internal error COMMAND {} refused: ", r.command))
                && stderr.contains("hook_allowed_paths"),
            "{stderr}"
        );
    }
    assert!(d.join("ran-inside").exists());
    assert!(!d.join("ran-outside").exists(), "a refused command ran");
}
