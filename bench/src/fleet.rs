//! One remote executor with a thousand hosts in agent mode: the time to connect them all, the
//! executor's resident memory with every connection open, executions spread over all of them,
//! and a host that dies among them.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use one_e2e::sshd::{ClientIdentity, MAX_LISTEN_SOCKS, SshFleet, agent_binary};
use onehem_server::executor::ExecRequest;
use onehem_server::remote::{ExecMode, RemoteConfig, RemoteExecutor};

use crate::Scale;
use crate::procs::status_kib;
use crate::report::{Goal, Report, median, percentile};

pub const SECTION: &str = "9. One HEM with 1,000 hosts";

const METHOD: &str = "1,000 fake hosts (100 with `--quick`), each a distinct name on a distinct \
loopback address in 127.99.0.0/16, served by real OpenSSH `sshd` processes: one sshd listens on \
16 of those addresses (OpenSSH's limit of listening sockets per process), so 63 sshd serve the \
thousand, each with its own host key, all checked against one known_hosts file of 1,000 lines. \
One host, in the middle of the list, has an sshd of its own so that it can die alone. The \
executor is the HEM's (`onehem_server::remote::RemoteExecutor` in agent mode, default settings: \
connect timeout 5 s, 16 hosts being opened at once, 32 hooks at most per host) in the benchmark \
process, on a tokio runtime \
with 2 worker threads as in the HEM; the hook is a copy of `/bin/true`. **Connect**: one \
execution on every host, all started at once on a fresh executor, until the last has its \
outcome: TCP, key exchange, host key check, public key authentication and the start of \
`onehem-agent` on 1,000 hosts. **Resident memory**: VmRSS of the benchmark process (which holds \
the executor and nothing else of size) once every connection is up, and its growth over the \
process before the first executor existed. **Throughput**: then the dying host's sshd is killed with \
its sessions, and a fixed number of executions with 32 in flight go round-robin over all the \
hosts, the dead one included; executions/s counts the successful ones over the whole run, the \
latency percentiles are theirs. Every execution on a live host must succeed and every one on \
the dead host must fail (code 255, reason given); the slowest of those failures is reported \
beside the connect timeout. The sshd sessions, the agents and the hooks (3 processes per host) \
run on the same two cores as the executor.";

/// The fleet, its known_hosts file and the client key.
struct Hosts {
    identity: ClientIdentity,
    fleet: SshFleet,
    known_hosts: std::path::PathBuf,
}

impl Hosts {
    fn start(count: usize, dead: usize) -> Result<Hosts> {
        let identity = ClientIdentity::generate().context("generating the client key")?;
        let fleet = SshFleet::start(count, &identity, &[dead]).context("starting the fleet")?;
        fleet
            .install_hook(Path::new("/bin/true"), "true")
            .context("installing the hook")?;
        let known_hosts = identity.dir().join("known_hosts");
        fleet.write_known_hosts(&known_hosts)?;
        Ok(Hosts {
            identity,
            fleet,
            known_hosts,
        })
    }

    fn config(&self) -> Result<RemoteConfig> {
        let mut cfg = RemoteConfig {
            mode: ExecMode::Agent,
            user: Some("root".into()),
            identity: Some(self.identity.private_key.clone()),
            known_hosts: Some(self.known_hosts.clone()),
            agent_path: Some(agent_binary()?.display().to_string()),
            remote_hook_base_path: Some(GLOBAL_BASE.into()),
            ..RemoteConfig::default()
        };
        for h in &self.fleet.hosts {
            cfg.add_host(&h.name, h.addr, h.port, &h.base_path);
        }
        Ok(cfg)
    }
}

const GLOBAL_BASE: &str = "/var/tmp/one/hooks";

/// The settings' connect timeout (the default), which a dead host's failures must stay within.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn request() -> ExecRequest {
    ExecRequest {
        argv: vec![format!("{GLOBAL_BASE}/true")],
        stdin: None,
        timeout: Some(Duration::from_secs(60)),
        output_cap: 64 * 1024,
    }
}

/// One execution: how long it took, and why it failed if it did.
async fn execute(exec: &RemoteExecutor, host: &str) -> (Duration, Option<String>) {
    let start = Instant::now();
    let out = exec.run(host, request()).await;
    let took = start.elapsed();
    let failure = match (out.code, out.start_error) {
        (0, None) => None,
        (code, reason) => Some(format!("code {code}: {}", reason.unwrap_or_default())),
    };
    (took, failure)
}

/// The figures of one run.
struct RunFigures {
    connect_s: f64,
    rss_mib: f64,
    rss_growth_mib: f64,
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    dead_failures: usize,
    dead_slowest_ms: f64,
}

fn self_rss_kib() -> Result<u64> {
    status_kib(std::process::id(), "VmRSS")
}

fn one_run(
    rt: &tokio::runtime::Runtime,
    hosts: &mut Hosts,
    dead: usize,
    sizes: (usize, usize),
    before: u64,
) -> Result<RunFigures> {
    let (total, in_flight) = sizes;
    let exec = Arc::new(RemoteExecutor::new(hosts.config()?));
    let names: Arc<Vec<String>> =
        Arc::new(hosts.fleet.hosts.iter().map(|h| h.name.clone()).collect());
    let result = (|| -> Result<RunFigures> {
        // Connect: every host at once.
        let start = Instant::now();
        let outcomes = rt.block_on(async {
            let tasks: Vec<_> = names
                .iter()
                .map(|h| {
                    let (exec, h) = (Arc::clone(&exec), h.clone());
                    tokio::spawn(async move { execute(&exec, &h).await })
                })
                .collect();
            let mut out = Vec::with_capacity(tasks.len());
            for t in tasks {
                out.push(t.await);
            }
            out
        });
        let connect_s = start.elapsed().as_secs_f64();
        let mut failed = Vec::new();
        for (name, o) in names.iter().zip(outcomes) {
            match o {
                Ok((_, None)) => {}
                Ok((_, Some(why))) => failed.push(format!("{name}: {why}")),
                Err(e) => failed.push(format!("{name}: task failed: {e}")),
            }
        }
        if !failed.is_empty() {
            bail!(
                "{} of {} hosts could not be reached: {}",
                failed.len(),
                names.len(),
                failed
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        let rss = self_rss_kib()?;
        hosts.fleet.stop_host(dead);
        // Throughput over all hosts, the dead one included.
        let next = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let per_task = rt.block_on(async {
            let tasks: Vec<_> = (0..in_flight)
                .map(|_| {
                    let (exec, names, next) =
                        (Arc::clone(&exec), Arc::clone(&names), Arc::clone(&next));
                    tokio::spawn(async move {
                        let mut seen = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= total {
                                return seen;
                            }
                            let host = i % names.len();
                            let (took, failure) = execute(&exec, &names[host]).await;
                            seen.push((host, took, failure));
                        }
                    })
                })
                .collect();
            let mut all = Vec::with_capacity(total);
            for t in tasks {
                all.push(t.await);
            }
            all
        });
        let elapsed = start.elapsed().as_secs_f64();
        let mut lat = Vec::with_capacity(total);
        let mut dead_failures = 0;
        let mut dead_slowest = Duration::ZERO;
        for seen in per_task {
            for (host, took, failure) in seen.context("an execution task failed")? {
                match (host == dead, failure) {
                    (false, None) => lat.push(took.as_secs_f64() * 1e3),
                    (false, Some(why)) => bail!("{} failed: {why}", names[host]),
                    (true, None) => bail!("{} ran a hook after its sshd was killed", names[host]),
                    (true, Some(_)) => {
                        dead_failures += 1;
                        dead_slowest = dead_slowest.max(took);
                    }
                }
            }
        }
        lat.sort_by(f64::total_cmp);
        Ok(RunFigures {
            connect_s,
            rss_mib: rss as f64 / 1024.0,
            rss_growth_mib: rss.saturating_sub(before) as f64 / 1024.0,
            rate: lat.len() as f64 / elapsed,
            p50_ms: percentile(&lat, 0.5),
            p99_ms: percentile(&lat, 0.99),
            dead_failures,
            dead_slowest_ms: dead_slowest.as_secs_f64() * 1e3,
        })
    })();
    rt.block_on(exec.shutdown());
    hosts
        .fleet
        .restart_host(dead)
        .context("restarting the dead host's sshd")?;
    result
}

pub fn run(report: &mut Report, scale: Scale) -> Result<()> {
    report.section(SECTION, METHOD);
    if crate::remote::skipped_without_openssh(report, SECTION) {
        return Ok(());
    }
    // The executor here holds a socket per host, as the HEM does; raise the limit as it does.
    onehem_server::remote::raise_open_files_limit().context("raising the open files limit")?;
    let count = scale.pick(1000, 100);
    let dead = count / 2;
    let total = scale.pick(20_000, 2_000);
    let in_flight = 32;
    let started = Instant::now();
    let mut hosts = Hosts::start(count, dead)?;
    println!(
        "   {count} fake hosts on {} sshd ({MAX_LISTEN_SOCKS} addresses each) started in {:.1} s",
        hosts.fleet.sshds.len(),
        started.elapsed().as_secs_f64()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // The heap an executor leaves behind is reused by the next one, so every run's growth is
    // taken over the process before the first.
    let before = self_rss_kib()?;
    let mut runs = Vec::new();
    for _ in 0..scale.runs {
        runs.push(one_run(&rt, &mut hosts, dead, (total, in_flight), before)?);
    }
    let col = |f: fn(&RunFigures) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
    let load = format!("{total} executions, {in_flight} in flight, over {count} hosts");
    report.add(
        SECTION,
        &format!("time to connect {count} hosts (agent started on each)"),
        "s",
        col(|r| r.connect_s),
        "all at once on a fresh executor",
    );
    report.add(
        SECTION,
        &format!("executor's resident memory with {count} connections"),
        "MiB",
        col(|r| r.rss_mib),
        "VmRSS of the benchmark process",
    );
    report.goal(Goal::AtMost(200.0));
    report.add(
        SECTION,
        "growth of that memory over the process before any executor",
        "MiB",
        col(|r| r.rss_growth_mib),
        "",
    );
    report.add(
        SECTION,
        &format!("executions/s spread over {count} hosts"),
        "exec/s",
        col(|r| r.rate),
        &load,
    );
    report.goal(Goal::AtLeast(1000.0));
    report.add(
        SECTION,
        "latency per execution p50 under that load",
        "ms",
        col(|r| r.p50_ms),
        &load,
    );
    report.add(
        SECTION,
        "latency per execution p99 under that load",
        "ms",
        col(|r| r.p99_ms),
        &load,
    );
    report.add(
        SECTION,
        "dead host: its executions that failed",
        "executions",
        col(|r| r.dead_failures as f64),
        "all of its executions in that run; every other host's succeeded",
    );
    report.add(
        SECTION,
        "dead host: slowest failure",
        "ms",
        col(|r| r.dead_slowest_ms),
        "from the call to its outcome",
    );
    report.goal(Goal::Below(CONNECT_TIMEOUT.as_secs_f64() * 1e3));
    println!(
        "   connect {:.1} s, {:.0} exec/s (medians)",
        median(&col(|r| r.connect_s)),
        median(&col(|r| r.rate))
    );
    Ok(())
}
