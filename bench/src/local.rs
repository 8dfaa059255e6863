//! Local hooks end to end, by two routes: through the front-end (XML-RPC call to hook-log
//! record) and through the driver alone (event line on one_hm's stdin to result line on its
//! stdout, the HEM in between), so that the HEM's own throughput shows even when the
//! front-end is the bottleneck.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use one_client::{Client, Value};
use one_e2e::stack::{Stack, StackOptions};

use crate::Scale;
use crate::ceiling;
use crate::hook_log_db::HookLogDb;
use crate::procs::{
    CpuTime, Driver, Hem, HemSettings, OutputLine, bin, cpu_time, poll, thread_breakdown,
    thread_cpu,
};
use crate::report::{Goal, Report, percentile};
use crate::workload::{parse_result_line, stamp_of, vm_hook, vm_id_of, vm_state_line, wall_ns};

pub const SECTION: &str = "3. End to end, local hooks";

const METHOD: &str = "Two routes, both with the real `oned-lite`, `one_hm` and \
`onehem-server` binaries, HEM concurrency 10 (as the ceiling), the HEM at its default INFO log \
level, and a state hook on VM PENDING/LCM_INIT with `ARGUMENTS = \"$TEMPLATE bench\"` (the VM \
body, which identifies the event in the result, and a second word: given exactly one argument, \
coreutils' `true` loads the locale to look for `--help`, about 0.35 ms of CPU that the \
ceiling's argument-less `/bin/true` never spends; with two it does the same work as the \
ceiling's). **Front-end route**: 8 XML-RPC connections call \
`one.vm.allocate`; each call commits a VM and its PENDING event to oned-lite's outbox, which \
feeds the driver; the HEM runs the hook and the result is stored in the hook log. Throughput \
is the number of calls over the time from the first call to the moment the last hook-log \
record is visible in oned-lite's SQLite file (polled every 5 ms, read-only). **HEM route**: \
the benchmark starts its own `one_hm` (default flags, so the PUB high-water mark of 1,000 \
applies and the HEM recovers what it drops by replay) and an `onehem-server` that loads its \
hooks from a running oned-lite, writes the events itself to the driver's stdin and counts the \
`EXECUTE SUCCESS` result lines on the driver's stdout: this is exactly what oned-lite would \
store, without its XML-RPC server and outbox. Throughput uses `/bin/true` (the ceiling's \
program); latency uses `one-bench-stamp` (section 1), whose printed start time comes back in \
the result's STDOUT. Event time is, on the HEM route, the moment the line was written to the \
driver's stdin (where oned hands an event over) and, on the front-end route, the moment the \
XML-RPC request was sent (an upper bound: it includes the call itself). The paced runs offer \
50 (light load) or 500 events/s from a schedule (event i at i/rate s); the saturation runs \
offer everything at once, so their latency grows with the queue and depends on the count given \
in the note. Every run also checks that each event produced exactly one successful result. \
CPU per event is user+system time from /proc over the throughput run, per process (the hooks \
as the waited-for children of the HEM's hook supervisor) and, on the HEM route, per thread (the \
supervisor's too). The shares of the ceiling \
divide each throughput run by a ceiling measured just before it (section 1's method, fewer \
spawns, with the processes of the run started and idle): the machine is shared and its speed \
drifts within minutes, so a ceiling taken at the start of the suite would judge a run by \
another moment's machine.";

/// Allocations made by [`allocate_vms`]: the VM id and the time each request was sent.
pub struct Allocations {
    pub sent: Vec<(i64, SystemTime)>,
    /// From the first request to the last response.
    pub calls: Duration,
}

/// `one.vm.allocate` `count` times from `connections` keep-alive connections, each request at
/// its slot of a `rate` per second schedule when a rate is given, else as fast as possible.
pub fn allocate_vms(
    stack: &Stack,
    count: usize,
    connections: usize,
    rate: Option<f64>,
) -> Result<Allocations> {
    let next = AtomicUsize::new(0);
    let sent = Mutex::new(Vec::with_capacity(count));
    let start = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..connections)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    let client = Client::new(&stack.endpoint, &stack.session);
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            break;
                        }
                        if let Some(r) = rate {
                            sleep_until(start + Duration::from_secs_f64(i as f64 / r));
                        }
                        let at = SystemTime::now();
                        let v = client.call(
                            "one.vm.allocate",
                            vec![
                                Value::String("NAME = \"web\"\nCPU = 1\nMEMORY = 1024\n".into()),
                                Value::Bool(false),
                            ],
                        )?;
                        let id = v.as_i64().context("one.vm.allocate returned no id")?;
                        mine.push((id, at));
                    }
                    sent.lock()
                        .map_err(|_| anyhow::anyhow!("poisoned"))?
                        .extend(mine);
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("an XML-RPC worker panicked"))??;
        }
        Ok(())
    })?;
    let calls = start.elapsed();
    let sent = sent.into_inner().map_err(|_| anyhow::anyhow!("poisoned"))?;
    Ok(Allocations { sent, calls })
}

pub fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// A fresh stack with one hook; waits until `warm` allocations have their records, so the
/// HEM is connected and knows the hook.
pub fn stack_with_hook(template: &str, warm: usize) -> Result<(Stack, i64, HookLogDb)> {
    let stack = Stack::start_with(StackOptions {
        log_retention: 1_000_000,
        // The HEM's default level, as on the HEM route.
        hem_debug_level: 2,
        hook_allowed_paths: crate::procs::bench_hook_dirs(),
        ..StackOptions::default()
    })?;
    let hook = stack.client().hook_allocate(template)?;
    let db = HookLogDb::open(&stack.var_dir.join("one.db"))?;
    allocate_vms(&stack, warm, 1, None)?;
    poll("the warm-up records", Duration::from_secs(60), || {
        (db.stored(hook).ok()? >= warm as u64).then_some(())
    })
    .with_context(|| stack.tail_log("hem"))?;
    Ok((stack, hook, db))
}

/// Waits until `hook` has `n` records in total; returns when that was first seen.
pub fn wait_stored(db: &HookLogDb, hook: i64, n: u64, timeout: Duration) -> Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        let stored = db.stored(hook)?;
        if stored >= n {
            return Ok(Instant::now());
        }
        if Instant::now() >= deadline {
            bail!("{stored} of {n} hook-log records after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Generous bound for `n` hooks to finish: at least 60 s, or 100 per second.
pub fn budget(n: usize) -> Duration {
    Duration::from_secs(60 + n as u64 / 100)
}

const WARM: usize = 3;

struct FrontThroughput {
    rate: f64,
    xmlrpc_rate: f64,
    /// CPU per event by process, as text.
    cpu: String,
}

fn front_throughput(n: usize) -> Result<FrontThroughput> {
    let (stack, hook, db) = stack_with_hook(
        &vm_hook("bench-true", "/bin/true", "PENDING", "LCM_INIT"),
        WARM,
    )?;
    // The hook supervisor last: its waited-for children are the hooks.
    let pids = [
        ("oned-lite", stack.oned_pid()),
        ("the driver", stack.driver_pid()),
        ("the HEM", stack.hem_pid()),
        ("the hook supervisor", stack.supervisor_pid_at(0)),
    ];
    let cpu = || -> Result<Vec<CpuTime>> {
        pids.iter()
            .map(|(name, pid)| cpu_time(pid.with_context(|| format!("{name} is not running"))?))
            .collect()
    };
    let before = cpu()?;
    let start = Instant::now();
    let allocs = allocate_vms(&stack, n, 8, None)?;
    let last = wait_stored(&db, hook, (WARM + n) as u64, budget(n))?;
    let spent: Vec<CpuTime> = cpu()?.into_iter().zip(before).map(|(a, b)| a - b).collect();
    check_front_records(&db, hook, &allocs)?;
    let per = |secs: f64| secs * 1e6 / n as f64;
    let mut parts: Vec<String> = pids
        .iter()
        .zip(&spent)
        .map(|((name, _), t)| format!("{name} {:.0} µs", per(t.own)))
        .collect();
    if let Some(supervisor) = spent.last() {
        parts.push(format!(
            "the hook process {:.0} µs",
            per(supervisor.children)
        ));
    }
    Ok(FrontThroughput {
        rate: n as f64 / (last - start).as_secs_f64(),
        xmlrpc_rate: n as f64 / allocs.calls.as_secs_f64(),
        cpu: parts.join(", "),
    })
}

/// Every allocated VM has exactly one successful record.
fn check_front_records(db: &HookLogDb, hook: i64, allocs: &Allocations) -> Result<()> {
    let records = db.records(hook, WARM as u64)?;
    let mut seen: HashMap<i64, usize> = HashMap::new();
    for r in &records {
        let result = r.result.as_ref().context("record without a result")?;
        if result.code != 0 {
            bail!("hook failed with code {}: {:?}", result.code, result.stderr);
        }
        let id = vm_id_of(&result.arguments).context("record without a VM id")?;
        *seen.entry(id).or_default() += 1;
    }
    let missing = allocs
        .sent
        .iter()
        .filter(|(id, _)| !seen.contains_key(id))
        .count();
    let doubled = seen.values().filter(|&&c| c > 1).count();
    if missing > 0 || doubled > 0 {
        bail!("{missing} VMs without a record, {doubled} with more than one");
    }
    Ok(())
}

/// Hook-start latencies (ms, sorted) on the front-end route.
fn front_latency(n: usize, connections: usize, rate: Option<f64>) -> Result<(Vec<f64>, f64)> {
    let stamp = bin("one-bench-stamp")?;
    let template = vm_hook(
        "bench-stamp",
        &stamp.display().to_string(),
        "PENDING",
        "LCM_INIT",
    );
    let (stack, hook, db) = stack_with_hook(&template, WARM)?;
    let allocs = allocate_vms(&stack, n, connections, rate)?;
    wait_stored(&db, hook, (WARM + n) as u64, budget(n))?;
    let sent: HashMap<i64, SystemTime> = allocs.sent.iter().copied().collect();
    let mut lat = Vec::with_capacity(n);
    for r in db.records(hook, WARM as u64)? {
        let result = r.result.as_ref().context("record without a result")?;
        let id = vm_id_of(&result.arguments).context("record without a VM id")?;
        let at = stamp_of(&result.stdout).context("record without a stamp")?;
        let t0 = sent.get(&id).context("record of an unknown VM")?;
        lat.push((at - wall_ns(*t0)) as f64 / 1e6);
    }
    if lat.len() != n {
        bail!("{} latencies for {n} events", lat.len());
    }
    lat.sort_by(f64::total_cmp);
    Ok((lat, n as f64 / allocs.calls.as_secs_f64()))
}

/// oned-lite as the source of hooks for a HEM the benchmark starts itself, fed by a driver the
/// benchmark holds.
pub struct HookSource {
    pub stack: Stack,
    /// `/bin/true` on VM PENDING/LCM_INIT.
    pub true_hook: i64,
    /// `one-bench-stamp` on VM ACTIVE/BOOT.
    pub stamp_hook: i64,
}

/// A driver and a HEM, warmed up.
pub struct Pipeline {
    pub driver: Driver,
    pub hem: Hem,
    /// Result lines already received (warm-up).
    pub warm: usize,
    pub hooks_loaded: u64,
}

impl HookSource {
    /// oned-lite with the two benchmark hooks and `fillers` more that the benchmark events
    /// never trigger (half API hooks on `one.vm.allocate`, half state hooks on VM
    /// ACTIVE/RUNNING, the same templates as the HEM's memory test).
    pub fn start(fillers: usize) -> Result<HookSource> {
        let stack = Stack::start_with(StackOptions {
            hem: false,
            ..StackOptions::default()
        })?;
        let client = stack.client();
        let true_hook =
            client.hook_allocate(&vm_hook("bench-true", "/bin/true", "PENDING", "LCM_INIT"))?;
        let stamp = bin("one-bench-stamp")?.display().to_string();
        let stamp_hook = client.hook_allocate(&vm_hook("bench-stamp", &stamp, "ACTIVE", "BOOT"))?;
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| -> Result<()> {
            let workers: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| -> Result<()> {
                        let client = Client::new(&stack.endpoint, &stack.session);
                        loop {
                            let id = next.fetch_add(1, Ordering::Relaxed);
                            if id >= fillers {
                                return Ok(());
                            }
                            let t = if id.is_multiple_of(2) {
                                format!(
                                    "NAME=h{id}\nTYPE=api\nCALL=one.vm.allocate\nCOMMAND=hook{id}.rb\nARGUMENTS=\"$API x{id}\"\n"
                                )
                            } else {
                                format!(
                                    "NAME=h{id}\nTYPE=state\nON=CUSTOM\nRESOURCE=VM\nSTATE=ACTIVE\nLCM_STATE=RUNNING\nCOMMAND=hook{id}.rb\nARGUMENTS=\"$TEMPLATE y{id}\"\nTIMEOUT=30\n"
                                )
                            };
                            client.hook_allocate(&t)?;
                        }
                    })
                })
                .collect();
            for w in workers {
                w.join()
                    .map_err(|_| anyhow::anyhow!("a hook writer panicked"))??;
            }
            Ok(())
        })?;
        Ok(HookSource {
            stack,
            true_hook,
            stamp_hook,
        })
    }

    /// Starts a fresh driver (with `driver_flags`) and HEM, waits until the HEM has loaded
    /// its hooks and one event has gone round.
    pub fn pipeline(&self, driver_flags: &[&str]) -> Result<Pipeline> {
        let mut driver = Driver::start(driver_flags)?;
        let mut hem = Hem::start(&HemSettings {
            subscriber: driver.publisher.clone(),
            replier: driver.logger.clone(),
            replay: driver.replay.clone(),
            one_xmlrpc: self.stack.endpoint.clone(),
            one_auth: self.stack.var_dir.join("one_auth"),
            concurrency: ceiling::CONCURRENCY as u32,
            extra_config: String::new(),
        })?;
        let hooks_loaded = hem.wait_ready(Duration::from_secs(120))?;
        for i in 0..WARM {
            driver.stdin()?.write_all(
                vm_state_line(2_000_000_000 + i as i64, "PENDING", "LCM_INIT").as_bytes(),
            )?;
        }
        driver
            .output
            .wait(WARM, Duration::from_secs(30))
            .with_context(|| hem.log_tail())?;
        driver.output.take();
        Ok(Pipeline {
            driver,
            hem,
            warm: WARM,
            hooks_loaded,
        })
    }
}

/// Result lines of `hook`, by VM id.
pub struct ResultsByVm {
    pub by_vm: HashMap<i64, Vec<(Instant, i128)>>,
    pub failures: usize,
}

pub fn results_by_vm(lines: &[OutputLine], hook: i64) -> ResultsByVm {
    let mut by_vm: HashMap<i64, Vec<(Instant, i128)>> = HashMap::new();
    let mut failures = 0;
    for l in lines {
        let Some(r) = parse_result_line(&l.line) else {
            failures += 1;
            continue;
        };
        if r.hook_id != hook {
            continue;
        }
        if r.rc != 0 {
            failures += 1;
        }
        let stamp = stamp_of(&r.result.stdout).unwrap_or(0);
        match vm_id_of(&r.result.arguments) {
            Some(id) => by_vm.entry(id).or_default().push((l.at, stamp)),
            None => failures += 1,
        }
    }
    ResultsByVm { by_vm, failures }
}

/// What a HEM-route throughput run measured.
pub struct Throughput {
    pub rate: f64,
    /// CPU seconds over the run: the HEM, its hook supervisor and the hooks (the supervisor's
    /// children), the driver.
    pub hem: CpuTime,
    pub supervisor: CpuTime,
    pub driver: CpuTime,
    /// CPU per event by thread, as text.
    pub threads: String,
}

/// Writes `n` PENDING events (VM ids 0..n) at once; returns events per second until the last
/// result line, and the CPU the HEM, its hooks and the driver spent meanwhile.
pub fn hem_throughput(p: &mut Pipeline, hook: i64, n: usize) -> Result<Throughput> {
    let (hem_pid, driver_pid) = (p.hem.pid(), p.driver.pid());
    // The warm-up ran local hooks, so the supervisor is up.
    let sup_pid = p
        .hem
        .supervisor_pid()
        .context("the HEM's hook supervisor is not running")?;
    let (hem0, sup0, drv0) = (
        cpu_time(hem_pid)?,
        cpu_time(sup_pid)?,
        cpu_time(driver_pid)?,
    );
    let (hem_t0, sup_t0, drv_t0) = (
        thread_cpu(hem_pid)?,
        thread_cpu(sup_pid)?,
        thread_cpu(driver_pid)?,
    );
    let hem = &p.hem;
    let rate = route_throughput(&mut p.driver, &mut p.warm, hook, n, || hem.log_tail())?;
    let (hem1, sup1, drv1) = (
        cpu_time(hem_pid)?,
        cpu_time(sup_pid)?,
        cpu_time(driver_pid)?,
    );
    let (hem_t1, sup_t1, drv_t1) = (
        thread_cpu(hem_pid)?,
        thread_cpu(sup_pid)?,
        thread_cpu(driver_pid)?,
    );
    Ok(Throughput {
        rate,
        hem: hem1 - hem0,
        supervisor: sup1 - sup0,
        driver: drv1 - drv0,
        threads: format!(
            "HEM: {}; hook supervisor: {}; driver: {}",
            thread_breakdown(&hem_t0, &hem_t1, n),
            thread_breakdown(&sup_t0, &sup_t1, n),
            thread_breakdown(&drv_t0, &drv_t1, n)
        ),
    })
}

/// The HEM route's throughput run, whatever runs behind the driver: writes `n` PENDING events
/// (VM ids 0..n) at once to the driver's stdin, waits until `*warm + n` result lines have
/// arrived in all and adds `n` to `*warm`, checks that each event has exactly one successful
/// result of `hook`, and returns events per second from the first byte written to the last
/// result line. `context` explains a timeout (the HEMs' log tails).
pub fn route_throughput(
    driver: &mut Driver,
    warm: &mut usize,
    hook: i64,
    n: usize,
    context: impl Fn() -> String,
) -> Result<f64> {
    let mut lines = Vec::new();
    for i in 0..n {
        lines.extend_from_slice(vm_state_line(i as i64, "PENDING", "LCM_INIT").as_bytes());
    }
    let start = Instant::now();
    driver.stdin()?.write_all(&lines)?;
    driver
        .output
        .wait(*warm + n, budget(n))
        .with_context(context)?;
    *warm += n;
    let lines = driver.output.take();
    let last = lines.iter().map(|l| l.at).max().context("no result")?;
    let r = results_by_vm(&lines, hook);
    let doubled = r.by_vm.values().filter(|v| v.len() > 1).count();
    if r.by_vm.len() != n || r.failures > 0 || doubled > 0 {
        bail!(
            "{} of {n} events have a result, {doubled} more than one, {} failed",
            r.by_vm.len(),
            r.failures
        );
    }
    Ok(n as f64 / (last - start).as_secs_f64())
}

/// Writes `n` ACTIVE/BOOT events (stamp hook), paced at `rate` or all at once; returns the
/// hook-start latencies (ms, sorted) and the rate actually offered.
fn hem_latency(
    p: &mut Pipeline,
    hook: i64,
    n: usize,
    rate: Option<f64>,
) -> Result<(Vec<f64>, f64)> {
    let hem = &p.hem;
    route_latency(&mut p.driver, &mut p.warm, hook, n, rate, || hem.log_tail())
}

/// The HEM route's latency run, whatever runs behind the driver: writes `n` ACTIVE/BOOT events
/// (VM ids 0..n, `hook` being the stamp hook), paced at `rate` or all at once, waits until
/// `*warm + n` result lines have arrived in all and adds `n` to `*warm`; returns the
/// hook-start latencies (ms, sorted) and the rate actually offered.
pub fn route_latency(
    driver: &mut Driver,
    warm: &mut usize,
    hook: i64,
    n: usize,
    rate: Option<f64>,
    context: impl Fn() -> String,
) -> Result<(Vec<f64>, f64)> {
    let lines: Vec<String> = (0..n)
        .map(|i| vm_state_line(i as i64, "ACTIVE", "BOOT"))
        .collect();
    let mut sent = Vec::with_capacity(n);
    let stdin = driver.stdin()?;
    let start = Instant::now();
    for (i, line) in lines.iter().enumerate() {
        if let Some(r) = rate {
            sleep_until(start + Duration::from_secs_f64(i as f64 / r));
        }
        sent.push(SystemTime::now());
        stdin.write_all(line.as_bytes())?;
    }
    let offered = n as f64 / start.elapsed().as_secs_f64();
    driver
        .output
        .wait(*warm + n, budget(n))
        .with_context(context)?;
    let r = results_by_vm(&driver.output.take(), hook);
    if r.failures > 0 || r.by_vm.len() != n {
        bail!(
            "{} of {n} events have a result, {} failed",
            r.by_vm.len(),
            r.failures
        );
    }
    let mut lat = Vec::with_capacity(n);
    for (id, results) in &r.by_vm {
        let t0 = sent
            .get(usize::try_from(*id).unwrap_or(usize::MAX))
            .context("result for an unknown VM")?;
        for (_, stamp) in results {
            lat.push((*stamp - wall_ns(*t0)) as f64 / 1e6);
        }
    }
    lat.sort_by(f64::total_cmp);
    // The pipeline's counter includes these results from now on.
    *warm += n;
    Ok((lat, offered))
}

struct Percentiles {
    p50: Vec<f64>,
    p95: Vec<f64>,
    p99: Vec<f64>,
}

impl Percentiles {
    fn new() -> Percentiles {
        Percentiles {
            p50: Vec::new(),
            p95: Vec::new(),
            p99: Vec::new(),
        }
    }

    fn push(&mut self, sorted: &[f64]) {
        self.p50.push(percentile(sorted, 0.50));
        self.p95.push(percentile(sorted, 0.95));
        self.p99.push(percentile(sorted, 0.99));
    }

    fn report(self, report: &mut Report, what: &str, note: &str, goal: Option<Goal>) {
        report.add(SECTION, &format!("{what} p50"), "ms", self.p50, note);
        report.add(SECTION, &format!("{what} p95"), "ms", self.p95, note);
        report.add(SECTION, &format!("{what} p99"), "ms", self.p99, note);
        if let Some(g) = goal {
            report.goal(g);
        }
    }
}

pub fn run(report: &mut Report, scale: Scale) -> Result<()> {
    report.section(SECTION, METHOD);
    let runs = scale.runs;
    // The ceiling next to each throughput run (see METHOD).
    let n_ceiling = scale.pick(3000, 500);
    let ceiling_now = || ceiling::spawn_rate(n_ceiling, ceiling::CONCURRENCY);
    let mut ceilings = Vec::new();
    let mut hem_share = Vec::new();
    let mut front_share = Vec::new();
    let rate = 500.0;

    // HEM route: one hook source, a fresh driver and HEM per run.
    let source = HookSource::start(0)?;
    let n_tput = scale.pick(4000, 400);
    let n_paced = scale.pick(1500, 200);
    let n_sat = scale.pick(1500, 200);
    let (low_rate, n_low) = (50.0, scale.pick(150, 25));
    let mut low = Percentiles::new();
    let mut tput = Vec::new();
    let mut paced = Percentiles::new();
    let mut offered = Vec::new();
    let mut sat = Percentiles::new();
    let mut budget_note = String::new();
    for _ in 0..runs {
        let mut p = source.pipeline(&[])?;
        let ceiling = ceiling_now()?;
        let t = hem_throughput(&mut p, source.true_hook, n_tput)?;
        tput.push(t.rate);
        ceilings.push(ceiling);
        hem_share.push(t.rate / ceiling * 100.0);
        let per = |secs: f64| secs * 1e6 / n_tput as f64;
        budget_note = format!(
            "Where the time goes on the HEM route (CPU per event, last run): the hook process \
             {:.0} µs (`/bin/true`, counted as the hook supervisor's children), the HEM {:.0} \
             µs, its hook supervisor {:.0} µs, the driver {:.0} µs; by thread: {}. For \
             comparison the ceiling costs {:.0} µs of the \
             two cores per spawn (2 / ceiling), parent and child together. Reaching 80% of the \
             ceiling leaves about {:.0} µs per event for everything that is not the hook.",
            per(t.supervisor.children),
            per(t.hem.own),
            per(t.supervisor.own),
            per(t.driver.own),
            t.threads,
            2e6 / ceiling,
            2e6 / (0.8 * ceiling) - 2e6 / ceiling,
        );
        drop(p);
        let mut p = source.pipeline(&[])?;
        let (lat, _) = hem_latency(&mut p, source.stamp_hook, n_low, Some(low_rate))?;
        low.push(&lat);
        let (lat, off) = hem_latency(&mut p, source.stamp_hook, n_paced, Some(rate))?;
        paced.push(&lat);
        offered.push(off);
        let (lat, _) = hem_latency(&mut p, source.stamp_hook, n_sat, None)?;
        sat.push(&lat);
    }
    drop(source);

    // Front-end route: a fresh stack per run and measure.
    let n_front = scale.pick(3000, 300);
    let mut front = Vec::new();
    let mut xmlrpc = Vec::new();
    let mut front_low = Percentiles::new();
    let mut front_paced = Percentiles::new();
    let mut front_offered = Vec::new();
    let mut front_sat = Percentiles::new();
    let mut front_note = String::new();
    for _ in 0..runs {
        let ceiling = ceiling_now()?;
        let t = front_throughput(n_front)?;
        ceilings.push(ceiling);
        front_share.push(t.rate / ceiling * 100.0);
        front_note = format!(
            "Where the time goes on the front-end route (CPU per event, last run, besides the \
             benchmark's own XML-RPC clients): {}.",
            t.cpu
        );
        front.push(t.rate);
        xmlrpc.push(t.xmlrpc_rate);
        let (lat, _) = front_latency(n_low, 4, Some(low_rate))?;
        front_low.push(&lat);
        let (lat, off) = front_latency(n_paced, 4, Some(rate))?;
        front_paced.push(&lat);
        front_offered.push(off);
        let (lat, _) = front_latency(n_sat, 8, None)?;
        front_sat.push(&lat);
    }

    report.add(
        SECTION,
        "ceiling next to the throughput runs",
        "spawns/s",
        ceilings,
        &format!("{n_ceiling} spawns before each throughput run, section 1's method"),
    );
    report.add(
        SECTION,
        "front-end route: XML-RPC event to hook-log record",
        "events/s",
        front.clone(),
        &format!("{n_front} one.vm.allocate calls from 8 connections, /bin/true"),
    );
    report.reference("115 /s (concurrency 10), event to result");
    report.add(
        SECTION,
        "front-end route as a share of the ceiling",
        "%",
        front_share,
        "each run over the ceiling measured just before it",
    );
    report.goal(Goal::AtLeast(70.0));
    report.reference("≈ 4% (115 of 2,764 /s)");
    report.add(
        SECTION,
        "front-end route: one.vm.allocate calls answered during that run",
        "calls/s",
        xmlrpc,
        "the rate the front-end offered events at",
    );
    report.add(
        SECTION,
        "HEM route: driver stdin to driver result line",
        "events/s",
        tput.clone(),
        &format!("{n_tput} PENDING events written at once, /bin/true"),
    );
    report.add(
        SECTION,
        "HEM route as a share of the ceiling",
        "%",
        hem_share,
        "each run over the ceiling measured just before it; the HEM and driver without the front-end",
    );
    report.goal(Goal::AtLeast(80.0));
    report.note(SECTION, &budget_note);
    report.note(SECTION, &front_note);
    low.report(
        report,
        "HEM route: event to hook start at 50/s (light load),",
        &format!("{n_low} events at 50/s, one-bench-stamp"),
        None,
    );
    let paced_note = format!("{n_paced} events at 500/s, one-bench-stamp");
    paced.report(
        report,
        "HEM route: event to hook start at 500/s,",
        &paced_note,
        Some(Goal::Below(5.0)),
    );
    report.reference("p50 6.0 ms, p99 9.7 ms (event to result, 20/s)");
    report.add(
        SECTION,
        "HEM route: rate actually offered in the 500/s runs",
        "events/s",
        offered,
        "",
    );
    front_low.report(
        report,
        "front-end route: request sent to hook start at 50/s (light load),",
        &format!("{n_low} calls at 50/s from 4 connections"),
        None,
    );
    front_paced.report(
        report,
        "front-end route: request sent to hook start at 500/s,",
        &format!("{n_paced} calls at 500/s from 4 connections"),
        Some(Goal::Below(5.0)),
    );
    report.add(
        SECTION,
        "front-end route: rate actually offered in the 500/s runs",
        "calls/s",
        front_offered,
        "",
    );
    sat.report(
        report,
        "HEM route: event to hook start at saturation,",
        &format!("{n_sat} events written at once"),
        None,
    );
    front_sat.report(
        report,
        "front-end route: request sent to hook start at saturation,",
        &format!("{n_sat} calls from 8 connections as fast as answered"),
        None,
    );
    Ok(())
}
