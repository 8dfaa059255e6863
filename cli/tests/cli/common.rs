//! A real `oned-lite` for the CLI tests: started from the workspace's build in a temp dir, on
//! its own loopback address, without a hook manager driver. The tools run as processes with
//! `ONE_XMLRPC` and `ONE_AUTH` pointing at it, in UTC, without a terminal.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// What one tool invocation printed and returned.
#[derive(Debug)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Run {
    /// Asserts success and returns stdout.
    pub fn ok(self) -> String {
        assert_eq!(self.code, 0, "command failed: {self:?}");
        assert_eq!(self.stderr, "", "unexpected stderr: {self:?}");
        self.stdout
    }

    /// Asserts failure with exit status 255 and returns stderr.
    pub fn failed(self) -> String {
        assert_eq!(self.code, 255, "command should fail with 255: {self:?}");
        self.stderr
    }
}

pub struct Oned {
    pub dir: tempfile::TempDir,
    pub endpoint: String,
    pub auth: PathBuf,
    child: Child,
}

pub use one_e2e::stack::bin_dir;

fn tool_path(tool: &str) -> PathBuf {
    match tool {
        "onehook" => PathBuf::from(env!("CARGO_BIN_EXE_onehook")),
        "onevm" => PathBuf::from(env!("CARGO_BIN_EXE_onevm")),
        "onehost" => PathBuf::from(env!("CARGO_BIN_EXE_onehost")),
        "oneimage" => PathBuf::from(env!("CARGO_BIN_EXE_oneimage")),
        other => panic!("unknown tool {other}"),
    }
}

fn next_address() -> Ipv4Addr {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Ipv4Addr::new(
        127,
        78,
        (std::process::id() % 251) as u8,
        (n % 250) as u8 + 1,
    )
}

impl Oned {
    pub fn start() -> Oned {
        let oned = bin_dir().join("oned-lite");
        assert!(
            oned.is_file(),
            "{} is missing: build it first (cargo build -p oned-lite, or scripts/test)",
            oned.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("one-cli-")
            .tempdir()
            .expect("temp dir");
        let var = dir.path().join("var");
        std::fs::create_dir_all(&var).expect("var dir");
        let ip = next_address();
        let conf = dir.path().join("oned.conf");
        std::fs::write(
            &conf,
            format!(
                "PORT = 2633\nLISTEN_ADDRESS = \"{ip}\"\nDB = [ BACKEND = \"sqlite\", FILE = \"one.db\" ]\n\
                 HOOK_LOG_CONF = [ LOG_RETENTION = 20 ]\n\
                 SIM = [ PROLOG_DELAY_MS = 5, BOOT_DELAY_MS = 5, SHUTDOWN_DELAY_MS = 5, SAVE_DELAY_MS = 5,\n\
                 EPILOG_DELAY_MS = 5, SCHED_DELAY_MS = 5, MONITOR_DELAY_MS = 5, REBOOT_DELAY_MS = 50,\n\
                 IMAGE_DELAY_MS = 5 ]\n"
            ),
        )
        .expect("oned.conf");
        let log = std::fs::File::create(dir.path().join("oned.log")).expect("oned.log");
        let child = Command::new(&oned)
            .arg("--config")
            .arg(&conf)
            .arg("--var-dir")
            .arg(&var)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawning oned-lite");
        let mut me = Oned {
            endpoint: format!("http://{ip}:2633/RPC2"),
            auth: var.join("one_auth"),
            dir,
            child,
        };
        let addr = SocketAddr::from((ip, 2633));
        let deadline = Instant::now() + Duration::from_secs(20);
        // The port is bound before oneadmin's credentials are written: wait for both.
        let ready = |auth: &Path| {
            std::fs::read_to_string(auth).is_ok_and(|s| s.contains(':'))
                && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        };
        while !ready(&me.auth) {
            if Instant::now() > deadline || matches!(me.child.try_wait(), Ok(Some(_))) {
                panic!("oned-lite did not start:\n{}", me.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        me
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("oned.log")).unwrap_or_default()
    }

    /// The oneadmin session the front-end created.
    pub fn session(&self) -> String {
        std::fs::read_to_string(&self.auth)
            .expect("one_auth")
            .trim()
            .to_string()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).expect("writing a test file");
        p
    }

    /// Runs a tool with empty stdin.
    pub fn run(&self, tool: &str, args: &[&str]) -> Run {
        self.run_with(tool, args, None, &[])
    }

    /// Runs a tool with `input` on stdin.
    pub fn run_stdin(&self, tool: &str, args: &[&str], input: &str) -> Run {
        self.run_with(tool, args, Some(input), &[])
    }

    /// Runs a tool; `env` overrides the environment (a value of "" removes the variable).
    pub fn run_with(
        &self,
        tool: &str,
        args: &[&str],
        input: Option<&str>,
        env: &[(&str, &str)],
    ) -> Run {
        run_tool(
            &tool_path(tool),
            args,
            input,
            &self.endpoint,
            &self.auth,
            env,
        )
    }
}

/// Runs a tool detached from any controlling terminal (`setsid`), so its output is the one
/// of cron and CI whatever terminal the tests were started from.
pub fn run_tool(
    path: &Path,
    args: &[&str],
    input: Option<&str>,
    endpoint: &str,
    auth: &Path,
    env: &[(&str, &str)],
) -> Run {
    let setsid = Path::new("/usr/bin/setsid");
    let mut cmd = if setsid.is_file() {
        let mut c = Command::new(setsid);
        c.arg("--wait").arg(path);
        c
    } else {
        Command::new(path)
    };
    cmd.args(args)
        .env("ONE_XMLRPC", endpoint)
        .env("ONE_AUTH", auth)
        .env("TZ", "UTC")
        .env_remove("EDITOR")
        .env_remove("ONE_PAGER")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        if v.is_empty() {
            cmd.env_remove(k);
        } else {
            cmd.env(k, v);
        }
    }
    let mut child = cmd.spawn().expect("spawning a tool");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("writing stdin");
    }
    let out = child.wait_with_output().expect("running a tool");
    Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code().unwrap_or(-1),
    }
}

impl Drop for Oned {
    fn drop(&mut self) {
        // SIGTERM lets oned-lite stop cleanly; it is killed if it does not within 5 s.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 20 ms until it returns true, for at most 20 s.
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Replaces `MM/DD hh:mm[:ss]` timestamps by a fixed placeholder of the same shape, and the
/// `  Nd HHhMM[m]` periods by zeros, so outputs compare across runs.
pub fn normalize_times(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let digit = |c: Option<&char>| c.is_some_and(|c| c.is_ascii_digit());
    let at = |i: usize, pattern: &str| -> bool {
        pattern.chars().enumerate().all(|(k, p)| {
            let c = chars.get(i + k);
            match p {
                '9' => digit(c),
                p => c == Some(&p),
            }
        })
    };
    while i < chars.len() {
        if at(i, "99/99 99:99:99") {
            out.push_str("MM/DD hh:mm:ss");
            i += 14;
        } else if at(i, "99/99 99:99") {
            out.push_str("MM/DD hh:mm");
            i += 11;
        } else if at(i, "9d 99h99") {
            out.push_str("0d 00h00");
            i += 8;
        } else if at(i, "9h99m99s") {
            out.push_str("0h00m00s");
            i += 8;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}
