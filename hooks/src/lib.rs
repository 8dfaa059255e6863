//! KVM autostart across host reboots, as two state hooks (`hooks/autostart/host` and
//! `hooks/autostart/vm`) that run `one-autostart host|vm`.
//!
//! A VM whose user template says `AUTOSTART = yes` (or `true`) is resumed when its host comes
//! back from a reboot if it was running before; `AUTOSTART = always` resumes it whatever its
//! state was. [`decision`] says which hook resumes which VM and why; [`resume`] reads the VM,
//! decides and resumes it with bounded retries; [`run`] is each hook's entry point.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod decision;
pub mod event_journal;
pub mod facts;
pub mod front_api;
pub mod resume;
pub mod run;
pub mod xml_tree;

#[cfg(test)]
mod samples;

pub use decision::Decision;
pub use facts::{Autostart, HostFacts, VmFacts};
pub use resume::{Outcome, RetryPolicy, VmApi};
pub use run::{Mode, Plan, RunError, Summary, execute, plan, run};
