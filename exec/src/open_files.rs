//! The soft limit of open files a hook starts with.
//!
//! A process that holds many connections raises its soft `RLIMIT_NOFILE`, and every process it
//! starts would inherit the raised limit. A hook should start with the limit the operator gave
//! the daemon, not with one raised for the daemon's own sockets: programs that use `select(2)`
//! misbehave with descriptors past 1,024, and the lower limit bounds what a runaway hook can
//! hold. A child's limits are copied from its parent's when it is created, so the spawning
//! thread lowers the soft limit for the instant of the spawn ([`Lowered::to`]) and raises it
//! back when the guard is dropped. That is only sound where no other thread of the process opens
//! descriptors meanwhile (an `open` past the lowered limit would fail): the hook supervisor's
//! single-threaded loop. A daemon that raises its own limit does it with
//! [`raise_open_files_limit`] and hands the limit it replaced to the spawner.
#![allow(unsafe_code)]

use nix::libc;

fn get() -> std::io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which outlives the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(limit)
}

fn set(limit: &libc::rlimit) -> std::io::Result<()> {
    // SAFETY: setrlimit only reads the struct it is given, which outlives the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Raises the process's soft limit of open files to its hard limit, or to `cap` if that is
/// lower; returns the soft limit before and after when it changed.
pub fn raise_open_files_limit(cap: u64) -> std::io::Result<Option<(u64, u64)>> {
    let mut limit = get()?;
    let wanted = limit.rlim_max.min(cap);
    if limit.rlim_cur >= wanted {
        return Ok(None);
    }
    let before = limit.rlim_cur;
    limit.rlim_cur = wanted;
    set(&limit)?;
    Ok(Some((before, wanted)))
}

/// The process's soft limit of open files, lowered until this is dropped.
#[must_use = "the limit is raised back when the guard is dropped"]
pub(crate) struct Lowered {
    before: libc::rlimit,
}

impl Lowered {
    /// Lowers the soft limit to `soft`; `None` when it is at or below `soft` already (nothing to
    /// do) or cannot be changed (the child then inherits the current limit).
    pub(crate) fn to(soft: u64) -> Option<Lowered> {
        let before = get().ok()?;
        if before.rlim_cur <= soft {
            return None;
        }
        let lowered = libc::rlimit {
            rlim_cur: soft,
            rlim_max: before.rlim_max,
        };
        set(&lowered).ok().map(|()| Lowered { before })
    }
}

impl Drop for Lowered {
    fn drop(&mut self) {
        // The soft limit goes back to a value it had under the same hard limit, which the
        // kernel always allows.
        let _ = set(&self.before);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_lowered_for_the_guard_and_raised_back_after() {
        let start = get().expect("getrlimit");
        if start.rlim_cur < 2 {
            return;
        }
        let soft = start.rlim_cur - 1;
        {
            let _guard = Lowered::to(soft).expect("lowered");
            assert_eq!(get().expect("getrlimit").rlim_cur, soft);
        }
        assert_eq!(get().expect("getrlimit").rlim_cur, start.rlim_cur);
        assert!(Lowered::to(start.rlim_cur).is_none(), "nothing to lower");
        assert_eq!(get().expect("getrlimit").rlim_cur, start.rlim_cur);
    }
}
