//! The binary's command line and start: configuration errors are all reported, with their keys,
//! the exit status is not zero, and the open files limit is raised for the daemon but not for
//! its hooks.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use crate::fake_cloud::{FakeDriver, FakeFrontEnd, hem_config, hook, vm_state, wait_for};
use one_proto::hook::HookType;

fn run(config: &std::path::Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_onehem-server"))
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_invalid_configuration_lists_every_error_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("onehem-server.conf");
    std::fs::write(
        &conf,
        ":concurrency: none\n:debug_level: 9\nreplay_endpoint: 2103\ntypo_key: 1\n",
    )
    .unwrap();
    let (code, stderr) = run(&conf);
    assert_eq!(code, 1, "{stderr}");
    for key in [
        "concurrency:",
        "debug_level:",
        "replay_endpoint:",
        "typo_key: unknown key",
    ] {
        assert!(stderr.contains(key), "{key} missing in {stderr}");
    }
    assert!(stderr.contains("4 invalid key(s)"), "{stderr}");
}

#[test]
fn a_missing_or_broken_file_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.conf");
    let (code, stderr) = run(&missing);
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with(&format!("Error loading {}", missing.display())),
        "{stderr}"
    );

    let broken = dir.path().join("broken.conf");
    std::fs::write(&broken, ":concurrency: [\n").unwrap();
    let (code, stderr) = run(&broken);
    assert_eq!(code, 1);
    assert!(stderr.contains("Error loading"), "{stderr}");
}

/// A configuration whose metrics address is taken by `taken`: the daemon sets up its logs
/// (to stderr) and its limits, then stops at the metrics listener.
fn metrics_conflict(dir: &std::path::Path, taken: &std::net::TcpListener) -> std::path::PathBuf {
    let addr = taken.local_addr().unwrap();
    let conf = dir.join("onehem-server.conf");
    std::fs::write(
        &conf,
        format!(
            "metrics_listen: '{addr}'\nstate_db: {}\nlog_file: none\nlog_stderr: true\n\
             one_xmlrpc: http://127.0.0.1:9/RPC2\none_auth: {}\n",
            dir.join("state.db").display(),
            dir.join("auth").display()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("auth"), "oneadmin:pw\n").unwrap();
    conf
}

#[test]
fn a_metrics_address_in_use_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let conf = metrics_conflict(dir.path(), &taken);
    let (code, stderr) = run(&conf);
    assert_ne!(code, 0, "{stderr}");
    let addr = taken.local_addr().unwrap();
    assert!(
        stderr.contains(&format!("cannot listen on {addr} for metrics")),
        "{stderr}"
    );
}

#[test]
fn the_daemon_raises_its_open_files_limit_to_the_hard_limit() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let conf = metrics_conflict(dir.path(), &taken);
    // Started by a shell whose soft limit is 256 (below any usual hard limit).
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -Sn 256 && exec \"$0\" --config \"$1\"")
        .arg(env!("CARGO_BIN_EXE_onehem-server"))
        .arg(&conf)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let hard = Command::new("sh")
        .arg("-c")
        .arg("ulimit -Hn")
        .output()
        .unwrap();
    let hard = String::from_utf8_lossy(&hard.stdout).trim().to_string();
    let expected = match hard.parse::<u64>() {
        Ok(n) => n.min(1 << 20),
        Err(_) => 1 << 20,
    };
    assert!(
        stderr.contains("open files limit raised")
            && stderr.contains("from=256")
            && stderr.contains(&format!("to={expected}")),
        "{stderr}"
    );
}

/// `ulimit -Sn` and `ulimit -Hn` as a shell started the way `cmd` is sees them.
fn open_files_limits(cmd: &str) -> (String, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{cmd} && echo $(ulimit -Sn) $(ulimit -Hn)"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (soft, hard) = text.split_once(' ').unwrap_or((&text, ""));
    (soft.to_string(), hard.to_string())
}

/// The `SigIgn` mask of a `/proc/PID/status`.
fn ignored_signals(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .unwrap_or_else(|| panic!("no SigIgn in {status}"))
}

/// A HEM started by a shell that lowered the soft open-files limit to 256 and ignores SIGHUP,
/// SIGQUIT and SIGUSR2 runs with a raised limit itself, while its hook starts with 256 and
/// with no signal ignored.
#[test]
fn hooks_start_with_the_daemons_open_files_limit_and_no_ignored_signal() {
    if open_files_limits("ulimit -Sn 256").1 == "256" {
        // The hard limit is 256 already: there is nothing to raise.
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let seen = d.join("limits");
    let front = FakeFrontEnd::start();
    front.set(hook(
        1,
        HookType::State,
        "NAME=limits\nTYPE=state\nRESOURCE=VM\nSTATE=PENDING\nLCM_STATE=LCM_INIT\nCOMMAND=limits.sh\n",
    ));
    let driver = FakeDriver::start();
    let conf = hem_config(d, &front, &driver, "");
    let script = d.join("hooks/limits.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{{ echo $(ulimit -Sn) $(ulimit -Hn); cat /proc/self/status; }} > {0}.tmp && mv {0}.tmp {0}\n",
            seen.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = d.join("onehem.log");
    let mut hem = Command::new("sh")
        .arg("-c")
        .arg("trap '' HUP QUIT USR2 && ulimit -Sn 256 && exec \"$0\" --config \"$1\"")
        .arg(env!("CARGO_BIN_EXE_onehem-server"))
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let hem_pid = nix::unistd::Pid::from_raw(hem.id() as i32);
    wait_for("the HEM's start", Duration::from_secs(30), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("first start: reading events"))
    });
    driver.publish(&vm_state(7, "PENDING", "LCM_INIT", None));
    wait_for("the hook's limits", Duration::from_secs(30), || {
        seen.exists()
    });
    let hook_saw = std::fs::read_to_string(&seen).unwrap();
    let daemon_limits = std::fs::read_to_string(format!("/proc/{hem_pid}/limits")).unwrap();
    let daemon_status = std::fs::read_to_string(format!("/proc/{hem_pid}/status")).unwrap();
    let _ = nix::sys::signal::kill(hem_pid, nix::sys::signal::Signal::SIGTERM);
    let stopped = hem.wait().unwrap();

    let (_, hard) = open_files_limits("true");
    let (first, status) = hook_saw.split_once('\n').unwrap_or((&hook_saw, ""));
    assert_eq!(
        first,
        format!("256 {hard}"),
        "the hook's soft and hard limits"
    );
    // The standard signals only: the C library's own spawn leaves its two internal real-time
    // signals ignored in every child, for it alone to use.
    let standard = (1u64 << 31) - 1;
    assert_eq!(
        ignored_signals(status) & standard,
        0,
        "signals the hook ignores:\n{status}"
    );
    let raised = daemon_limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or_default()
        .to_string();
    assert_ne!(
        raised, "256",
        "the daemon's own limit was not raised:\n{daemon_limits}"
    );
    // The shell's setting took: the daemon itself still ignores SIGUSR2 (it handles SIGHUP
    // and SIGQUIT itself).
    let usr2 = 1 << (nix::libc::SIGUSR2 - 1);
    assert_eq!(
        ignored_signals(&daemon_status) & usr2,
        usr2,
        "{daemon_status}"
    );
    assert!(stopped.success(), "{stopped:?}");
}
