//! A remote hook runs on the host it is given and nowhere else, in both modes; arguments, stdin,
//! exit codes and output caps come back as the hook produced them.

use std::time::Duration;

use crate::remote_support::{Cloud, MARKER_HOOK, marker, req};
use onehem_server::remote::{ExecMode, RemoteExecutor};

async fn runs_only_on_the_named_host(mode: ExecMode) {
    let cloud = Cloud::start(&[2, 3, 4]);
    cloud.install_hook("vm/marker.sh", MARKER_HOOK);
    let exec = RemoteExecutor::new(cloud.config(mode));

    // A VM hook for a VM on host3, then a HOST hook for host2.
    for (host, tag) in [("host3", "vm42"), ("host2", "host2-up")] {
        let out = exec
            .run(host, req("vm/marker.sh", &[tag, "two words", "it's $HOME"]))
            .await;
        assert_eq!(out.start_error, None, "{host}");
        assert_eq!(
            out.code,
            0,
            "{host}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("[{tag}][two words][it's $HOME]\n")
        );
        for h in &cloud.hosts {
            let ran = marker(h, tag);
            if h.name == host {
                assert_eq!(ran, Some((h.addr.to_string(), h.port)), "{tag} on {host}");
            } else {
                assert_eq!(ran, None, "{tag} also ran on {}", h.name);
            }
        }
    }
    exec.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_mode_runs_only_on_the_named_host() {
    runs_only_on_the_named_host(ExecMode::Ssh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_mode_runs_only_on_the_named_host() {
    runs_only_on_the_named_host(ExecMode::Agent).await;
}

async fn stdin_codes_and_caps(mode: ExecMode) {
    let cloud = Cloud::start(&[5]);
    cloud.install_hook("cat.sh", "cat; echo done >&2; exit 7");
    cloud.install_hook(
        "big.sh",
        "head -c 200000 /dev/zero; head -c 5000 /dev/zero >&2",
    );
    cloud.install_hook("selfkill.sh", "kill -USR1 $$");
    let exec = RemoteExecutor::new(cloud.config(mode));

    let mut r = req("cat.sh", &[]);
    r.stdin = Some(b"<VM><ID>1</ID></VM>\nsecond line".to_vec());
    let out = exec.run("host5", r).await;
    assert_eq!(out.code, 7);
    assert_eq!(out.stdout, b"<VM><ID>1</ID></VM>\nsecond line");
    assert_eq!(out.stderr, b"done\n");

    let mut r = req("big.sh", &[]);
    r.output_cap = 1000;
    let out = exec.run("host5", r).await;
    assert_eq!(out.code, 0);
    assert_eq!((out.stdout.len(), out.stdout_truncated), (1000, true));
    assert_eq!((out.stderr.len(), out.stderr_truncated), (1000, true));

    let out = exec.run("host5", req("selfkill.sh", &[])).await;
    assert_eq!((out.code, out.signal), (255, Some(10)));

    let out = exec.run("host5", req("missing.sh", &[])).await;
    assert_ne!(out.code, 0);
    exec.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_mode_stdin_codes_and_caps() {
    stdin_codes_and_caps(ExecMode::Ssh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_mode_stdin_codes_and_caps() {
    stdin_codes_and_caps(ExecMode::Agent).await;
}

/// Per-host mode override: one host in agent mode, the other in ssh mode, one executor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_host_mode_override() {
    let cloud = Cloud::start(&[6, 7]);
    // The agent runs hooks without a shell: $0 is the path it was given. In ssh mode the
    // login shell is the parent; the hook reports its parent's command name.
    cloud.install_hook("who.sh", "cat /proc/$PPID/comm");
    let mut cfg = cloud.config(ExecMode::Ssh);
    cfg.hosts.get_mut("host7").unwrap().mode = Some(ExecMode::Agent);
    let exec = RemoteExecutor::new(cfg);
    let a = exec.run("host6", req("who.sh", &[])).await;
    let b = exec.run("host7", req("who.sh", &[])).await;
    assert_eq!(String::from_utf8_lossy(&b.stdout), "onehem-agent\n");
    assert_ne!(String::from_utf8_lossy(&a.stdout), "onehem-agent\n");
    assert_eq!((a.code, b.code), (0, 0));
    exec.shutdown().await;
}

/// Many concurrent hooks over one connection per host, in agent mode, more than the
/// per-host bound: all complete, each with its own output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_hooks_beyond_the_per_host_bound_all_complete() {
    let cloud = Cloud::start(&[8, 9]);
    cloud.install_hook("echo.sh", "sleep 0.05; echo \"$1\"");
    let exec = std::sync::Arc::new(RemoteExecutor::new(cloud.config(ExecMode::Agent)));
    let mut tasks = Vec::new();
    for i in 0..40 {
        let exec = exec.clone();
        let host = if i % 2 == 0 { "host8" } else { "host9" };
        tasks.push(tokio::spawn(async move {
            let tag = format!("n{i}");
            let out = exec.run(host, req("echo.sh", &[&tag])).await;
            (tag, out)
        }));
    }
    for t in tasks {
        let (tag, out) = tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out.code, 0, "{:?}", out.start_error);
        assert_eq!(out.stdout, format!("{tag}\n").into_bytes());
    }
    exec.shutdown().await;
}
