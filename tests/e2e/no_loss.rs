//! The ways the reference loses work (shared/design/anchors.md), each as a test: every
//! matching event ends with exactly one record.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use one_e2e::stack::{Stack, StackOptions, wait_for};
use one_proto::hook_log::ExecutionRecord;

use crate::flood::{allocate_vms, record_vm_id};

const PENDING_HOOK: &str = "TYPE = state\nON = CUSTOM\nRESOURCE = VM\nSTATE = PENDING\n\
                            LCM_STATE = LCM_INIT\nARGUMENTS = $TEMPLATE\n";

fn options() -> StackOptions {
    StackOptions {
        log_retention: 1_000_000,
        ..Default::default()
    }
}

fn pending_hook(stack: &Stack, name: &str, command: &str) -> Result<i64> {
    Ok(stack.client().hook_allocate(&format!(
        "NAME = {name}\nCOMMAND = \"{command}\"\n{PENDING_HOOK}"
    ))?)
}

/// Waits for `expected` records of `hook`, then checks that VMs `0..expected` each have
/// exactly one; returns how many of them say they were interrupted by a HEM restart.
fn exactly_one_record_per_vm(stack: &Stack, hook: i64, expected: usize) -> Result<usize> {
    let records = stack.wait_records(hook, expected, Duration::from_secs(600))?;
    let mut per_vm: BTreeMap<i64, Vec<&ExecutionRecord>> = BTreeMap::new();
    for r in &records {
        per_vm.entry(record_vm_id(r)?).or_default().push(r);
    }
    let duplicated: Vec<_> = per_vm
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(id, _)| *id)
        .collect();
    ensure!(
        duplicated.is_empty(),
        "VMs with more than one record: {duplicated:?}"
    );
    let missing: Vec<i64> = (0..expected as i64)
        .filter(|id| !per_vm.contains_key(id))
        .collect();
    ensure!(missing.is_empty(), "VMs without a record: {missing:?}");
    ensure!(
        records.len() == expected,
        "{} records for {expected} events",
        records.len()
    );
    let mut interrupted = 0;
    for r in &records {
        let result = r.result.as_ref().context("record without result")?;
        let stderr = String::from_utf8_lossy(&result.stderr);
        if result.code != 0 {
            ensure!(
                stderr.contains("interrupted by HEM restart"),
                "unexpected failure: code {} stderr {stderr}",
                result.code
            );
            interrupted += 1;
        }
    }
    Ok(interrupted)
}

/// A burst far beyond the publisher's high-water mark, which the reference answered by
/// silently dropping 4,001 of 10,000 events. The HEM is stopped (SIGSTOP) while the events are
/// published, so it stays subscribed but reads nothing: libzmq drops everything past the
/// PUB/SUB high-water marks (1,000 each, the default) exactly as for a slow subscriber. Once
/// continued, the HEM sees the gaps in the sequence and recovers every dropped event by replay.
#[test]
fn burst_beyond_the_high_water_mark_loses_nothing() -> Result<()> {
    let stack = Stack::start_with(options())?;
    let hook = pending_hook(&stack, "burst", "/bin/true")?;
    // Make sure the HEM has subscribed and handled the hook before it is frozen.
    allocate_vms(&stack, 1, 1)?;
    stack.wait_records(hook, 1, Duration::from_secs(60))?;
    stack.signal_hem("STOP")?;
    let count = 10_000;
    let offered = allocate_vms(&stack, count - 1, 8);
    stack.signal_hem("CONT")?;
    println!("offered {} events in {:?}", count - 1, offered?);
    let interrupted = exactly_one_record_per_vm(&stack, hook, count)?;
    assert_eq!(interrupted, 0);
    let log = std::fs::read_to_string(stack.log_path("hem"))?;
    ensure!(
        log.contains("gap"),
        "the burst never overflowed the high-water marks"
    );
    Ok(())
}

/// kill -9 of the HEM during a flood, then a restart: executions that were running are
/// reported as interrupted (never run twice), the others run, nothing is missing.
#[test]
fn hem_killed_during_a_flood() -> Result<()> {
    let mut stack = Stack::start_with(options())?;
    stack.write_hook("work.sh", "#!/bin/sh\nsleep 0.05\n")?;
    let hook = pending_hook(&stack, "work", "work.sh")?;
    let count = 600;
    std::thread::scope(|s| -> Result<()> {
        let flood = s.spawn(|| allocate_vms(&stack, count, 4));
        wait_for("a first hundred records", Duration::from_secs(300), || {
            (stack.records(hook).ok()?.len() >= 100).then_some(())
        })?;
        flood
            .join()
            .map_err(|_| anyhow::anyhow!("flood panicked"))??;
        Ok(())
    })?;
    stack.kill_hem()?;
    stack.start_hem()?;
    let interrupted = exactly_one_record_per_vm(&stack, hook, count)?;
    println!("{interrupted} executions interrupted by the kill");
    Ok(())
}

/// The driver killed and restarted (by oned-lite) while results are flowing: the reference
/// wedged for good in 1 run of 5, every worker stuck sending a result.
#[test]
fn driver_restart_while_results_flow() -> Result<()> {
    let stack = Stack::start_with(options())?;
    let hook = pending_hook(&stack, "flow", "/bin/true")?;
    let count = 1000;
    std::thread::scope(|s| -> Result<()> {
        let flood = s.spawn(|| allocate_vms(&stack, count, 4));
        for round in 0..2 {
            let seen = (round + 1) * 150;
            wait_for("results flowing", Duration::from_secs(300), || {
                (stack.records(hook).ok()?.len() >= seen).then_some(())
            })?;
            let pid = stack.driver_pid().context("no driver running")?;
            std::process::Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status()?;
            wait_for(
                "oned-lite to restart the driver",
                Duration::from_secs(60),
                || stack.driver_pid().filter(|p| *p != pid),
            )?;
        }
        flood
            .join()
            .map_err(|_| anyhow::anyhow!("flood panicked"))??;
        Ok(())
    })?;
    let interrupted = exactly_one_record_per_vm(&stack, hook, count)?;
    assert_eq!(interrupted, 0);
    Ok(())
}

/// Events produced while the HEM is down and in the first second after it starts (the
/// reference's slow-joiner window) all run.
#[test]
fn events_around_a_hem_start() -> Result<()> {
    let mut stack = Stack::start_with(options())?;
    let hook = pending_hook(&stack, "start", "/bin/true")?;
    allocate_vms(&stack, 1, 1)?;
    stack.wait_records(hook, 1, Duration::from_secs(60))?;
    stack.kill_hem()?;
    allocate_vms(&stack, 100, 2)?;
    stack.start_hem()?;
    allocate_vms(&stack, 100, 2)?;
    let interrupted = exactly_one_record_per_vm(&stack, hook, 201)?;
    assert_eq!(interrupted, 0);
    Ok(())
}

/// 200 rapid create/update/delete cycles of hooks while events flow (OpenNebula issue 7561
/// crashed the HEM): the HEM survives and a stable hook misses nothing.
#[test]
fn hook_churn_while_events_flow() -> Result<()> {
    let mut stack = Stack::start_with(options())?;
    let stable = pending_hook(&stack, "stable", "/bin/true")?;
    let count = 400;
    std::thread::scope(|s| -> Result<()> {
        let flood = s.spawn(|| allocate_vms(&stack, count, 2));
        let c = stack.client();
        for i in 0..200 {
            let id = pending_hook(&stack, &format!("churn-{i}"), "/bin/true")?;
            c.hook_update(id, "TIMEOUT = 5", one_client::UpdateMode::Merge)?;
            c.hook_delete(id)?;
        }
        flood
            .join()
            .map_err(|_| anyhow::anyhow!("flood panicked"))??;
        Ok(())
    })?;
    let interrupted = exactly_one_record_per_vm(&stack, stable, count)?;
    assert_eq!(interrupted, 0);
    ensure!(stack.hem_alive(), "the HEM died: {}", stack.tail_log("hem"));
    ensure!(
        !stack.tail_log("hem").contains("panicked"),
        "the HEM panicked: {}",
        stack.tail_log("hem")
    );
    Ok(())
}

/// oned-lite killed -9 while results flow, then restarted on the same database and journal:
/// results the driver had forwarded but oned-lite had not stored are forwarded again, results
/// the HEM could not deliver meanwhile are sent again, and every VM ends with exactly one
/// record.
#[test]
fn front_end_killed_while_results_flow() -> Result<()> {
    let mut stack = Stack::start_with(options())?;
    stack.write_hook("work.sh", "#!/bin/sh\nsleep 0.02\n")?;
    let hook = pending_hook(&stack, "flow", "work.sh")?;
    allocate_vms(&stack, 1, 1)?;
    stack.wait_records(hook, 1, Duration::from_secs(60))?;
    // Queue the events while the HEM is frozen so that results are still flowing when
    // oned-lite dies.
    stack.signal_hem("STOP")?;
    let count = 600;
    let offered = allocate_vms(&stack, count - 1, 4);
    stack.signal_hem("CONT")?;
    offered?;
    wait_for("results flowing", Duration::from_secs(300), || {
        (stack.records(hook).ok()?.len() >= 100).then_some(())
    })?;
    stack.kill_oned()?;
    std::thread::sleep(Duration::from_millis(300));
    stack.start_oned()?;
    let interrupted = exactly_one_record_per_vm(&stack, hook, count)?;
    assert_eq!(interrupted, 0);
    Ok(())
}
