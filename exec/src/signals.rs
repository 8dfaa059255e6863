//! Signals a hook starts with.
//!
//! A signal a process ignores stays ignored across `exec`, so a daemon started under `nohup`
//! (SIGHUP) or as a shell's background job (SIGINT, SIGQUIT) would hand that on to every hook it
//! runs, and a hook that relies on those signals (a `timeout`, a shell trap, a service it
//! restarts) would behave unlike the same hook run by hand. A handled signal is reset to its
//! default by `exec`; so [`default_for_children`] turns each inherited ignore into a handler that
//! does nothing: the spawning process still shrugs the signal off, and its children start with
//! the default. An inherited ignore of SIGCHLD would also have the kernel reap the spawner's
//! children before anyone waits for them; a handler ends that too. SIGPIPE is left alone: Rust
//! ignores it in every program and resets it in every child it spawns.
#![allow(unsafe_code)]

use nix::libc;

/// The first signal number past the real-time ones.
const NSIG: libc::c_int = 65;

extern "C" fn shrug(_: libc::c_int) {}

/// Gives every signal this process ignores (SIGPIPE aside) a handler that does nothing, so
/// that processes it spawns from then on start with the default; returns the signals changed.
/// Call it before other threads start.
pub fn default_for_children() -> Vec<libc::c_int> {
    let mut changed = Vec::new();
    for signal in 1..NSIG {
        if signal == libc::SIGPIPE || signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        // SAFETY: a zeroed `sigaction` is a valid value for the kernel to overwrite.
        let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: a null new action only reads the current one into `current`, which outlives
        // the call. Numbers the C library reserves fail with EINVAL and are skipped.
        if unsafe { libc::sigaction(signal, std::ptr::null(), &mut current) } != 0
            || current.sa_sigaction != libc::SIG_IGN
        {
            continue;
        }
        // SAFETY: as above; `sa_mask` is emptied by `sigemptyset` before use.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = shrug as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        // SAFETY: `action` is fully initialised, `shrug` is async-signal-safe (it does nothing)
        // and lives for the whole program.
        let set = unsafe {
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if set == 0 {
            changed.push(signal);
        }
    }
    changed
}
