//! The daemons' logs: plain text without colour codes when written to files, JSON lines that a
//! JSON parser nobody here wrote accepts, and a log file reopened at its path on SIGHUP, as
//! logrotate's `postrotate` would ask.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use one_e2e::stack::{Stack, StackOptions, python, wait_for};

/// Runs one hook end to end, so the front-end, the driver and the HEM have all logged; returns
/// the hook's id.
fn run_a_hook(stack: &Stack) -> Result<i64> {
    let hook = stack.client().hook_allocate(
        "NAME = logs\nCOMMAND = \"/bin/true\"\nTYPE = api\nCALL = \"one.vm.allocate\"\n",
    )?;
    stack.vm_allocate("NAME = m\nCPU = 1\nMEMORY = 2\n")?;
    stack.wait_records(hook, 1, Duration::from_secs(60))?;
    Ok(hook)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn oned_log_conf(stack_dir: &Path, format: &str) -> String {
    format!(
        "LOG = [ SYSTEM = \"file\", DEBUG_LEVEL = 3, FORMAT = \"{format}\", FILE = \"{}\" ]\n",
        stack_dir.join("oned-file.log").display()
    )
}

#[test]
fn log_files_and_redirected_stderr_hold_no_colour_codes() -> Result<()> {
    let stack = Stack::start_with(StackOptions {
        hem_log_file: true,
        // A key of OpenNebula's oned.conf that oned-lite does not read.
        oned_extra: "VNC_PORTS = [ START = 5900 ]\n".into(),
        ..StackOptions::default()
    })?;
    run_a_hook(&stack)?;
    // oned-lite's and the HEM's stderr (with the driver's lines in oned-lite's), and the
    // HEM's own log file.
    for path in [
        stack.log_path("oned"),
        stack.log_path("hem"),
        stack.hem_log_file(0),
    ] {
        let bytes = read(&path)?;
        ensure!(!bytes.is_empty(), "{} is empty", path.display());
        ensure!(
            !bytes.contains(&0x1b),
            "{} holds an ESC byte:\n{}",
            path.display(),
            String::from_utf8_lossy(&bytes)
        );
    }
    // The unknown key is warned about by name.
    let oned = String::from_utf8(read(&stack.log_path("oned"))?)?;
    ensure!(
        oned.lines()
            .any(|l| l.contains(" WARN ") && l.contains("key=VNC_PORTS")),
        "no warning about VNC_PORTS in:\n{oned}"
    );
    Ok(())
}

#[test]
fn json_lines_parse_with_pythons_json_module() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let stack = Stack::start_with(StackOptions {
        hem_log_file: true,
        oned_extra: oned_log_conf(dir.path(), "json"),
        hem_extra: "log_format: json\n".into(),
        ..StackOptions::default()
    })?;
    run_a_hook(&stack)?;
    let files = [dir.path().join("oned-file.log"), stack.hem_log_file(0)];
    let check = "import json, sys\n\
        for name in sys.argv[1:]:\n\
        \x20   lines = open(name, encoding='utf-8').read().splitlines()\n\
        \x20   assert lines, name + ' is empty'\n\
        \x20   for line in lines:\n\
        \x20       record = json.loads(line)\n\
        \x20       assert isinstance(record, dict), line\n\
        \x20       assert record['level'] in ('ERROR', 'WARN', 'INFO', 'DEBUG', 'TRACE'), line\n\
        \x20       assert 'timestamp' in record and 'message' in record, line\n\
        \x20   print(name, len(lines))\n";
    let out = Command::new(python()?)
        .arg("-c")
        .arg(check)
        .args(&files)
        .output()?;
    ensure!(
        out.status.success(),
        "python's json module refused a line: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The driver's lines reach oned-lite's log, each re-logged as one JSON object.
    let oned = String::from_utf8(read(&files[0])?)?;
    ensure!(
        oned.contains("\"target\":\"hm_mad\""),
        "no driver line in:\n{oned}"
    );
    Ok(())
}

/// Renames `path`, sends SIGHUP to `pid`, and waits until a new file at `path` says it was
/// reopened; the renamed file keeps what was written before.
fn rotate(path: &Path, pid: u32) -> Result<()> {
    let before = std::fs::read_to_string(path)?;
    ensure!(
        !before.is_empty(),
        "{} is empty before the rotation",
        path.display()
    );
    let rotated = path.with_extension("log.1");
    std::fs::rename(path, &rotated)?;
    let status = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()?;
    ensure!(status.success(), "kill -HUP {pid} failed");
    wait_for(
        "the log file to be reopened at its path",
        Duration::from_secs(20),
        || {
            std::fs::read_to_string(path)
                .ok()
                .filter(|t| t.contains("log file reopened"))
        },
    )?;
    let old = std::fs::read_to_string(&rotated)?;
    ensure!(
        old.starts_with(&before) && !old.contains("log file reopened"),
        "the rotated file changed unexpectedly:\n{old}"
    );
    Ok(())
}

#[test]
fn sighup_reopens_the_log_files_of_oned_lite_and_the_hem() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let stack = Stack::start_with(StackOptions {
        hem_log_file: true,
        oned_extra: oned_log_conf(dir.path(), "text"),
        ..StackOptions::default()
    })?;
    let hook = run_a_hook(&stack)?;
    let oned_log = dir.path().join("oned-file.log");
    rotate(
        &oned_log,
        stack.oned_pid().context("oned-lite is not running")?,
    )?;
    rotate(
        &stack.hem_log_file(0),
        stack.hem_pid().context("the HEM is not running")?,
    )?;
    // Both daemons live on: the stack still runs hooks end to end.
    stack.vm_allocate("NAME = n\nCPU = 1\nMEMORY = 2\n")?;
    stack.wait_records(hook, 2, Duration::from_secs(60))?;
    Ok(())
}
