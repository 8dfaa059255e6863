//! The thinnest whole path: a hook created over XML-RPC, a VM allocation event, the driver,
//! the HEM, a record in the hook log.

use std::time::Duration;

use one_e2e::stack::{Stack, wait_for};
use one_proto::hook_log::parse_hooklog;
use one_proto::xmlrpc::Value;

#[test]
fn vm_pending_hook_leaves_a_success_record() -> anyhow::Result<()> {
    let stack = Stack::start()?;
    let marker = stack.dir.path().join("ran");
    stack.write_hook(
        "vm-pending.sh",
        &format!(
            "#!/bin/sh\necho \"$@\" > {}\necho Executed!\n",
            marker.display()
        ),
    )?;
    let client = stack.client();
    let id = client.hook_allocate(
        "NAME = hook-vm\nTYPE = state\nCOMMAND = vm-pending.sh\nARGUMENTS = \"$TEMPLATE pending\"\n\
         ON = CUSTOM\nRESOURCE = VM\nSTATE = PENDING\nLCM_STATE = LCM_INIT\n",
    )?;
    // No pause: the HEM applies the hook before it matches later events.
    client.call(
        "one.vm.allocate",
        vec![
            Value::String("NAME = test\nCPU = 1\nMEMORY = 2\n".into()),
            Value::Bool(false),
        ],
    )?;
    let records = wait_for("a hook log record", Duration::from_secs(20), || {
        let xml = client.hooklog_info(-1, -1, id, 0).ok()?;
        let records = parse_hooklog(&xml).ok()?;
        (!records.is_empty()).then_some(records)
    })
    .map_err(|e| anyhow::anyhow!("{e}\n{}\n{}", stack.tail_log("oned"), stack.tail_log("hem")))?;
    let result = records[0].result.as_ref().expect("record has a result");
    assert_eq!(result.code, 0, "{result:?}");
    assert_eq!(String::from_utf8_lossy(&result.stdout), "Executed!\n");
    let args = std::fs::read_to_string(&marker)?;
    assert!(args.trim_end().ends_with(" pending"), "{args}");
    Ok(())
}
