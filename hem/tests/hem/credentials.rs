//! A HEM without credentials stops before it creates its state DB, and says where it looked.

use std::process::Command;

#[test]
fn no_credentials_stops_the_hem_before_its_state_db_exists() {
    if std::path::Path::new("/var/lib/one/.one/one_auth").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state_db = dir.path().join("state/onehem.db");
    let conf = dir.path().join("onehem-server.conf");
    std::fs::write(
        &conf,
        format!(
            "state_db: {}\nlog_file: none\nlog_stderr: true\none_xmlrpc: http://127.0.0.1:9/RPC2\n",
            state_db.display()
        ),
    )
    .unwrap();
    let out = Command::new(one_e2e::stack::bin("onehem-server").unwrap())
        .arg("--config")
        .arg(&conf)
        .env_remove("ONE_AUTH")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(!state_db.exists(), "the state DB was created: {stderr}");
    assert!(!state_db.parent().unwrap().exists(), "{stderr}");
    for looked in [
        dir.path().join(".one/one_auth").display().to_string(),
        "/var/lib/one/.one/one_auth".to_string(),
    ] {
        assert!(stderr.contains(&looked), "{looked} not named in: {stderr}");
    }
}
