//! The distributed mode over NATS JetStream, next to the ZeroMQ route in the same run: the HEM
//! route's throughput with one, two and three HEMs, its hook-start latency, and how long the
//! work of a HEM killed with SIGKILL waits until another HEM carries it on.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use one_e2e::nats::{ClusterOptions, NatsCluster};
use one_proto::event::{HookMessage, ObjectKind, StateEvent};
use one_proto::subjects::partition_of;

use crate::Scale;
use crate::ceiling;
use crate::local::{HookSource, route_latency, route_throughput, sleep_until};
use crate::procs::{CpuTime, Driver, DriverOutput, Hem, HemSettings, cpu_time, poll};
use crate::report::{Goal, Report, percentile};
use crate::workload::{parse_result_line, vm_hook, vm_id_of, vm_state_line};

pub const SECTION: &str = "8. Distributed mode over NATS JetStream";

const METHOD: &str = "A three-node NATS JetStream cluster of real `nats-server` processes \
(`scripts/setup` installs the binary into `.venv`), each node on its own loopback address, on \
the same two cores as everything else, so every replicated write costs the machine three \
times; a fresh cluster for every driver and set of HEMs measured, so that no stream, consumer \
or bucket of an earlier measurement is left. The benchmark starts `one_hm --nats <the three \
nodes> --nats-replicas 3` (8 partitions, the default) and holds its stdin and stdout as in \
section 3; every HEM is an `onehem-server` with `nats_servers` (the three nodes), \
`nats_replicas: 3` and the default `nats_takeover` (4 s), concurrency 10, INFO log, hooks \
loaded from the same oned-lite as section 3's; the first HEM is started alone and the others \
once it is ready, and a measurement begins once every HEM counts all of them as members, they \
hold the 8 partitions between them, and an event of every partition has gone round. \
**Throughput** is section 3's HEM route, same code: the same hook (`/bin/true` with \
`$TEMPLATE bench` on VM PENDING/LCM_INIT), the same events written at once to the driver's \
stdin, the same completion (every event's successful result line on the driver's stdout, \
each exactly once), measured in the same run with the ZeroMQ route (section 3's pipeline: the \
driver's default flags and one HEM) and, before each of them, the fork/exec ceiling (section \
1's method); the NATS route's ratio to the ZeroMQ route divides two rates of the same run. \
With two or three HEMs each runs 10 hooks at once, so together they may exceed the ceiling's \
10 workers. **Latency**: section 3's method (`one-bench-stamp` on VM ACTIVE/BOOT, events from \
a schedule at 50/s, then 500/s on the same driver and HEMs, from the moment an event line is \
written to the driver's stdin to the hook's own clock reading); where a route cannot take \
500 events/s its latency at that rate is the queue's and grows with the count in the note. \
**Failover**: the last run's driver and HEMs of the largest count (three; two with \
`--quick`) and a hook that prints its parent's pid (the hook supervisor of its HEM), so that a result names the HEM that ran \
it; VM ACTIVE/PROLOG events, each of a new VM, are written at 100/s throughout a round. Once \
every partition has results and every HEM has run hooks, one HEM is killed with SIGKILL; the \
partitions it held are those whose latest result it produced. The failover time runs from \
just before the signal to the first result line, produced by another HEM, of an event of \
one of those partitions (an *interrupted* record written by the HEM that took over counts: \
it is a record of the killed HEM's work); the stream goes on a little after every one of \
those partitions has such a result, then every event written in the round must get its \
result: an event without one is lost. The killed HEM is then started again and, once the \
HEMs share the partitions again, the next round kills the next HEM. CPU per event is \
user+system time from /proc over the throughput run: the HEMs, the hooks (their waited-for \
children), the driver and the three `nats-server` processes; messages per event are the \
servers' `in_msgs` (`/varz`) over the same run.";

/// Partitions of the events stream (`one_hm`'s default).
const PARTITIONS: u32 = 8;
/// Events of the failover rounds per second.
const STREAM_RATE: f64 = 100.0;

/// The partition of VM `id`'s events, as the driver places them.
fn vm_partition(id: i64) -> u32 {
    let msg = HookMessage::State(StateEvent {
        object: ObjectKind::Vm,
        state: "ACTIVE".into(),
        lcm_state: Some("PROLOG".into()),
        resource_id: id,
        service_id: None,
        remote_host: None,
        body: String::new(),
    });
    partition_of(&msg.resource(), PARTITIONS)
}

/// VM ids from `first` on, enough to give every partition at least one event.
fn ids_covering_partitions(first: i64) -> Vec<i64> {
    let mut seen = BTreeSet::new();
    let mut ids = Vec::new();
    let mut id = first;
    while seen.len() < PARTITIONS as usize && ids.len() < 1000 {
        seen.insert(vm_partition(id));
        ids.push(id);
        id += 1;
    }
    ids
}

/// The pids of the cluster's `nats-server` processes: those whose command line names a file
/// in the cluster's directory (`-c <dir>/n1.conf`).
fn nats_server_pids(cluster: &NatsCluster) -> Vec<u32> {
    let dir = cluster.dir().display().to_string();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if cmdline
            .split(|b| *b == 0)
            .any(|arg| arg.starts_with(dir.as_bytes()))
        {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

/// A fresh cluster, a driver in the NATS mode and `hems` HEMs, warmed up: every HEM is a
/// member, the partitions are shared out, and an event of every partition has gone round.
/// Fields drop in order: the HEMs, then the driver, then the cluster.
struct NatsPipeline {
    hems: Vec<Hem>,
    driver: Driver,
    cluster: NatsCluster,
    /// What the pipeline is for, in log summaries.
    label: String,
    /// Bytes of each log already looked at by [`NatsPipeline::problems`], by log (a server's
    /// from the moment the cluster was ready: what comes before is the cluster forming).
    log_read: HashMap<String, usize>,
    settings: HemSettings,
    /// Result lines already received (warm-up, earlier runs).
    warm: usize,
}

impl Drop for NatsPipeline {
    fn drop(&mut self) {
        // The HEMs stop together; the fields then drop in order (HEMs, driver, cluster).
        for hem in &mut self.hems {
            hem.terminate();
        }
    }
}

impl NatsPipeline {
    fn start(source: &HookSource, hems: usize) -> Result<NatsPipeline> {
        let cluster = NatsCluster::start(ClusterOptions::default())?;
        let log_read = (0..cluster.len())
            .map(|i| (format!("n{i}"), server_log(&cluster, i).len()))
            .collect();
        let urls = cluster.url_list();
        let driver = Driver::start(&["--nats", &urls, "--nats-replicas", "3"])
            .with_context(|| cluster.logs())?;
        let settings = HemSettings {
            subscriber: driver.publisher.clone(),
            replier: driver.logger.clone(),
            replay: driver.replay.clone(),
            one_xmlrpc: source.stack.endpoint.clone(),
            one_auth: source.stack.var_dir.join("one_auth"),
            concurrency: ceiling::CONCURRENCY as u32,
            extra_config: format!("nats_servers: {urls}\nnats_replicas: 3\n"),
        };
        let mut p = NatsPipeline {
            hems: Vec::new(),
            driver,
            cluster,
            label: format!("NATS, {}", hems_name(hems)),
            log_read,
            settings,
            warm: 0,
        };
        // The first HEM alone until it is ready, then the others: HEMs started together on a
        // fresh cluster race to create their bucket, and a loser may exit ("cannot open the
        // HEMs' key-value bucket: … stream not found").
        p.hems.push(Hem::start(&p.settings)?);
        let first = &p.hems[0];
        poll(
            "the first HEM to be ready",
            Duration::from_secs(120),
            || first.log_text().contains("HEM ready").then_some(()),
        )
        .with_context(|| p.context())?;
        for _ in 1..hems {
            p.hems.push(Hem::start(&p.settings)?);
        }
        p.wait_shared(Duration::from_secs(120))?;
        let ids = ids_covering_partitions(2_000_000_000);
        for id in &ids {
            p.driver
                .stdin()?
                .write_all(vm_state_line(*id, "PENDING", "LCM_INIT").as_bytes())?;
        }
        let warm = ids.len();
        p.driver
            .output
            .wait(warm, Duration::from_secs(60))
            .with_context(|| p.context())?;
        p.driver.output.take();
        p.warm = warm;
        Ok(p)
    }

    /// Waits until every HEM runs, has loaded its hooks, counts all of them as members, and
    /// the HEMs hold every partition between them, each once.
    fn wait_shared(&mut self, timeout: Duration) -> Result<()> {
        let count = self.hems.len();
        let deadline = Instant::now() + timeout;
        loop {
            let mut held = Vec::new();
            let mut settled = true;
            for (i, hem) in self.hems.iter_mut().enumerate() {
                if !hem.is_running() {
                    bail!("HEM {i} exited: {}", hem.log_tail());
                }
                match hem_view(&hem.log_text()) {
                    Some((members, partitions)) if members == count => held.extend(partitions),
                    _ => settled = false,
                }
            }
            held.sort_unstable();
            if settled && held == (0..PARTITIONS).collect::<Vec<_>>() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the {count} HEMs did not share the {PARTITIONS} partitions within \
                     {timeout:?}: {}",
                    self.context()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pids(&self) -> Vec<u32> {
        self.hems.iter().map(Hem::pid).collect()
    }

    /// The parent pid each HEM's local hooks see: its hook supervisor's.
    fn hook_parents(&self) -> Result<Vec<u32>> {
        self.hems
            .iter()
            .enumerate()
            .map(|(i, h)| {
                h.supervisor_pid()
                    .with_context(|| format!("HEM {i} has no hook supervisor running"))
            })
            .collect()
    }

    /// The HEMs' and the driver's log tails, for errors.
    fn context(&self) -> String {
        format!(
            "{}\ndriver: {}\nservers: {}",
            hems_context(&self.hems),
            self.driver.log_tail(),
            self.cluster.logs()
        )
    }

    /// Log lines at warning level or above since the last call: the HEMs', the driver's and
    /// the servers' (after the cluster formed).
    fn problems(&mut self, into: &mut Vec<String>) {
        let label = self.label.clone();
        let mut logs: Vec<(String, String, String)> = self
            .hems
            .iter()
            .map(|h| {
                (
                    format!("hem-{}", h.pid()),
                    format!("{label}: HEM"),
                    h.log_text(),
                )
            })
            .collect();
        logs.push((
            "one_hm".into(),
            format!("{label}: one_hm"),
            fs::read_to_string(self.driver.dir.path().join("one_hm.log")).unwrap_or_default(),
        ));
        for i in 0..self.cluster.len() {
            logs.push((
                format!("n{i}"),
                format!("{label}: nats-server"),
                server_log(&self.cluster, i),
            ));
        }
        for (key, who, text) in logs {
            let from = self.log_read.get(&key).copied().unwrap_or(0);
            for line in text.get(from..).unwrap_or_default().lines() {
                let bad = [" WARN ", " ERROR ", "[WRN]", "[ERR]", "[FTL]", "panicked"]
                    .iter()
                    .any(|m| line.contains(m));
                if bad {
                    into.push(format!("{who}: {line}"));
                }
            }
            self.log_read.insert(key, text.len());
        }
    }

    /// Messages into the three servers so far (`in_msgs` of `/varz`, summed): clients' and
    /// the routes' between the nodes.
    fn server_messages(&self) -> Option<f64> {
        let mut total = 0.0;
        for i in 0..self.cluster.len() {
            let (status, body) = self.cluster.monitor_get(i, "/varz").ok()?;
            if status != 200 {
                return None;
            }
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            total += v.get("in_msgs")?.as_f64()?;
        }
        Some(total)
    }

    /// CPU seconds so far: the HEMs with their hook supervisors (own, and the hooks as the
    /// supervisors' children), the driver, the `nats-server` processes.
    fn cpu(&self) -> Result<[CpuTime; 3]> {
        let mut hems = CpuTime::default();
        let supervisors = self.hems.iter().filter_map(Hem::supervisor_pid);
        for pid in self.pids().into_iter().chain(supervisors) {
            let t = cpu_time(pid)?;
            hems.own += t.own;
            hems.children += t.children;
        }
        let mut servers = CpuTime::default();
        for pid in nats_server_pids(&self.cluster) {
            servers.own += cpu_time(pid)?.own;
        }
        Ok([hems, cpu_time(self.driver.pid())?, servers])
    }
}

/// Node `i`'s log so far.
fn server_log(cluster: &NatsCluster, i: usize) -> String {
    fs::read_to_string(cluster.dir().join(format!("n{}.log", i + 1))).unwrap_or_default()
}

/// The HEMs' log tails, for errors.
fn hems_context(hems: &[Hem]) -> String {
    let mut text = String::new();
    for (i, h) in hems.iter().enumerate() {
        text.push_str(&format!("\nHEM {i}: {}", h.log_tail()));
    }
    text
}

/// What a HEM's log says last about its view: the member count and the partitions it holds
/// (the distributed mode's `partitions held members=3 partitions=[0, 5] of=8` line).
fn hem_view(log: &str) -> Option<(usize, Vec<u32>)> {
    let line = log.lines().rev().find(|l| l.contains("partitions held"))?;
    let members = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("members="))?
        .parse()
        .ok()?;
    let list = line.split_once("partitions=[")?.1.split_once(']')?.0;
    let partitions = list
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    Some((members, partitions))
}

/// CPU per event of one throughput run, as text.
fn cpu_text(spent: &[CpuTime; 3], n: usize, with_servers: bool) -> String {
    let per = |secs: f64| secs * 1e6 / n as f64;
    let [hems, driver, servers] = spent;
    let mut text = format!(
        "the hooks {:.0} µs, the HEM(s) with their hook supervisors {:.0} µs, the driver {:.0} µs",
        per(hems.children),
        per(hems.own),
        per(driver.own)
    );
    if with_servers {
        text.push_str(&format!(
            ", the three nats-server {:.0} µs",
            per(servers.own)
        ));
    }
    text
}

/// One failover round's outcome.
struct Round {
    /// Kill to the first result of the killed HEM's partitions by another HEM, seconds.
    first: f64,
    /// Kill to the moment every one of those partitions had such a result, seconds.
    all: f64,
    partitions: usize,
    events: usize,
    lost: usize,
    doubled: usize,
    interrupted: usize,
}

/// A result line of the failover hook.
struct Seen {
    at: Instant,
    vm: i64,
    /// The parent pid the hook printed: the hook supervisor of the HEM that ran it (`None` for
    /// a record that reports an execution that never ran, such as one interrupted by the kill).
    hem: Option<u32>,
    ok: bool,
}

fn seen_lines(output: &DriverOutput, hook: i64, into: &mut Vec<Seen>) {
    for l in output.take() {
        let Some(r) = parse_result_line(&l.line) else {
            continue;
        };
        if r.hook_id != hook {
            continue;
        }
        let Some(vm) = vm_id_of(&r.result.arguments) else {
            continue;
        };
        let hem = String::from_utf8_lossy(&r.result.stdout)
            .trim()
            .parse()
            .ok();
        into.push(Seen {
            at: l.at,
            vm,
            hem,
            ok: r.rc == 0,
        });
    }
}

/// One failover round on a settled pipeline: a stream of events of new VMs (ids from `first`
/// on), kill -9 of HEM `victim` once every partition and every HEM has results, then the
/// count of lost events.
fn failover_round(
    p: &mut NatsPipeline,
    hook: i64,
    victim: usize,
    first: i64,
    warm_up: Duration,
    tail: Duration,
) -> Result<Round> {
    // The hooks print their parent: each HEM's hook supervisor.
    let pids = p.hook_parents()?;
    let victim_pid = pids[victim];
    let output = Arc::clone(&p.driver.output);
    let stop = AtomicBool::new(false);
    // At most two minutes of events, whatever happens.
    let max_events = (STREAM_RATE * 120.0) as usize;
    let stdin = p.driver.stdin()?;
    let hems = &mut p.hems;
    let mut seen: Vec<Seen> = Vec::new();
    let (observed, written) = std::thread::scope(|s| {
        let writer = s.spawn(|| -> Result<usize> {
            let start = Instant::now();
            let mut i = 0;
            while i < max_events && !stop.load(Ordering::Acquire) {
                sleep_until(start + Duration::from_secs_f64(i as f64 / STREAM_RATE));
                let line = vm_state_line(first + i as i64, "ACTIVE", "PROLOG");
                stdin.write_all(line.as_bytes())?;
                i += 1;
            }
            Ok(i)
        });
        let observed = (|| -> Result<(Instant, Instant, Instant, usize)> {
            // Before: results of every partition and from every HEM within the last window.
            let start = Instant::now();
            let window = warm_up.min(Duration::from_secs(1));
            poll(
                "results of every partition from every HEM",
                Duration::from_secs(60),
                || {
                    seen_lines(&output, hook, &mut seen);
                    let now = Instant::now();
                    if now - start < warm_up {
                        return None;
                    }
                    let recent = seen.iter().filter(|r| now - r.at <= window);
                    let (mut parts, mut by) = (BTreeSet::new(), BTreeSet::new());
                    for r in recent {
                        parts.insert(vm_partition(r.vm));
                        by.extend(r.hem);
                    }
                    (parts.len() == PARTITIONS as usize && pids.iter().all(|p| by.contains(p)))
                        .then_some(())
                },
            )?;
            // The partitions the victim held: those whose latest result is its own.
            let mut latest: BTreeMap<u32, Option<u32>> = BTreeMap::new();
            for r in &seen {
                latest.insert(vm_partition(r.vm), r.hem);
            }
            let held: BTreeSet<u32> = latest
                .iter()
                .filter(|(_, hem)| **hem == Some(victim_pid))
                .map(|(p, _)| *p)
                .collect();
            if held.is_empty() {
                bail!("HEM {victim} produced the latest result of no partition");
            }
            let killed = Instant::now();
            hems[victim].kill()?;
            // After: the first result of each of those partitions from another HEM.
            let mut resumed: BTreeMap<u32, Instant> = BTreeMap::new();
            let resumed_all = poll(
                "the killed HEM's partitions to have results from another HEM",
                Duration::from_secs(90),
                || {
                    let from = seen.len();
                    seen_lines(&output, hook, &mut seen);
                    for r in &seen[from..] {
                        let part = vm_partition(r.vm);
                        if r.at > killed && r.hem != Some(victim_pid) && held.contains(&part) {
                            resumed.entry(part).or_insert(r.at);
                        }
                    }
                    if resumed.len() == held.len() {
                        resumed.values().max().copied()
                    } else {
                        None
                    }
                },
            )?;
            let first = *resumed.values().min().context("no partition resumed")?;
            // More events on the new holders.
            let more = Instant::now() + tail;
            while Instant::now() < more {
                seen_lines(&output, hook, &mut seen);
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok((killed, first, resumed_all, held.len()))
        })();
        stop.store(true, Ordering::Release);
        let written = writer
            .join()
            .map_err(|_| anyhow::anyhow!("the event writer panicked"))
            .and_then(|w| w);
        (observed, written)
    });
    let (killed, first_at, all_at, partitions) = observed.with_context(|| p.context())?;
    let events = written?;
    // Every event written must get its result; wait for them, then a moment for late doubles.
    let ids = first..first + events as i64;
    let done = poll("a result for every event", Duration::from_secs(90), || {
        seen_lines(&output, hook, &mut seen);
        let with: BTreeSet<i64> = seen.iter().map(|r| r.vm).collect();
        ids.clone().all(|id| with.contains(&id)).then_some(())
    });
    std::thread::sleep(tail / 2);
    seen_lines(&output, hook, &mut seen);
    let mut by_vm: HashMap<i64, usize> = HashMap::new();
    for r in &seen {
        *by_vm.entry(r.vm).or_default() += 1;
    }
    let lost = ids.clone().filter(|id| !by_vm.contains_key(id)).count();
    if let Err(e) = done {
        println!("    {lost} of {events} events without a result: {e:#}");
    }
    Ok(Round {
        first: (first_at - killed).as_secs_f64(),
        all: (all_at - killed).as_secs_f64(),
        partitions,
        events,
        lost,
        doubled: by_vm.values().filter(|&&c| c > 1).count(),
        interrupted: seen.iter().filter(|r| !r.ok).count(),
    })
}

/// Writes the failover hook: it prints its parent's pid, the hook supervisor of the HEM that
/// spawned it.
fn ppid_hook(dir: &Path) -> Result<String> {
    let path = dir.join("ppid.sh");
    fs::write(&path, "#!/bin/sh\necho \"$PPID\"\n")?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
    Ok(path.display().to_string())
}

struct Latency {
    p50: Vec<f64>,
    p99: Vec<f64>,
}

impl Latency {
    fn new() -> Latency {
        Latency {
            p50: Vec::new(),
            p99: Vec::new(),
        }
    }

    fn push(&mut self, sorted: &[f64]) {
        self.p50.push(percentile(sorted, 0.50));
        self.p99.push(percentile(sorted, 0.99));
    }

    fn report(self, report: &mut Report, what: &str, note: &str) {
        report.add(SECTION, &format!("{what}, p50"), "ms", self.p50, note);
        report.add(SECTION, &format!("{what}, p99"), "ms", self.p99, note);
    }
}

/// Throughput runs of the NATS route with one HEM count.
#[derive(Default)]
struct NatsRates {
    rates: Vec<f64>,
    /// Each over the ZeroMQ route's rate of the same run, %.
    vs_zmq: Vec<f64>,
    /// Each over the ceiling measured just before it, %.
    share: Vec<f64>,
}

fn hems_name(k: usize) -> String {
    if k == 1 {
        "1 HEM".into()
    } else {
        format!("{k} HEMs")
    }
}

/// Latency runs of one route: light load, then 500/s, on the same pipeline.
struct LatencyRuns {
    low: Latency,
    paced: Latency,
}

impl LatencyRuns {
    fn new() -> LatencyRuns {
        LatencyRuns {
            low: Latency::new(),
            paced: Latency::new(),
        }
    }
}

/// Sizes of the runs.
struct Sizes {
    n_ceiling: usize,
    n_tput: usize,
    n_low: usize,
    n_paced: usize,
}

const LOW_RATE: f64 = 50.0;
const RATE: f64 = 500.0;

/// The light-load and 500/s latency runs on `driver`; returns the rate offered at 500/s.
fn latencies(
    driver: &mut Driver,
    warm: &mut usize,
    hook: i64,
    sizes: &Sizes,
    into: &mut LatencyRuns,
    context: impl Fn() -> String,
) -> Result<f64> {
    if sizes.n_low > 0 {
        let (lat, _) = route_latency(driver, warm, hook, sizes.n_low, Some(LOW_RATE), &context)?;
        into.low.push(&lat);
    }
    let (lat, offered) = route_latency(driver, warm, hook, sizes.n_paced, Some(RATE), &context)?;
    into.paced.push(&lat);
    Ok(offered)
}

pub fn run(report: &mut Report, scale: Scale) -> Result<()> {
    report.section(SECTION, METHOD);
    let server = one_e2e::nats::nats_server().and_then(|p| {
        if p.is_file() {
            Ok(p)
        } else {
            bail!("{} (ONE_TEST_NATS_SERVER) is not a file", p.display())
        }
    });
    if let Err(e) = server {
        let text = format!(
            "**Skipped:** this section needs the `nats-server` binary and none was found \
             ({e:#})."
        );
        println!("{SECTION}: skipped: {e:#}");
        report.note(SECTION, &text);
        return Ok(());
    }
    let runs = scale.runs;
    let sizes = Sizes {
        n_ceiling: scale.pick(3000, 500),
        n_tput: scale.pick(2000, 200),
        n_low: scale.pick(150, 10),
        n_paced: scale.pick(1000, 100),
    };
    let n_tput = sizes.n_tput;
    let hem_counts: &[usize] = if scale.quick { &[1, 2] } else { &[1, 2, 3] };
    let latency_counts: &[usize] = if scale.quick { &[1] } else { &[1, 3] };
    // The failover rounds run on the last run's pipeline of this many HEMs.
    let failover_hems = scale.pick(3, 2);
    let kills = scale.pick(5, 1);

    let source = HookSource::start(0)?;
    let scripts = tempfile::Builder::new()
        .prefix("one-bench-nats-")
        .tempdir()?;
    let ppid = source.stack.client().hook_allocate(&vm_hook(
        "bench-ppid",
        &ppid_hook(scripts.path())?,
        "ACTIVE",
        "PROLOG",
    ))?;

    let mut ceilings = Vec::new();
    let mut zmq = Vec::new();
    let mut zmq_share = Vec::new();
    let mut zmq_lat = LatencyRuns::new();
    let mut nats: BTreeMap<usize, NatsRates> = BTreeMap::new();
    let mut nats_lat: BTreeMap<usize, LatencyRuns> = BTreeMap::new();
    let mut offered = Vec::new();
    let mut cpu_notes: Vec<String> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let mut kept: Option<NatsPipeline> = None;
    for run in 0..runs {
        cpu_notes.clear();
        // The ZeroMQ route: section 3's pipeline (driver default flags, one HEM).
        let mut p = source.pipeline(&[])?;
        let ceiling = ceiling::spawn_rate(sizes.n_ceiling, ceiling::CONCURRENCY)?;
        ceilings.push(ceiling);
        let t = crate::local::hem_throughput(&mut p, source.true_hook, n_tput)?;
        zmq.push(t.rate);
        zmq_share.push(t.rate / ceiling * 100.0);
        let zmq_rate = t.rate;
        cpu_notes.push(format!(
            "ZeroMQ route: {}",
            cpu_text(
                &[t.hem + t.supervisor, t.driver, CpuTime::default()],
                n_tput,
                false
            )
        ));
        let hem = &p.hem;
        offered.push(latencies(
            &mut p.driver,
            &mut p.warm,
            source.stamp_hook,
            &sizes,
            &mut zmq_lat,
            || hem.log_tail(),
        )?);
        drop(p);
        for &k in hem_counts {
            let mut p = NatsPipeline::start(&source, k)?;
            let ceiling = ceiling::spawn_rate(sizes.n_ceiling, ceiling::CONCURRENCY)?;
            ceilings.push(ceiling);
            let (before, msgs_before) = (p.cpu()?, p.server_messages());
            let (hems, cluster) = (&p.hems, &p.cluster);
            let r = route_throughput(&mut p.driver, &mut p.warm, source.true_hook, n_tput, || {
                format!("{}\nservers: {}", hems_context(hems), cluster.logs())
            })?;
            let (after, msgs_after) = (p.cpu()?, p.server_messages());
            let spent = [
                after[0] - before[0],
                after[1] - before[1],
                after[2] - before[2],
            ];
            let mut text = format!("NATS, {}: {}", hems_name(k), cpu_text(&spent, n_tput, true));
            if let (Some(a), Some(b)) = (msgs_after, msgs_before) {
                text.push_str(&format!(
                    " ({:.0} messages into the servers per event, routes included)",
                    (a - b) / n_tput as f64
                ));
            }
            cpu_notes.push(text);
            let e = nats.entry(k).or_default();
            e.rates.push(r);
            e.vs_zmq.push(r / zmq_rate * 100.0);
            e.share.push(r / ceiling * 100.0);
            if latency_counts.contains(&k) {
                let (hems, cluster) = (&p.hems, &p.cluster);
                offered.push(latencies(
                    &mut p.driver,
                    &mut p.warm,
                    source.stamp_hook,
                    &sizes,
                    nats_lat.entry(k).or_insert_with(LatencyRuns::new),
                    || format!("{}\nservers: {}", hems_context(hems), cluster.logs()),
                )?);
            }
            if run + 1 == runs && k == failover_hems {
                kept = Some(p);
            } else {
                p.problems(&mut problems);
            }
        }
    }

    // Failover: kill -9 of one HEM per round, started again between rounds.
    let mut rounds = Vec::new();
    {
        let mut p = match kept.take() {
            Some(p) => p,
            None => NatsPipeline::start(&source, failover_hems)?,
        };
        p.problems(&mut problems);
        p.label.push_str(", failover rounds");
        let warm_up = Duration::from_millis(scale.pick(2000, 500) as u64);
        let tail = Duration::from_millis(scale.pick(1000, 300) as u64);
        for k in 0..kills {
            let victim = k % failover_hems;
            let first = 100_000_000 * (k as i64 + 1);
            let round = failover_round(&mut p, ppid, victim, first, warm_up, tail)?;
            println!(
                "    kill {}: HEM {victim} held {} partition(s); first result by another HEM \
                 after {:.2} s, all its partitions after {:.2} s; {} events, {} lost, {} \
                 interrupted, {} with more than one result",
                k + 1,
                round.partitions,
                round.first,
                round.all,
                round.events,
                round.lost,
                round.interrupted,
                round.doubled
            );
            rounds.push(round);
            if k + 1 < kills {
                // The killed HEM's log goes with its replacement.
                p.problems(&mut problems);
                p.hems[victim] = Hem::start(&p.settings)?;
                p.wait_shared(Duration::from_secs(120))?;
            }
        }
        p.problems(&mut problems);
    }

    report.add(
        SECTION,
        "ceiling next to the throughput runs",
        "spawns/s",
        ceilings,
        &format!(
            "{} spawns before each throughput run, section 1's method",
            sizes.n_ceiling
        ),
    );
    let tput_note = format!("{n_tput} PENDING events written at once, /bin/true");
    report.add(
        SECTION,
        "ZeroMQ route (1 HEM): driver stdin to driver result line",
        "events/s",
        zmq,
        &tput_note,
    );
    report.add(
        SECTION,
        "ZeroMQ route as a share of the ceiling",
        "%",
        zmq_share,
        "each run over the ceiling measured just before it",
    );
    for (k, r) in nats {
        let name = hems_name(k);
        report.add(
            SECTION,
            &format!("NATS, {name}: driver stdin to driver result line"),
            "events/s",
            r.rates,
            &tput_note,
        );
        report.add(
            SECTION,
            &format!("NATS, {name} / ZeroMQ route"),
            "%",
            r.vs_zmq,
            "each run over the ZeroMQ route's rate in the same run",
        );
        if k == 1 {
            report.goal(Goal::AtLeast(80.0));
        }
        report.add(
            SECTION,
            &format!("NATS, {name} as a share of the ceiling"),
            "%",
            r.share,
            "each run over the ceiling measured just before it",
        );
    }
    let low_note = format!("{} events at 50/s, one-bench-stamp", sizes.n_low);
    let paced_note = format!("{} events at 500/s, one-bench-stamp", sizes.n_paced);
    let mut routes = vec![("ZeroMQ route".to_string(), zmq_lat)];
    routes.extend(
        nats_lat
            .into_iter()
            .map(|(k, l)| (format!("NATS, {}", hems_name(k)), l)),
    );
    let mut paced = Vec::new();
    for (name, l) in routes {
        if sizes.n_low == 0 {
            paced.push((name, l.paced));
            continue;
        }
        l.low.report(
            report,
            &format!("{name}: event to hook start at 50/s (light load)"),
            &low_note,
        );
        paced.push((name, l.paced));
    }
    for (name, l) in paced {
        l.report(
            report,
            &format!("{name}: event to hook start at 500/s"),
            &paced_note,
        );
    }
    report.add(
        SECTION,
        "rate actually offered in the 500/s runs",
        "events/s",
        offered,
        "",
    );
    let kill_note = format!(
        "{failover_hems} HEMs, {} kill(s), events at {STREAM_RATE:.0}/s; median = p50 over the \
         kills, the max is the right end of min-max",
        rounds.len()
    );
    report.add(
        SECTION,
        "failover: kill -9 of a HEM to the first result of its partitions by another HEM",
        "s",
        rounds.iter().map(|r| r.first).collect(),
        &kill_note,
    );
    report.goal(Goal::AtMost(10.0));
    report.add(
        SECTION,
        "failover: kill -9 to every partition of the killed HEM resumed",
        "s",
        rounds.iter().map(|r| r.all).collect(),
        &kill_note,
    );
    report.add(
        SECTION,
        "partitions the killed HEM held",
        "partitions",
        rounds.iter().map(|r| r.partitions as f64).collect(),
        &format!("of {PARTITIONS}"),
    );
    report.add(
        SECTION,
        "events without a result, per kill round",
        "events",
        rounds.iter().map(|r| r.lost as f64).collect(),
        &format!(
            "events written per round: {}",
            rounds
                .iter()
                .map(|r| r.events.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    report.goal(Goal::Exactly(0.0));
    report.add(
        SECTION,
        "interrupted records, per kill round",
        "records",
        rounds.iter().map(|r| r.interrupted as f64).collect(),
        "hooks the killed HEM had claimed, reported by the HEM that took over",
    );
    report.add(
        SECTION,
        "events with more than one result, per kill round",
        "events",
        rounds.iter().map(|r| r.doubled as f64).collect(),
        "",
    );
    report.note(
        SECTION,
        &format!(
            "Where the time goes (CPU per event, last run): {}.",
            cpu_notes.join("; ")
        ),
    );
    report.note(SECTION, &problems_note(&problems));
    Ok(())
}

/// The warnings and errors of the section's logs, by kind, for the report.
fn problems_note(lines: &[String]) -> String {
    if lines.is_empty() {
        return "No log line at warning level or above from the HEMs, the NATS-mode drivers or \
                the servers during this section."
            .into();
    }
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for l in lines {
        *kinds.entry(kind_of(l)).or_default() += 1;
    }
    let mut kinds: Vec<(String, usize)> = kinds.into_iter().collect();
    kinds.sort_by_key(|k| std::cmp::Reverse(k.1));
    for (k, n) in &kinds {
        println!("    log: {n} × {k}");
        if let Some(example) = lines.iter().find(|l| kind_of(l) == *k) {
            println!("         e.g. {example}");
        }
    }
    let list: Vec<String> = kinds
        .iter()
        .take(8)
        .map(|(k, n)| format!("{n} × `{}`", k.replace('`', "'")))
        .collect();
    format!(
        "Log lines at warning level or above during this section (HEMs, NATS-mode drivers, \
         servers; {} in all, by kind): {}.",
        lines.len(),
        list.join("; ")
    )
}

/// A log line without its time stamp, span fields and numbers, to group lines of one kind.
fn kind_of(line: &str) -> String {
    // `<pipeline>: <process>: <line>`
    let mut parts = line.splitn(3, ": ");
    let (pipeline, process, rest) = match (parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), Some(c)) => (a, b, c),
        _ => ("", "", line),
    };
    // tracing: `<time>  WARN span{fields}: message fields`; nats-server:
    // `[pid] <date> <time> [WRN] message`.
    let text = match ["[WRN]", "[ERR]", "[FTL]"]
        .iter()
        .find_map(|m| rest.find(m))
    {
        Some(i) => &rest[i..],
        None => rest
            .split_once(' ')
            .map(|(_, r)| r.trim_start())
            .unwrap_or(rest),
    };
    let text = match (text.find('{'), text.find("}: ")) {
        (Some(a), Some(b)) if a < b => format!("{}{}", &text[..a], &text[b + 1..]),
        _ => text.to_string(),
    };
    let words: Vec<&str> = text
        .split_whitespace()
        .map(|w| {
            if w.bytes().any(|b| b.is_ascii_digit()) {
                "#"
            } else {
                w
            }
        })
        .collect();
    let text: String = words.join(" ").chars().take(140).collect();
    format!("{pipeline}: {process}: {text}")
}
