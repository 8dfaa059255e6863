//! TIMEOUT kills the hook's whole process group on the host, and commands outside the host's
//! hook directory never run, in both modes.

use std::time::Duration;

use crate::remote_support::{Cloud, group_alive, install_hook, req};
use onehem_server::remote::{ExecMode, RemoteError, RemoteExecutor};

/// The hook leaves a child that ignores SIGTERM and records its process group ($$: sshd makes
/// the login shell a group leader and `exec` keeps its pid; the agent starts every hook as a
/// group leader).
const SLOW_HOOK: &str = r#"(trap '' TERM; sleep 60) &
echo $$ > "${0%/hooks/*}/pgid"
echo started
sleep 60"#;

async fn timeout_kills_the_remote_group(mode: ExecMode) {
    let cloud = Cloud::start(&[2]);
    cloud.install_hook("slow.sh", SLOW_HOOK);
    let exec = RemoteExecutor::new(cloud.config(mode));
    let mut r = req("slow.sh", &[]);
    r.timeout = Some(Duration::from_millis(800));
    let out = exec.run("host2", r).await;
    assert!(out.timed_out, "{out:?}");
    assert_eq!(out.code, 255);
    let pgid: i32 = std::fs::read_to_string(cloud.host("host2").dir().join("pgid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !group_alive(pgid),
        "process group {pgid} survived the timeout"
    );

    // The connection is still good for the next hook.
    cloud.install_hook("ok.sh", "echo ok");
    let out = exec.run("host2", req("ok.sh", &[])).await;
    assert_eq!((out.code, out.stdout.as_slice()), (0, &b"ok\n"[..]));
    exec.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_mode_timeout_kills_the_remote_group() {
    timeout_kills_the_remote_group(ExecMode::Ssh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_mode_timeout_kills_the_remote_group() {
    timeout_kills_the_remote_group(ExecMode::Agent).await;
}

async fn escaping_commands_are_refused(mode: ExecMode) {
    let cloud = Cloud::start(&[3]);
    let host = cloud.host("host3");
    let witness = host.dir().join("escaped");
    // A script just outside the hook directory that would leave a witness.
    install_hook(
        host.dir(),
        "outside.sh",
        &format!("touch {}", witness.display()),
    );
    let outside = host.dir().join("outside.sh");
    let exec = RemoteExecutor::new(cloud.config(mode));
    let global_dotdot = format!("{}/../outside.sh", crate::remote_support::GLOBAL_BASE);
    let host_dotdot = format!("{}/../outside.sh", host.base_path.display());
    for command in [
        global_dotdot.as_str(),
        host_dotdot.as_str(),
        outside.to_str().unwrap(),
        "/bin/sh",
    ] {
        let mut r = req("x", &["-c", "true"]);
        r.argv[0] = command.to_string();
        match exec.execute("host3", r.clone()).await {
            Err(RemoteError::Refused(refusal)) => assert_eq!(refusal.command, command),
            other => panic!("{command} not refused: {other:?}"),
        }
        let out = exec.run("host3", r).await;
        assert_eq!(out.code, 255);
        let why = out.start_error.unwrap_or_default();
        assert!(why.contains("refused") && why.contains(command), "{why}");
    }
    assert!(
        !witness.exists(),
        "a command outside the hook directory ran"
    );
    exec.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_mode_refuses_escaping_commands() {
    escaping_commands_are_refused(ExecMode::Ssh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_mode_refuses_escaping_commands() {
    escaping_commands_are_refused(ExecMode::Agent).await;
}

/// On the host, the agent resolves symlinks: a link inside the hook directory that points
/// outside is refused there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_refuses_symlinks_leading_outside() {
    let cloud = Cloud::start(&[4]);
    let host = cloud.host("host4");
    let witness = host.dir().join("escaped");
    install_hook(
        host.dir(),
        "outside.sh",
        &format!("touch {}", witness.display()),
    );
    std::os::unix::fs::symlink(
        host.dir().join("outside.sh"),
        host.base_path.join("link.sh"),
    )
    .unwrap();
    let exec = RemoteExecutor::new(cloud.config(ExecMode::Agent));
    let out = exec.run("host4", req("link.sh", &[])).await;
    assert_eq!(out.code, 255);
    let why = out.start_error.unwrap_or_default();
    assert!(
        why.starts_with("refused: ") && why.contains("outside"),
        "{why}"
    );
    assert!(!witness.exists());
    exec.shutdown().await;
}
