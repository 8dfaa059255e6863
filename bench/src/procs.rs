//! The daemons a benchmark starts itself: a `one_hm` whose stdin and stdout the benchmark holds
//! (the place oned-lite normally has), and an `onehem-server` with its own configuration. Also
//! the per-process figures read from /proc (resident memory, CPU time).

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Path of a workspace binary built next to this one (`target/release`).
pub fn bin(name: &str) -> Result<PathBuf> {
    one_e2e::stack::bin(name)
}

/// Polls `f` every millisecond until it returns `Some`, or fails after `timeout`.
pub fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// One line the driver wrote to its stdout, with the time the benchmark read it.
pub struct OutputLine {
    pub at: Instant,
    pub line: String,
}

/// What the driver wrote to oned's side: result lines (`EXECUTE …`) and everything else.
#[derive(Default)]
pub struct DriverOutput {
    results: Mutex<Vec<OutputLine>>,
    count: AtomicUsize,
    other: Mutex<Vec<String>>,
    init: AtomicBool,
}

impl DriverOutput {
    /// Result lines received so far.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Takes the result lines received so far (the count is not reset).
    pub fn take(&self) -> Vec<OutputLine> {
        std::mem::take(&mut *self.results.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Waits until `n` result lines have arrived in total.
    pub fn wait(&self, n: usize, timeout: Duration) -> Result<()> {
        poll(&format!("{n} result lines"), timeout, || {
            (self.count() >= n).then_some(())
        })
        .with_context(|| {
            let other = self.other.lock().unwrap_or_else(PoisonError::into_inner);
            format!(
                "{} of {n} result lines arrived; other driver output: {:?}",
                self.count(),
                &other[other.len().saturating_sub(5)..]
            )
        })
    }
}

/// A `one_hm` with its stdin and stdout held by the benchmark, its sockets on 127.0.0.1 with
/// ephemeral ports and its journal in a temporary directory.
pub struct Driver {
    child: Child,
    stdin: Option<ChildStdin>,
    pub publisher: String,
    pub logger: String,
    pub replay: String,
    pub output: Arc<DriverOutput>,
    reader: Option<JoinHandle<()>>,
    pub dir: tempfile::TempDir,
}

impl Driver {
    /// Starts the driver with `extra` flags, answers nothing but INIT, and waits until its
    /// sockets are bound.
    pub fn start(extra: &[&str]) -> Result<Driver> {
        let dir = keep_if_asked(tempfile::Builder::new().prefix("one-bench-hm-").tempdir()?);
        let endpoints = dir.path().join("endpoints");
        let log = fs::File::create(dir.path().join("one_hm.log"))?;
        let mut child = Command::new(bin("one_hm")?)
            .args([
                "-b",
                "127.0.0.1",
                "-p",
                "0",
                "-l",
                "0",
                "--replay-port",
                "0",
            ])
            .arg("--journal")
            .arg(dir.path().join("journal.db"))
            .arg("--endpoints-file")
            .arg(&endpoints)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .env("ONE_LOG", "info")
            .spawn()
            .context("spawning one_hm")?;
        let mut stdin = child.stdin.take().context("one_hm stdin")?;
        let stdout = child.stdout.take().context("one_hm stdout")?;
        let output = Arc::new(DriverOutput::default());
        let reader = {
            let output = Arc::clone(&output);
            std::thread::Builder::new()
                .name("one_hm-stdout".into())
                .spawn(move || read_driver_output(stdout, &output))?
        };
        stdin
            .write_all(b"INIT\n")
            .context("writing INIT to one_hm")?;
        let mut driver = Driver {
            child,
            stdin: Some(stdin),
            publisher: String::new(),
            logger: String::new(),
            replay: String::new(),
            output,
            reader: Some(reader),
            dir,
        };
        let out = Arc::clone(&driver.output);
        poll("one_hm to answer INIT", Duration::from_secs(20), || {
            out.init.load(Ordering::Acquire).then_some(())
        })
        .with_context(|| driver.log_tail())?;
        let text = poll("one_hm endpoints", Duration::from_secs(20), || {
            fs::read_to_string(&endpoints)
                .ok()
                .filter(|t| t.contains("replay="))
        })?;
        for line in text.lines() {
            match line.split_once('=') {
                Some(("publisher", v)) => driver.publisher = v.trim().to_string(),
                Some(("logger", v)) => driver.logger = v.trim().to_string(),
                Some(("replay", v)) => driver.replay = v.trim().to_string(),
                _ => {}
            }
        }
        if driver.publisher.is_empty() || driver.logger.is_empty() {
            bail!("one_hm wrote incomplete endpoints: {text}");
        }
        Ok(driver)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The driver's stdin, as oned writes it.
    pub fn stdin(&mut self) -> Result<&mut ChildStdin> {
        self.stdin.as_mut().context("one_hm stdin already closed")
    }

    pub fn log_tail(&self) -> String {
        tail(&self.dir.path().join("one_hm.log"))
    }
}

fn read_driver_output(stdout: std::process::ChildStdout, output: &DriverOutput) {
    let mut reader = BufReader::with_capacity(1 << 20, stdout);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let at = Instant::now();
        let text = line.trim_end_matches(['\r', '\n']);
        if text.starts_with("EXECUTE ") {
            output
                .results
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(OutputLine {
                    at,
                    line: text.to_string(),
                });
            output.count.fetch_add(1, Ordering::Release);
        } else {
            if text.starts_with("INIT SUCCESS") {
                output.init.store(true, Ordering::Release);
            }
            output
                .other
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(text.to_string());
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // End of stdin is oned going away: the driver stops cleanly.
        drop(self.stdin.take());
        stop_child(&mut self.child, None);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// Where an `onehem-server` finds its peers.
#[derive(Clone, Debug)]
pub struct HemSettings {
    pub subscriber: String,
    pub replier: String,
    pub replay: String,
    pub one_xmlrpc: String,
    pub one_auth: PathBuf,
    pub concurrency: u32,
    /// YAML lines appended to the configuration (the distributed mode's `nats_*` keys).
    pub extra_config: String,
}

/// An `onehem-server` with its configuration, state DB and log in a temporary directory.
pub struct Hem {
    child: Child,
    pub dir: tempfile::TempDir,
    log: PathBuf,
}

impl Hem {
    /// Starts the HEM at the reference's default log level (INFO, two lines per execution).
    pub fn start(s: &HemSettings) -> Result<Hem> {
        let dir = keep_if_asked(
            tempfile::Builder::new()
                .prefix("one-bench-hem-")
                .tempdir()?,
        );
        let log = dir.path().join("onehem.log");
        let hooks = dir.path().join("hooks");
        fs::create_dir_all(&hooks)?;
        let conf = dir.path().join("onehem-server.conf");
        fs::write(
            &conf,
            format!(
                ":debug_level: 2\n\
                 :hook_base_path: {hooks}\n\
                 :remote_hook_base_path: /var/tmp/one/hooks\n\
                 :subscriber_endpoint: {sub}\n\
                 :replier_endpoint: {rep}\n\
                 :concurrency: {conc}\n\
                 replay_endpoint: {replay}\n\
                 replay_from: oldest\n\
                 log_file: {log}\n\
                 log_stderr: false\n\
                 state_db: {state}\n\
                 one_xmlrpc: {xmlrpc}\n\
                 one_auth: {auth}\n\
                 hook_allowed_paths: [{allowed}]\n\
                 {extra}\n",
                hooks = hooks.display(),
                sub = s.subscriber,
                rep = s.replier,
                conc = s.concurrency,
                replay = s.replay,
                log = log.display(),
                state = dir.path().join("hem-state.db").display(),
                xmlrpc = s.one_xmlrpc,
                auth = s.one_auth.display(),
                allowed = bench_hook_dirs()
                    .iter()
                    .map(|d| format!("'{}'", d.display()))
                    .collect::<Vec<_>>()
                    .join(", "),
                extra = s.extra_config,
            ),
        )?;
        let err = fs::File::create(dir.path().join("stderr.log"))?;
        let child = Command::new(bin("onehem-server")?)
            .arg("--config")
            .arg(&conf)
            .env_remove("ONE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .context("spawning onehem-server")?;
        Ok(Hem { child, dir, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The pid of this HEM's hook supervisor (the parent of its local hooks), if one runs.
    pub fn supervisor_pid(&self) -> Option<u32> {
        one_e2e::stack::supervisor_pid(&self.dir.path().join("hem-state.db"))
    }

    /// Waits until the hook pool is loaded and the reading position is taken; returns the
    /// number of hooks loaded.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<u64> {
        let log = self.log.clone();
        let mut exited = None;
        let child = &mut self.child;
        let hooks = poll("the HEM to load its hooks", timeout, || {
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some(status);
                return Some(None);
            }
            let text = fs::read_to_string(&log).ok()?;
            let loaded = text
                .lines()
                .find(|l| l.contains("Hooks successfully loaded"))?;
            text.contains("reading events after").then_some(())?;
            let n = loaded
                .split_whitespace()
                .find_map(|w| w.strip_prefix("hooks="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            Some(Some(n))
        })
        .with_context(|| self.log_tail())?;
        match (hooks, exited) {
            (Some(n), _) => Ok(n),
            (None, status) => bail!("onehem-server exited ({status:?}): {}", self.log_tail()),
        }
    }

    /// The whole log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM without waiting (dropping the HEM then waits for it), so that several
    /// HEMs stop at once.
    pub fn terminate(&mut self) {
        if let (Ok(None), Ok(pid)) = (self.child.try_wait(), i32::try_from(self.child.id())) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }

    /// SIGKILLs the HEM (a crash: no clean shutdown) and reaps it.
    pub fn kill(&mut self) -> Result<()> {
        self.child.kill().context("kill -9 of onehem-server")?;
        self.child.wait().context("reaping onehem-server")?;
        Ok(())
    }

    pub fn log_tail(&self) -> String {
        format!(
            "{}\n{}",
            tail(&self.log),
            tail(&self.dir.path().join("stderr.log"))
        )
    }
}

impl Drop for Hem {
    fn drop(&mut self) {
        stop_child(&mut self.child, Some(Signal::SIGTERM));
        // A HEM stopped in order ends its supervisor; a killed one's would linger for
        // minutes after the run.
        if let Some(pid) = self.supervisor_pid().and_then(|p| i32::try_from(p).ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
}

/// With ONE_E2E_KEEP set (as for the end-to-end tests), a daemon's directory (configuration,
/// logs, databases) is kept for a post mortem.
fn keep_if_asked(mut dir: tempfile::TempDir) -> tempfile::TempDir {
    if std::env::var_os("ONE_E2E_KEEP").is_some() {
        dir.disable_cleanup(true);
        eprintln!("keeping {}", dir.path().display());
    }
    dir
}

/// Sends `signal` (if any), waits up to ten seconds, then kills.
fn stop_child(child: &mut Child, signal: Option<Signal>) {
    // Already reaped (killed on purpose): its pid may belong to another process by now.
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    if let (Some(sig), Ok(pid)) = (signal, i32::try_from(child.id())) {
        let _ = kill(Pid::from_raw(pid), sig);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The last lines of a log file, for error messages.
pub fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(20);
    format!(
        "last lines of {}:\n{}",
        path.display(),
        lines[start..].join("\n")
    )
}

/// A field of /proc/<pid>/status in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// CPU time of a process, in seconds: its own and that of its waited-for children.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuTime {
    pub own: f64,
    pub children: f64,
}

impl std::ops::Sub for CpuTime {
    type Output = CpuTime;
    fn sub(self, rhs: CpuTime) -> CpuTime {
        CpuTime {
            own: self.own - rhs.own,
            children: self.children - rhs.children,
        }
    }
}

impl std::ops::Add for CpuTime {
    type Output = CpuTime;
    fn add(self, rhs: CpuTime) -> CpuTime {
        CpuTime {
            own: self.own + rhs.own,
            children: self.children + rhs.children,
        }
    }
}

/// Linux reports these times in USER_HZ, which is 100 on every architecture's user ABI.
const USER_HZ: f64 = 100.0;

pub fn cpu_time(pid: u32) -> Result<CpuTime> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the parenthesised command name start at field 3 (state).
    let rest = stat
        .rsplit_once(") ")
        .map(|(_, r)| r)
        .context("malformed /proc stat")?;
    let f: Vec<&str> = rest.split(' ').collect();
    let num = |i: usize| -> Result<f64> {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .context("malformed /proc stat field")
    };
    // utime, stime, cutime, cstime are fields 14-17, i.e. 11-14 after the name.
    Ok(CpuTime {
        own: (num(11)? + num(12)?) / USER_HZ,
        children: (num(13)? + num(14)?) / USER_HZ,
    })
}

/// CPU seconds (user+system) of each live thread of `pid`, summed by thread name with
/// trailing digits removed (`hem-result-3` counts as `hem-result-`).
pub fn thread_cpu(pid: u32) -> Result<std::collections::BTreeMap<String, f64>> {
    let mut out = std::collections::BTreeMap::new();
    let tasks = fs::read_dir(format!("/proc/{pid}/task"))
        .with_context(|| format!("reading /proc/{pid}/task"))?;
    for t in tasks.flatten() {
        let Ok(stat) = fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let name = head
            .split_once(" (")
            .map(|(_, n)| n)
            .unwrap_or("?")
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .to_string();
        let f: Vec<&str> = rest.split(' ').collect();
        let ticks: f64 = [11, 12]
            .iter()
            .filter_map(|&i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
            .sum();
        *out.entry(name).or_insert(0.0) += ticks / USER_HZ;
    }
    Ok(out)
}

/// Per-thread CPU spent between two [`thread_cpu`] readings, in microseconds per event,
/// largest first, as `name 12.3 µs` items.
pub fn thread_breakdown(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
    events: usize,
) -> String {
    let mut items: Vec<(String, f64)> = after
        .iter()
        .map(|(name, a)| {
            let b = before.get(name).copied().unwrap_or(0.0);
            (name.clone(), (a - b) * 1e6 / events as f64)
        })
        .filter(|(_, us)| *us > 0.0)
        .collect();
    items.sort_by(|a, b| b.1.total_cmp(&a.1));
    items
        .iter()
        .map(|(n, us)| format!("{n} {us:.0} µs"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The directories of the benchmark hooks' absolute COMMANDs (`hook_allowed_paths`):
/// `/bin/true`, the build's `one-bench-stamp`, and scripts the benchmarks write to temporary
/// directories.
pub fn bench_hook_dirs() -> Vec<std::path::PathBuf> {
    vec![
        "/bin".into(),
        "/usr/bin".into(),
        one_e2e::stack::bin_dir(),
        std::env::temp_dir(),
    ]
}
