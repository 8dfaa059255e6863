//! The binary's command line: configuration errors are all reported, with their keys, and the
//! exit status is not zero.

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

#[test]
fn a_metrics_address_in_use_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let conf = dir.path().join("onehem-server.conf");
    std::fs::write(
        &conf,
        format!(
            "metrics_listen: '{addr}'\nstate_db: {}\nlog_file: none\nlog_stderr: true\n\
             one_xmlrpc: http://127.0.0.1:9/RPC2\none_auth: {}\n",
            dir.path().join("state.db").display(),
            dir.path().join("auth").display()
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("auth"), "oneadmin:pw\n").unwrap();
    let (code, stderr) = run(&conf);
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr} for metrics")),
        "{stderr}"
    );
}
