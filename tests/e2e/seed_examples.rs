//! The seed document's hook examples, run for real: each leaves the right record.

use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine as _;
use one_e2e::stack::Stack;
use one_proto::hook_log::ExecutionResult;
use one_proto::xmlrpc::Value;

const WAIT: Duration = Duration::from_secs(30);

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn int(v: i64) -> Value {
    Value::Int(v as i32)
}

fn stdout(r: &ExecutionResult) -> String {
    String::from_utf8_lossy(&r.stdout).into_owned()
}

fn only_result(stack: &Stack, hook: i64) -> Result<ExecutionResult> {
    let records = stack.wait_records(hook, 1, WAIT)?;
    assert_eq!(records.len(), 1, "{records:?}");
    records[0]
        .result
        .clone()
        .context("the record has no result")
}

/// API hook on `one.user.allocate` with `$API` on stdin: the hook reads the CALL_INFO document
/// from stdin, sees the call's result and the new user's name, and never the password.
#[test]
fn api_hook_reads_call_info_from_stdin() -> Result<()> {
    let stack = Stack::start()?;
    stack.write_hook("user_create.sh", "#!/bin/sh\nbase64 -d\n")?;
    let hook = stack.client().hook_allocate(
        "NAME = user-create\nTYPE = api\nCOMMAND = \"user_create.sh\"\nARGUMENTS = \"$API\"\n\
         CALL = \"one.user.allocate\"\nARGUMENTS_STDIN = yes\n",
    )?;
    stack
        .client()
        .call("one.user.allocate", vec![s("alice"), s("s3cret"), s("")])?;

    let r = only_result(&stack, hook)?;
    assert_eq!(r.code, 0, "{r:?}");
    let call_info = stdout(&r);
    assert!(call_info.starts_with("<CALL_INFO>"), "{call_info}");
    assert!(call_info.contains("<RESULT>1</RESULT>"), "{call_info}");
    assert!(call_info.contains("<VALUE>alice</VALUE>"), "{call_info}");
    assert!(
        !call_info.contains("s3cret"),
        "the password leaked: {call_info}"
    );
    // Stdin mode: nothing is appended to the command line.
    assert!(r.command.ends_with("/user_create.sh"), "{}", r.command);
    Ok(())
}

/// VM hook ON=PROLOG with `$TEMPLATE` as an argument: fires when the VM is deployed.
#[test]
fn vm_prolog_hook_gets_the_vm_template() -> Result<()> {
    let stack = Stack::start()?;
    stack.write_hook(
        "vm_prolog.sh",
        "#!/bin/sh\necho \"$1\" | base64 -d | tr -d '\\n' | grep -o '<VM><ID>[0-9]*</ID>'\n",
    )?;
    let c = stack.client();
    let hook = c.hook_allocate(
        "NAME = vm-prolog\nTYPE = state\nCOMMAND = vm_prolog.sh\nARGUMENTS = $TEMPLATE\n\
         ON = PROLOG\nRESOURCE = VM\n",
    )?;
    let host = c.call(
        "one.host.allocate",
        vec![s("node1"), s("kvm"), s("kvm"), int(-1)],
    )?;
    let Value::Int(host) = host else {
        anyhow::bail!("host id {host:?}")
    };
    let vm = stack.vm_allocate("NAME = web\nCPU = 1\nMEMORY = 64\n")?;
    c.call("one.vm.deploy", vec![int(vm), int(host.into())])?;

    let r = only_result(&stack, hook)?;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(stdout(&r).trim(), format!("<VM><ID>{vm}</ID>"));
    Ok(())
}

/// HOST hook on ERROR with `$TEMPLATE`: the host-error example, triggered by the front-end's
/// failure simulation.
#[test]
fn host_error_hook_fires_on_failure() -> Result<()> {
    let stack = Stack::start()?;
    stack.write_hook(
        "host_error.sh",
        "#!/bin/sh\nid=$(echo \"$1\" | base64 -d | tr -d '\\n' | grep -o '<HOST><ID>[0-9]*' | grep -o '[0-9]*$')\n\
         echo \"Host $id is in error state!!\"\n",
    )?;
    let c = stack.client();
    let hook = c.hook_allocate(
        "NAME = host-error\nTYPE = state\nCOMMAND = host_error.sh\nARGUMENTS = \"$TEMPLATE\"\n\
         STATE = ERROR\nRESOURCE = HOST\n",
    )?;
    let Value::Int(host) = c.call("one.host.allocate", vec![s("node1"), s("kvm"), s("kvm")])?
    else {
        anyhow::bail!("no host id")
    };
    c.call("one.hostsim.fail", vec![int(host.into())])?;

    let r = only_result(&stack, hook)?;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(stdout(&r), format!("Host {host} is in error state!!\n"));
    Ok(())
}

/// IMAGE hook on READY: an allocated image goes LOCKED -> READY.
#[test]
fn image_ready_hook_fires() -> Result<()> {
    let stack = Stack::start()?;
    stack.write_hook(
        "image_ready.sh",
        "#!/bin/sh\nid=$(echo \"$1\" | base64 -d | tr -d '\\n' | grep -o '<IMAGE><ID>[0-9]*' | grep -o '[0-9]*$')\n\
         echo \"Image $id ready to use!!\"\n",
    )?;
    let c = stack.client();
    let hook = c.hook_allocate(
        "NAME = image-ready\nTYPE = state\nCOMMAND = image_ready.sh\nSTATE = READY\n\
         RESOURCE = IMAGE\nARGUMENTS = \"$TEMPLATE\"\n",
    )?;
    let Value::Int(image) = c.call(
        "one.image.allocate",
        vec![s("NAME = disk\nSIZE = 10\n"), int(1)],
    )?
    else {
        anyhow::bail!("no image id")
    };

    let r = only_result(&stack, hook)?;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(stdout(&r), format!("Image {image} ready to use!!\n"));
    Ok(())
}

/// The seed's walkthrough over XML-RPC: the hook's script is missing, the record says why;
/// once the script exists, `one.hook.retry` gives a second, successful record that reuses the
/// recorded arguments.
#[test]
fn failing_hook_then_retry() -> Result<()> {
    let stack = Stack::start()?;
    let c = stack.client();
    let hook = c.hook_allocate(
        "NAME = hook-vm\nTYPE = state\nCOMMAND = vm-pending.rb\nARGUMENTS = \"$TEMPLATE pending\"\n\
         ON = CUSTOM\nRESOURCE = VM\nSTATE = PENDING\nLCM_STATE = LCM_INIT\n",
    )?;
    let vm = stack.vm_allocate("NAME = test\nCPU = 1\nMEMORY = 2\n")?;

    let failed = only_result(&stack, hook)?;
    assert_eq!(failed.code, 255);
    let script = stack.hook_dir.join("vm-pending.rb");
    assert_eq!(
        String::from_utf8_lossy(&failed.stderr),
        format!(
            "Internal error No such file or directory - {}",
            script.display()
        )
    );
    let args: Vec<&str> = failed.arguments.split(' ').collect();
    assert_eq!(args.len(), 2, "{}", failed.arguments);
    assert_eq!(args[1], "pending");
    let vm_xml = base64::engine::general_purpose::STANDARD.decode(args[0])?;
    assert!(String::from_utf8(vm_xml)?.starts_with(&format!("<VM><ID>{vm}</ID>")));

    stack.write_hook("vm-pending.rb", "#!/bin/sh\necho Executed!\n")?;
    c.hook_retry(hook, 0)?;
    let records = stack.wait_records(hook, 2, WAIT)?;
    let retried = records[1].result.clone().context("no result")?;
    assert_eq!(records[1].execution_id, 1);
    assert_eq!(retried.code, 0, "{retried:?}");
    assert!(retried.retry);
    assert_eq!(stdout(&retried), "Executed!\n");
    assert_eq!(retried.arguments, failed.arguments);
    Ok(())
}
