//! Gives memory freed after a burst back to the operating system.
//!
//! The driver's own allocations go through mimalloc (`main.rs`), which returns pages it no
//! longer uses by itself; SQLite and libzmq allocate with the C library's malloc, and glibc
//! keeps what they free in per-thread arenas. After a burst the journal's page cache is full
//! and those arenas are large, so without a release the driver would stay near its peak. The
//! journal writer releases both once it has gone idle after work.

/// Returns the free memory of glibc's arenas to the kernel. Takes milliseconds after a large
/// burst, so it is called only when the driver is idle; a no-op where the C library has no
/// `malloc_trim`.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks glibc's own allocator state under its locks and takes
        // no pointer from us; it is safe to call from any thread at any time.
        #[allow(unsafe_code)]
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
