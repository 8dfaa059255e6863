//! onehem-server: the Hook Execution Manager. `main` parses flags and calls `run`.

pub mod bell;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod distributed;
pub mod execution;
pub mod executor;
pub mod front_end;
pub mod hook_map;
pub mod hook_paths;
pub mod hook_source;
pub mod ingest;
pub mod journal;
pub mod local_executor;
pub mod logging;
pub mod matcher;
pub mod memory;
pub mod metrics;
pub mod remote;
pub mod result_sender;
pub mod resync;
pub mod runner;
pub mod scheduler;
pub mod scrape;
pub mod start_log;
pub mod state_db;
pub mod stop;
pub mod subscriber;
pub mod supervisor;
pub mod sync_command;
pub mod uids;

pub use daemon::{run, run_with_status};
