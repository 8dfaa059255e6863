//! Test fixtures: real daemons in temp dirs on their own loopback addresses.

pub mod config_reference;
pub mod metrics;
pub mod nats;
pub mod sshd;
pub mod stack;
