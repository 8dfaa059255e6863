//! Test fixtures: real daemons in temp dirs on free ports.

pub mod sshd;
