//! Starts the real `one_hm` binary and Python peers (pyzmq) in a temp dir, on free loopback ports.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use one_proto::encoding::b64_encode;
use one_proto::event::{ApiEvent, HookMessage, StateEvent};
use one_proto::retry::RetryMessage;
use one_proto::states::ObjectKind;

/// How long any single expected output may take before the test fails (a liveness bound, not a
/// performance assertion).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The bound endpoints, read from `--endpoints-file`.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub publisher: String,
    pub logger: String,
    pub replay: String,
    /// With `--metrics-listen`.
    pub metrics: Option<std::net::SocketAddr>,
}

/// A running `one_hm` with its stdin, its stdout lines and its stderr in a file.
pub struct Driver {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    pub endpoints: Endpoints,
    stderr_path: PathBuf,
}

fn spawn_lines(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            match line {
                Ok(line) => {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    rx
}

impl Driver {
    /// Starts `one_hm` with its journal in `dir`, all ports 0, and `extra` flags.
    pub fn start(dir: &Path, extra: &[&str]) -> Driver {
        Self::start_with(dir, extra, false)
    }

    /// Like [`Driver::start`], with fd 2 closed as oned leaves it.
    pub fn start_without_stderr(dir: &Path, extra: &[&str]) -> Driver {
        Self::start_with(dir, extra, true)
    }

    fn start_with(dir: &Path, extra: &[&str], close_stderr: bool) -> Driver {
        let endpoints_file = dir.join("endpoints");
        let _ = std::fs::remove_file(&endpoints_file);
        let stderr_path = dir.join("stderr.log");
        let journal = dir.join("journal.db");
        let mut args: Vec<String> = vec![
            "-p".into(),
            "0".into(),
            "-l".into(),
            "0".into(),
            "--replay-port".into(),
            "0".into(),
            "--journal".into(),
            journal.display().to_string(),
            "--endpoints-file".into(),
            endpoints_file.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let binary = env!("CARGO_BIN_EXE_one_hm");
        let mut command = if close_stderr {
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg("exec \"$0\" \"$@\" 2>&-").arg(binary);
            c.args(&args);
            c.stderr(Stdio::inherit());
            c
        } else {
            let mut c = Command::new(binary);
            c.args(&args);
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&stderr_path)
                .expect("stderr log");
            c.stderr(log);
            c
        };
        let mut child = command
            .current_dir(dir)
            .env("ONE_LOG", "debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start one_hm");
        let stdin = child.stdin.take();
        let lines = spawn_lines(child.stdout.take().expect("stdout"));
        let endpoints = wait_endpoints(&endpoints_file, &mut child);
        Driver {
            child,
            stdin,
            lines,
            endpoints,
            stderr_path,
        }
    }

    /// Writes one line to the driver's stdin.
    pub fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\n").as_bytes());
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).expect("write to one_hm");
        stdin.flush().expect("flush to one_hm");
    }

    /// Sends INIT and checks that the reply is the first line.
    pub fn init(&mut self) {
        self.send("INIT");
        assert_eq!(self.next_line(), "INIT SUCCESS - -");
    }

    /// The next stdout line.
    pub fn next_line(&self) -> String {
        match self.lines.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(e) => panic!("no line from one_hm ({e}); stderr:\n{}", self.stderr()),
        }
    }

    /// Everything on stdout until it closes.
    pub fn rest_of_stdout(&self) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        let mut out = Vec::new();
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => out.push(line),
                Err(RecvTimeoutError::Disconnected) => return out,
                Err(RecvTimeoutError::Timeout) => panic!("stdout of one_hm did not close"),
            }
        }
    }

    /// Hands the driver's stdin to the caller (to write from another thread).
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.stdin.take().expect("stdin open")
    }

    /// Closes stdin (end of file for the driver).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid")
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).expect("kill");
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "one_hm did not exit; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the driver's log holds `needle` (the driver logs at debug level).
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let log = self.stderr();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "one_hm never logged {needle:?}; stderr:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, and wait for it.
    pub fn kill9(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
        self.wait();
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_endpoints(path: &Path, child: &mut Child) -> Endpoints {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            let get = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}=")))
                    .unwrap_or_else(|| panic!("{name} missing from endpoints file"))
                    .to_owned()
            };
            return Endpoints {
                publisher: get("publisher"),
                logger: get("logger"),
                replay: get("replay"),
                metrics: text
                    .lines()
                    .find_map(|l| l.strip_prefix("metrics="))
                    .map(|a| a.parse().expect("metrics address")),
            };
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("one_hm exited before binding: {status}");
        }
        assert!(Instant::now() < deadline, "one_hm did not bind in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The interpreter with pyzmq (`one_e2e::stack::python`); a test without it fails saying how
/// to get it.
pub fn python() -> PathBuf {
    one_e2e::stack::python().unwrap_or_else(|e| panic!("{e:#}"))
}

/// A running Python peer from `driver/tests/py/`.
pub struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    name: String,
}

impl Peer {
    pub fn start(script: &str, args: &[&str]) -> Peer {
        Self::start_env(script, args, &[])
    }

    /// Starts `script` with extra environment variables (CURVE keys, reply timeout).
    pub fn start_env(script: &str, args: &[&str], env: &[(String, String)]) -> Peer {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/py")
            .join(script);
        let mut child = Command::new(python())
            .arg(&path)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {script}: {e} (run scripts/setup)"));
        let stdin = child.stdin.take();
        let lines = spawn_lines(child.stdout.take().expect("stdout"));
        Peer {
            child,
            stdin,
            lines,
            name: script.to_owned(),
        }
    }

    pub fn next_line(&self) -> String {
        self.lines
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|e| panic!("no output from {} ({e})", self.name))
    }

    /// The next line if one comes within `wait`.
    pub fn try_line(&self, wait: Duration) -> Option<String> {
        self.lines.recv_timeout(wait).ok()
    }

    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to peer");
        stdin.flush().expect("flush to peer");
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Every remaining line until the peer exits; asserts it succeeded.
    pub fn finish(self) -> Vec<String> {
        let name = self.name.clone();
        let (out, status) = self.finish_unchecked();
        assert!(status.success(), "{name} failed ({status}): {out:?}");
        out
    }

    /// Every remaining line until the peer exits, and how it exited.
    pub fn finish_unchecked(mut self) -> (Vec<String>, ExitStatus) {
        self.close_stdin();
        let mut out = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(PATIENCE) {
            out.push(line);
        }
        let status = self.child.wait().expect("wait peer");
        (out, status)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `req.py` with the given requests (JSON frame lists) and returns its replies.
pub fn request(endpoint: &str, requests: &[serde_json::Value]) -> Vec<Vec<String>> {
    let mut peer = Peer::start("req.py", &[endpoint]);
    for r in requests {
        peer.send(&r.to_string());
    }
    peer.finish()
        .iter()
        .map(|line| serde_json::from_str(line).expect("reply json"))
        .collect()
}

/// A replayed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    pub seq: u64,
    pub keys: Vec<String>,
    pub content: String,
}

/// The whole journal after `after`, through `replay.py`; also returns (oldest, head).
pub fn replay_all(endpoint: &str, after: u64, page: u32) -> (Vec<Replayed>, u64, u64) {
    replay_with(endpoint, &[&after.to_string(), &page.to_string()])
}

pub fn replay_with(endpoint: &str, args: &[&str]) -> (Vec<Replayed>, u64, u64) {
    let mut all = vec![endpoint];
    all.extend_from_slice(args);
    let lines = Peer::start("replay.py", &all).finish();
    let (last, events) = lines.split_last().expect("replay output");
    let summary: serde_json::Value = serde_json::from_str(last).expect("summary");
    let events = events
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("event json");
            Replayed {
                seq: v["seq"].as_u64().expect("seq"),
                keys: v["keys"]
                    .as_array()
                    .expect("keys")
                    .iter()
                    .map(|k| k.as_str().expect("key").to_owned())
                    .collect(),
                content: v["content"].as_str().expect("content").to_owned(),
            }
        })
        .collect();
    (
        events,
        summary["oldest"].as_u64().expect("oldest"),
        summary["head"].as_u64().expect("head"),
    )
}

/// A subscriber (`sub.py`) connected and known to receive: probes are published until it has
/// seen one, which also proves its filters are in place.
pub fn subscriber(driver: &mut Driver, count: usize, filters: &[&str]) -> Peer {
    let mut args = vec![driver.endpoints.publisher.as_str(), ""];
    let count = count.to_string();
    args[1] = &count;
    args.extend_from_slice(filters);
    let sub = Peer::start("sub.py", &args);
    assert_eq!(sub.next_line(), "READY");
    sync(driver, &sub, "PROBE");
    sub
}

/// Publishes probe events until `peer` prints `marker`; returns how many were sent (each is one
/// journaled event).
pub fn sync(driver: &mut Driver, peer: &Peer, marker: &str) -> u64 {
    for sent in 1..=300 {
        driver.send(&execute(&probe_event()));
        if let Some(line) = peer.try_line(Duration::from_millis(100)) {
            assert_eq!(line, marker);
            return sent;
        }
    }
    panic!("subscriber never received a probe");
}

/// A message received by `sub.py`.
#[derive(Debug, Clone)]
pub struct Received {
    pub key: String,
    pub content: String,
}

pub fn received(line: &str) -> Received {
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    Received {
        key: v["key"].as_str().expect("key").to_owned(),
        content: v["content"].as_str().expect("content").to_owned(),
    }
}

// ---- events, as oned builds them (reference §4.4, §4.5, §4.6) ----

pub fn execute(b64: &str) -> String {
    one_proto::mad::oned_execute_line(b64)
}

pub fn retry(b64: &str) -> String {
    one_proto::mad::oned_retry_line(b64)
}

pub fn encode(xml: &str) -> String {
    b64_encode(xml.as_bytes())
}

pub fn probe_event() -> String {
    api_event("one.probe.sync", true, "probe")
}

pub fn api_event(call: &str, success: bool, arg: &str) -> String {
    let ins = vec!["oneadmin:secret".to_owned(), arg.to_owned()];
    let api = if success {
        ApiEvent::success(call, ins, "5", "")
    } else {
        ApiEvent::failure(
            call,
            ins,
            format!("[{call}] Error getting object."),
            1024,
            -1,
            "",
        )
    };
    encode(&HookMessage::Api(api).to_xml())
}

pub fn vm_event(id: i64, state: &str, lcm: &str, service: Option<i64>, pad: usize) -> String {
    let body = format!(
        "<VM><ID>{id}</ID><UID>0</UID><GID>0</GID><NAME>vm-{id}</NAME><STATE>1</STATE><LCM_STATE>0</LCM_STATE><USER_TEMPLATE><PAD>{}</PAD></USER_TEMPLATE><HISTORY_RECORDS/></VM>",
        "x".repeat(pad)
    );
    encode(
        &HookMessage::State(StateEvent {
            object: ObjectKind::Vm,
            state: state.into(),
            lcm_state: Some(lcm.into()),
            resource_id: id,
            service_id: service,
            remote_host: Some("node1".into()),
            body,
        })
        .to_xml(),
    )
}

pub fn host_event(id: i64, state: &str, name: &str) -> String {
    encode(
        &HookMessage::State(StateEvent {
            object: ObjectKind::Host,
            state: state.into(),
            lcm_state: None,
            resource_id: id,
            service_id: None,
            remote_host: Some(name.into()),
            body: format!("<HOST><ID>{id}</ID><NAME>{name}</NAME><STATE>3</STATE></HOST>"),
        })
        .to_xml(),
    )
}

pub fn image_event(id: i64, state: &str) -> String {
    encode(
        &HookMessage::State(StateEvent {
            object: ObjectKind::Image,
            state: state.into(),
            lcm_state: None,
            resource_id: id,
            service_id: None,
            remote_host: None,
            body: format!("<IMAGE><ID>{id}</ID><STATE>1</STATE></IMAGE>"),
        })
        .to_xml(),
    )
}

pub fn retry_event(hook_id: i64, arguments: &str, host: Option<&str>) -> String {
    encode(
        &RetryMessage {
            arguments: arguments.into(),
            hook_id,
            remote_host: host.map(str::to_owned),
        }
        .to_xml(),
    )
}

/// A HEM result body (§4.7) with an optional EXECUTION_UID, strict base64.
pub fn result_body(command: &str, code: i32, uid: Option<&str>) -> String {
    let mut xml = format!(
        "<ARGUMENTS>a</ARGUMENTS><EXECUTION_RESULT><COMMAND>{command}</COMMAND><STDOUT></STDOUT><STDERR></STDERR><CODE>{code}</CODE></EXECUTION_RESULT>"
    );
    if let Some(uid) = uid {
        xml.push_str(&format!("<EXECUTION_UID>{uid}</EXECUTION_UID>"));
    }
    encode(&xml)
}

// ---- CURVE keys ----

/// Who writes a certificate pair: our `one_hm --curve-keygen`, or pyzmq's
/// `zmq.auth.create_certificates` (the two must read each other's files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMaker {
    OneHm,
    Pyzmq,
}

/// Makes `dir/NAME.key` and `dir/NAME.key_secret`; returns the two paths.
pub fn make_pair(maker: KeyMaker, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).expect("key dir");
    let out = match maker {
        KeyMaker::OneHm => Command::new(env!("CARGO_BIN_EXE_one_hm"))
            .arg("--curve-keygen")
            .arg(dir)
            .arg(name)
            .output(),
        KeyMaker::Pyzmq => Command::new(python())
            .arg("-c")
            .arg("import sys, zmq.auth; zmq.auth.create_certificates(sys.argv[1], sys.argv[2])")
            .arg(dir)
            .arg(name)
            .output(),
    }
    .expect("run the key maker");
    assert!(
        out.status.success(),
        "{maker:?} could not make {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = dir.join(format!("{name}.key_secret"));
    if maker == KeyMaker::Pyzmq {
        // pyzmq leaves the secret file to the umask; the driver takes only private ones.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    (dir.join(format!("{name}.key")), secret)
}

/// A driver's pair and its clients: `ours` (made by one_hm) and `py` (made by pyzmq) are
/// allowed, `stranger` (a valid pair, made by pyzmq) is not.
pub struct CurveKeys {
    pub server_public: PathBuf,
    pub server_secret: PathBuf,
    pub clients: PathBuf,
    root: PathBuf,
}

impl CurveKeys {
    pub fn make(dir: &Path, server_maker: KeyMaker) -> CurveKeys {
        let root = dir.join("curve");
        let (server_public, server_secret) = make_pair(server_maker, &root, "one_hm");
        let clients = root.join("clients");
        for (maker, name) in [(KeyMaker::OneHm, "ours"), (KeyMaker::Pyzmq, "py")] {
            let (public, _) = make_pair(maker, &root.join("secrets"), name);
            std::fs::create_dir_all(&clients).expect("clients dir");
            std::fs::copy(&public, clients.join(format!("{name}.key"))).expect("allow");
        }
        make_pair(KeyMaker::Pyzmq, &root.join("secrets"), "stranger");
        CurveKeys {
            server_public,
            server_secret,
            clients,
            root,
        }
    }

    /// The driver's flags.
    pub fn driver_flags(&self) -> Vec<String> {
        vec![
            "--curve-secret-key".into(),
            self.server_secret.display().to_string(),
            "--curve-clients".into(),
            self.clients.display().to_string(),
        ]
    }

    /// The environment of a `tests/py` peer using client `name`'s keys (see `curve_keys.py`).
    pub fn client_env(&self, name: &str) -> Vec<(String, String)> {
        vec![
            (
                "CURVE_SERVER_KEY".into(),
                self.server_public.display().to_string(),
            ),
            (
                "CURVE_CLIENT_KEY".into(),
                self.root
                    .join("secrets")
                    .join(format!("{name}.key_secret"))
                    .display()
                    .to_string(),
            ),
        ]
    }

    /// The Z85 public key of client `name`, as the driver logs it.
    pub fn public_z85(&self, name: &str) -> String {
        let file = self.root.join("secrets").join(format!("{name}.key"));
        one_curve::cert::load_public(&file)
            .expect("public key")
            .z85()
    }
}
