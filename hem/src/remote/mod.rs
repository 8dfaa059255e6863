//! Remote execution on the hypervisor hosts (being written).
