//! The local executor against real processes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use onehem_server::executor::{ExecOutcome, ExecRequest};
use onehem_server::local_executor::LocalExecutor;

fn req(argv: &[&str]) -> ExecRequest {
    ExecRequest {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        stdin: None,
        timeout: None,
        output_cap: 1 << 20,
    }
}

async fn run(r: ExecRequest) -> ExecOutcome {
    // A bound on the test, not an assertion on time: a hang fails instead of blocking for ever.
    tokio::time::timeout(
        Duration::from_secs(60),
        LocalExecutor::new(Duration::from_millis(500)).run(r),
    )
    .await
    .expect("execution did not finish")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Processes whose process group is `pgid` and that are not zombies.
pub(crate) fn live_group_members(pgid: i32) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name (which is in parentheses and may hold spaces).
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let (state, pgrp) = (fields[0], fields[2].parse::<i32>().unwrap());
        if pgrp == pgid && state != "Z" && state != "X" {
            found.push(pid);
        }
    }
    found
}

#[tokio::test]
async fn arguments_are_argv_words_and_never_reach_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let pwned = dir.path().join("pwned");
    let evil = format!(";touch {}", pwned.display());
    let sub = format!("$(touch {})", pwned.display());
    let out = run(req(&[
        "/usr/bin/printf",
        "[%s]\\n",
        &evil,
        "|",
        "&&",
        &sub,
        "`id`",
        "'q'",
    ]))
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        text(&out.stdout),
        format!("[{evil}]\n[|]\n[&&]\n[{sub}]\n[`id`]\n['q']\n")
    );
    assert!(!pwned.exists(), "a shell ran the arguments");
}

#[tokio::test]
async fn stdin_mode_writes_the_data_and_no_stdin_is_closed() {
    let mut r = req(&["/bin/cat"]);
    r.stdin = Some(b"PFZNPjwvVk0+ pending".to_vec());
    let out = run(r).await;
    assert_eq!(out.code, 0);
    assert_eq!(text(&out.stdout), "PFZNPjwvVk0+ pending");

    // With no stdin data, cat sees EOF at once instead of waiting.
    let out = run(req(&["/bin/cat"])).await;
    assert_eq!(out.code, 0);
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn exit_codes_and_signals() {
    let out = run(req(&["/bin/sh", "-c", "echo err >&2; exit 3"])).await;
    assert_eq!((out.code, out.signal, out.timed_out), (3, None, false));
    assert_eq!(text(&out.stderr), "err\n");
    assert!(out.start_error.is_none());

    let out = run(req(&["/bin/sh", "-c", "kill -9 $$"])).await;
    assert_eq!((out.code, out.signal), (255, Some(9)));
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    // The main process starts a background child that ignores SIGTERM, so only the SIGKILL to
    // the group after the grace period can end it.
    let script = format!(
        "(trap '' TERM; sleep 300) & echo $$ $! > {}; sleep 300",
        pidfile.display()
    );
    let mut r = req(&["/bin/sh", "-c", &script]);
    r.timeout = Some(Duration::from_millis(300));
    let out = run(r).await;
    assert!(out.timed_out);
    assert_eq!(out.code, 255);
    let pids = std::fs::read_to_string(&pidfile).unwrap();
    let pgid: i32 = pids.split_whitespace().next().unwrap().parse().unwrap();
    // The kill was sent before run returned; the kernel may still be tearing processes down,
    // so poll (bounded) until the group is empty.
    let mut members = live_group_members(pgid);
    for _ in 0..200 {
        if members.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        members = live_group_members(pgid);
    }
    assert!(
        members.is_empty(),
        "processes of group {pgid} survive: {members:?}"
    );
}

#[tokio::test]
async fn a_background_child_holding_the_pipes_does_not_block() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let script = format!("sleep 300 & echo $! > {}; echo done", pidfile.display());
    let out = run(req(&["/bin/sh", "-c", &script])).await;
    assert_eq!(out.code, 0);
    assert_eq!(text(&out.stdout), "done\n");
    // Not a timeout, so the background child is left alone; clean it up here.
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

#[tokio::test]
async fn output_is_capped_and_flagged() {
    let mut r = req(&[
        "/bin/sh",
        "-c",
        "head -c 100000 /dev/zero; head -c 10 /dev/zero >&2",
    ]);
    r.output_cap = 1000;
    let out = run(r).await;
    assert_eq!(out.code, 0);
    assert_eq!(out.stdout.len(), 1000);
    assert!(out.stdout_truncated);
    assert_eq!(out.stderr.len(), 10);
    assert!(!out.stderr_truncated);
}

#[tokio::test]
async fn missing_and_non_executable_commands_say_why() {
    let out = run(req(&["/var/lib/one/remotes/hooks/vm-pending.rb", "x"])).await;
    assert_eq!(out.code, 255);
    assert_eq!(
        out.start_error.as_deref(),
        Some("No such file or directory - /var/lib/one/remotes/hooks/vm-pending.rb")
    );

    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("hook.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = script.display().to_string();
    let out = run(req(&[&path])).await;
    assert_eq!(out.code, 255);
    assert_eq!(out.start_error, Some(format!("Permission denied - {path}")));

    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(req(&[&path])).await;
    assert_eq!((out.code, text(&out.stdout)), (0, "hi\n".to_string()));
    assert!(Path::new(&path).exists());
}

#[tokio::test]
async fn arguments_too_long_recommend_stdin() {
    // Linux refuses a single argument over 128 KiB with E2BIG.
    let big = "A".repeat(200_000);
    let out = run(req(&["/bin/echo", &big])).await;
    assert_eq!(out.code, 255);
    let msg = out.start_error.unwrap();
    assert!(
        msg.starts_with("Argument list too long - /bin/echo"),
        "{msg}"
    );
    assert!(msg.contains("200011 bytes"), "{msg}");
    assert!(msg.contains("ARGUMENTS_STDIN=yes"), "{msg}");
}
