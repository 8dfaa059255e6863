//! Group commit of API calls in the real oned-lite: calls from many connections at once, each
//! answered only once committed, and a kill -9 in the middle of a stream of calls that loses no
//! call answered OK.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use one_client::Client;
use one_e2e::stack::{Stack, StackOptions, wait_for};
use one_proto::xmlrpc::Value;

const VM: &str = "MEMORY=64\nCPU=0.1";

/// oned-lite and its driver, no HEM: the calls are the point.
fn front_end() -> Result<Stack> {
    Stack::start_with(StackOptions {
        hem: false,
        ..StackOptions::default()
    })
}

fn vm_allocate(client: &Client, template: &str) -> Result<i64> {
    match client.call(
        "one.vm.allocate",
        vec![Value::String(template.into()), Value::Bool(false)],
    )? {
        Value::Int(id) => Ok(i64::from(id)),
        Value::I8(id) => Ok(id),
        other => bail!("one.vm.allocate returned {other:?}"),
    }
}

/// The ids of every VM in the pool (`one.vmpool.info`, all users, every state but DONE).
fn vm_ids(stack: &Stack) -> Result<BTreeSet<i64>> {
    let xml = stack.client().call(
        "one.vmpool.info",
        vec![(-2).into(), (-1).into(), (-1).into(), (-1).into()],
    )?;
    let xml = xml.as_str().context("one.vmpool.info returned no string")?;
    xml.split("<VM>")
        .skip(1)
        .map(|vm| {
            let id = vm
                .split_once("<ID>")
                .and_then(|(_, rest)| rest.split_once("</ID>"))
                .map(|(id, _)| id)
                .context("a VM without an ID")?;
            Ok(id.parse()?)
        })
        .collect()
}

/// Sixteen connections allocate VMs at once, each also reading its new VM back and making one
/// call that fails: every call answered OK is committed (the read of it, which does not go
/// through the writer, finds it), ids are distinct, and the failed calls change nothing.
#[test]
fn concurrent_calls_from_many_connections_all_commit() -> Result<()> {
    const CONNECTIONS: usize = 16;
    const CALLS: usize = 25;
    let stack = front_end()?;
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|n| {
            let client = stack.client();
            std::thread::spawn(move || -> Result<Vec<i64>> {
                let mut ids = Vec::new();
                for i in 0..CALLS {
                    if i == CALLS / 2 {
                        let refused = vm_allocate(&client, "NAME=\"bad&name\"\nMEMORY=64\nCPU=1");
                        if refused.is_ok() {
                            bail!("connection {n}: a VM with an invalid name was allocated");
                        }
                    }
                    let id = vm_allocate(&client, VM)
                        .with_context(|| format!("connection {n}, call {i}"))?;
                    let info = client.call("one.vm.info", vec![id.into()])?;
                    let info = info.as_str().unwrap_or_default().to_string();
                    if !info.contains(&format!("<ID>{id}</ID>")) {
                        bail!("VM {id} was answered but one.vm.info does not show it: {info}");
                    }
                    ids.push(id);
                }
                Ok(ids)
            })
        })
        .collect();
    let mut answered = BTreeSet::new();
    for worker in workers {
        let ids = worker
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
        answered.extend(ids);
    }
    assert_eq!(
        answered.len(),
        CONNECTIONS * CALLS,
        "every call got an id of its own"
    );
    assert_eq!(vm_ids(&stack)?, answered, "exactly the answered VMs exist");
    Ok(())
}

/// oned-lite is killed with SIGKILL while eight connections stream calls: after a restart, every
/// VM whose allocation was answered OK is there.
#[test]
fn kill9_during_a_stream_of_calls_keeps_every_answered_call() -> Result<()> {
    const CONNECTIONS: usize = 8;
    const MAX_CALLS: usize = 2_000;
    let mut stack = front_end()?;
    let answered = Arc::new(Mutex::new(BTreeSet::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let client =
                Client::with_timeout(&stack.endpoint, &stack.session, Duration::from_secs(30));
            let answered = answered.clone();
            let count = count.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                // Ends at the first call without an answer: the kill.
                for _ in 0..MAX_CALLS {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match vm_allocate(&client, VM) {
                        Ok(id) => {
                            answered.lock().unwrap().insert(id);
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    let killed = wait_for(
        "calls answered before the kill",
        Duration::from_secs(120),
        || (count.load(Ordering::Relaxed) >= 200).then_some(()),
    )
    .and_then(|()| stack.kill_oned());
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))?;
    }
    killed?;
    let answered = answered.lock().unwrap().clone();
    stack.start_oned()?;
    let present = vm_ids(&stack)?;
    let lost: Vec<_> = answered.difference(&present).collect();
    assert!(
        lost.is_empty(),
        "{} calls answered OK are not in the database after the restart: {lost:?}",
        lost.len()
    );
    // The restarted front-end goes on after the ids it committed.
    let next = vm_allocate(&stack.client(), VM)?;
    assert!(present.iter().all(|id| *id < next));
    Ok(())
}
