//! The HEM's tests, one binary: configuration, ingest, scheduling, local and remote execution,
//! the state DB, crashes and the hook supervisor, against fake or real peers. `front_end.rs`
//! stays a binary of its own because it changes the process environment.

mod binary;
mod config;
mod config_reference;
mod crash;
mod credentials;
mod execution;
mod fake_cloud;
mod hook_map;
mod ingest;
mod local_executor;
mod memory;
mod reference_driver;
mod remote_agent;
mod remote_confinement;
mod remote_failures;
mod remote_fleet;
mod remote_placement;
mod remote_support;
mod result_sender;
mod scheduler;
mod server;
mod state_db;
mod supervisor;
mod sync_hooks;
