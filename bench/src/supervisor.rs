//! The hook supervisor alone: the HEM's spawning process driven over its socket by the
//! benchmark, as the HEM drives it, so that its CPU per spawn shows without the rest of the
//! route around it.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use onehem_server::supervisor::frame::{FromSupervisor, SpawnRequest, ToSupervisor};

use crate::Scale;
use crate::ceiling;
use crate::procs::{bin, cpu_time, tail, thread_breakdown, thread_cpu};
use crate::report::Report;

pub const SECTION: &str = "10. The hook supervisor alone";

const METHOD: &str = "The benchmark starts `onehem-server --supervisor` (the process that \
spawns the HEM's local hooks) on a socket of its own and plays the HEM: `Hello`, then `Spawn` \
frames for `/bin/true` with two arguments (as section 3's hook), 10 in flight (the HEM's \
concurrency in section 3), a new one written as each outcome arrives, and `Taken` for the \
outcomes read, every 64 of them. Every outcome must be exit code 0. CPU per spawn is \
user+system time from /proc over the run: the supervisor's own (by thread too) and its hooks' \
(its waited-for children). The ceiling (section 1's method, fewer spawns) is measured just \
before each run.";

/// Hooks in flight, as the HEM's concurrency in section 3.
const IN_FLIGHT: usize = ceiling::CONCURRENCY;

/// Outcomes acknowledged with one `Taken` frame.
const TAKEN_EVERY: usize = 64;

/// A supervisor process on a socket in a temporary directory; killed when dropped.
struct Supervisor {
    child: Child,
    dir: tempfile::TempDir,
    stream: UnixStream,
}

impl Supervisor {
    fn start() -> Result<Supervisor> {
        let dir = tempfile::Builder::new()
            .prefix("one-bench-supervisor-")
            .tempdir()?;
        let socket = dir.path().join("hem.db.hooks.sock");
        let log = std::fs::File::create(dir.path().join("supervisor.log"))?;
        let mut child = Command::new(bin("onehem-server")?)
            .args(["--supervisor", "--linger", "30", "--socket"])
            .arg(&socket)
            .env("ONE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("starting the hook supervisor")?;
        let mut line = String::new();
        let stdout = child.stdout.take().context("the supervisor's stdout")?;
        BufReader::new(stdout).read_line(&mut line)?;
        if line.trim() != "ready" {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the supervisor said {line:?}: {}",
                tail(&dir.path().join("supervisor.log"))
            );
        }
        let stream = UnixStream::connect(&socket).context("connecting to the supervisor")?;
        // A bound on each read: a stuck supervisor fails the run instead of hanging it.
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut s = Supervisor { child, dir, stream };
        s.send(&ToSupervisor::Hello {
            env: Vec::new(),
            bus: None,
        })?;
        match s.receive()? {
            FromSupervisor::Welcome { .. } => Ok(s),
            other => bail!("expected a welcome, got {other:?}"),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn send(&mut self, frame: &ToSupervisor) -> Result<()> {
        self.stream
            .write_all(&frame.encode())
            .context("writing to the supervisor")
    }

    fn receive(&mut self) -> Result<FromSupervisor> {
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .with_context(|| tail(&self.dir.path().join("supervisor.log")))?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body)?;
        Ok(FromSupervisor::decode(&body)?)
    }

    /// Spawns `n` hooks, `IN_FLIGHT` at a time; returns the wall time from the first spawn
    /// written to the last outcome read.
    fn spawns(&mut self, n: usize, round: usize) -> Result<Duration> {
        let request = |i: usize| {
            ToSupervisor::Spawn(SpawnRequest {
                uid: format!("r{round}-{i}"),
                argv: vec!["/bin/true".into(), "bench".into(), format!("{i}")],
                stdin: None,
                timeout: None,
                kill_grace: Duration::from_secs(2),
                output_cap: 1 << 20,
                record: None,
            })
        };
        let start = Instant::now();
        let mut sent = 0;
        let mut first = Vec::new();
        while sent < n.min(IN_FLIGHT) {
            first.extend_from_slice(&request(sent).encode());
            sent += 1;
        }
        self.stream.write_all(&first)?;
        let mut done = 0;
        let mut taken = Vec::new();
        while done < n {
            let FromSupervisor::Finished { uid, outcome } = self.receive()? else {
                bail!("a second welcome");
            };
            if outcome.code != 0 || outcome.start_error.is_some() {
                bail!("{uid} failed: {outcome:?}");
            }
            done += 1;
            taken.push(uid);
            if sent < n {
                self.send(&request(sent))?;
                sent += 1;
            }
            if taken.len() >= TAKEN_EVERY || done == n {
                self.send(&ToSupervisor::Taken {
                    uids: std::mem::take(&mut taken),
                })?;
            }
        }
        Ok(start.elapsed())
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = self.send(&ToSupervisor::Bye);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one run measured.
pub struct Run {
    pub rate: f64,
    /// CPU per spawn, µs: the supervisor's own and its hooks'.
    pub own_us: f64,
    pub hooks_us: f64,
    pub threads: String,
}

/// One run of `n` spawns against a fresh supervisor (warmed up by a few spawns first).
pub fn measure(n: usize, round: usize) -> Result<Run> {
    let mut s = Supervisor::start()?;
    s.spawns(IN_FLIGHT * 2, round + 1_000_000)?;
    let pid = s.pid();
    let (cpu0, threads0) = (cpu_time(pid)?, thread_cpu(pid)?);
    let wall = s.spawns(n, round)?;
    let (cpu1, threads1) = (cpu_time(pid)?, thread_cpu(pid)?);
    let spent = cpu1 - cpu0;
    let per = |secs: f64| secs * 1e6 / n as f64;
    Ok(Run {
        rate: n as f64 / wall.as_secs_f64(),
        own_us: per(spent.own),
        hooks_us: per(spent.children),
        threads: thread_breakdown(&threads0, &threads1, n),
    })
}

pub fn run(report: &mut Report, scale: Scale) -> Result<()> {
    report.section(SECTION, METHOD);
    let n = scale.pick(4000, 500);
    let n_ceiling = scale.pick(3000, 500);
    let (mut rates, mut shares, mut own, mut hooks, mut ceilings) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut threads = String::new();
    for round in 0..scale.runs {
        let ceiling = ceiling::spawn_rate(n_ceiling, ceiling::CONCURRENCY)?;
        let r = measure(n, round)?;
        ceilings.push(ceiling);
        shares.push(r.rate / ceiling * 100.0);
        rates.push(r.rate);
        own.push(r.own_us);
        hooks.push(r.hooks_us);
        threads = r.threads;
    }
    let note = format!("{n} spawns of /bin/true, {IN_FLIGHT} in flight");
    report.add(
        SECTION,
        "ceiling next to the runs",
        "spawns/s",
        ceilings,
        &format!("{n_ceiling} spawns before each run, section 1's method"),
    );
    report.add(
        SECTION,
        "spawns through the supervisor",
        "spawns/s",
        rates,
        &note,
    );
    report.add(
        SECTION,
        "the supervisor as a share of the ceiling",
        "%",
        shares,
        "each run over the ceiling measured just before it",
    );
    report.add(SECTION, "the supervisor's CPU per spawn", "µs", own, &note);
    report.add(
        SECTION,
        "its hooks' CPU per spawn",
        "µs",
        hooks,
        "/bin/true, counted as the supervisor's waited-for children",
    );
    report.note(
        SECTION,
        &format!("The supervisor's CPU per spawn by thread (last run): {threads}."),
    );
    Ok(())
}
