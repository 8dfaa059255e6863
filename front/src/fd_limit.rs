//! File descriptors: every connection holds one, so the connection cap must fit the process's
//! limit, or accepting would fail with EMFILE and take the database's descriptors too.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Descriptors kept for everything but connections: the database and its WAL, the driver's
/// pipes, the listener, the runtime, a few connections being shed.
pub const RESERVED: u64 = 64;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; the soft limit then in effect, `None`
/// when it cannot be read.
pub fn raise_to_hard_limit() -> Option<u64> {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the file descriptor limit");
            return None;
        }
    };
    if soft >= hard {
        return Some(soft);
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => Some(hard),
        Err(e) => {
            tracing::warn!(error = %e, soft, hard, "cannot raise the file descriptor limit");
            Some(soft)
        }
    }
}

/// The connection cap that fits `limit` descriptors (at least one connection).
pub fn fit_cap(max_conn: usize, limit: Option<u64>) -> usize {
    match limit {
        Some(limit) => {
            let room = limit.saturating_sub(RESERVED).max(1);
            max_conn.min(usize::try_from(room).unwrap_or(usize::MAX))
        }
        None => max_conn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_fits_the_limit() {
        assert_eq!(fit_cap(512, Some(1024)), 512);
        assert_eq!(fit_cap(2000, Some(1024)), 1024 - RESERVED as usize);
        assert_eq!(fit_cap(2000, Some(10)), 1);
        assert_eq!(fit_cap(2000, None), 2000);
    }

    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_one() {
        let now = raise_to_hard_limit().unwrap();
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!((now, soft), (hard, hard));
    }
}
