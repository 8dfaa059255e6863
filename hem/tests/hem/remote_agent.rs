//! The agent's life on a host: installed or upgraded by the HEM over the same connection,
//! hook directories synchronised by checksum, hooks stopped when the HEM goes away.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::remote_support::{Cloud, group_alive, install_hook, req, wait_for_file};
use one_e2e::sshd::agent_binary;
use onehem_server::remote::{ExecMode, RemoteError, RemoteExecutor};
use sha2::{Digest, Sha256};

fn sha256(path: &Path) -> Vec<u8> {
    Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_agent_is_a_clear_failure_without_install() {
    let cloud = Cloud::start(&[2]);
    cloud.install_hook("ok.sh", "echo ok");
    let mut cfg = cloud.config(ExecMode::Agent);
    cfg.agent_path = Some(
        cloud
            .host("host2")
            .dir()
            .join("nowhere/onehem-agent")
            .display()
            .to_string(),
    );
    let exec = RemoteExecutor::new(cfg);
    match exec.execute("host2", req("ok.sh", &[])).await {
        Err(RemoteError::Agent { host, message }) => {
            assert_eq!(host, "host2");
            assert!(message.contains("not found"), "{message}");
        }
        other => panic!("expected a missing agent, got {other:?}"),
    }
    exec.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_is_installed_and_upgraded_over_the_connection() {
    let cloud = Cloud::start(&[3]);
    cloud.install_hook("ok.sh", "echo ok");
    let remote_agent = cloud.host("host3").dir().join("bin/onehem-agent");
    // A stripped copy: what a release ships, and a sixth of the debug build to upload.
    let stripped = tempfile::tempdir().unwrap();
    let local = stripped.path().join("onehem-agent");
    std::fs::copy(agent_binary().unwrap(), &local).unwrap();
    let _ = std::process::Command::new("strip").arg(&local).status();
    let config = || {
        let mut cfg = cloud.config(ExecMode::Agent);
        cfg.agent_path = Some(remote_agent.display().to_string());
        cfg.install_agent = true;
        cfg.agent_binary = Some(local.clone());
        cfg
    };

    // Missing: installed, then used.
    let exec = RemoteExecutor::new(config());
    let out = exec.run("host3", req("ok.sh", &[])).await;
    assert_eq!(
        (out.code, out.stdout.as_slice()),
        (0, &b"ok\n"[..]),
        "{:?}",
        out.start_error
    );
    assert_eq!(sha256(&remote_agent), sha256(&local));
    let mode = std::fs::metadata(&remote_agent)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    exec.shutdown().await;

    // Another build on the host (here: a stand-in that would fail): replaced, then used.
    // Written aside and renamed, as any upgrade does: the old agent may still be exiting.
    let stand_in = remote_agent.with_extension("old");
    std::fs::write(&stand_in, "#!/bin/sh\necho old agent >&2\nexit 3\n").unwrap();
    std::fs::rename(&stand_in, &remote_agent).unwrap();
    let exec = RemoteExecutor::new(config());
    let out = exec.run("host3", req("ok.sh", &[])).await;
    assert_eq!(out.code, 0, "{:?}", out.start_error);
    assert_eq!(sha256(&remote_agent), sha256(&local));
    exec.shutdown().await;
}

async fn sync_sends_only_differences(mode: ExecMode) {
    let cloud = Cloud::start(&[4]);
    let host = cloud.host("host4");
    let local = tempfile::tempdir().unwrap();
    install_hook(local.path(), "a.sh", "echo new a");
    install_hook(local.path(), "vm/b.sh", "echo b");
    std::fs::set_permissions(
        local.path().join("vm/b.sh"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    // The host has an old a.sh, the same vm/b.sh, and a file of its own.
    install_hook(&host.base_path, "a.sh", "echo old a");
    std::fs::create_dir_all(host.base_path.join("vm")).unwrap();
    std::fs::copy(local.path().join("vm/b.sh"), host.base_path.join("vm/b.sh")).unwrap();
    install_hook(&host.base_path, "extra.sh", "echo extra");
    let exec = RemoteExecutor::new(cloud.config(mode));

    let report = exec.sync_hooks("host4", local.path()).await.unwrap();
    assert_eq!(report.uploaded, ["a.sh"]);
    assert_eq!(report.unchanged, 1);
    assert_eq!(
        std::fs::read(host.base_path.join("a.sh")).unwrap(),
        std::fs::read(local.path().join("a.sh")).unwrap()
    );
    assert!(host.base_path.join("extra.sh").exists());

    // A new local file goes, keeping its mode; nothing else moves.
    install_hook(local.path(), "host/c.sh", "echo c");
    std::fs::set_permissions(
        local.path().join("host/c.sh"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let report = exec.sync_hooks("host4", local.path()).await.unwrap();
    assert_eq!(report.uploaded, ["host/c.sh"]);
    assert_eq!(report.unchanged, 2);
    let mode = std::fs::metadata(host.base_path.join("host/c.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);

    let out = exec.run("host4", req("a.sh", &[])).await;
    assert_eq!(out.stdout, b"new a\n");
    let report = exec.sync_hooks("host4", local.path()).await.unwrap();
    assert!(report.uploaded.is_empty());
    assert_eq!(report.unchanged, 3);
    exec.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_mode_sync_sends_only_differences() {
    sync_sends_only_differences(ExecMode::Ssh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_mode_sync_sends_only_differences() {
    sync_sends_only_differences(ExecMode::Agent).await;
}

/// Shutting the executor down closes the agents' stdin: they kill the hooks still running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_running_hooks_on_the_host() {
    let cloud = Cloud::start(&[5]);
    cloud.install_hook(
        "long.sh",
        r#"echo $$ > "${0%/hooks/*}/pgid"; exec sleep 60"#,
    );
    let exec = std::sync::Arc::new(RemoteExecutor::new(cloud.config(ExecMode::Agent)));
    let running = {
        let exec = exec.clone();
        tokio::spawn(async move { exec.execute("host5", req("long.sh", &[])).await })
    };
    let pgid: i32 = wait_for_file(&cloud.host("host5").dir().join("pgid"))
        .await
        .trim()
        .parse()
        .unwrap();
    assert!(group_alive(pgid));
    exec.shutdown().await;
    let result = tokio::time::timeout(std::time::Duration::from_secs(30), running)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(result, Err(RemoteError::Agent { .. })),
        "{result:?}"
    );
    // The agent notices its closed stdin asynchronously; wait for it (bounded).
    let mut alive = true;
    for _ in 0..200 {
        alive = group_alive(pgid);
        if !alive {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(!alive, "hook group {pgid} survived the HEM's shutdown");
}
