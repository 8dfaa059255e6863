//! The whole stack in a temp dir: `oned-lite` (which spawns the real `one_hm`) and
//! `onehem-server`, all started as the built binaries.
//!
//! The HEM starts from the oldest journaled event (`replay_from: oldest`), so a test never
//! races the HEM's start: whatever it does right after `Stack::start` is handled.
//!
//! Every stack listens on its own loopback address (`127.77.x.y`) with the default ports, so
//! stacks of parallel tests never collide and no port has to be guessed.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use one_proto::hook_log::{ExecutionRecord, parse_hooklog};
use one_proto::xmlrpc::Value;

/// Ports of a stack; each stack has its own address, so the defaults are used.
pub const XMLRPC_PORT: u16 = 2633;
pub const PUBLISHER_PORT: u16 = 2101;
pub const LOGGER_PORT: u16 = 2102;
pub const REPLAY_PORT: u16 = 2103;
/// Metrics endpoints with [`StackOptions::metrics`]: oned-lite, the driver, HEM `i` at
/// `HEM_METRICS_PORT + i`.
pub const ONED_METRICS_PORT: u16 = 9924;
pub const DRIVER_METRICS_PORT: u16 = 9925;
pub const HEM_METRICS_PORT: u16 = 9926;

/// The directory holding the workspace's built binaries (`target/<profile>`), derived from
/// the running test executable (`target/<profile>/deps/<test>`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// Path of a workspace binary; fails with a clear message when it was not built.
pub fn bin(name: &str) -> Result<PathBuf> {
    let path = bin_dir().join(name);
    if !path.is_file() {
        bail!(
            "{} is missing: build the binaries first (cargo build --workspace --bins, or scripts/test)",
            path.display()
        );
    }
    Ok(path)
}

/// The Python interpreter with the test peers (pyzmq, pyone, nats-py): `$ONE_TEST_PYTHON`, else
/// the workspace's `.venv`.
pub fn python() -> Result<PathBuf> {
    venv_tool(
        "ONE_TEST_PYTHON",
        "python",
        "no Python test environment: run scripts/setup (creates .venv with pyzmq, pyone and \
         nats-py)",
    )
}

/// A program `scripts/setup` installs into the workspace's `.venv`: `$<variable>` if set,
/// else `.venv/bin/<name>`; `missing` says what to do when neither is there.
/// Runs `script` with the `.venv` interpreter and `args`; its stdout, or an error with its
/// stderr.
pub fn run_python<S: AsRef<std::ffi::OsStr>>(script: &str, args: &[S]) -> Result<String> {
    let out = Command::new(python()?)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!("python failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn venv_tool(variable: &str, name: &str, missing: &str) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(variable) {
        return Ok(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.venv/bin")
        .join(name);
    if venv.is_file() {
        return Ok(venv);
    }
    bail!("{missing}")
}

/// A fresh loopback address for one stack: 127.77.<pid byte>.<counter>.
/// Pid of the hook supervisor of the HEM whose state DB is `state_db` (the parent of its
/// local hooks), if one runs: the process started with `--supervisor --socket
/// <state DB>.hooks.sock`.
pub fn supervisor_pid(state_db: &Path) -> Option<u32> {
    let mut socket = state_db.as_os_str().to_owned();
    socket.push(".hooks.sock");
    let socket = socket.into_encoded_bytes();
    fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = fs::read(entry.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let serves = args.contains(&&b"--supervisor"[..])
            && args
                .windows(2)
                .any(|w| w[0] == b"--socket" && w[1] == socket.as_slice());
        serves.then_some(pid)
    })
}

fn next_address() -> Ipv4Addr {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    Ipv4Addr::new(
        127,
        77,
        (pid % 251) as u8 + (n / 250) as u8,
        (n % 250) as u8 + 1,
    )
}

/// Polls `f` every 20 ms until it returns `Some`, or fails after `timeout` naming `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a test wants from its stack.
#[derive(Clone, Debug)]
pub struct StackOptions {
    /// Start `onehem-server` too.
    pub hem: bool,
    /// `HOOK_LOG_CONF/LOG_RETENTION`.
    pub log_retention: u32,
    /// Extra oned.conf text appended verbatim (e.g. `SIM = [ ... ]`).
    pub oned_extra: String,
    /// Extra YAML lines appended to the HEM config.
    pub hem_extra: String,
    /// HEM `concurrency`.
    pub concurrency: u32,
    /// Extra driver flags appended to HM_MAD's ARGUMENTS (e.g. `-h 10`).
    pub driver_extra: String,
    /// The HEM's `debug_level` (reference scale: 0 ERROR … 3 DEBUG). Tests keep DEBUG so that
    /// a failure's log shows every event; benchmarks use the daemon's default, INFO.
    pub hem_debug_level: u8,
    /// How many HEMs (each with its own config, state DB and log). More than one only makes
    /// sense in the distributed mode.
    pub hems: usize,
    /// The distributed mode: the driver journals in NATS JetStream and the HEMs share its
    /// streams.
    pub nats: Option<NatsAccess>,
    /// The HEMs' `hook_allowed_paths`: where hooks with an absolute COMMAND may run from. The
    /// default allows the system's `/bin/true` and the like that tests name; the HEM's own
    /// default allows none.
    pub hook_allowed_paths: Vec<PathBuf>,
    /// Each HEM also writes its own `log_file` ([`Stack::hem_log_file`]), in a directory it
    /// creates; otherwise it logs to stderr only, which the fixture keeps.
    pub hem_log_file: bool,
    /// CURVE on the driver's sockets: `one_hm --curve-keygen` makes the driver's pair and the
    /// HEMs' (one pair, [`Stack::curve_dir`]), and the configs name them.
    pub curve: bool,
    /// Every daemon serves `/metrics` and `/health` ([`Stack::metrics_addr`]).
    pub metrics: bool,
}

/// How the driver and the HEMs reach a NATS cluster.
#[derive(Clone, Debug, Default)]
pub struct NatsAccess {
    /// Flags appended to the driver's ARGUMENTS (`--nats URL,… --nats-replicas 3 …`).
    pub driver_args: String,
    /// YAML lines appended to every HEM's config (`nats_servers: …`).
    pub hem_keys: String,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            hem: true,
            log_retention: 20,
            oned_extra: String::new(),
            hem_extra: String::new(),
            concurrency: 10,
            driver_extra: String::new(),
            hem_debug_level: 3,
            hems: 1,
            nats: None,
            hook_allowed_paths: vec!["/bin".into(), "/usr/bin".into()],
            hem_log_file: false,
            curve: false,
            metrics: false,
        }
    }
}

/// One of a stack's daemons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Daemon {
    Oned,
    Driver,
    /// HEM `i`.
    Hem(usize),
}

/// A running stack. Dropping it stops every process it started.
pub struct Stack {
    pub dir: tempfile::TempDir,
    pub ip: Ipv4Addr,
    pub var_dir: PathBuf,
    /// The HEM's `hook_base_path`: relative hook COMMANDs resolve here.
    pub hook_dir: PathBuf,
    /// The HEM's `remote_hook_base_path`.
    pub remote_hook_dir: PathBuf,
    pub endpoint: String,
    pub session: String,
    pub options: StackOptions,
    oned: Option<Child>,
    /// The HEMs by index; `None` while one is not running.
    hems: Vec<Option<Child>>,
}

impl Stack {
    pub fn start() -> Result<Stack> {
        Self::start_with(StackOptions::default())
    }

    pub fn start_with(options: StackOptions) -> Result<Stack> {
        let mut dir = tempfile::Builder::new().prefix("one-stack-").tempdir()?;
        // ONE_E2E_KEEP=1 keeps the stack's directory (configs, databases, logs) for a post
        // mortem.
        if std::env::var_os("ONE_E2E_KEEP").is_some() {
            dir.disable_cleanup(true);
            eprintln!("keeping stack directory {}", dir.path().display());
        }
        let ip = next_address();
        let var_dir = dir.path().join("var");
        let hook_dir = dir.path().join("hooks");
        let remote_hook_dir = dir.path().join("remote-hooks");
        // oned-lite creates the var dir itself, as it does in a new installation.
        for d in [&hook_dir, &remote_hook_dir] {
            fs::create_dir_all(d)?;
        }
        let endpoint = format!("http://{ip}:{XMLRPC_PORT}/RPC2");
        let mut stack = Stack {
            dir,
            ip,
            var_dir,
            hook_dir,
            remote_hook_dir,
            endpoint,
            session: String::new(),
            options,
            oned: None,
            hems: Vec::new(),
        };
        stack.hems.resize_with(stack.options.hems.max(1), || None);
        stack.write_configs()?;
        stack.start_oned()?;
        if stack.options.hem {
            for i in 0..stack.hems.len() {
                stack.start_hem_at(i)?;
            }
        }
        Ok(stack)
    }

    pub fn oned_conf(&self) -> PathBuf {
        self.dir.path().join("oned.conf")
    }

    /// The first HEM's config.
    pub fn hem_conf(&self) -> PathBuf {
        self.hem_conf_at(0)
    }

    /// HEM `i`'s config (`onehem-server.conf` for the first, `onehem-server-<i>.conf` after).
    pub fn hem_conf_at(&self, i: usize) -> PathBuf {
        match i {
            0 => self.dir.path().join("onehem-server.conf"),
            i => self.dir.path().join(format!("onehem-server-{i}.conf")),
        }
    }

    /// The log name of HEM `i` (`hem`, `hem1`, …), for [`Stack::log_path`] and
    /// [`Stack::tail_log`].
    pub fn hem_log(i: usize) -> String {
        match i {
            0 => "hem".to_string(),
            i => format!("hem{i}"),
        }
    }

    /// How many HEMs the stack has (running or not).
    pub fn hem_count(&self) -> usize {
        self.hems.len()
    }

    /// HEM `i`'s own `log_file` when [`StackOptions::hem_log_file`] is set, below a
    /// directory the HEM creates.
    pub fn hem_log_file(&self, i: usize) -> PathBuf {
        self.dir
            .path()
            .join("log/one")
            .join(format!("{}.log", Self::hem_log(i)))
    }

    /// Where a CURVE stack's keys are: `one_hm.key`, `one_hm.key_secret`, `hem/hem.key_secret`
    /// and `clients/hem.key`.
    pub fn curve_dir(&self) -> PathBuf {
        self.dir.path().join("curve")
    }

    /// Makes the CURVE keys with the driver's own keygen; returns the driver's flags and the
    /// HEMs' keys.
    fn make_curve_keys(&self) -> Result<(String, String)> {
        let dir = self.curve_dir();
        for (at, name) in [(dir.clone(), "one_hm"), (dir.join("hem"), "hem")] {
            let out = Command::new(bin("one_hm")?)
                .arg("--curve-keygen")
                .arg(&at)
                .arg(name)
                .output()?;
            if !out.status.success() {
                bail!(
                    "one_hm --curve-keygen: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        fs::create_dir_all(dir.join("clients"))?;
        fs::copy(dir.join("hem/hem.key"), dir.join("clients/hem.key"))?;
        Ok((
            format!(
                "--curve-secret-key {} --curve-clients {}",
                dir.join("one_hm.key_secret").display(),
                dir.join("clients").display()
            ),
            format!(
                "curve_server_key: {}\ncurve_client_key: {}\n",
                dir.join("one_hm.key").display(),
                dir.join("hem/hem.key_secret").display()
            ),
        ))
    }

    /// Where a daemon serves its metrics with [`StackOptions::metrics`].
    pub fn metrics_addr(&self, daemon: Daemon) -> SocketAddr {
        let port = match daemon {
            Daemon::Oned => ONED_METRICS_PORT,
            Daemon::Driver => DRIVER_METRICS_PORT,
            Daemon::Hem(i) => HEM_METRICS_PORT + i as u16,
        };
        SocketAddr::from((self.ip, port))
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    fn write_configs(&self) -> Result<()> {
        let ip = self.ip;
        let nats = self.options.nats.clone().unwrap_or_default();
        let (curve_driver, curve_hem) = if self.options.curve {
            self.make_curve_keys()?
        } else {
            (String::new(), String::new())
        };
        let (oned_metrics, driver_metrics) = if self.options.metrics {
            (
                format!("METRICS_LISTEN = \"{}\"\n", self.metrics_addr(Daemon::Oned)),
                format!("--metrics-listen {}", self.metrics_addr(Daemon::Driver)),
            )
        } else {
            (String::new(), String::new())
        };
        let oned = format!(
            "PORT = {XMLRPC_PORT}\n\
             LISTEN_ADDRESS = \"{ip}\"\n\
             DB = [ BACKEND = \"sqlite\", FILE = \"{db}\" ]\n\
             HM_MAD = [ EXECUTABLE = \"one_hm\",\n  ARGUMENTS = \"-p {PUBLISHER_PORT} -l {LOGGER_PORT} -b {ip} --replay-port {REPLAY_PORT} --journal {journal} {driver_metrics} {driver_extra} {nats_args} {curve_driver}\" ]\n\
             HOOK_LOG_CONF = [ LOG_RETENTION = {retention} ]\n{oned_metrics}{extra}\n",
            db = self.var_dir.join("one.db").display(),
            journal = self.var_dir.join("hm-journal.db").display(),
            retention = self.options.log_retention,
            driver_extra = self.options.driver_extra,
            nats_args = nats.driver_args,
            extra = self.options.oned_extra,
        );
        fs::write(self.oned_conf(), oned)?;
        let allowed = self
            .options
            .hook_allowed_paths
            .iter()
            .map(|d| format!("'{}'", d.display()))
            .collect::<Vec<_>>()
            .join(", ");
        for i in 0..self.hems.len() {
            let state = self.hem_state_db(i);
            let metrics = if self.options.metrics {
                format!(":metrics_listen: '{}'\n", self.metrics_addr(Daemon::Hem(i)))
            } else {
                String::new()
            };
            let hem = format!(
                ":debug_level: {debug}\n\
                 :hook_base_path: {hooks}\n\
                 :remote_hook_base_path: {remote}\n\
                 :subscriber_endpoint: tcp://{ip}:{PUBLISHER_PORT}\n\
                 :replier_endpoint: tcp://{ip}:{LOGGER_PORT}\n\
                 :concurrency: {conc}\n\
                 replay_endpoint: tcp://{ip}:{REPLAY_PORT}\n\
                 replay_from: oldest\n\
                 log_file: {log_file}\n\
                 log_stderr: true\n\
                 state_db: {state}\n\
                 one_xmlrpc: {endpoint}\n\
                 one_auth: {auth}\n\
                 hook_allowed_paths: [{allowed}]\n{metrics}{nats_keys}\n{curve_hem}{extra}\n",
                hooks = self.hook_dir.display(),
                remote = self.remote_hook_dir.display(),
                conc = self.options.concurrency,
                debug = self.options.hem_debug_level,
                state = state.display(),
                log_file = if self.options.hem_log_file {
                    self.hem_log_file(i).display().to_string()
                } else {
                    "none".to_string()
                },
                endpoint = self.endpoint,
                auth = self.var_dir.join("one_auth").display(),
                allowed = allowed,
                nats_keys = nats.hem_keys,
                extra = self.options.hem_extra,
            );
            fs::write(self.hem_conf_at(i), hem)?;
        }
        Ok(())
    }

    fn spawn_logged(&self, name: &str, cmd: &mut Command) -> Result<Child> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(name))?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .env(
                one_log::LEVEL_ENV,
                std::env::var(one_log::LEVEL_ENV).unwrap_or_else(|_| "info".into()),
            )
            .spawn()
            .with_context(|| format!("spawning {name}"))
    }

    /// Starts (or restarts) oned-lite and waits until it serves XML-RPC.
    pub fn start_oned(&mut self) -> Result<()> {
        self.start_oned_with_env(&[])
    }

    /// As [`Stack::start_oned`], with extra environment variables (e.g. `NOTIFY_SOCKET`).
    pub fn start_oned_with_env(&mut self, env: &[(&str, &std::ffi::OsStr)]) -> Result<()> {
        let mut cmd = Command::new(bin("oned-lite")?);
        cmd.arg("--config")
            .arg(self.oned_conf())
            .arg("--var-dir")
            .arg(&self.var_dir)
            .envs(env.iter().copied());
        let child = self.spawn_logged("oned", &mut cmd)?;
        self.oned = Some(child);
        let addr = SocketAddr::from((self.ip, XMLRPC_PORT));
        let auth_file = self.var_dir.join("one_auth");
        // oned-lite binds its port before it writes oneadmin's credentials: wait for both.
        wait_for(
            "oned-lite to accept connections",
            Duration::from_secs(20),
            || {
                fs::read_to_string(&auth_file)
                    .ok()
                    .filter(|a| a.contains(':'))?;
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
            },
        )
        .with_context(|| self.tail_log("oned"))?;
        let auth = fs::read_to_string(self.var_dir.join("one_auth")).context("reading one_auth")?;
        self.session = auth.trim().to_string();
        Ok(())
    }

    /// Starts (or restarts) the first HEM.
    pub fn start_hem(&mut self) -> Result<()> {
        self.start_hem_at(0)
    }

    /// Starts (or restarts) HEM `i`.
    pub fn start_hem_at(&mut self, i: usize) -> Result<()> {
        self.start_hem_at_with_env(i, &[])
    }

    /// As [`Stack::start_hem_at`], with extra environment variables (e.g. `NOTIFY_SOCKET`).
    pub fn start_hem_at_with_env(
        &mut self,
        i: usize,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Result<()> {
        let slot = self.hems.get(i).context("no such HEM")?;
        if slot.is_some() {
            bail!("HEM {i} is running");
        }
        let mut cmd = Command::new(bin("onehem-server")?);
        cmd.arg("--config")
            .arg(self.hem_conf_at(i))
            .envs(self.env())
            .envs(env.iter().copied());
        let child = self.spawn_logged(&Self::hem_log(i), &mut cmd)?;
        self.hems[i] = Some(child);
        Ok(())
    }

    /// SIGKILLs the first HEM (crash simulation).
    pub fn kill_hem(&mut self) -> Result<()> {
        self.kill_hem_at(0)
    }

    /// SIGKILLs HEM `i`.
    pub fn kill_hem_at(&mut self, i: usize) -> Result<()> {
        if let Some(mut child) = self.hems.get_mut(i).and_then(Option::take) {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Stops HEM `i` cleanly (SIGTERM, then SIGKILL after 5 s).
    pub fn stop_hem_at(&mut self, i: usize) -> Result<()> {
        if let Some(mut child) = self.hems.get_mut(i).and_then(Option::take) {
            let _ = nix_term(&child);
            wait_or_kill(&mut child);
        }
        Ok(())
    }

    /// Sends `signal` (e.g. "STOP", "CONT") to the HEM: a stopped HEM is a subscriber that
    /// stays connected but reads nothing, the slowest possible consumer.
    pub fn signal_hem(&self, signal: &str) -> Result<()> {
        let pid = self.hem_pid().context("the HEM is not running")?;
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{signal} {pid} failed");
        }
        Ok(())
    }

    /// Pid of the first HEM, if running.
    pub fn hem_pid(&self) -> Option<u32> {
        self.hem_pid_at(0)
    }

    /// Pid of HEM `i`, if running.
    pub fn hem_pid_at(&self, i: usize) -> Option<u32> {
        self.hems.get(i)?.as_ref().map(Child::id)
    }

    /// The state DB of HEM `i` (beside it, its hook supervisor's socket).
    pub fn hem_state_db(&self, i: usize) -> PathBuf {
        match i {
            0 => self.var_dir.join("hem-state.db"),
            i => self.var_dir.join(format!("hem-state-{i}.db")),
        }
    }

    /// Pid of the hook supervisor of HEM `i` (the parent of its local hooks), if one runs:
    /// the process started with `--supervisor --socket <its state DB>.hooks.sock`.
    pub fn supervisor_pid_at(&self, i: usize) -> Option<u32> {
        supervisor_pid(&self.hem_state_db(i))
    }

    /// Pid of oned-lite, if running.
    pub fn oned_pid(&self) -> Option<u32> {
        self.oned.as_ref().map(Child::id)
    }

    /// Whether the first HEM is still running (it never exits on its own).
    pub fn hem_alive(&mut self) -> bool {
        matches!(
            self.hems
                .first_mut()
                .and_then(Option::as_mut)
                .map(|c| c.try_wait()),
            Some(Ok(None))
        )
    }

    /// Stops oned-lite cleanly (SIGTERM, then SIGKILL after 5 s).
    pub fn stop_oned(&mut self) -> Result<()> {
        if let Some(mut child) = self.oned.take() {
            let _ = nix_term(&child);
            wait_or_kill(&mut child);
        }
        Ok(())
    }

    /// SIGKILLs oned-lite (its driver sees stdin EOF and exits).
    pub fn kill_oned(&mut self) -> Result<()> {
        if let Some(mut child) = self.oned.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Pid of the driver process oned-lite spawned, if running. Children are listed per
    /// thread, and oned-lite spawns from its runtime's worker threads, so every task is read.
    pub fn driver_pid(&self) -> Option<u32> {
        let oned = self.oned.as_ref()?.id();
        let tasks = fs::read_dir(format!("/proc/{oned}/task")).ok()?;
        tasks
            .flatten()
            .filter_map(|t| fs::read_to_string(t.path().join("children")).ok())
            .flat_map(|c| {
                c.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect::<Vec<u32>>()
            })
            .find(|pid| {
                fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|c| c.trim() == "one_hm")
                    .unwrap_or(false)
            })
    }

    pub fn client(&self) -> one_client::Client {
        one_client::Client::new(&self.endpoint, &self.session)
    }

    /// Every hook log record of `hook_id` (`one.hooklog.info` with only the hook filter).
    pub fn records(&self, hook_id: i64) -> Result<Vec<ExecutionRecord>> {
        let xml = self.client().hooklog_info(-1, -1, hook_id, 0)?;
        Ok(parse_hooklog(&xml)?)
    }

    /// Waits until `hook_id` has at least `count` records; returns them all.
    pub fn wait_records(
        &self,
        hook_id: i64,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<ExecutionRecord>> {
        let mut last = 0;
        wait_for(
            &format!("{count} records of hook {hook_id}"),
            timeout,
            || {
                let records = self.records(hook_id).ok()?;
                last = records.len();
                (records.len() >= count).then_some(records)
            },
        )
        .with_context(|| {
            format!(
                "hook {hook_id} has {last} of {count} records\n{}\n{}",
                self.tail_log("oned"),
                self.tail_log("hem")
            )
        })
    }

    /// `one.vm.allocate` of a small VM; returns its id.
    pub fn vm_allocate(&self, template: &str) -> Result<i64> {
        let v = self.client().call(
            "one.vm.allocate",
            vec![Value::String(template.into()), Value::Bool(false)],
        )?;
        match v {
            Value::Int(id) => Ok(i64::from(id)),
            Value::I8(id) => Ok(id),
            other => bail!("one.vm.allocate returned {other:?}"),
        }
    }

    /// Environment for the CLIs and hooks: ONE_XMLRPC and ONE_AUTH.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("ONE_XMLRPC".into(), self.endpoint.clone()),
            (
                "ONE_AUTH".into(),
                self.var_dir.join("one_auth").display().to_string(),
            ),
        ]
    }

    /// Runs one of the workspace's CLIs against this stack.
    pub fn cli(&self, name: &str, args: &[&str]) -> Result<Output> {
        let mut cmd = Command::new(bin(name)?);
        cmd.args(args)
            .envs(self.env())
            .env("TZ", "UTC")
            .stdin(Stdio::null());
        cmd.output().with_context(|| format!("running {name}"))
    }

    /// Writes an executable hook script below `hook_base_path`.
    pub fn write_hook(&self, rel: &str, body: &str) -> Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.hook_dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, body)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
        Ok(path)
    }

    /// The last lines of a process log, for error messages.
    /// What HEM `i` in the distributed mode last said it holds: the members it sees and its
    /// partitions (its log's last `partitions held` line), if it said anything yet.
    pub fn partitions_held_at(&self, i: usize) -> Option<(usize, Vec<u32>)> {
        let text = fs::read_to_string(self.log_path(&Self::hem_log(i))).ok()?;
        let line = text.lines().rev().find(|l| l.contains("partitions held"))?;
        let field = |name: &str| {
            let start = line.find(&format!(" {name}="))? + name.len() + 2;
            Some(&line[start..])
        };
        let members = field("members")?.split(' ').next()?.parse().ok()?;
        let list = field("partitions")?.strip_prefix('[')?.split(']').next()?;
        let partitions = list
            .split(", ")
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().ok())
            .collect::<Option<Vec<u32>>>()?;
        Some((members, partitions))
    }

    pub fn tail_log(&self, name: &str) -> String {
        let text = fs::read_to_string(self.log_path(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(30);
        format!("last lines of {name}.log:\n{}", lines[start..].join("\n"))
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SIGTERM to every HEM first, so they stop side by side.
        let mut hems: Vec<Child> = self.hems.iter_mut().filter_map(Option::take).collect();
        for hem in &hems {
            let _ = nix_term(hem);
        }
        for hem in &mut hems {
            wait_or_kill(hem);
        }
        if let Some(mut oned) = self.oned.take() {
            let _ = nix_term(&oned);
            wait_or_kill(&mut oned);
        }
    }
}

fn nix_term(child: &Child) -> std::io::Result<()> {
    // SIGTERM lets the daemon shut down cleanly (oned-lite finalizes its driver).
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other("kill failed"))
    }
}

fn wait_or_kill(child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
