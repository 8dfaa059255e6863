//! Producing many events fast: VM allocations from several connections.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use base64::Engine as _;
use one_e2e::stack::Stack;
use one_proto::hook_log::ExecutionRecord;

/// Allocates `count` VMs from `connections` parallel clients; returns how long it took.
pub fn allocate_vms(stack: &Stack, count: usize, connections: usize) -> Result<Duration> {
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..connections)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    while next.fetch_add(1, Ordering::Relaxed) < count {
                        stack.vm_allocate("NAME = f\nCPU = 1\nMEMORY = 2\n")?;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("a flood worker panicked"))??;
        }
        Ok(())
    })?;
    Ok(start.elapsed())
}

/// The VM id a record's `$TEMPLATE` argument names.
pub fn record_vm_id(record: &ExecutionRecord) -> Result<i64> {
    let result = record.result.as_ref().context("record without result")?;
    let b64 = result.arguments.split(' ').next().unwrap_or("");
    let xml = base64::engine::general_purpose::STANDARD.decode(b64)?;
    let xml = String::from_utf8(xml)?;
    let id = xml
        .strip_prefix("<VM><ID>")
        .and_then(|r| r.split('<').next())
        .context("no VM id in the argument")?;
    Ok(id.parse()?)
}

#[test]
#[ignore]
fn flood_speed() -> Result<()> {
    let stack = Stack::start_with(one_e2e::stack::StackOptions {
        hem: false,
        ..Default::default()
    })?;
    for conns in [1, 4, 8, 16] {
        let took = allocate_vms(&stack, 2000, conns)?;
        println!(
            "{conns} connections: {:.0} VMs/s",
            2000.0 / took.as_secs_f64()
        );
    }
    Ok(())
}
