//! Wire formats of the OpenNebula hook subsystem, without I/O.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
pub mod agent;
pub mod encoding;
pub mod event;
pub mod execution_uid;
pub mod hook;
pub mod hook_log;
pub mod keys;
pub mod mad;
pub mod replay;
pub mod retry;
pub mod states;
pub mod subjects;
pub mod template;
mod xml_read;
pub use xml_read::{NotWellFormed, check_xml_document, check_xml_fragment};
pub mod xml_tree;
pub mod xmlrpc;
