//! The WAL files of the three databases (oned-lite's, the driver's journal, the HEM's state
//! DB) come back below `one_wal::IDLE_WAL_BYTES` once the daemons are idle after a burst.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use one_e2e::stack::{Stack, StackOptions, wait_for};

use crate::flood::allocate_vms;

/// Enough VM allocations, each with its hook's execution, that every WAL grows past the idle
/// bound while the burst lasts.
const BURST: usize = 3000;

/// How long the daemons get, once the last record is in, to bring their WALs under the bound:
/// the checkpointer's idle wait plus ample room on a loaded machine.
const IDLE_DEADLINE: Duration = Duration::from_secs(20);

/// Every `*-wal` file in `dir` and its size.
fn wal_sizes(dir: &Path) -> BTreeMap<PathBuf, u64> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with("-wal"))
        .filter_map(|e| Some((e.path(), e.metadata().ok()?.len())))
        .collect()
}

fn describe(sizes: &BTreeMap<PathBuf, u64>) -> String {
    sizes
        .iter()
        .map(|(p, n)| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            format!("{name} {n} bytes")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn every_wal_shrinks_below_its_bound_after_a_burst() -> Result<()> {
    let stack = Stack::start_with(StackOptions {
        log_retention: 1_000_000,
        ..Default::default()
    })?;
    let hook = stack.client().hook_allocate(
        "NAME = wal\nCOMMAND = \"/bin/true\"\nTYPE = state\nON = CUSTOM\nRESOURCE = VM\n\
         STATE = PENDING\nLCM_STATE = LCM_INIT\nARGUMENTS = $TEMPLATE\n",
    )?;

    // The largest size each WAL reached while the burst ran, sampled on the side.
    let done = AtomicBool::new(false);
    let (burst, peak) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut peak: BTreeMap<PathBuf, u64> = BTreeMap::new();
            // Bounded by the flag, and by a count in case the flood thread never returns.
            for _ in 0..60_000 {
                for (path, size) in wal_sizes(&stack.var_dir) {
                    let largest = peak.entry(path).or_default();
                    *largest = (*largest).max(size);
                }
                if done.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        });
        let burst = allocate_vms(&stack, BURST, 8).and_then(|_| {
            stack.wait_records(hook, BURST, Duration::from_secs(600))?;
            Ok(())
        });
        done.store(true, Ordering::Relaxed);
        (burst, sampler.join())
    });
    burst?;
    let peak = peak.map_err(|_| anyhow::anyhow!("the WAL sampler panicked"))?;
    let after_burst = wal_sizes(&stack.var_dir);
    println!("largest WAL sizes during the burst: {}", describe(&peak));
    println!(
        "WAL sizes when the last record was in: {}",
        describe(&after_burst)
    );

    let names = ["one.db-wal", "hm-journal.db-wal", "hem-state.db-wal"];
    for name in names {
        ensure!(
            peak.contains_key(&stack.var_dir.join(name)),
            "no {name} during the burst: {}",
            describe(&peak)
        );
    }
    ensure!(
        peak.values().any(|n| *n > one_wal::IDLE_WAL_BYTES),
        "no WAL grew past the idle bound of {} bytes, so the burst shows nothing: {}",
        one_wal::IDLE_WAL_BYTES,
        describe(&peak)
    );

    let idle_from = Instant::now();
    let settled = wait_for("every WAL below its idle bound", IDLE_DEADLINE, || {
        let sizes = wal_sizes(&stack.var_dir);
        sizes
            .values()
            .all(|n| *n <= one_wal::IDLE_WAL_BYTES)
            .then_some(sizes)
    });
    let now = wal_sizes(&stack.var_dir);
    println!(
        "WAL sizes after {:.1} s idle: {}",
        idle_from.elapsed().as_secs_f64(),
        describe(&now)
    );
    let databases: Vec<String> = names
        .iter()
        .filter_map(|wal| {
            let db = wal.strip_suffix("-wal")?;
            let len = std::fs::metadata(stack.var_dir.join(db)).ok()?.len();
            Some(format!("{db} {len} bytes"))
        })
        .collect();
    println!("database files: {}", databases.join(", "));
    let settled = settled.map_err(|e| {
        e.context(format!(
            "bound {} bytes; now {}",
            one_wal::IDLE_WAL_BYTES,
            describe(&now)
        ))
    })?;
    for name in names {
        ensure!(
            settled.contains_key(&stack.var_dir.join(name)),
            "{name} is gone: {}",
            describe(&settled)
        );
    }
    Ok(())
}
