//! A HEM of the distributed mode killed (kill -9) while its local hooks run: they run on under
//! its hook supervisor, which keeps their start markers alive and reports how they ended, so
//! the HEM taking their events over waits for those records and acknowledges the events
//! without running anything. Every execution gets exactly one true record: hooks that end
//! while the HEM is down, hooks that run on past the take-over time, hooks killed by their
//! TIMEOUT meanwhile. Only when the supervisor dies too are the records "interrupted". The
//! supervisor uses the HEM's own credentials: the first test runs with TLS and the sample
//! server configuration's least-permission users.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use one_e2e::nats::{Auth, ClusterOptions, NatsUser};
use one_e2e::stack::{Stack, wait_for};
use one_proto::hook_log::ExecutionRecord;

use crate::distributed::{
    Distributed, PARTITIONS, Setup, nats_py, pending_hook, start, start_with,
};
use crate::flood::{allocate_vms, record_vm_id};

/// Take-over time of these tests (s).
const TAKEOVER_S: u32 = 2;
const VMS: usize = 8;
const WAIT: Duration = Duration::from_secs(120);

fn runs_path(d: &Distributed, name: &str) -> PathBuf {
    d.stack.dir.path().join(format!("{name}.runs"))
}

fn gate(d: &Distributed, name: &str) -> PathBuf {
    d.stack.dir.path().join(format!("release-{name}"))
}

/// A hook `name.sh` that logs `<its parent's pid> <VM id>` when it starts, then runs `body`.
fn write_hook(d: &Distributed, name: &str, body: &str) -> Result<()> {
    d.stack.write_hook(
        &format!("{name}.sh"),
        &format!(
            "#!/bin/sh\n\
             id=$(printf %s \"$1\" | base64 -d 2>/dev/null | head -c 64 | sed -n 's|^<VM><ID>\\([0-9]*\\)</ID>.*|\\1|p')\n\
             echo \"$PPID $id\" >> {runs}\n{body}",
            runs = runs_path(d, name).display()
        ),
    )?;
    Ok(())
}

/// Shell lines that wait (at most a minute) until the test creates the gate file.
fn wait_for_gate(d: &Distributed, name: &str) -> String {
    format!(
        "i=0\nwhile [ ! -e {g} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n",
        g = gate(d, name).display()
    )
}

/// The starts a hook logged: VM id -> parent pids.
fn starts(d: &Distributed, name: &str) -> Result<BTreeMap<i64, Vec<u32>>> {
    let text = std::fs::read_to_string(runs_path(d, name)).unwrap_or_default();
    let mut out: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
    for line in text.lines() {
        let (pid, vm) = line.split_once(' ').context("bad run line")?;
        out.entry(vm.trim().parse()?)
            .or_default()
            .push(pid.parse()?);
    }
    Ok(out)
}

/// Waits until every VM's hook `name` started; returns the VMs it started for under `parent`.
fn started_everywhere(d: &Distributed, name: &str, parent: u32) -> Result<BTreeSet<i64>> {
    let all = wait_for(&format!("every {name} hook to start"), WAIT, || {
        let s = starts(d, name).ok()?;
        (s.len() == VMS).then_some(s)
    })
    .with_context(|| d.stack.tail_log(&Stack::hem_log(0)))?;
    Ok(all
        .iter()
        .filter(|(_, pids)| pids.contains(&parent))
        .map(|(vm, _)| *vm)
        .collect())
}

/// One record per VM for `hook`; each started once. Returns the records by VM.
fn one_record_each(
    d: &Distributed,
    name: &str,
    hook: i64,
) -> Result<BTreeMap<i64, ExecutionRecord>> {
    let records = d.stack.wait_records(hook, VMS, WAIT)?;
    ensure!(records.len() == VMS, "{name}: {} records", records.len());
    let mut by_vm = BTreeMap::new();
    for r in records {
        let vm = record_vm_id(&r)?;
        ensure!(
            by_vm.insert(vm, r).is_none(),
            "{name}: two records for VM {vm}"
        );
    }
    let runs = starts(d, name)?;
    for vm in by_vm.keys() {
        let n = runs.get(vm).map_or(0, Vec::len);
        ensure!(n == 1, "{name}: VM {vm} started {n} times");
    }
    Ok(by_vm)
}

/// Two HEMs on a three-node cluster that requires TLS and the sample configuration's users
/// (`etc/nats-server.conf`), every hook of the VMs running at once.
fn secured() -> Result<Distributed> {
    let (driver, hem) = (
        NatsUser::driver("driver", "driver-secret"),
        NatsUser::hem("hem", "hem-secret"),
    );
    start_with(Setup {
        hems: 2,
        takeover_s: TAKEOVER_S,
        cluster: ClusterOptions {
            tls: true,
            auth: Auth::Users(vec![driver.clone(), hem.clone()]),
            ..Default::default()
        },
        users: Some((driver, hem)),
        concurrency: 3 * VMS as u32,
        ..Setup::default()
    })
}

/// Events delivered to the HEMs and not acknowledged yet, over every partition's consumer
/// (asked with nats-py as the HEMs' user, from the consumers' leaders).
fn unacknowledged(d: &Distributed) -> Result<u64> {
    let ca = d
        .nats
        .ca_file()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    Ok(nats_py(
        &d.nats.url_list(),
        "import asyncio, ssl, sys, nats\n\
             async def main():\n\
             \x20   opts = {}\n\
             \x20   if sys.argv[2]:\n\
             \x20       opts = dict(tls=ssl.create_default_context(cafile=sys.argv[2]), user='hem', password='hem-secret')\n\
             \x20   nc = await nats.connect(sys.argv[1].split(','), **opts)\n\
             \x20   js = nc.jetstream(timeout=30)\n\
             \x20   n = 0\n\
             \x20   for p in range(int(sys.argv[3])):\n\
             \x20       c = await js.consumer_info('ONE_EVENTS', f'hem-p{p}')\n\
             \x20       n += c.num_ack_pending + c.num_pending\n\
             \x20   print(n)\n\
             \x20   await nc.close()\n\
             asyncio.run(main())\n",
        &[&ca, &PARTITIONS.to_string()],
    )?
    .parse()?)
}

fn stderr_of(r: &ExecutionRecord) -> String {
    r.result
        .as_ref()
        .map(|x| String::from_utf8_lossy(&x.stderr).into_owned())
        .unwrap_or_default()
}

fn supervisor_log(d: &Distributed, i: usize) -> String {
    let mut log = d.stack.hem_state_db(i).into_os_string();
    log.push(".hooks.log");
    std::fs::read_to_string(PathBuf::from(log)).unwrap_or_default()
}

#[test]
fn a_killed_hems_hooks_are_reported_by_its_supervisor_and_nothing_says_interrupted() -> Result<()> {
    let mut d = secured()?;
    // Ends while the HEM is down, with a code and output of its own.
    write_hook(
        &d,
        "short",
        &format!(
            "{}sleep 0.5\necho short\necho short-err >&2\nexit 3\n",
            wait_for_gate(&d, "short")
        ),
    )?;
    // Runs on well past the take-over time.
    write_hook(
        &d,
        "long",
        &format!("{}echo long\n", wait_for_gate(&d, "long")),
    )?;
    // Killed by its TIMEOUT while the HEM is down.
    write_hook(&d, "slow", "sleep 60\necho never\n")?;
    let short = pending_hook(&d.stack, "short", "short.sh")?;
    let long = pending_hook(&d.stack, "long", "long.sh")?;
    let slow = d.stack.client().hook_allocate(
        "NAME = slow\nCOMMAND = slow.sh\nTYPE = state\nON = CUSTOM\nRESOURCE = VM\n\
         STATE = PENDING\nLCM_STATE = LCM_INIT\nARGUMENTS = $TEMPLATE\nTIMEOUT = 15\n",
    )?;
    allocate_vms(&d.stack, VMS, 2)?;
    let victim = d.stack.supervisor_pid_at(0).context("HEM 0's supervisor")?;
    let mut victims = BTreeSet::new();
    for name in ["short", "long", "slow"] {
        victims.extend(started_everywhere(&d, name, victim)?);
    }
    ensure!(
        !victims.is_empty(),
        "HEM 0 ran none of the {VMS} VMs' hooks"
    );

    d.stack.kill_hem_at(0)?;
    std::fs::write(gate(&d, "short"), "")?;
    d.wait_settled(&[1])?;
    // The long hooks run on for several take-over times after HEM 1 holds every partition.
    std::thread::sleep(Duration::from_secs(3 * u64::from(TAKEOVER_S)));
    ensure!(
        d.stack.records(long)?.is_empty(),
        "a long hook has a record before it ended: {:?}",
        d.stack.records(long)?
    );
    std::fs::write(gate(&d, "long"), "")?;

    let shorts = one_record_each(&d, "short", short)?;
    let longs = one_record_each(&d, "long", long)?;
    let slows = one_record_each(&d, "slow", slow)?;
    for r in shorts.values() {
        let x = r.result.as_ref().context("no result")?;
        ensure!(
            (x.code, x.stdout.as_slice(), x.stderr.as_slice())
                == (3, &b"short\n"[..], &b"short-err\n"[..]),
            "{x:?}"
        );
    }
    for r in longs.values() {
        let x = r.result.as_ref().context("no result")?;
        ensure!(
            (x.code, x.stdout.as_slice()) == (0, &b"long\n"[..]),
            "{x:?}"
        );
    }
    for r in slows.values() {
        let x = r.result.as_ref().context("no result")?;
        ensure!(
            x.code == 255 && stderr_of(r) == format!("Timeout executing {}", x.command),
            "{x:?}"
        );
    }
    for r in shorts.values().chain(longs.values()).chain(slows.values()) {
        ensure!(
            !stderr_of(r).contains("interrupted"),
            "an interrupted record: {r:?}"
        );
    }
    // The supervisor reported the killed HEM's executions, HEM 1 found them recorded and
    // acknowledged their events. A result can be stored before the caretaker logs its line.
    let reported_count = || {
        supervisor_log(&d, 0)
            .matches("reported the outcome of a hook whose HEM died")
            .count()
    };
    let _ = wait_for("the supervisor's report lines", WAIT, || {
        (reported_count() >= 3 * victims.len()).then_some(())
    });
    let reported = reported_count();
    ensure!(
        reported == 3 * victims.len(),
        "the supervisor reported {reported} executions of {} VMs' hooks:\n{}",
        victims.len(),
        supervisor_log(&d, 0)
    );
    wait_for("every event to be acknowledged", WAIT, || {
        (unacknowledged(&d).ok()? == 0).then_some(())
    })?;
    let log = std::fs::read_to_string(d.stack.log_path(&Stack::hem_log(1)))?;
    ensure!(
        log.contains("already recorded; not run again"),
        "HEM 1 never found an execution recorded by the supervisor"
    );
    println!(
        "HEM 0 killed with the hooks of VMs {victims:?} running; {reported} outcomes reported by its supervisor, 0 interrupted"
    );
    Ok(())
}

#[test]
fn a_killed_hem_whose_supervisor_dies_too_leaves_interrupted_records() -> Result<()> {
    let mut d = start(2, TAKEOVER_S, "")?;
    write_hook(
        &d,
        "gated",
        &format!("{}echo gated\n", wait_for_gate(&d, "gated")),
    )?;
    let hook = pending_hook(&d.stack, "gated", "gated.sh")?;
    allocate_vms(&d.stack, VMS, 2)?;
    let victim = d.stack.supervisor_pid_at(0).context("HEM 0's supervisor")?;
    let victims = started_everywhere(&d, "gated", victim)?;
    ensure!(!victims.is_empty(), "HEM 0 ran none of the hooks");

    d.stack.kill_hem_at(0)?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim as i32),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    std::fs::write(gate(&d, "gated"), "")?;
    let records = one_record_each(&d, "gated", hook)?;
    for (vm, r) in &records {
        let x = r.result.as_ref().context("no result")?;
        if victims.contains(vm) {
            ensure!(
                x.code == 255 && stderr_of(r).contains("interrupted: HEM "),
                "VM {vm}: {x:?}"
            );
        } else {
            ensure!(
                (x.code, x.stdout.as_slice()) == (0, &b"gated\n"[..]),
                "VM {vm}: {x:?}"
            );
        }
    }
    wait_for("every event to be acknowledged", WAIT, || {
        (unacknowledged(&d).ok()? == 0).then_some(())
    })?;
    Ok(())
}
