//! `onehem-server sync-hooks` against real sshd fake hosts: per host, what was uploaded and
//! what was already there, in both remote modes; a host that cannot be reached fails the
//! command without stopping the others.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::remote_support::{Cloud, install_hook};
use onehem_server::remote::{ExecMode, HostEntry};
use onehem_server::sync_command::{self, SyncHosts, SyncRequest};

/// Local hooks `a.sh` and `vm/b.sh` (mode 750).
fn local_hooks() -> tempfile::TempDir {
    let local = tempfile::tempdir().unwrap();
    install_hook(local.path(), "a.sh", "echo a");
    install_hook(local.path(), "vm/b.sh", "echo b");
    std::fs::set_permissions(
        local.path().join("vm/b.sh"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    local
}

fn same_file(a: &Path, b: &Path) -> bool {
    std::fs::read(a).unwrap() == std::fs::read(b).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_host_of_the_map_in_both_modes_and_a_dead_one() {
    let cloud = Cloud::start(&[6, 7]);
    let local = local_hooks();
    // host7 already has a.sh as it is locally.
    let host7 = cloud.host("host7");
    install_hook(&host7.base_path, "a.sh", "echo a");

    let mut config = onehem_server::config::parse("", Path::new("test.conf")).unwrap();
    config.hook_base_path = local.path().to_path_buf();
    config.remote = cloud.config(ExecMode::Ssh);
    if let Some(entry) = config.remote.hosts.get_mut("host7") {
        entry.mode = Some(ExecMode::Agent);
    }
    // Nothing listens on port 1.
    config.remote.hosts.insert(
        "host9".into(),
        HostEntry {
            address: Some("127.0.0.1".into()),
            port: Some(1),
            ..HostEntry::default()
        },
    );

    let request = SyncRequest {
        dir: None,
        hosts: SyncHosts::All,
    };
    let mut out = Vec::new();
    let err = sync_command::run(&config, &request, &mut out)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "1 of 3 hosts failed");
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], "host6: uploaded 2, unchanged 0: a.sh, vm/b.sh");
    assert_eq!(lines[1], "host7: uploaded 1, unchanged 1: vm/b.sh");
    assert!(
        lines[2].starts_with("host9: failed: cannot connect to host9 (127.0.0.1:1)"),
        "{text}"
    );
    for host in [cloud.host("host6"), host7] {
        for file in ["a.sh", "vm/b.sh"] {
            assert!(
                same_file(&local.path().join(file), &host.base_path.join(file)),
                "{file} on {}",
                host.name
            );
        }
        let mode = std::fs::metadata(host.base_path.join("vm/b.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o750);
    }

    // Named hosts and another directory: only what differs goes.
    let other = tempfile::tempdir().unwrap();
    install_hook(other.path(), "a.sh", "echo changed");
    let request = SyncRequest {
        dir: Some(other.path().to_path_buf()),
        hosts: SyncHosts::Named(vec!["host6".into()]),
    };
    let mut out = Vec::new();
    sync_command::run(&config, &request, &mut out)
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "host6: uploaded 1, unchanged 0: a.sh\n"
    );
    assert!(same_file(
        &other.path().join("a.sh"),
        &cloud.host("host6").base_path.join("a.sh")
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_sync_nothing() {
    let mut config = onehem_server::config::parse("", Path::new("test.conf")).unwrap();
    config.hook_base_path = "/nonexistent/hooks".into();
    let all = SyncRequest {
        dir: None,
        hosts: SyncHosts::All,
    };
    let err = sync_command::sync_hooks(&config, &all).await.unwrap_err();
    assert!(err.to_string().contains("lists no host"), "{err}");
    let named = SyncRequest {
        dir: None,
        hosts: SyncHosts::Named(vec!["host1".into()]),
    };
    let err = sync_command::sync_hooks(&config, &named).await.unwrap_err();
    assert_eq!(err.to_string(), "/nonexistent/hooks is not a directory");
}

#[test]
fn the_command_line_reports_per_host_and_fails_when_a_host_fails() {
    let cloud = Cloud::start(&[8]);
    let host = cloud.host("host8");
    let local = local_hooks();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("onehem-server.conf");
    std::fs::write(
        &conf,
        format!(
            ":hook_base_path: {local}\nlog_file: none\n:remote:\n  :user: root\n  \
             :identity: {identity}\n  :known_hosts: {known_hosts}\n  :connect_timeout: 3\n  \
             :hosts:\n    host8: {{ address: {addr}, port: {port}, remote_hook_base_path: {base} }}\n    \
             down: {{ address: 127.0.0.1, port: 1 }}\n",
            local = local.path().display(),
            identity = cloud.identity.private_key.display(),
            known_hosts = cloud.known_hosts.display(),
            addr = host.addr,
            port = host.port,
            base = host.base_path.display(),
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_onehem-server"))
            .arg("--config")
            .arg(&conf)
            .arg("sync-hooks")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (code, stdout, stderr) = run(&["host8"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(stdout, "host8: uploaded 2, unchanged 0: a.sh, vm/b.sh\n");
    assert!(same_file(
        &local.path().join("vm/b.sh"),
        &host.base_path.join("vm/b.sh")
    ));

    let (code, stdout, stderr) = run(&["host8", "down"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "host8: uploaded 0, unchanged 2");
    assert!(
        lines[1].starts_with("down: failed: cannot connect"),
        "{stdout}"
    );
    assert!(stderr.contains("1 of 2 hosts failed"), "{stderr}");

    // Neither hosts nor --all, or both: a usage error before anything is done.
    let (code, _, stderr) = run(&[]);
    assert_eq!(code, Some(2), "{stderr}");
    let (code, _, stderr) = run(&["--all", "host8"]);
    assert_eq!(code, Some(2), "{stderr}");
}
