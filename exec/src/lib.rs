//! One hook process from spawn to reaping, shared by the HEM's local executor and
//! `onehem-agent`.
//!
//! The caller builds the command (program, `argv[0]`, arguments, environment: never a shell);
//! [`Process::spawn`] starts it in a new process group with its stdout and stderr piped, and
//! [`Process::supervise`] feeds its stdin, keeps the first `output_cap` bytes of each output,
//! and on timeout or cancel sends SIGTERM to the group, then SIGKILL to whatever is left of it
//! after the grace period. The result comes back once the main process is reaped and its
//! outputs are read (for at most `drain_after_exit` after it exited, so a background child that
//! holds the pipes open does not hold the result back).
//!
//! This crate depends only on tokio, nix and thiserror, so the agent that is deployed to every
//! host stays small.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod capture;
mod group;
mod main_process;
mod open_files;
mod process;
mod quick_start;
mod reaper;
mod signals;

pub use capture::Captured;
pub use group::kill_group_now;
pub use open_files::raise_open_files_limit;
pub use process::{
    Ending, FAILURE_CODE, Finished, Limits, Process, SpawnBatch, SpawnError, Timing,
};
pub use reaper::Reaper;
pub use signals::default_for_children;
