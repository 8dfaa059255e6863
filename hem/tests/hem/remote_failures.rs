//! Hosts that cannot be trusted or reached fail their own hooks with a clear reason, within
//! the connect timeout, while other hosts keep working; a host that comes back works again
//! with the same executor.

use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::remote_support::{Cloud, MARKER_HOOK, marker, req};
use one_e2e::sshd::write_known_hosts;
use onehem_server::remote::known_hosts::HostKeyProblem;
use onehem_server::remote::{ExecMode, HostEntry, RemoteError, RemoteExecutor};

/// `SHA256:…` of a host's key as `ssh-keygen -l` prints it.
fn keygen_fingerprint(pubkey_path: &std::path::Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(pubkey_path)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

async fn unknown_and_changed_keys_are_refused(mode: ExecMode) {
    let cloud = Cloud::start(&[2, 3]);
    cloud.install_hook("marker.sh", MARKER_HOOK);
    let h2 = cloud.host("host2");
    let h3 = cloud.host("host3");
    // known_hosts lists host3 only, and host3's key under host2's name and port.
    write_known_hosts(&cloud.known_hosts, &[h3]).unwrap();
    let forged = format!(
        "[{}]:{},[host2]:{} {}\n",
        h2.addr, h2.port, h2.port, h3.host_key
    );
    let exec = RemoteExecutor::new(cloud.config(mode));

    let fp2 = keygen_fingerprint(&h2.dir().join("ssh_host_ed25519_key.pub"));
    match exec.execute("host2", req("marker.sh", &["a"])).await {
        Err(RemoteError::HostKey {
            host,
            problem: HostKeyProblem::Unknown { fingerprint, .. },
            ..
        }) => {
            assert_eq!(host, "host2");
            assert_eq!(fingerprint, fp2);
        }
        other => panic!("expected an unknown host key, got {other:?}"),
    }
    // The failure record names the host and the fingerprint.
    let out = exec.run("host2", req("marker.sh", &["b"])).await;
    let why = out.start_error.unwrap_or_default();
    assert_eq!(out.code, 255);
    assert!(why.contains("host2") && why.contains(&fp2), "{why}");
    assert!(why.contains("unknown"), "{why}");

    // Now known_hosts has a (wrong) key for host2: a changed key, refused the same way.
    std::fs::write(
        &cloud.known_hosts,
        format!("{forged}{}\n", h3.known_hosts_line()),
    )
    .unwrap();
    match exec.execute("host2", req("marker.sh", &["c"])).await {
        Err(RemoteError::HostKey {
            problem: HostKeyProblem::Changed {
                fingerprint, line, ..
            },
            ..
        }) => {
            assert_eq!(fingerprint, fp2);
            assert_eq!(line, 1);
        }
        other => panic!("expected a changed host key, got {other:?}"),
    }
    assert_eq!(marker(h2, "a"), None);
    assert_eq!(marker(h2, "b"), None);
    assert_eq!(marker(h2, "c"), None);

    // The trusted host is unaffected.
    let out = exec.run("host3", req("marker.sh", &["d"])).await;
    assert_eq!(out.code, 0, "{:?}", out.start_error);
    assert_eq!(marker(h3, "d"), Some((h3.addr.to_string(), h3.port)));
    exec.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_mode_refuses_unknown_and_changed_host_keys() {
    unknown_and_changed_keys_are_refused(ExecMode::Ssh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_mode_refuses_unknown_and_changed_host_keys() {
    unknown_and_changed_keys_are_refused(ExecMode::Agent).await;
}

async fn stopped_host_fails_alone_and_comes_back(mode: ExecMode) {
    let mut cloud = Cloud::start(&[4, 5]);
    cloud.install_hook("marker.sh", MARKER_HOOK);
    let exec = Arc::new(RemoteExecutor::new(cloud.config(mode)));
    // Both hosts connected and working.
    for host in ["host4", "host5"] {
        let out = exec.run(host, req("marker.sh", &["warm"])).await;
        assert_eq!(out.code, 0, "{host}: {:?}", out.start_error);
    }
    // What the metrics show of each host.
    let state = |exec: &RemoteExecutor, host: &str| {
        let s = exec.host_states();
        let h = s.into_iter().find(|h| h.name == host).expect("listed");
        (h.up, h.last_error)
    };
    assert_eq!(state(&exec, "host4"), (true, None));
    assert_eq!(state(&exec, "host5"), (true, None));

    cloud.host_mut("host4").stop();
    let down = {
        let exec = Arc::clone(&exec);
        tokio::spawn(async move { exec.execute("host4", req("marker.sh", &["down"])).await })
    };
    let up = exec.run("host5", req("marker.sh", &["while-down"])).await;
    assert_eq!(up.code, 0, "{:?}", up.start_error);
    // A hook issued before the HEM noticed the loss fails on the dead connection or agent;
    // once noticed, reconnecting is refused. Either way the record names the host.
    let mut outcome = down.await.unwrap();
    for _ in 0..3 {
        match &outcome {
            Err(RemoteError::Connect { host, message, .. }) => {
                assert_eq!(host, "host4");
                assert!(message.contains("refused"), "{message}");
                break;
            }
            Err(e @ (RemoteError::Agent { .. } | RemoteError::Channel { .. })) => {
                assert!(e.to_string().contains("host4"), "{e}");
            }
            other => panic!("expected a connection failure, got {other:?}"),
        }
        outcome = exec.execute("host4", req("marker.sh", &["down"])).await;
    }
    assert!(
        matches!(outcome, Err(RemoteError::Connect { .. })),
        "{outcome:?}"
    );
    let out = exec.run("host4", req("marker.sh", &["down2"])).await;
    assert_eq!(out.code, 255);
    assert!(
        out.start_error
            .as_deref()
            .is_some_and(|e| e.contains("host4")),
        "{:?}",
        out.start_error
    );
    assert_eq!(marker(cloud.host("host4"), "down"), None);
    let (up, error) = state(&exec, "host4");
    assert!(!up);
    assert!(
        error.as_deref().is_some_and(|e| e.contains("refused")),
        "{error:?}"
    );
    assert_eq!(state(&exec, "host5"), (true, None));

    // Same host key and port: the next hook reconnects, no new executor needed.
    cloud.host_mut("host4").restart().unwrap();
    let out = exec.run("host4", req("marker.sh", &["back"])).await;
    assert_eq!(out.code, 0, "{:?}", out.start_error);
    let h4 = cloud.host("host4");
    assert_eq!(marker(h4, "back"), Some((h4.addr.to_string(), h4.port)));
    // Up again; the last error stays on record.
    let (up, error) = state(&exec, "host4");
    assert!(up && error.is_some(), "{error:?}");
    exec.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_mode_stopped_host_fails_alone_and_comes_back() {
    stopped_host_fails_alone_and_comes_back(ExecMode::Ssh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_mode_stopped_host_fails_alone_and_comes_back() {
    stopped_host_fails_alone_and_comes_back(ExecMode::Agent).await;
}

/// A host whose port accepts TCP but never speaks SSH (a hung machine) fails with the
/// connect timeout, while another host's hook runs meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_host_fails_with_connect_timeout_others_work() {
    let cloud = Cloud::start(&[6]);
    cloud.install_hook("marker.sh", MARKER_HOOK);
    // Bound and never accepted: the kernel completes the handshake, nobody answers.
    let hung = TcpListener::bind("127.0.0.11:0").unwrap();
    let mut cfg = cloud.config(ExecMode::Agent);
    cfg.connect_timeout = Some(5.0);
    cfg.hosts.insert(
        "hung".into(),
        HostEntry {
            address: Some("127.0.0.11".into()),
            port: Some(hung.local_addr().unwrap().port()),
            ..HostEntry::default()
        },
    );
    let exec = Arc::new(RemoteExecutor::new(cfg));
    let pending = {
        let exec = Arc::clone(&exec);
        tokio::spawn(async move { exec.execute("hung", req("marker.sh", &["x"])).await })
    };
    let out = exec.run("host6", req("marker.sh", &["meanwhile"])).await;
    assert_eq!(out.code, 0, "{:?}", out.start_error);
    assert!(
        !pending.is_finished(),
        "the hung host answered before its timeout"
    );
    match tokio::time::timeout(Duration::from_secs(30), pending)
        .await
        .unwrap()
        .unwrap()
    {
        Err(RemoteError::ConnectTimeout { host, timeout, .. }) => {
            assert_eq!(host, "hung");
            assert_eq!(timeout, Duration::from_secs(5));
        }
        other => panic!("expected a connect timeout, got {other:?}"),
    }
    drop(hung);
    exec.shutdown().await;
}

/// After a failed attempt the host is not retried before its backoff expires: hooks fail at
/// once with the last error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_host_backs_off() {
    let mut cloud = Cloud::start(&[7]);
    cloud.install_hook("marker.sh", MARKER_HOOK);
    let mut cfg = cloud.config(ExecMode::Ssh);
    cfg.reconnect_backoff_min = Some(600.0);
    cfg.reconnect_backoff_max = Some(600.0);
    let exec = RemoteExecutor::new(cfg);
    cloud.host_mut("host7").stop();
    assert!(matches!(
        exec.execute("host7", req("marker.sh", &["a"])).await,
        Err(RemoteError::Connect { .. })
    ));
    cloud.host_mut("host7").restart().unwrap();
    match exec.execute("host7", req("marker.sh", &["b"])).await {
        Err(RemoteError::Backoff { host, last, .. }) => {
            assert_eq!(host, "host7");
            assert!(last.contains("refused"), "{last}");
        }
        other => panic!("expected backoff, got {other:?}"),
    }
    assert_eq!(marker(cloud.host("host7"), "b"), None);
    exec.shutdown().await;
}

/// A host that is not in the host map is reached by its name; an unresolvable name is a
/// failure record like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_host_name_fails_cleanly() {
    let cloud = Cloud::start(&[8]);
    let exec = RemoteExecutor::new(cloud.config(ExecMode::Ssh));
    let out = exec
        .run("no-such-host.invalid", req("marker.sh", &["a"]))
        .await;
    assert_eq!(out.code, 255);
    let why = out.start_error.unwrap_or_default();
    assert!(why.contains("no-such-host.invalid"), "{why}");
    let out = exec.run("", req("marker.sh", &["a"])).await;
    assert!(out.start_error.is_some());
    exec.shutdown().await;
    assert!(matches!(
        exec.execute("host8", req("marker.sh", &["a"])).await,
        Err(RemoteError::ShutDown)
    ));
}

/// The fixture's known_hosts lines mean the same to OpenSSH's own client: it connects with
/// them and refuses the host without them, as the executor does.
#[test]
fn openssh_client_agrees_on_the_known_hosts_file() {
    let cloud = Cloud::start(&[9]);
    let h = cloud.host("host9");
    let run = |known: &std::path::Path| {
        Command::new("ssh")
            .args(h.ssh_args(&cloud.identity, known))
            .arg("echo $SSH_CONNECTION")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let ok = run(&cloud.known_hosts);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let words: Vec<String> = String::from_utf8_lossy(&ok.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(words[2..], [h.addr.to_string(), h.port.to_string()]);
    let empty = cloud.identity.dir().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let refused = run(&empty);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Host key verification failed"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
