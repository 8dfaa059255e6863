//! A short scheduler slice for the moment a hook process is created.
//!
//! A new process waits for a CPU like any other task; on a busy machine it lands behind a task
//! that still has most of its slice (1.4 ms here) to run, and the spawning thread, blocked until
//! the child has called `exec`, waits with it, which made the slowest spawns on a busy HEM
//! route take several milliseconds (BENCHMARKS.md, design measurements). Linux (6.12 and later) lets a fair task ask
//! for a shorter slice, which also lets it preempt a task with a longer one when it wakes up;
//! a child inherits its parent's slice. So the spawning thread takes the shortest slice just
//! for the spawn ([`QuickStart::enter`]), and once the child has called `exec` it gets the
//! thread's normal settings back ([`QuickStart::give_back`]), so the hook itself runs with the
//! default slice; the thread gets them back when the `QuickStart` is dropped. A thread that
//! starts several processes in a row holds the short slice across all of them and gets its own
//! settings back once (`SpawnBatch`). Older kernels ignore the request; a thread that is not a
//! fair task (real-time or deadline policy) is left alone.
#![allow(unsafe_code)]

use nix::libc;

/// `struct sched_attr`, first version (48 bytes), as `sched_setattr(2)` takes it.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

const ATTR_SIZE: u32 = std::mem::size_of::<SchedAttr>() as u32;
/// The shortest slice the kernel accepts for a fair task (0.1 ms).
const SHORT_SLICE_NS: u64 = 100_000;

fn get(tid: libc::pid_t) -> Option<SchedAttr> {
    let mut attr = SchedAttr::default();
    // SAFETY: `attr` is a writable `sched_attr` of the size passed; the kernel writes at most
    // that many bytes and does not keep the pointer.
    let rc = unsafe { libc::syscall(libc::SYS_sched_getattr, tid, &mut attr, ATTR_SIZE, 0) };
    (rc == 0).then_some(attr)
}

fn set(tid: libc::pid_t, attr: &SchedAttr) -> bool {
    let attr = SchedAttr {
        size: ATTR_SIZE,
        ..*attr
    };
    // SAFETY: `attr` is a valid `sched_attr` whose `size` field says how long it is; the kernel
    // only reads it during the call.
    unsafe { libc::syscall(libc::SYS_sched_setattr, tid, &attr, 0) == 0 }
}

/// The calling thread's settings while it spawns with a short slice.
pub(crate) struct QuickStart {
    normal: Option<SchedAttr>,
}

impl QuickStart {
    /// Gives the calling thread the shortest slice (a fair-policy thread only).
    pub(crate) fn enter() -> QuickStart {
        let fair = |a: &SchedAttr| {
            matches!(
                a.policy as i32,
                libc::SCHED_OTHER | libc::SCHED_BATCH | libc::SCHED_IDLE
            )
        };
        let short = |a: &SchedAttr| {
            let runtime = SHORT_SLICE_NS;
            set(0, &SchedAttr { runtime, ..*a })
        };
        QuickStart {
            normal: get(0).filter(fair).filter(short),
        }
    }

    /// Gives the thread's normal settings to `child` (started, past its `exec`); the thread
    /// keeps the short slice for its next spawn until this is dropped.
    pub(crate) fn give_back(&self, child: Option<libc::pid_t>) {
        // The child may already be gone, or be set-uid and out of reach; it then keeps the
        // short slice, which only makes it yield the CPU more readily.
        if let (Some(normal), Some(pid)) = (&self.normal, child) {
            let _ = set(pid, normal);
        }
    }
}

impl Drop for QuickStart {
    fn drop(&mut self) {
        if let Some(normal) = &self.normal {
            let _ = set(0, normal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `se.slice` of a task, in nanoseconds, from /proc (absent on kernels without EEVDF).
    fn slice_of(pid: u32) -> Option<u64> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/sched")).ok()?;
        let line = text.lines().find(|l| l.starts_with("se.slice"))?;
        line.split(':').nth(1)?.trim().parse().ok()
    }

    #[test]
    fn the_child_starts_with_the_short_slice_and_runs_with_the_normal_one() {
        let before = get(0).expect("sched_getattr of the calling thread");
        let quick = QuickStart::enter();
        let short = get(0).expect("sched_getattr").runtime == SHORT_SLICE_NS;
        // A child that stays alive until its stdin closes.
        let mut child = std::process::Command::new("cat")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("spawn cat");
        let at_start = slice_of(child.id());
        quick.give_back(i32::try_from(child.id()).ok());
        drop(quick);
        let after = slice_of(child.id());
        drop(child.stdin.take());
        child.wait().expect("wait");

        assert_eq!(get(0).expect("sched_getattr").runtime, before.runtime);
        if short && let (Some(at_start), Some(after)) = (at_start, after) {
            assert_eq!(at_start, SHORT_SLICE_NS, "inherited at fork");
            assert_ne!(after, SHORT_SLICE_NS, "given back after exec");
        } else {
            eprintln!("this kernel has no per-task slice; nothing to check");
        }
    }
}
