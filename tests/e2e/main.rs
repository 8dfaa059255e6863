//! End-to-end tests: the real oned-lite, one_hm and onehem-server, driven over XML-RPC.

mod bus_security;
mod chaos;
mod confinement;
mod curve;
mod distributed;
mod distributed_crash;
mod execution;
mod file_modes;
mod flood;
mod forged_results;
mod group_commit;
mod logs;
mod metrics;
mod nats_cluster;
mod no_loss;
mod remote;
mod seed_examples;
mod service_notify;
mod supervisor;
mod thin_path;
mod wal_size;
