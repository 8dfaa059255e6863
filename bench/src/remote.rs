//! Remote hooks: the HEM's remote executor in agent and ssh-channel modes against real sshd
//! fake hosts, and a new OpenSSH `ssh` client per execution, on 1 and on 20 hosts.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use one_e2e::sshd::{ClientIdentity, SshHost, agent_binary, write_known_hosts};
use onehem_server::executor::ExecRequest;
use onehem_server::remote::{ExecMode, RemoteConfig, RemoteExecutor};

use crate::bare_ssh::{BareConnection, exec_rate};
use crate::report::{Goal, Report, percentile};
use crate::{Scale, ceiling};

pub const SECTION: &str = "4. Remote execution";

const METHOD: &str = "Fake hosts are real OpenSSH `sshd` processes on 127.0.0.2 to 127.0.0.21 (5 \
hosts with `--quick`), one per host, each with its own host key checked against a known_hosts \
file. The hook is a copy of `/bin/true` in each host's hook directory. **agent** and **ssh \
channel** are the HEM's remote executor (`onehem_server::remote::RemoteExecutor`, in this \
process, tokio with 2 worker threads): one persistent russh connection per host; agent mode runs \
`onehem-agent` once per connection and multiplexes hooks over its frames, ssh-channel mode opens \
one exec channel per hook through the login shell. Connections (and agents) are opened by a \
warm-up execution on every host before measuring. **new ssh** runs `ssh -F /dev/null -i <key> -o \
UserKnownHostsFile=… -o StrictHostKeyChecking=yes -o BatchMode=yes -p <port> root@<host> <hook>` \
per execution (OpenSSH client, full handshake each time). Latency: executions one at a time on \
one idle host, from the call to its outcome. Throughput: a fixed number of executions with a \
fixed number in flight (32 for the executor modes, whose per-host bound is 32 in agent mode and \
5 in ssh-channel mode; 10 for new ssh, the HEM's concurrency), spread round-robin over the \
hosts; the 20-host latency is the median per execution during that run. **bare exec channels** is \
the ceiling of ssh-channel mode, measured right after it on the same hosts with the same \
executions and in-flight count: a bare russh client in this process (same cipher, no Nagle), one \
connection per host to the same sshd, opening one exec channel per execution that runs the same \
hook (sshd still starts it through the login shell) and waiting for its exit status and close, \
with nothing else; the mode's share of it is taken run by run. The sshd, the agents and the hooks \
run on the same two cores as the client side, so the fork/exec ceiling (section 1's method) is \
measured again just before each agent-mode run, the denominator of agent mode's share.";

const GLOBAL_BASE: &str = "/var/tmp/one/hooks";

struct Cloud {
    identity: ClientIdentity,
    hosts: Vec<SshHost>,
    known_hosts: PathBuf,
}

impl Cloud {
    fn start(count: u8) -> Result<Cloud> {
        let identity = ClientIdentity::generate().context("generating the client key")?;
        let mut hosts = Vec::new();
        for i in 0..count {
            let host = SshHost::start(2 + i, &identity)
                .with_context(|| format!("starting sshd on 127.0.0.{}", 2 + i))?;
            let hook = host.base_path.join("true");
            std::fs::copy("/bin/true", &hook).context("copying /bin/true")?;
            std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))?;
            hosts.push(host);
        }
        let known_hosts = identity.dir().join("known_hosts");
        write_known_hosts(&known_hosts, &hosts.iter().collect::<Vec<_>>())?;
        Ok(Cloud {
            identity,
            hosts,
            known_hosts,
        })
    }

    fn config(&self, mode: ExecMode) -> Result<RemoteConfig> {
        let mut cfg = RemoteConfig {
            mode,
            user: Some("root".into()),
            identity: Some(self.identity.private_key.clone()),
            known_hosts: Some(self.known_hosts.clone()),
            connect_timeout: Some(10.0),
            agent_path: Some(agent_binary()?.display().to_string()),
            remote_hook_base_path: Some(GLOBAL_BASE.into()),
            ..RemoteConfig::default()
        };
        for h in &self.hosts {
            cfg.add_host(&h.name, h.addr, h.port, &h.base_path);
        }
        Ok(cfg)
    }

    fn names(&self, count: usize) -> Vec<String> {
        self.hosts
            .iter()
            .take(count)
            .map(|h| h.name.clone())
            .collect()
    }
}

fn request() -> ExecRequest {
    ExecRequest {
        argv: vec![format!("{GLOBAL_BASE}/true")],
        stdin: None,
        timeout: Some(Duration::from_secs(60)),
        output_cap: 64 * 1024,
    }
}

async fn execute_once(exec: &RemoteExecutor, host: &str) -> Result<Duration> {
    let start = Instant::now();
    let out = exec
        .execute(host, request())
        .await
        .with_context(|| format!("remote execution on {host}"))?;
    let took = start.elapsed();
    if out.code != 0 || out.start_error.is_some() {
        bail!(
            "remote hook on {host} ended with code {} ({:?})",
            out.code,
            out.start_error
        );
    }
    Ok(took)
}

/// Sequential executions on one host; latencies in ms, sorted.
async fn executor_latency(exec: &RemoteExecutor, host: &str, count: usize) -> Result<Vec<f64>> {
    let mut lat = Vec::with_capacity(count);
    for _ in 0..count {
        lat.push(execute_once(exec, host).await?.as_secs_f64() * 1e3);
    }
    lat.sort_by(f64::total_cmp);
    Ok(lat)
}

/// `total` executions with `in_flight` at once over `hosts`; returns executions per second and
/// the sorted latencies (ms).
async fn executor_throughput(
    exec: Arc<RemoteExecutor>,
    hosts: Arc<Vec<String>>,
    total: usize,
    in_flight: usize,
) -> Result<(f64, Vec<f64>)> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..in_flight {
        let (exec, hosts, next) = (Arc::clone(&exec), Arc::clone(&hosts), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let host = &hosts[i % hosts.len()];
                lat.push(execute_once(&exec, host).await?.as_secs_f64() * 1e3);
            }
        }));
    }
    let mut lat = Vec::with_capacity(total);
    for t in tasks {
        lat.extend(t.await.context("an execution task failed")??);
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    Ok((rate, lat))
}

fn ssh_once(cloud: &Cloud, host: &SshHost) -> Result<Duration> {
    let start = Instant::now();
    let out = Command::new("ssh")
        .args(host.ssh_args(&cloud.identity, &cloud.known_hosts))
        .arg(host.base_path.join("true"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .context("running ssh")?;
    if !out.status.success() {
        bail!(
            "ssh to {} failed: {}",
            host.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(start.elapsed())
}

fn ssh_latency(cloud: &Cloud, count: usize) -> Result<Vec<f64>> {
    let host = cloud.hosts.first().context("no host")?;
    let mut lat = Vec::with_capacity(count);
    for _ in 0..count {
        lat.push(ssh_once(cloud, host)?.as_secs_f64() * 1e3);
    }
    lat.sort_by(f64::total_cmp);
    Ok(lat)
}

fn ssh_throughput(
    cloud: &Cloud,
    hosts: usize,
    total: usize,
    in_flight: usize,
) -> Result<(f64, Vec<f64>)> {
    let next = AtomicUsize::new(0);
    let lat = Mutex::new(Vec::with_capacity(total));
    let start = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..in_flight)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            return Ok(());
                        }
                        let took = ssh_once(cloud, &cloud.hosts[i % hosts])?;
                        lat.lock()
                            .map_err(|_| anyhow::anyhow!("poisoned"))?
                            .push(took.as_secs_f64() * 1e3);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("an ssh worker panicked"))??;
        }
        Ok(())
    })?;
    let rate = total as f64 / start.elapsed().as_secs_f64();
    let mut lat = lat.into_inner().map_err(|_| anyhow::anyhow!("poisoned"))?;
    lat.sort_by(f64::total_cmp);
    Ok((rate, lat))
}

/// The figures of one mode, one entry per run.
#[derive(Default)]
struct ModeFigures {
    latency_p50: Vec<f64>,
    latency_p99: Vec<f64>,
    rate_1: Vec<f64>,
    rate_20: Vec<f64>,
    latency_20: Vec<f64>,
}

impl ModeFigures {
    /// Appends the runs of `other`.
    fn absorb(&mut self, other: ModeFigures) {
        self.latency_p50.extend(other.latency_p50);
        self.latency_p99.extend(other.latency_p99);
        self.rate_1.extend(other.rate_1);
        self.rate_20.extend(other.rate_20);
        self.latency_20.extend(other.latency_20);
    }
}

struct Sizes {
    latency: usize,
    total: usize,
    in_flight: usize,
}

fn executor_mode(
    rt: &tokio::runtime::Runtime,
    cloud: &Cloud,
    mode: ExecMode,
    hosts: usize,
    sizes: &Sizes,
    runs: usize,
) -> Result<ModeFigures> {
    let exec = Arc::new(RemoteExecutor::new(cloud.config(mode)?));
    let one = Arc::new(cloud.names(1));
    let all = Arc::new(cloud.names(hosts));
    let result = rt.block_on(async {
        for h in all.iter() {
            execute_once(&exec, h).await?;
        }
        let mut f = ModeFigures::default();
        for _ in 0..runs {
            let lat = executor_latency(&exec, &one[0], sizes.latency).await?;
            f.latency_p50.push(percentile(&lat, 0.5));
            f.latency_p99.push(percentile(&lat, 0.99));
            let (rate, _) = executor_throughput(
                Arc::clone(&exec),
                Arc::clone(&one),
                sizes.total,
                sizes.in_flight,
            )
            .await?;
            f.rate_1.push(rate);
            let (rate, lat) = executor_throughput(
                Arc::clone(&exec),
                Arc::clone(&all),
                sizes.total,
                sizes.in_flight,
            )
            .await?;
            f.rate_20.push(rate);
            f.latency_20.push(percentile(&lat, 0.5));
        }
        Ok::<_, anyhow::Error>(f)
    });
    rt.block_on(exec.shutdown());
    result
}

/// The ssh-channel mode's ceiling: the bare exec loop of [`bare_ssh`] over one connection per
/// host to the same sshd, running the same hook with the same load; executions/s per run.
fn channel_ceiling(
    rt: &tokio::runtime::Runtime,
    cloud: &Cloud,
    hosts: usize,
    sizes: &Sizes,
    runs: usize,
) -> Result<Vec<f64>> {
    rt.block_on(async {
        let mut conns = Vec::new();
        for h in cloud.hosts.iter().take(hosts) {
            let conn = BareConnection::connect(
                &h.addr.to_string(),
                h.port,
                &h.host_key,
                "root",
                &cloud.identity.private_key,
            )
            .await?;
            conns.push((conn, h.base_path.join("true").display().to_string()));
        }
        let conns = Arc::new(conns);
        let mut rates = Vec::with_capacity(runs);
        for _ in 0..runs {
            rates.push(exec_rate(Arc::clone(&conns), sizes.total, sizes.in_flight).await?);
        }
        Ok(rates)
    })
}

fn new_ssh_mode(cloud: &Cloud, hosts: usize, sizes: &Sizes, runs: usize) -> Result<ModeFigures> {
    let mut f = ModeFigures::default();
    for _ in 0..runs {
        let lat = ssh_latency(cloud, sizes.latency)?;
        f.latency_p50.push(percentile(&lat, 0.5));
        f.latency_p99.push(percentile(&lat, 0.99));
        let (rate, _) = ssh_throughput(cloud, 1, sizes.total, sizes.in_flight)?;
        f.rate_1.push(rate);
        let (rate, lat) = ssh_throughput(cloud, hosts, sizes.total, sizes.in_flight)?;
        f.rate_20.push(rate);
        f.latency_20.push(percentile(&lat, 0.5));
    }
    Ok(f)
}

pub fn run(report: &mut Report, scale: Scale) -> Result<()> {
    report.section(SECTION, METHOD);
    if skipped_without_openssh(report, SECTION) {
        return Ok(());
    }
    // The quick smoke run starts fewer sshd; the figures name the count.
    let hosts = scale.pick(20, 5);
    let cloud = Cloud::start(hosts as u8)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let agent_sizes = Sizes {
        latency: scale.pick(300, 30),
        total: scale.pick(4000, 300),
        in_flight: 32,
    };
    let channel_sizes = Sizes {
        latency: scale.pick(200, 30),
        total: scale.pick(2000, 200),
        in_flight: 32,
    };
    let ssh_sizes = Sizes {
        latency: scale.pick(10, 3),
        total: scale.pick(30, 10),
        in_flight: 10,
    };
    // One run at a time, each just after its own ceiling (the machine's speed drifts).
    let n_ceiling = scale.pick(3000, 500);
    let mut ceilings = Vec::new();
    let mut agent = ModeFigures::default();
    for _ in 0..scale.runs {
        ceilings.push(ceiling::spawn_rate(n_ceiling, ceiling::CONCURRENCY)?);
        agent.absorb(executor_mode(
            &rt,
            &cloud,
            ExecMode::Agent,
            hosts,
            &agent_sizes,
            1,
        )?);
    }
    report.add(
        SECTION,
        "ceiling next to the agent-mode runs",
        "spawns/s",
        ceilings.clone(),
        &format!("{n_ceiling} spawns before each agent-mode run, section 1's method"),
    );
    report.add(
        SECTION,
        &format!("agent: executions/s, {hosts} hosts, as a share of the ceiling"),
        "%",
        agent
            .rate_20
            .iter()
            .zip(&ceilings)
            .map(|(rate, ceiling)| rate / ceiling * 100.0)
            .collect(),
        "each run over the ceiling measured just before it",
    );
    let channel = executor_mode(
        &rt,
        &cloud,
        ExecMode::Ssh,
        hosts,
        &channel_sizes,
        scale.runs,
    )?;
    let ceiling = channel_ceiling(&rt, &cloud, hosts, &channel_sizes, scale.runs)?;
    let ssh = new_ssh_mode(&cloud, hosts, &ssh_sizes, scale.runs)?;

    let modes: [(&str, &ModeFigures, &Sizes); 3] = [
        ("agent", &agent, &agent_sizes),
        ("ssh channel", &channel, &channel_sizes),
        ("new ssh per execution", &ssh, &ssh_sizes),
    ];
    for (name, f, sizes) in modes {
        let note = format!("{} sequential executions", sizes.latency);
        report.add(
            SECTION,
            &format!("{name}: latency per execution p50, 1 host"),
            "ms",
            f.latency_p50.clone(),
            &note,
        );
        match name {
            "new ssh per execution" => report.reference("p50 205 ms (new ssh per hook)"),
            "ssh channel" => report.reference("p50 13 ms (ssh master connection)"),
            _ => {}
        }
        report.add(
            SECTION,
            &format!("{name}: latency per execution p99, 1 host"),
            "ms",
            f.latency_p99.clone(),
            &note,
        );
        let note = format!("{} executions, {} in flight", sizes.total, sizes.in_flight);
        report.add(
            SECTION,
            &format!("{name}: executions/s, 1 host"),
            "exec/s",
            f.rate_1.clone(),
            &note,
        );
        match name {
            "new ssh per execution" => report.reference("18.6 /s"),
            "ssh channel" => report.reference("91 /s (ssh master connection)"),
            _ => {}
        }
        report.add(
            SECTION,
            &format!("{name}: executions/s, {hosts} hosts"),
            "exec/s",
            f.rate_20.clone(),
            &note,
        );
        if name != "new ssh per execution" {
            report.goal(Goal::AtLeast(1000.0));
        }
        report.add(
            SECTION,
            &format!("{name}: latency per execution p50 under that load, {hosts} hosts"),
            "ms",
            f.latency_20.clone(),
            &note,
        );
    }
    let note = format!(
        "{} executions, {} in flight",
        channel_sizes.total, channel_sizes.in_flight
    );
    report.add(
        SECTION,
        &format!("bare exec channels (ssh-channel ceiling): executions/s, {hosts} hosts"),
        "exec/s",
        ceiling.clone(),
        &note,
    );
    report.add(
        SECTION,
        &format!("ssh channel / its ceiling: executions/s, {hosts} hosts"),
        "%",
        channel
            .rate_20
            .iter()
            .zip(&ceiling)
            .map(|(mode, bare)| 100.0 * mode / bare)
            .collect(),
        "run by run",
    );
    report.goal(Goal::AtLeast(80.0));
    // Ratios per run, of the per-execution latencies on one idle host.
    let ratio =
        |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(x, y)| x / y).collect() };
    report.add(
        SECTION,
        "new ssh / agent: per-execution latency (p50, 1 host)",
        "×",
        ratio(&ssh.latency_p50, &agent.latency_p50),
        "how many times faster agent mode is",
    );
    report.goal(Goal::AtLeast(50.0));
    report.add(
        SECTION,
        "new ssh / ssh channel: per-execution latency (p50, 1 host)",
        "×",
        ratio(&ssh.latency_p50, &channel.latency_p50),
        "",
    );
    report.add(
        SECTION,
        "ssh channel / agent: per-execution latency (p50, 1 host)",
        "×",
        ratio(&channel.latency_p50, &agent.latency_p50),
        "",
    );
    report.add(
        SECTION,
        &format!("agent / new ssh: executions/s, {hosts} hosts"),
        "×",
        ratio(&agent.rate_20, &ssh.rate_20),
        "",
    );
    report.add(
        SECTION,
        &format!("agent / ssh channel: executions/s, {hosts} hosts"),
        "×",
        ratio(&agent.rate_20, &channel.rate_20),
        "",
    );
    Ok(())
}

/// Whether `section` cannot run for lack of OpenSSH; if so it is reported as skipped, with
/// what is missing.
pub(crate) fn skipped_without_openssh(report: &mut Report, section: &str) -> bool {
    let missing = missing_openssh();
    if missing.is_empty() {
        return false;
    }
    let list = missing.join(", ");
    println!("{section}: skipped: {list} not found (scripts/setup installs OpenSSH)");
    report.note(
        section,
        &format!("**Skipped:** this section needs OpenSSH; not found: {list}."),
    );
    true
}

/// The OpenSSH programs the fake hosts (`sshd`, keys made by `ssh-keygen`) and the per-hook
/// `ssh` baseline need, where they were not found.
fn missing_openssh() -> Vec<&'static str> {
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
    };
    let mut missing = Vec::new();
    if !std::path::Path::new("/usr/sbin/sshd").is_file() {
        missing.push("/usr/sbin/sshd");
    }
    for program in ["ssh", "ssh-keygen"] {
        if !on_path(program) {
            missing.push(program);
        }
    }
    missing
}
