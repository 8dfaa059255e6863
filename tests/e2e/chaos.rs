//! Chaos in the distributed mode: during a flood of 3,000 events, kill -9 one HEM of three, one
//! NATS node of three, or the driver. Every event must end as exactly one record, no hook may
//! start twice, and an "interrupted" record must belong to a HEM that was killed.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use one_e2e::stack::{Stack, wait_for};

use crate::distributed::{
    Distributed, Tally, check_exactly_once, nats_py, pending_hook, read_runs, start, vm_range,
    write_vm_hook,
};
use crate::flood::Flood;

const EVENTS: usize = 3_000;

/// Floods, runs `strike` once the hooks have started `after` times, and checks the outcome;
/// `killed` names the HEMs the strike kills.
fn flood_and_strike(
    d: &mut Distributed,
    name: &str,
    after: usize,
    strike: impl FnOnce(&mut Distributed) -> Result<Vec<u32>>,
) -> Result<Tally> {
    write_vm_hook(&d.stack, "chaos.sh", "0.005")?;
    let hook = pending_hook(&d.stack, "chaos", "chaos.sh")?;
    let flood = Flood::of(&d.stack);
    let started = Instant::now();
    let killed = std::thread::scope(|s| -> Result<Vec<u32>> {
        let flood = s.spawn(|| flood.allocate_vms(EVENTS, 6));
        wait_for("hooks to run", Duration::from_secs(120), || {
            let runs = read_runs(&d.stack).ok()?;
            (runs.iter().filter(|r| r.start).count() >= after).then_some(())
        })?;
        let killed = strike(d)?;
        flood
            .join()
            .map_err(|_| anyhow::anyhow!("flood panicked"))??;
        Ok(killed)
    })?;
    let tally = check_exactly_once(&d.stack, hook, &vm_range(0, EVENTS), &killed)?;
    let runs = read_runs(&d.stack)?.iter().filter(|r| r.start).count();
    println!(
        "chaos ({name}): events {EVENTS}, records {}, executions {runs}, interrupted {}, \
         lost 0, duplicate records 0, run twice 0, {:.1} s",
        tally.records,
        tally.interrupted,
        started.elapsed().as_secs_f64()
    );
    Ok(tally)
}

#[test]
fn chaos_a_hem_killed_during_a_flood() -> Result<()> {
    let mut d = start(3, 4, "")?;
    let tally = flood_and_strike(&mut d, "a: one HEM of three killed", 600, |d| {
        let pid = d.stack.hem_pid_at(1).context("HEM 1")?;
        d.stack.kill_hem_at(1)?;
        Ok(vec![pid])
    })?;
    anyhow::ensure!(tally.per_hem.len() >= 2);
    Ok(())
}

#[test]
fn chaos_b_nats_node_killed_during_a_flood() -> Result<()> {
    let mut d = start(3, 5, "")?;
    flood_and_strike(
        &mut d,
        "b: the events stream's leader node killed",
        600,
        |d| {
            let leader = stream_leader(&d.stack, &d.nats.url_list(), "ONE_EVENTS")?;
            let i = d
                .nats
                .node_index(&leader)
                .with_context(|| format!("no node named {leader}"))?;
            d.nats.kill_node(i)?;
            Ok(Vec::new())
        },
    )?;
    Ok(())
}

#[test]
fn chaos_c_driver_killed_during_a_flood() -> Result<()> {
    let mut d = start(3, 5, "")?;
    flood_and_strike(&mut d, "c: the driver killed", 600, |d| {
        let pid = d.stack.driver_pid().context("no driver running")?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )?;
        Ok(Vec::new())
    })?;
    Ok(())
}

/// The name of the node leading `stream`, asked with nats-py.
fn stream_leader(stack: &Stack, urls: &str, stream: &str) -> Result<String> {
    nats_py(
        urls,
        "import asyncio, sys, nats\n\
             async def main():\n\
             \x20   nc = await nats.connect(sys.argv[1].split(','))\n\
             \x20   info = await nc.jetstream(timeout=30).stream_info(sys.argv[2])\n\
             \x20   print(info.cluster.leader)\n\
             \x20   await nc.close()\n\
             asyncio.run(main())\n",
        &[stream],
    )
    .with_context(|| stack.tail_log("oned"))
}
