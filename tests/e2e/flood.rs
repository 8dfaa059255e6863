//! Producing many events fast: VM allocations from several connections.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use base64::Engine as _;
use one_e2e::stack::Stack;
use one_proto::hook_log::ExecutionRecord;
use one_proto::xmlrpc::Value;

/// Allocates `count` VMs from `connections` parallel clients; returns how long it took.
pub fn allocate_vms(stack: &Stack, count: usize, connections: usize) -> Result<Duration> {
    Flood::of(stack).allocate_vms(count, connections)
}

/// What a flood needs of a stack, so that it can run while the test changes the stack (kills a
/// HEM) from another thread.
pub struct Flood {
    endpoint: String,
    session: String,
}

impl Flood {
    pub fn of(stack: &Stack) -> Flood {
        Flood {
            endpoint: stack.endpoint.clone(),
            session: stack.session.clone(),
        }
    }

    /// Allocates `count` VMs from `connections` parallel clients; returns how long it took.
    pub fn allocate_vms(&self, count: usize, connections: usize) -> Result<Duration> {
        let next = AtomicUsize::new(0);
        let start = Instant::now();
        std::thread::scope(|s| -> Result<()> {
            let workers: Vec<_> = (0..connections)
                .map(|_| {
                    s.spawn(|| -> Result<()> {
                        let client = one_client::Client::new(&self.endpoint, &self.session);
                        while next.fetch_add(1, Ordering::Relaxed) < count {
                            allocate(&client)?;
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
}

fn allocate(client: &one_client::Client) -> Result<i64> {
    let v = client.call(
        "one.vm.allocate",
        vec![
            Value::String("NAME = f\nCPU = 1\nMEMORY = 2\n".into()),
            Value::Bool(false),
        ],
    )?;
    match v {
        Value::Int(id) => Ok(i64::from(id)),
        Value::I8(id) => Ok(id),
        other => anyhow::bail!("one.vm.allocate returned {other:?}"),
    }
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
