//! The real `onehem-agent --stdio` binary driven through its pipes, as the HEM drives it over SSH.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use one_proto::agent::{Execute, Executed, FrameBuffer, PROTOCOL_VERSION, Reply, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const STEP: Duration = Duration::from_secs(20);

struct Agent {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    frames: FrameBuffer,
    early: HashMap<u64, Reply>,
}

impl Agent {
    async fn start(base: &Path) -> (Agent, Reply) {
        Agent::start_with(base, Stdio::inherit(), "warn").await
    }

    async fn start_with(base: &Path, stderr: Stdio, log: &str) -> (Agent, Reply) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_onehem-agent"))
            .args(["--stdio", "--kill-grace", "0.5", "--base"])
            .arg(base)
            .env("ONEHEM_AGENT_LOG", log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let mut agent = Agent {
            child,
            stdin,
            stdout,
            frames: FrameBuffer::new(),
            early: HashMap::new(),
        };
        let hello = agent.next().await.unwrap();
        (agent, hello)
    }

    async fn send(&mut self, req: Request) {
        let frame = req.encode().unwrap();
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(&frame).await.unwrap();
        stdin.flush().await.unwrap();
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(bytes).await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// The next reply, or `None` at end of stream.
    async fn next(&mut self) -> Option<Reply> {
        let mut buf = vec![0u8; 65536];
        loop {
            if let Some(r) = self.frames.next_reply().unwrap() {
                return Some(r);
            }
            let n = tokio::time::timeout(STEP, self.stdout.read(&mut buf))
                .await
                .expect("agent answers in time")
                .unwrap();
            if n == 0 {
                return None;
            }
            self.frames.extend(&buf[..n]);
        }
    }

    /// The reply for request `id`, keeping others for later.
    async fn reply_for(&mut self, id: u64) -> Reply {
        if let Some(r) = self.early.remove(&id) {
            return r;
        }
        loop {
            let r = self.next().await.expect("agent still running");
            let rid = match &r {
                Reply::Result(x) => x.id,
                Reply::HookList { id, .. } | Reply::PutDone { id, .. } => *id,
                other => panic!("unexpected reply {other:?}"),
            };
            if rid == id {
                return r;
            }
            self.early.insert(rid, r);
        }
    }

    async fn exec(&mut self, e: Execute) -> Executed {
        let id = e.id;
        self.send(Request::Execute(e)).await;
        match self.reply_for(id).await {
            Reply::Result(r) => r,
            other => panic!("expected a result, got {other:?}"),
        }
    }
}

fn hook(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn exec(id: u64, argv: &[&str]) -> Execute {
    Execute {
        id,
        argv: argv.iter().map(|s| s.to_string()).collect(),
        output_cap: 1 << 20,
        ..Execute::default()
    }
}

fn pgid_alive(pgid: i32) -> bool {
    // A process of the group that is not a zombie.
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
            return false;
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
    })
}

#[tokio::test]
async fn hello_execute_stdin_and_caps() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("hooks");
    hook(&base, "echo.sh", "echo \"[$1][$2]\"; echo err >&2; exit 3");
    hook(&base, "cat.sh", "cat");
    hook(&base, "big.sh", "head -c 100000 /dev/zero");
    let (mut agent, hello) = Agent::start(&base).await;
    match hello {
        Reply::Hello {
            protocol, version, ..
        } => {
            assert_eq!(protocol, PROTOCOL_VERSION);
            assert_eq!(version, env!("CARGO_PKG_VERSION"));
        }
        other => panic!("expected hello, got {other:?}"),
    }

    let abs = base.join("echo.sh");
    let r = agent
        .exec(exec(1, &[abs.to_str().unwrap(), "a b", "$HOME;`x`"]))
        .await;
    assert_eq!(r.code, 3);
    assert_eq!(r.stdout, b"[a b][$HOME;`x`]\n");
    assert_eq!(r.stderr, b"err\n");
    assert_eq!(r.start_error, None);

    let mut e = exec(2, &["cat.sh"]);
    e.stdin = Some(b"from stdin".to_vec());
    let r = agent.exec(e).await;
    assert_eq!((r.code, r.stdout.as_slice()), (0, &b"from stdin"[..]));

    let mut e = exec(3, &["big.sh"]);
    e.output_cap = 1000;
    let r = agent.exec(e).await;
    assert_eq!(r.code, 0);
    assert_eq!(r.stdout.len(), 1000);
    assert!(r.stdout_truncated);
    assert!(!r.stderr_truncated);
}

#[tokio::test]
async fn escapes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("hooks");
    std::fs::create_dir_all(&base).unwrap();
    let marker = dir.path().join("ran");
    hook(
        dir.path(),
        "outside.sh",
        &format!("touch {}", marker.display()),
    );
    std::os::unix::fs::symlink(dir.path().join("outside.sh"), base.join("link.sh")).unwrap();
    let (mut agent, _) = Agent::start(&base).await;
    let outside = dir.path().join("outside.sh");
    let dotdot = format!("{}/../outside.sh", base.display());
    for (id, cmd) in [
        (1, "../outside.sh"),
        (2, outside.to_str().unwrap()),
        (3, dotdot.as_str()),
        (4, "link.sh"),
        (5, "/bin/sh"),
    ] {
        let r = agent.exec(exec(id, &[cmd, "-c", "true"])).await;
        assert_eq!(r.code, 255, "{cmd}");
        let err = r.start_error.unwrap_or_default();
        assert!(err.starts_with("refused: "), "{cmd}: {err}");
    }
    let r = agent.exec(exec(6, &["missing.sh"])).await;
    assert_eq!(
        r.start_error.as_deref(),
        Some("No such file or directory - missing.sh")
    );
    assert!(!marker.exists());
}

#[tokio::test]
async fn timeout_kills_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("hooks");
    let pidfile = dir.path().join("pids");
    // The hook leaves a child that ignores SIGTERM, and writes both pids.
    hook(
        &base,
        "slow.sh",
        &format!(
            "(trap '' TERM; sleep 60) & echo $$ $! > {}; sleep 60",
            pidfile.display()
        ),
    );
    let (mut agent, _) = Agent::start(&base).await;
    let mut e = exec(1, &["slow.sh"]);
    e.timeout_ms = Some(300);
    let r = agent.exec(e).await;
    assert!(r.timed_out);
    assert_eq!(r.code, 255);
    let pids = std::fs::read_to_string(&pidfile).unwrap();
    let leader: i32 = pids.split_whitespace().next().unwrap().parse().unwrap();
    assert!(!pgid_alive(leader), "group {leader} still has processes");
}

#[tokio::test]
async fn cancel_and_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("hooks");
    hook(&base, "sleep.sh", "sleep 60");
    hook(&base, "n.sh", "echo $1");
    let (mut agent, _) = Agent::start(&base).await;
    agent.send(Request::Execute(exec(100, &["sleep.sh"]))).await;
    for i in 0..20u64 {
        agent
            .send(Request::Execute(exec(i, &["n.sh", &i.to_string()])))
            .await;
    }
    for i in (0..20u64).rev() {
        match agent.reply_for(i).await {
            Reply::Result(r) => assert_eq!(r.stdout, format!("{i}\n").into_bytes()),
            other => panic!("{other:?}"),
        }
    }
    agent.send(Request::Cancel { id: 100 }).await;
    match agent.reply_for(100).await {
        Reply::Result(r) => {
            assert_eq!(r.code, 255);
            assert!(!r.timed_out);
            assert_eq!(r.signal, Some(15));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn list_and_put_files() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("hooks");
    hook(&base, "a.sh", "true");
    let (mut agent, _) = Agent::start(&base).await;
    agent
        .send(Request::PutFile {
            id: 1,
            path: "sub/b.sh".into(),
            mode: 0o750,
            data: b"#!/bin/sh\necho put\n".to_vec(),
        })
        .await;
    assert_eq!(
        agent.reply_for(1).await,
        Reply::PutDone { id: 1, error: None }
    );
    agent
        .send(Request::PutFile {
            id: 2,
            path: "../evil".into(),
            mode: 0o755,
            data: Vec::new(),
        })
        .await;
    match agent.reply_for(2).await {
        Reply::PutDone { error: Some(e), .. } => assert!(e.contains(".."), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(!dir.path().join("evil").exists());
    let r = agent.exec(exec(3, &["sub/b.sh"])).await;
    assert_eq!(r.stdout, b"put\n");
    agent.send(Request::ListHooks { id: 4 }).await;
    match agent.reply_for(4).await {
        Reply::HookList {
            entries: Ok(entries),
            ..
        } => {
            let names: Vec<_> = entries.iter().map(|e| e.path.as_str()).collect();
            assert_eq!(names, ["a.sh", "sub/b.sh"]);
            assert_eq!(entries[1].mode, 0o750);
        }
        other => panic!("{other:?}"),
    }
}

async fn closing_stdin_ends_the_agent_and_its_hooks(stderr_gone: bool) {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("hooks");
    let pidfile = dir.path().join("pid");
    hook(
        &base,
        "sleep.sh",
        &format!("echo $$ > {}; exec sleep 60", pidfile.display()),
    );
    // With stderr gone too (the SSH channel closed), logging must not stop the cleanup.
    let (mut agent, _) = if stderr_gone {
        Agent::start_with(&base, Stdio::piped(), "debug").await
    } else {
        Agent::start(&base).await
    };
    agent.send(Request::Execute(exec(1, &["sleep.sh"]))).await;
    // Wait (bounded) until the hook has written its pid.
    let mut pid = None;
    for _ in 0..400 {
        if let Some(p) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            pid = Some(p);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let pid = pid.expect("hook started");
    drop(agent.child.stderr.take());
    drop(agent.stdin.take());
    let status = tokio::time::timeout(STEP, agent.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    // SIGKILL is delivered asynchronously; allow it to land (bounded).
    let mut alive = true;
    for _ in 0..100 {
        alive = pgid_alive(pid);
        if !alive {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive);
}

#[tokio::test]
async fn closing_stdin_ends_the_agent_and_its_hooks_stderr_open() {
    closing_stdin_ends_the_agent_and_its_hooks(false).await;
}

#[tokio::test]
async fn closing_stdin_ends_the_agent_and_its_hooks_stderr_closed() {
    closing_stdin_ends_the_agent_and_its_hooks(true).await;
}

#[tokio::test]
async fn garbage_gets_a_protocol_error() {
    let dir = tempfile::tempdir().unwrap();
    let (mut agent, _) = Agent::start(dir.path()).await;
    agent.send_raw(&[0, 0, 0, 1, 0x7f]).await;
    match agent.next().await {
        Some(Reply::ProtocolError { message }) => assert!(message.contains("0x7f"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(agent.next().await, None);
    let status = tokio::time::timeout(STEP, agent.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success());
}
