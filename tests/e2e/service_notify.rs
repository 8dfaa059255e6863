//! systemd's readiness protocol against the real daemons: started with `NOTIFY_SOCKET` naming a
//! datagram socket this test holds, oned-lite and onehem-server send `READY=1` once they serve
//! and `STOPPING=1` when asked to stop, as a `Type=notify` unit expects.

use std::ffi::OsStr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use one_e2e::stack::{Stack, StackOptions, wait_for};

/// The next notification on `socket`; an error after a generous wait (a loaded CI machine
/// starts the daemons slowly).
fn next_notification(socket: &UnixDatagram, what: &str) -> Result<String> {
    socket.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut buf = [0u8; 512];
    let n = socket
        .recv(&mut buf)
        .with_context(|| format!("no notification while waiting for {what}"))?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// A stack of oned-lite alone, and a datagram socket `name` in its directory.
fn stack_and_socket(name: &str) -> Result<(Stack, PathBuf, UnixDatagram)> {
    let stack = Stack::start_with(StackOptions {
        hem: false,
        ..StackOptions::default()
    })?;
    let path = stack.dir.path().join(name);
    let socket =
        UnixDatagram::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    Ok((stack, path, socket))
}

#[test]
fn oned_lite_notifies_ready_once_it_serves_and_stopping_on_sigterm() -> Result<()> {
    let (mut stack, path, socket) = stack_and_socket("oned-notify.sock")?;
    stack.kill_oned()?;
    stack.start_oned_with_env(&[("NOTIFY_SOCKET", path.as_os_str())])?;

    ensure!(next_notification(&socket, "READY=1")? == "READY=1");
    // Ready means serving: an API call answers.
    let pool = stack
        .client()
        .hookpool_info()
        .context("hook pool after READY=1")?;
    ensure!(pool.contains("HOOK_POOL"), "unexpected answer: {pool}");

    stack.stop_oned()?;
    ensure!(next_notification(&socket, "STOPPING=1")? == "STOPPING=1");
    Ok(())
}

#[test]
fn onehem_server_notifies_ready_after_loading_the_hooks_and_stopping_on_sigterm() -> Result<()> {
    let (mut stack, path, socket) = stack_and_socket("hem-notify.sock")?;
    stack.start_hem_at_with_env(0, &[("NOTIFY_SOCKET", OsStr::new(&path))])?;

    ensure!(next_notification(&socket, "READY=1")? == "READY=1");
    // The HEM says it is ready only after its hook pool is loaded.
    let log = stack.tail_log(&Stack::hem_log(0));
    ensure!(
        log.contains("Hooks successfully loaded"),
        "READY=1 before the hooks were loaded:\n{log}"
    );

    let pid = stack.hem_pid().context("the HEM is running")?;
    stack.stop_hem_at(0)?;
    ensure!(next_notification(&socket, "STOPPING=1")? == "STOPPING=1");
    wait_for("the HEM to exit", Duration::from_secs(10), || {
        (!Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    })?;
    Ok(())
}
