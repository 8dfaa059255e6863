//! The simulated cloud: hosts, VMs and images.

/// Tables of the simulated cloud, applied by `db` in its migration list.
pub const SCHEMA: &str = "";
