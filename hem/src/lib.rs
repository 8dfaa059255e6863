//! onehem-server: the Hook Execution Manager. `main` parses flags and calls `run`.

pub mod exec;
pub mod remote;
