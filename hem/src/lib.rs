//! onehem-server: the Hook Execution Manager. `main` parses flags and calls `run`.

pub mod config;
pub mod exec;
pub mod local_exec;
pub mod remote;
