//! Local hooks run only from `hook_base_path` or a directory of `hook_allowed_paths`: a
//! COMMAND that escapes is refused with a failure record that says why, and never runs.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use one_e2e::stack::{Stack, StackOptions};

const WAIT: Duration = Duration::from_secs(30);

/// A hook script that leaves `marker` behind when it runs.
fn write_script(path: &Path, marker: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, format!("#!/bin/sh\ntouch '{}'\n", marker.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn pending_hook(stack: &Stack, name: &str, command: &str) -> Result<i64> {
    Ok(stack.client().hook_allocate(&format!(
        "NAME = {name}\nTYPE = state\nCOMMAND = \"{command}\"\nON = CUSTOM\nRESOURCE = VM\n\
         STATE = PENDING\nLCM_STATE = LCM_INIT\n"
    ))?)
}

#[test]
fn escaping_commands_are_refused_with_a_record() -> Result<()> {
    let root = tempfile::Builder::new().prefix("one-confine-").tempdir()?;
    let allowed = root.path().join("allowed");
    // Shares the allowed directory's name as a prefix: it must not pass for it.
    let evil = root.path().join("allowed-evil");
    fs::create_dir_all(&allowed)?;
    let stack = Stack::start_with(StackOptions {
        hook_allowed_paths: vec!["/bin".into(), allowed.clone()],
        ..StackOptions::default()
    })?;
    let marker = |name: &str| root.path().join(format!("ran-{name}"));
    let hook_parent = stack.hook_dir.parent().context("hook_dir has no parent")?;
    write_script(&hook_parent.join("escape.sh"), &marker("escape"))?;
    write_script(&evil.join("outside.sh"), &marker("outside"))?;
    write_script(&allowed.join("inside.sh"), &marker("inside"))?;
    stack.write_hook(
        "relative.sh",
        &format!("#!/bin/sh\ntouch '{}'\n", marker("relative").display()),
    )?;

    let escape = pending_hook(&stack, "escape", "../escape.sh")?;
    let outside_path = evil.join("outside.sh").display().to_string();
    let outside = pending_hook(&stack, "outside", &outside_path)?;
    let inside = pending_hook(
        &stack,
        "inside",
        &allowed.join("inside.sh").display().to_string(),
    )?;
    let relative = pending_hook(&stack, "relative", "relative.sh")?;
    stack.vm_allocate("NAME = t\nCPU = 1\nMEMORY = 2\n")?;

    let result = |hook: i64| -> Result<one_proto::hook_log::ExecutionResult> {
        let records = stack.wait_records(hook, 1, WAIT)?;
        records[0].result.clone().context("no result")
    };
    for (hook, name) in [(inside, "inside"), (relative, "relative")] {
        let r = result(hook)?;
        assert_eq!(r.code, 0, "{name}: {r:?}");
        assert!(marker(name).exists(), "{name} did not run");
    }

    let r = result(escape)?;
    assert_eq!(r.code, 255, "{r:?}");
    assert_eq!(
        r.command,
        format!("{}/../escape.sh", stack.hook_dir.display())
    );
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(
        stderr,
        format!(
            "Internal error COMMAND ../escape.sh refused: a relative COMMAND must stay below \
             hook_base_path {}, and '..' is not allowed in it",
            stack.hook_dir.display()
        )
    );

    let r = result(outside)?;
    assert_eq!(r.code, 255, "{r:?}");
    assert_eq!(r.command, outside_path);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(
        stderr.starts_with(&format!("Internal error COMMAND {outside_path} refused: ")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "listed: /bin, {}); add its directory to hook_allowed_paths to run it",
            allowed.display()
        )),
        "{stderr}"
    );

    // Both records were written without a spawn, so nothing can still be on its way.
    assert!(!marker("escape").exists(), "../escape.sh ran");
    assert!(!marker("outside").exists(), "{outside_path} ran");
    Ok(())
}
