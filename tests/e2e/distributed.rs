//! The distributed mode against a real three-node NATS JetStream cluster: several HEMs share
//! the events, each event ends as exactly one record per hook whatever dies, no hook starts
//! twice, a VM's hooks keep their event order across HEMs, long hooks stay with their HEM, and
//! hook changes reach every partition.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use one_e2e::nats::{ClusterOptions, NatsCluster, NatsUser};
use one_e2e::stack::{Stack, StackOptions, wait_for};
use one_proto::hook_log::ExecutionRecord;
use one_proto::xmlrpc::Value;

use crate::flood::{Flood, allocate_vms, record_vm_id};

/// A stack in the distributed mode. The stack is dropped before the cluster, so the daemons
/// stop while the bus is still there.
pub struct Distributed {
    pub stack: Stack,
    pub nats: NatsCluster,
}

/// The line every test hook appends per run: `start|end <HEM pid> <what>`.
pub fn runs_file(stack: &Stack) -> PathBuf {
    stack.dir.path().join("runs.log")
}

/// The events stream's partitions in these tests.
pub const PARTITIONS: u32 = 8;

/// Starts a three-node cluster and a stack with `hems` HEMs whose partitions move to another
/// HEM within `takeover_s` seconds. `hem_extra` is added to every HEM's config.
pub fn start(hems: usize, takeover_s: u32, hem_extra: &str) -> Result<Distributed> {
    start_with(Setup {
        hems,
        takeover_s,
        hem_extra: hem_extra.to_string(),
        ..Setup::default()
    })
}

/// What [`start_with`] starts.
pub struct Setup {
    pub hems: usize,
    pub takeover_s: u32,
    /// Added to every HEM's config.
    pub hem_extra: String,
    pub cluster: ClusterOptions,
    /// The driver's and the HEMs' users, when the cluster requires users.
    pub users: Option<(NatsUser, NatsUser)>,
    /// The HEMs' `concurrency`.
    pub concurrency: u32,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            hems: 2,
            takeover_s: 4,
            hem_extra: String::new(),
            cluster: ClusterOptions::default(),
            users: None,
            concurrency: StackOptions::default().concurrency,
        }
    }
}

/// [`start`] with a cluster, users and concurrency of the caller's choice.
pub fn start_with(setup: Setup) -> Result<Distributed> {
    let nats = NatsCluster::start(setup.cluster)?;
    let (driver, hem) = match &setup.users {
        Some((driver, hem)) => (Some(driver), Some(hem)),
        None => (None, None),
    };
    let mut access = nats.access(driver, hem);
    access
        .driver_args
        .push_str(&format!(" --nats-partitions {PARTITIONS}"));
    access
        .hem_keys
        .push_str(&format!("nats_takeover: {}\n", setup.takeover_s));
    let stack = Stack::start_with(StackOptions {
        hems: setup.hems,
        log_retention: 1_000_000,
        nats: Some(access),
        hem_extra: setup.hem_extra,
        concurrency: setup.concurrency,
        ..Default::default()
    })?;
    let d = Distributed { stack, nats };
    d.wait_settled(&(0..setup.hems).collect::<Vec<_>>())?;
    Ok(d)
}

impl Distributed {
    /// Waits until the running HEMs `running` see each other as the members and hold the
    /// stream's [`PARTITIONS`] between them: work published after this goes to them.
    pub fn wait_settled(&self, running: &[usize]) -> Result<()> {
        wait_for(
            "the HEMs to share the partitions",
            Duration::from_secs(60),
            || {
                let mut held = BTreeSet::new();
                for &i in running {
                    let (members, partitions) = self.stack.partitions_held_at(i)?;
                    if members != running.len() {
                        return None;
                    }
                    held.extend(partitions);
                }
                (held == (0..PARTITIONS).collect::<BTreeSet<u32>>()).then_some(())
            },
        )
        .with_context(|| {
            running
                .iter()
                .map(|&i| self.stack.tail_log(&Stack::hem_log(i)))
                .collect::<Vec<_>>()
                .join("\n")
        })
    }
}

/// A hook script that logs its start and end with its parent's pid (its HEM's hook
/// supervisor) and the VM of its `$TEMPLATE`, sleeping `sleep` seconds in between.
pub fn write_vm_hook(stack: &Stack, name: &str, sleep: &str) -> Result<()> {
    let runs = runs_file(stack);
    stack.write_hook(
        name,
        &format!(
            "#!/bin/sh\n\
             id=$(printf %s \"$1\" | base64 -d 2>/dev/null | head -c 64 | sed -n 's|^<VM><ID>\\([0-9]*\\)</ID>.*|\\1|p')\n\
             echo \"start $PPID $id\" >> {runs}\n\
             sleep {sleep}\n\
             echo \"end $PPID $id\" >> {runs}\n",
            runs = runs.display()
        ),
    )?;
    Ok(())
}

/// A state hook on VMs entering PENDING, running `command` with the VM's template.
pub fn pending_hook(stack: &Stack, name: &str, command: &str) -> Result<i64> {
    Ok(stack.client().hook_allocate(&format!(
        "NAME = {name}\nCOMMAND = \"{command}\"\nTYPE = state\nON = CUSTOM\nRESOURCE = VM\n\
         STATE = PENDING\nLCM_STATE = LCM_INIT\nARGUMENTS = $TEMPLATE\n"
    ))?)
}

/// One line of the runs file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub start: bool,
    pub hem: u32,
    pub what: String,
}

pub fn read_runs(stack: &Stack) -> Result<Vec<Run>> {
    let text = std::fs::read_to_string(runs_file(stack)).unwrap_or_default();
    text.lines()
        .map(|line| {
            let mut w = line.split_whitespace();
            let start = match w.next() {
                Some("start") => true,
                Some("end") => false,
                other => bail!("bad run line {line:?} ({other:?})"),
            };
            let hem = w.next().context("no pid")?.parse()?;
            let what = w.collect::<Vec<_>>().join(" ");
            Ok(Run { start, hem, what })
        })
        .collect()
}

/// What the records and the runs of a VM hook say, checked: every VM in `vms` has exactly one
/// record and its hook started at most once; a record is a success (its hook started once), or
/// says it was interrupted, in which case its hook started at most once, on a HEM in `killed`.
pub struct Tally {
    pub records: usize,
    pub interrupted: usize,
    pub per_hem: BTreeMap<u32, usize>,
}

pub fn check_exactly_once(
    stack: &Stack,
    hook: i64,
    vms: &BTreeSet<i64>,
    killed: &[u32],
) -> Result<Tally> {
    let records = stack.wait_records(hook, vms.len(), Duration::from_secs(300))?;
    let mut by_vm: BTreeMap<i64, Vec<&ExecutionRecord>> = BTreeMap::new();
    for r in &records {
        by_vm.entry(record_vm_id(r)?).or_default().push(r);
    }
    let twice: Vec<i64> = by_vm
        .iter()
        .filter(|(_, r)| r.len() > 1)
        .map(|(v, _)| *v)
        .collect();
    ensure!(twice.is_empty(), "VMs with more than one record: {twice:?}");
    let missing: Vec<&i64> = vms.iter().filter(|v| !by_vm.contains_key(v)).collect();
    ensure!(missing.is_empty(), "VMs without a record: {missing:?}");
    ensure!(
        records.len() == vms.len(),
        "{} records for {} events",
        records.len(),
        vms.len()
    );
    // Give hooks still running (their record was written by a HEM that took them over) a
    // moment to log their end; only starts are counted.
    let runs = read_runs(stack)?;
    let mut started: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
    for run in runs.iter().filter(|r| r.start) {
        let vm: i64 = run.what.parse().with_context(|| format!("run {run:?}"))?;
        started.entry(vm).or_default().push(run.hem);
    }
    let doubles: Vec<(&i64, &Vec<u32>)> = started.iter().filter(|(_, h)| h.len() > 1).collect();
    ensure!(
        doubles.is_empty(),
        "hooks started more than once: {doubles:?}"
    );
    let mut interrupted = 0;
    let mut per_hem: BTreeMap<u32, usize> = BTreeMap::new();
    for (vm, recs) in &by_vm {
        let result = recs[0].result.as_ref().context("record without result")?;
        let hems = started.get(vm).cloned().unwrap_or_default();
        if result.code == 0 {
            ensure!(
                hems.len() == 1,
                "VM {vm}: success record but {} runs",
                hems.len()
            );
            *per_hem.entry(hems[0]).or_default() += 1;
            continue;
        }
        let stderr = String::from_utf8_lossy(&result.stderr);
        ensure!(
            stderr.contains("interrupted"),
            "VM {vm}: unexpected failure {}: {stderr}",
            result.code
        );
        // True: a killed HEM claimed the start and never reported; the hook started at most
        // once (a HEM killed between the claim and the spawn never started it), and there.
        // A hook that a killed HEM spawned right before it died may find itself reparented
        // (its $PPID is 1) by the time it logs.
        ensure!(
            hems.iter().all(|h| killed.contains(h) || *h == 1),
            "VM {vm}: interrupted record, but its hook started on {hems:?} (killed: {killed:?})"
        );
        interrupted += 1;
    }
    ensure!(
        interrupted == 0 || !killed.is_empty(),
        "{interrupted} records say interrupted, but no HEM was killed"
    );
    let unrecorded: Vec<&i64> = started.keys().filter(|v| !by_vm.contains_key(v)).collect();
    ensure!(
        unrecorded.is_empty(),
        "hooks ran for VMs without a record: {unrecorded:?}"
    );
    Ok(Tally {
        records: records.len(),
        interrupted,
        per_hem,
    })
}

/// Runs a nats-py script (`sys.argv[1]` is the cluster's URL list, then `args`); its stdout.
pub fn nats_py(urls: &str, script: &str, args: &[&str]) -> Result<String> {
    let mut all = vec![urls];
    all.extend_from_slice(args);
    Ok(one_e2e::stack::run_python(script, &all)?.trim().to_string())
}

/// VM ids `first..first + count`.
pub fn vm_range(first: i64, count: usize) -> BTreeSet<i64> {
    (first..first + count as i64).collect()
}

/// The hook supervisors of the HEMs: the parents of their local hooks.
fn hook_parents(stack: &Stack) -> Vec<u32> {
    (0..stack.hem_count())
        .filter_map(|i| stack.supervisor_pid_at(i))
        .collect()
}

#[test]
fn hems_divide_the_work_and_run_each_hook_once() -> Result<()> {
    let d = start(3, 5, "")?;
    let stack = &d.stack;
    write_vm_hook(stack, "vm.sh", "0.01")?;
    let hook = pending_hook(stack, "vm", "vm.sh")?;
    let count = 400;
    allocate_vms(stack, count, 4)?;
    let tally = check_exactly_once(stack, hook, &vm_range(0, count), &[])?;
    let pids = hook_parents(stack);
    println!("runs per HEM: {:?}", tally.per_hem);
    ensure!(tally.interrupted == 0);
    ensure!(
        tally.per_hem.keys().all(|p| pids.contains(p)),
        "a hook ran under a process that is not one of the HEMs' supervisors {pids:?}: {:?}",
        tally.per_hem
    );
    ensure!(
        tally.per_hem.len() >= 2,
        "one HEM ran everything: {:?}",
        tally.per_hem
    );
    Ok(())
}

#[test]
fn a_killed_hems_work_is_taken_over_without_running_anything_twice() -> Result<()> {
    let mut d = start(3, 4, "")?;
    write_vm_hook(&d.stack, "vm.sh", "0.1")?;
    let hook = pending_hook(&d.stack, "vm", "vm.sh")?;
    let count = 600;
    let victim = d.stack.hem_pid_at(0).context("HEM 0")?;
    let flood = Flood::of(&d.stack);
    let killed_at = std::thread::scope(|s| -> Result<Instant> {
        let flood = s.spawn(|| flood.allocate_vms(count, 4));
        wait_for("the victim to run hooks", Duration::from_secs(120), || {
            let runs = read_runs(&d.stack).ok()?;
            let runner = d.stack.supervisor_pid_at(0)?;
            (runs.iter().filter(|r| r.start && r.hem == runner).count() >= 20).then_some(())
        })?;
        d.stack.kill_hem_at(0)?;
        let killed_at = Instant::now();
        flood
            .join()
            .map_err(|_| anyhow::anyhow!("flood panicked"))??;
        Ok(killed_at)
    })?;
    let tally = check_exactly_once(&d.stack, hook, &vm_range(0, count), &[victim])?;
    println!(
        "{} records, {} interrupted, runs per HEM {:?}, all recorded {:.1} s after the kill",
        tally.records,
        tally.interrupted,
        tally.per_hem,
        killed_at.elapsed().as_secs_f64()
    );
    // The HEM comes back and gets a share of the work again; nothing else is restarted. It
    // finds its hook supervisor still there (it outlived the HEM), or starts a new one.
    d.stack.start_hem_at(0)?;
    wait_for(
        "the HEM back to hold partitions",
        Duration::from_secs(60),
        || {
            // The log goes on from the killed HEM's: look after the new start.
            let log = std::fs::read_to_string(d.stack.log_path("hem")).ok()?;
            let restart = log.rfind("HEM starting")?;
            log[restart..]
                .lines()
                .rfind(|l| l.contains("partitions held"))
                .filter(|l| !l.contains("partitions=[]"))
                .map(|_| ())
        },
    )?;
    let more = 200;
    allocate_vms(&d.stack, more, 4)?;
    let tally = check_exactly_once(&d.stack, hook, &vm_range(0, count + more), &[victim])?;
    let back = d.stack.supervisor_pid_at(0).context("HEM 0's supervisor")?;
    let ran_after = read_runs(&d.stack)?
        .iter()
        .filter(|r| r.start && r.hem == back)
        .filter(|r| r.what.parse::<usize>().is_ok_and(|vm| vm >= count))
        .count();
    ensure!(
        ran_after > 0,
        "the HEM that came back ran nothing of the second batch: {:?}",
        tally.per_hem
    );
    Ok(())
}

#[test]
fn a_hook_that_runs_longer_than_the_takeover_time_stays_with_its_hem() -> Result<()> {
    let d = start(2, 2, "")?;
    write_vm_hook(&d.stack, "long.sh", "7")?;
    let hook = pending_hook(&d.stack, "long", "long.sh")?;
    allocate_vms(&d.stack, 6, 2)?;
    let tally = check_exactly_once(&d.stack, hook, &vm_range(0, 6), &[])?;
    ensure!(tally.interrupted == 0);
    // Give a wrongly redelivered event the time to start a second run.
    std::thread::sleep(Duration::from_secs(2));
    let starts = read_runs(&d.stack)?.iter().filter(|r| r.start).count();
    ensure!(starts == 6, "{starts} runs for 6 events");
    Ok(())
}

/// `one.vm.update` of VM `vm` with `C=<vm>-<round>`.
fn update(client: &one_client::Client, vm: i64, round: usize) -> Result<()> {
    client.call(
        "one.vm.update",
        vec![
            Value::Int(vm as i32),
            Value::String(format!("C=\"{vm}-{round}\"")),
            Value::Int(1),
        ],
    )?;
    Ok(())
}

#[test]
fn a_vms_hooks_keep_their_order_while_hems_come_and_go() -> Result<()> {
    let mut d = start(3, 4, "")?;
    // Only the first HEM runs at first; the others join mid-stream, then the first is killed.
    d.stack.stop_hem_at(1)?;
    d.stack.stop_hem_at(2)?;
    d.wait_settled(&[0])?;
    let runs = runs_file(&d.stack);
    d.stack.write_hook(
        "ordered.sh",
        &format!(
            "#!/bin/sh\n\
             c=$(printf %s \"$1\" | base64 -d 2>/dev/null | grep -o 'C=[^<]*' | head -1 | tr -dc '0-9-')\n\
             echo \"start $PPID $c\" >> {runs}\n\
             sleep 0.02\n\
             echo \"end $PPID $c\" >> {runs}\n",
            runs = runs.display()
        ),
    )?;
    let hook = d.stack.client().hook_allocate(
        "NAME = ordered\nTYPE = api\nCALL = \"one.vm.update\"\nCOMMAND = ordered.sh\nARGUMENTS = $API\n",
    )?;
    let (vms, rounds, writers) = (24usize, 20usize, 4usize);
    let mut ids = Vec::new();
    for _ in 0..vms {
        ids.push(d.stack.vm_allocate("NAME = o\nCPU = 1\nMEMORY = 2\n")?);
    }
    let victim = d.stack.supervisor_pid_at(0).context("HEM 0's supervisor")?;
    // How many lines the runs file had right after HEM 0 died.
    let mut kill_mark = 0;
    let (endpoint, session) = (d.stack.endpoint.clone(), d.stack.session.clone());
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..writers)
            .map(|w| {
                let (endpoint, session, ids) = (&endpoint, &session, &ids);
                s.spawn(move || -> Result<()> {
                    let client = one_client::Client::new(endpoint, session);
                    for round in 0..rounds {
                        for vm in ids.iter().skip(w).step_by(writers) {
                            update(&client, *vm, round)?;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        d.stack.start_hem_at(1)?;
        d.stack.start_hem_at(2)?;
        wait_for(
            "a joining HEM to run hooks",
            Duration::from_secs(60),
            || {
                let joined = [d.stack.supervisor_pid_at(1), d.stack.supervisor_pid_at(2)];
                let runs = read_runs(&d.stack).ok()?;
                runs.iter()
                    .any(|r| joined.contains(&Some(r.hem)))
                    .then_some(())
            },
        )?;
        d.stack.kill_hem_at(0)?;
        kill_mark = read_runs(&d.stack)?.len();
        for w in workers {
            w.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
        }
        Ok(())
    })?;
    let total = vms * rounds;
    let records = d
        .stack
        .wait_records(hook, total, Duration::from_secs(300))?;
    ensure!(
        records.len() == total,
        "{} records for {total} calls",
        records.len()
    );
    // The hooks HEM 0 ran when it died run on under its supervisor, which reports them; the
    // new holder of their partitions waits for those records, so they keep their order too.
    // Only a hook whose supervisor died as well would run on unsupervised (its shell,
    // reparented, then logs $PPID 1): such orphans are left out of the order check, and each
    // must have an interrupted record.
    let runs = read_runs(&d.stack)?;
    let orphans: BTreeSet<&str> = runs
        .iter()
        .filter(|r| r.hem == 1)
        .map(|r| r.what.as_str())
        .collect();
    let interrupted = records
        .iter()
        .filter(|r| {
            r.result
                .as_ref()
                .is_some_and(|x| String::from_utf8_lossy(&x.stderr).contains("interrupted"))
        })
        .count();
    ensure!(
        orphans.len() <= interrupted,
        "runs logged after HEM 0 died: {orphans:?}, but {interrupted} interrupted records"
    );
    // Per VM, the runs start in round order, each after the previous one ended.
    let mut last: BTreeMap<i64, (usize, bool, u32)> = BTreeMap::new();
    let mut per_hem: BTreeMap<u32, usize> = BTreeMap::new();
    for run in runs.iter().filter(|r| !orphans.contains(r.what.as_str())) {
        let (vm, round) = run
            .what
            .split_once('-')
            .and_then(|(v, r)| Some((v.parse::<i64>().ok()?, r.parse::<usize>().ok()?)))
            .with_context(|| format!("run {run:?}"))?;
        let entry = last.get(&vm).copied();
        let hem = run.hem;
        if run.start {
            *per_hem.entry(hem).or_default() += 1;
            if let Some((prev, ended, by)) = entry {
                ensure!(
                    round > prev,
                    "VM {vm}: round {round} started on HEM {hem} after round {prev} on HEM {by} \
                     (HEM 0 = {victim}, killed at line {kill_mark})"
                );
                ensure!(
                    ended,
                    "VM {vm}: round {round} started on HEM {hem} while round {prev} still ran on HEM {by}"
                );
            }
            last.insert(vm, (round, false, hem));
        } else {
            ensure!(
                entry == Some((round, false, hem)),
                "VM {vm}: round {round} ended on HEM {hem} out of turn ({entry:?})"
            );
            last.insert(vm, (round, true, hem));
        }
    }
    println!(
        "runs per HEM (HEM 0 = {victim} was killed): {per_hem:?}; orphaned runs {}, interrupted records {interrupted}",
        orphans.len()
    );
    ensure!(per_hem.len() >= 2, "only one HEM ran hooks: {per_hem:?}");
    Ok(())
}

/// Runs of the script that logged `what`.
fn runs_of(stack: &Stack, what: &str) -> Result<usize> {
    Ok(read_runs(stack)?
        .iter()
        .filter(|r| r.start && r.what == what)
        .count())
}

#[test]
fn hook_changes_reach_every_partition_and_the_resync_repairs_what_events_missed() -> Result<()> {
    let d = start(2, 5, "resync_interval: 1\n")?;
    let stack = &d.stack;
    let runs = runs_file(stack);
    for name in ["first", "second"] {
        stack.write_hook(
            &format!("{name}.sh"),
            &format!(
                "#!/bin/sh\necho \"start $PPID {name}\" >> {}\n",
                runs.display()
            ),
        )?;
    }
    let batch = 40;
    let mut total = 0;
    let mut round = |expect_first: usize, expect_second: usize| -> Result<()> {
        allocate_vms(stack, batch, 4)?;
        total += batch;
        wait_for(
            &format!("{expect_first} runs of first.sh and {expect_second} of second.sh"),
            Duration::from_secs(120),
            || {
                let first = runs_of(stack, "first").ok()?;
                let second = runs_of(stack, "second").ok()?;
                (first >= expect_first && second >= expect_second).then_some(())
            },
        )
        .with_context(|| stack.tail_log("hem"))?;
        Ok(())
    };
    // Created after the HEMs started: its allocate event reaches every partition.
    let hook = pending_hook(stack, "changing", "first.sh")?;
    round(batch, 0)?;
    // Changed through the API: the update event reaches every partition.
    stack.client().hook_update(
        hook,
        "COMMAND = \"second.sh\"",
        one_client::UpdateMode::Merge,
    )?;
    round(batch, batch)?;
    // Changed behind the API's back, so that no event says so: only the periodic resync
    // (every second here) can see it, in every partition.
    let sql = format!(
        "import sqlite3, sys\n\
         db = sqlite3.connect(sys.argv[1], timeout=10)\n\
         n = db.execute(\"UPDATE hook_pool SET body = replace(body, 'second.sh', 'first.sh') WHERE oid = {hook}\").rowcount\n\
         db.commit()\n\
         assert n == 1, n\n"
    );
    let out = std::process::Command::new(one_e2e::stack::python()?)
        .arg("-c")
        .arg(sql)
        .arg(stack.var_dir.join("one.db"))
        .output()?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_secs(4));
    round(2 * batch, batch)?;
    // Deleted: no partition runs it any more.
    stack.client().hook_delete(hook)?;
    allocate_vms(stack, batch, 4)?;
    std::thread::sleep(Duration::from_secs(3));
    let (first, second) = (runs_of(stack, "first")?, runs_of(stack, "second")?);
    ensure!(
        (first, second) == (2 * batch, batch),
        "after the delete: {first} runs of first.sh, {second} of second.sh ({total} VMs)"
    );
    Ok(())
}

#[test]
fn reference_subscribers_still_get_the_zeromq_frames_numbered_like_the_stream() -> Result<()> {
    let d = start(1, 5, "")?;
    let stack = &d.stack;
    let endpoint = format!("tcp://{}:{}", stack.ip, one_e2e::stack::PUBLISHER_PORT);
    // pyzmq subscribes like a reference subscriber (prefix filter), then nats-py reads the
    // stream message under the sequence number each frame carries.
    let script = "import asyncio, sys, zmq, nats, base64\n\
        ctx = zmq.Context()\n\
        sub = ctx.socket(zmq.SUB)\n\
        sub.setsockopt(zmq.RCVTIMEO, 20000)\n\
        sub.setsockopt(zmq.SUBSCRIBE, b'EVENT STATE VM/PENDING/')\n\
        sub.connect(sys.argv[1])\n\
        print('subscribed', flush=True)\n\
        frames = [sub.recv_multipart() for _ in range(int(sys.argv[3]))]\n\
        async def main():\n\
        \x20   nc = await nats.connect(sys.argv[2].split(','))\n\
        \x20   js = nc.jetstream(timeout=30)\n\
        \x20   for key, content in frames:\n\
        \x20       seq = int(key.split()[-1].lstrip(b'#'))\n\
        \x20       msg = await js.get_msg('ONE_EVENTS', seq)\n\
        \x20       assert msg.data == content, (seq, msg.data[:40], content[:40])\n\
        \x20       print(key.decode(), msg.subject)\n\
        \x20   await nc.close()\n\
        asyncio.run(main())\n";
    let mut child = std::process::Command::new(one_e2e::stack::python()?)
        .arg("-c")
        .arg(script)
        .arg(&endpoint)
        .arg(d.nats.url_list())
        .arg("5")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut stdout = std::io::BufReader::new(child.stdout.take().context("stdout")?);
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first)?;
    ensure!(first.trim() == "subscribed", "subscriber said {first:?}");
    // The subscription reaches the PUB socket a moment after the connection.
    std::thread::sleep(Duration::from_millis(500));
    allocate_vms(stack, 5, 1)?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut text)?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "subscriber failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("EVENT")).collect();
    ensure!(lines.len() == 5, "{text}");
    for line in lines {
        // `EVENT STATE VM/PENDING/LCM_INIT/<id> #<seq> one.event.state.VM.PENDING.LCM_INIT.<id>.<p>`
        let (key, subject) = line.rsplit_once(' ').context(line.to_string())?;
        let id = key
            .split('/')
            .nth(3)
            .and_then(|t| t.split_whitespace().next())
            .context(line.to_string())?;
        ensure!(
            subject.starts_with(&format!("one.event.state.VM.PENDING.LCM_INIT.{id}.")),
            "{line}"
        );
    }
    Ok(())
}
