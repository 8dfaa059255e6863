//! The binary's command line and start: configuration errors are all reported, with their keys,
//! the exit status is not zero, and the open files limit is raised.

use std::process::Command;

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
