//! Local hooks outlive a kill -9 of the HEM under its hook supervisor, and their records tell
//! how they really ended: finished while the HEM was down, still running at the restart, or
//! killed by their TIMEOUT meanwhile. None is recorded as interrupted, and a retry runs a hook
//! exactly once more.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use one_e2e::stack::{Stack, wait_for};
use one_proto::hook_log::ExecutionResult;

const WAIT: Duration = Duration::from_secs(60);
/// VMs allocated; every hook runs once for each.
const VMS: usize = 2;

/// The pids a hook wrote, one line per run.
fn runs(pid_file: &Path) -> Vec<i32> {
    std::fs::read_to_string(pid_file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, r)| !r.starts_with('Z'))
    })
}

/// A hook on `one.vm.allocate` running `script`, with TIMEOUT when given.
fn api_hook(stack: &Stack, name: &str, timeout: Option<u64>) -> Result<i64> {
    let timeout = timeout
        .map(|t| format!("TIMEOUT = {t}\n"))
        .unwrap_or_default();
    let template = format!(
        "NAME = {name}\nTYPE = api\nCALL = one.vm.allocate\nCOMMAND = {name}.sh\n{timeout}"
    );
    Ok(stack.client().hook_allocate(&template)?)
}

fn result(records: &[one_proto::hook_log::ExecutionRecord]) -> Vec<ExecutionResult> {
    records.iter().filter_map(|r| r.result.clone()).collect()
}

#[test]
fn hooks_outlive_a_killed_hem_and_their_records_tell_how_they_ended() -> Result<()> {
    let mut stack = Stack::start()?;
    let d: PathBuf = stack.dir.path().to_path_buf();
    let release = d.join("release");
    let pids = |name: &str| d.join(format!("{name}.pids"));
    // Ends while the HEM is down, with a code and output of its own.
    stack.write_hook(
        "short.sh",
        &format!(
            "#!/bin/sh\necho $$ >> {p}\nsleep 3\necho short\necho short-err >&2\nexit 3\n",
            p = pids("short").display()
        ),
    )?;
    // Still running at the restart: ends once the test releases it (within a minute).
    stack.write_hook(
        "long.sh",
        &format!(
            "#!/bin/sh\necho $$ >> {p}\ni=0\nwhile [ ! -e {r} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\necho long\n",
            p = pids("long").display(),
            r = release.display()
        ),
    )?;
    // Its TIMEOUT expires while the HEM is down.
    stack.write_hook(
        "slow.sh",
        &format!(
            "#!/bin/sh\necho $$ >> {p}\nsleep 60\necho never\n",
            p = pids("slow").display()
        ),
    )?;
    let short = api_hook(&stack, "short", None)?;
    let long = api_hook(&stack, "long", None)?;
    let slow = api_hook(&stack, "slow", Some(3))?;
    for i in 0..VMS {
        stack.vm_allocate(&format!("NAME = vm{i}\nCPU = 1\nMEMORY = 2\n"))?;
    }
    wait_for("every hook to start", WAIT, || {
        ["short", "long", "slow"]
            .iter()
            .all(|n| runs(&pids(n)).len() == VMS)
            .then_some(())
    })
    .with_context(|| stack.tail_log("hem"))?;

    stack.kill_hem()?;
    // While the HEM is down: the short hooks end, the slow ones are killed at their TIMEOUT.
    let ended: Vec<i32> = runs(&pids("short"))
        .into_iter()
        .chain(runs(&pids("slow")))
        .collect();
    wait_for("the short and the timed-out hooks to end", WAIT, || {
        ended.iter().all(|p| !alive(*p)).then_some(())
    })?;
    assert!(
        runs(&pids("long")).iter().all(|p| alive(*p)),
        "the long hooks run on under the supervisor"
    );

    stack.start_hem()?;
    for (hook, name) in [(short, "short"), (slow, "slow")] {
        stack
            .wait_records(hook, VMS, WAIT)
            .with_context(|| format!("records of {name}"))?;
    }
    std::fs::write(&release, "")?;
    let long_records = stack.wait_records(long, VMS, WAIT)?;

    for r in result(&stack.records(short)?) {
        assert_eq!(r.code, 3, "{r:?}");
        assert_eq!(r.stdout, b"short\n");
        assert_eq!(r.stderr, b"short-err\n");
    }
    for r in result(&long_records) {
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(r.stdout, b"long\n");
    }
    for r in result(&stack.records(slow)?) {
        assert_eq!(r.code, 255, "{r:?}");
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert_eq!(stderr, format!("Timeout executing {}", r.command));
    }
    for hook in [short, long, slow] {
        let records = stack.records(hook)?;
        assert_eq!(records.len(), VMS, "one record per execution: {records:?}");
        assert!(
            result(&records)
                .iter()
                .all(|r| !String::from_utf8_lossy(&r.stderr).contains("interrupted")),
            "{records:?}"
        );
    }
    // Nothing ran twice.
    for name in ["short", "long", "slow"] {
        assert_eq!(runs(&pids(name)).len(), VMS, "{name}");
    }

    // A retry runs the hook exactly once more.
    let out = stack.cli("onehook", &["retry", &short.to_string(), "0"])?;
    assert!(out.status.success(), "{out:?}");
    let records = stack.wait_records(short, VMS + 1, WAIT)?;
    let retried = records[VMS].result.clone().context("no result")?;
    assert!(retried.retry);
    assert_eq!(
        (retried.code, retried.stdout.as_slice()),
        (3, &b"short\n"[..])
    );
    // Give a second run the time it would need to show up; none may.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(runs(&pids("short")).len(), VMS + 1);
    assert_eq!(stack.records(short)?.len(), VMS + 1);
    Ok(())
}
