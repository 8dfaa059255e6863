//! Wire formats of the OpenNebula hook subsystem, without I/O.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
pub mod xmlrpc;
pub mod agent;
pub mod keys;
pub mod mad;
pub mod replay;
pub mod encoding;
pub mod event;
pub mod hook_log;
pub mod retry;
mod xml_read;
pub mod template;
pub mod states;
pub mod hook;
pub mod xml_tree;
