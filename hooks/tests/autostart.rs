//! The autostart hooks on the real stack: oned-lite (with its host reboot simulation), one_hm
//! and onehem-server, with the shipped hook scripts and templates and the built one-autostart.
//!
//! Needs the workspace binaries: `cargo build --workspace --bins` (scripts/test does it).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use one_client::Value;
use one_e2e::stack::{Stack, StackOptions, wait_for};
use one_hooks::VmFacts;
use one_proto::hook_log::{ExecutionRecord, ExecutionResult};

const WAIT: Duration = Duration::from_secs(30);

/// The autostart hooks as installed on a stack.
struct Autostart {
    host_hook: i64,
    vm_hook: i64,
}

/// Installs the shipped scripts below the HEM's hook_base_path, with one-autostart next to them,
/// and creates both hooks from the shipped templates with `onehook create`.
fn install(stack: &Stack) -> Result<Autostart> {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("autostart");
    let dir = stack.hook_dir.join("autostart");
    fs::create_dir_all(&dir)?;
    for script in ["host", "vm"] {
        fs::copy(shipped.join(script), dir.join(script))
            .with_context(|| format!("installing autostart/{script}"))?;
    }
    // The HEM passes its own environment to hooks, but the stack fixture starts it without
    // ONE_XMLRPC and ONE_AUTH (they are in its configuration file only), so the program is
    // reached through this launcher that adds them; with them in the HEM's environment a
    // symlink to the binary would do, as in scripts/demo.
    let launcher = dir.join("one-autostart");
    let env: String = stack
        .env()
        .iter()
        .map(|(k, v)| format!("{k}='{v}' "))
        .collect();
    fs::write(
        &launcher,
        format!(
            "#!/bin/sh\nexport {env}\nexec '{}' \"$@\"\n",
            env!("CARGO_BIN_EXE_one-autostart")
        ),
    )?;
    fs::set_permissions(&launcher, fs::Permissions::from_mode(0o755))?;
    let mut ids = Vec::new();
    for tmpl in ["autostart-host.tmpl", "autostart-vm.tmpl"] {
        let path = shipped.join(tmpl);
        let path = path.to_str().context("template path")?;
        let out = stack.cli("onehook", &["create", path])?;
        let text = String::from_utf8_lossy(&out.stdout);
        let id = text
            .trim()
            .strip_prefix("ID: ")
            .and_then(|n| n.parse().ok())
            .with_context(|| {
                format!(
                    "onehook create {tmpl}: {text}{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })?;
        ids.push(id);
    }
    Ok(Autostart {
        host_hook: ids[0],
        vm_hook: ids[1],
    })
}

fn int(v: i64) -> Value {
    Value::Int(i32::try_from(v).unwrap_or(i32::MAX))
}

fn id_of(v: Value) -> Result<i64> {
    v.as_i64()
        .with_context(|| format!("expected an id, got {v:?}"))
}

/// Creates a host and waits until it is MONITORED.
fn host(stack: &Stack, name: &str) -> Result<i64> {
    let c = stack.client();
    let id = id_of(c.call(
        "one.host.allocate",
        vec![name.into(), "kvm".into(), "kvm".into(), Value::Int(-1)],
    )?)?;
    wait_for(&format!("host {name} to be monitored"), WAIT, || {
        match c.call("one.host.info", vec![int(id)]) {
            Ok(Value::String(xml)) => xml.contains("<STATE>2</STATE>").then_some(()),
            _ => None,
        }
    })?;
    Ok(id)
}

/// Creates a VM with the given AUTOSTART and deploys it on `host`.
fn vm(stack: &Stack, name: &str, autostart: Option<&str>, host: i64) -> Result<i64> {
    let autostart = autostart
        .map(|a| format!("AUTOSTART = \"{a}\"\n"))
        .unwrap_or_default();
    let id = stack.vm_allocate(&format!("NAME = {name}\nCPU = 1\nMEMORY = 64\n{autostart}"))?;
    stack
        .client()
        .call("one.vm.deploy", vec![int(id), int(host)])?;
    Ok(id)
}

fn vm_state(stack: &Stack, id: i64) -> Result<String> {
    match stack.client().call("one.vm.info", vec![int(id)])? {
        Value::String(xml) => Ok(VmFacts::from_xml(&xml)?.state_str().to_string()),
        other => bail!("one.vm.info returned {other:?}"),
    }
}

fn wait_state(stack: &Stack, id: i64, state: &str) -> Result<()> {
    let mut last = String::new();
    wait_for(&format!("VM {id} to be {state}"), WAIT, || {
        last = vm_state(stack, id).unwrap_or_default();
        (last == state).then_some(())
    })
    .with_context(|| format!("VM {id} is {last}"))
}

fn vm_action(stack: &Stack, action: &str, id: i64) -> Result<()> {
    stack
        .client()
        .call("one.vm.action", vec![action.into(), int(id)])?;
    Ok(())
}

/// Waits for exactly `count` records of `hook`, in execution order.
fn records(stack: &Stack, hook: i64, count: usize) -> Result<Vec<ExecutionRecord>> {
    let mut all = stack.wait_records(hook, count, WAIT)?;
    all.sort_by_key(|r| r.execution_id);
    assert_eq!(all.len(), count, "records of hook {hook}: {all:#?}");
    Ok(all)
}

fn result(record: &ExecutionRecord) -> &ExecutionResult {
    match &record.result {
        Some(r) => r,
        None => panic!("record without a result: {record:?}"),
    }
}

fn stdout(record: &ExecutionRecord) -> String {
    String::from_utf8_lossy(&result(record).stdout).into_owned()
}

fn stderr(record: &ExecutionRecord) -> String {
    String::from_utf8_lossy(&result(record).stderr).into_owned()
}

/// The demo's scenario: node1 reboots with web (AUTOSTART=yes, running), batch (always,
/// powered off by its user) and scratch (no AUTOSTART, running) on it; api (yes) runs on
/// node2. Afterwards web runs again (the VM hook resumed it), batch runs (the host hook resumed
/// it), scratch stays powered off, api was never touched.
#[test]
fn a_host_reboot_brings_back_the_autostart_vms() -> Result<()> {
    let stack = Stack::start()?;
    let hooks = install(&stack)?;
    let node1 = host(&stack, "node1")?;
    let node2 = host(&stack, "node2")?;
    let web = vm(&stack, "web", Some("yes"), node1)?;
    let batch = vm(&stack, "batch", Some("always"), node1)?;
    let scratch = vm(&stack, "scratch", None, node1)?;
    let api = vm(&stack, "api", Some("YES"), node2)?;
    for id in [web, batch, scratch, api] {
        wait_state(&stack, id, "RUNNING")?;
    }
    vm_action(&stack, "poweroff", batch)?;
    wait_state(&stack, batch, "POWEROFF")?;
    // The records from before the reboot come first: both hosts' first MONITORED, and
    // batch's poweroff.
    records(&stack, hooks.host_hook, 2)?;
    records(&stack, hooks.vm_hook, 1)?;

    stack
        .client()
        .call("one.hostsim.reboot", vec![int(node1), Value::Int(200)])?;

    // Host hook: each host's first MONITORED, then node1's after the reboot. VM hook: batch's
    // poweroff by its user, then web and scratch found powered off by the monitor. Once every
    // record is in, no hook is left that could still resume a VM.
    let host_records = records(&stack, hooks.host_hook, 3)?;
    let vm_records = records(&stack, hooks.vm_hook, 3)?;
    wait_state(&stack, web, "RUNNING")?;
    wait_state(&stack, batch, "RUNNING")?;
    assert_eq!(vm_state(&stack, scratch)?, "POWEROFF");
    assert_eq!(vm_state(&stack, api)?, "RUNNING");

    for r in &host_records[..2] {
        assert_eq!(result(r).code, 0, "{r:?}");
        assert!(stdout(r).contains("is MONITORED; no VMs"), "{}", stdout(r));
    }
    let reboot = &host_records[2];
    let out = stdout(reboot);
    assert_eq!(result(reboot).code, 0, "{out}{}", stderr(reboot));
    assert!(
        result(reboot).command.ends_with("/autostart/host"),
        "{reboot:?}"
    );
    assert!(
        out.starts_with(&format!(
            "autostart-host: host {node1} (node1) is MONITORED; VMs {web} {batch} {scratch}\n"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "VM {batch} (batch): resumed: AUTOSTART=always, POWEROFF (last action poweroff)\n"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "VM {scratch} (scratch): skipped: AUTOSTART not set"
        )),
        "{out}"
    );
    // web is the VM hook's: the host hook sees it powered off by the monitor, or already
    // booting when the VM hook was quicker; it never resumes it.
    assert!(out.contains(&format!("VM {web} (web): skipped: ")), "{out}");
    assert!(
        out.ends_with("summary: 1 resumed, 2 skipped, 0 failed\n"),
        "{out}"
    );

    let texts: Vec<String> = vm_records.iter().map(stdout).collect();
    assert!(
        texts[0].contains(&format!(
            "VM {batch} (batch): skipped: last action poweroff is not monitor"
        )),
        "{texts:?}"
    );
    let web_record = vm_records
        .iter()
        .find(|r| stdout(r).starts_with(&format!("autostart-vm: VM {web} (web) reached POWEROFF")))
        .with_context(|| format!("no VM hook record for web: {texts:?}"))?;
    assert_eq!(result(web_record).code, 0);
    assert!(
        stdout(web_record).contains(&format!(
            "VM {web} (web): resumed: AUTOSTART=yes, powered off by the monitor\n"
        )),
        "{}",
        stdout(web_record)
    );
    Ok(())
}

/// VMs without AUTOSTART (or with a value that does not enable it) stay powered off after the
/// reboot, and both hooks say why they left them alone.
#[test]
fn a_vm_without_autostart_is_not_resumed() -> Result<()> {
    let stack = Stack::start()?;
    let hooks = install(&stack)?;
    let node = host(&stack, "node1")?;
    let plain = vm(&stack, "plain", None, node)?;
    let no = vm(&stack, "no", Some("no"), node)?;
    wait_state(&stack, plain, "RUNNING")?;
    wait_state(&stack, no, "RUNNING")?;
    records(&stack, hooks.host_hook, 1)?;

    stack
        .client()
        .call("one.hostsim.reboot", vec![int(node), Value::Int(0)])?;

    let host_records = records(&stack, hooks.host_hook, 2)?;
    let vm_records = records(&stack, hooks.vm_hook, 2)?;
    assert_eq!(vm_state(&stack, plain)?, "POWEROFF");
    assert_eq!(vm_state(&stack, no)?, "POWEROFF");

    let out = stdout(&host_records[1]);
    assert!(
        out.contains(&format!("VM {plain} (plain): skipped: ")),
        "{out}"
    );
    assert!(out.contains(&format!("VM {no} (no): skipped: ")), "{out}");
    assert!(
        out.ends_with("summary: 0 resumed, 2 skipped, 0 failed\n"),
        "{out}"
    );
    let mut texts: Vec<String> = vm_records.iter().map(stdout).collect();
    texts.sort();
    assert!(
        texts.iter().any(|t| t.contains(&format!(
            "VM {plain} (plain): skipped: AUTOSTART not set (yes, true or always enables it)\n"
        ))),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.contains(&format!(
            "VM {no} (no): skipped: AUTOSTART=no (yes, true or always enables it)\n"
        ))),
        "{texts:?}"
    );
    for r in &vm_records {
        assert_eq!(result(r).code, 0, "{r:?}");
        assert!(!stdout(r).contains("resumed:"), "{}", stdout(r));
    }
    Ok(())
}

/// A resume the front-end refuses is retried, and the failure shows in the hook's output and
/// exit code. To make the refusal real: the VM has AUTOSTART=always and its user powers it off
/// just before its host reboots, with the simulated shutdown lasting ten minutes, so it is still
/// in SHUTDOWN_POWEROFF when the host hook runs. oned-lite refuses to resume a VM in that state,
/// on every attempt (the three attempts take about three seconds, far less than the shutdown).
#[test]
fn a_refused_resume_is_retried_and_reported() -> Result<()> {
    let stack = Stack::start_with(StackOptions {
        oned_extra: "SIM = [ SHUTDOWN_DELAY_MS = 600000 ]\n".into(),
        ..StackOptions::default()
    })?;
    let hooks = install(&stack)?;
    let node = host(&stack, "node1")?;
    let slow = vm(&stack, "slow", Some("always"), node)?;
    wait_state(&stack, slow, "RUNNING")?;
    vm_action(&stack, "poweroff", slow)?;
    assert_eq!(vm_state(&stack, slow)?, "SHUTDOWN_POWEROFF");
    records(&stack, hooks.host_hook, 1)?;

    stack
        .client()
        .call("one.hostsim.reboot", vec![int(node), Value::Int(0)])?;

    let host_records = records(&stack, hooks.host_hook, 2)?;
    let record = &host_records[1];
    let out = stdout(record);
    let err = stderr(record);
    assert_eq!(result(record).code, 1, "{out}{err}");
    let refused = "resume failed: [one.vm.action] Error performing action \"resume\": \
                   This action is not available for state SHUTDOWN_POWEROFF [SHUTDOWN_POWEROFF]";
    let expected = [
        format!("autostart-host: host {node} (node1) is MONITORED; VMs {slow}"),
        format!("VM {slow} (slow): attempt 1 of 3: {refused}; retrying in 1000 ms"),
        format!("VM {slow} (slow): attempt 2 of 3: {refused}; retrying in 2000 ms"),
        format!("VM {slow} (slow): attempt 3 of 3: {refused}"),
        format!(
            "VM {slow} (slow): FAILED after 3 attempts: {}",
            refused.trim_end_matches(" [SHUTDOWN_POWEROFF]")
        ),
        "summary: 0 resumed, 0 skipped, 1 failed".to_string(),
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), expected, "{out}");
    // The diagnostics on stderr carry the same failures as key=value fields.
    assert_eq!(err.matches("resume attempt failed").count(), 2, "{err}");
    assert!(
        err.contains("giving up") && err.contains("vm=") && err.contains("attempts=3"),
        "{err}"
    );
    // The hook log shows the execution as failed.
    let log = stack.cli("onehook", &["log", "--error"])?;
    let table = String::from_utf8_lossy(&log.stdout);
    assert!(table.contains("ERROR"), "{table}");
    assert_eq!(vm_state(&stack, slow)?, "SHUTDOWN_POWEROFF");
    Ok(())
}
