//! Library part of the binary; `main` only parses flags and calls `run`.
