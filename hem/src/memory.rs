//! Gives memory freed by large transient work back to the operating system.
//!
//! Loading a pool of many hooks parses a document of several megabytes into a tree of small
//! allocations that are all freed once the compact hook map is built. glibc keeps such freed
//! memory in its arenas, so without a trim the HEM would stay at its load-time peak (about
//! 40 MB more for 10,000 hooks) for its whole life.

/// Returns free heap memory of every arena to the kernel. Cheap enough to call after each pool
/// load; a no-op where the C library has no `malloc_trim`.
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
