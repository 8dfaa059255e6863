//! End-to-end tests: the real oned-lite, one_hm and onehem-server, driven over XML-RPC.

mod thin_path;
mod seed_examples;
mod execution;
mod flood;
mod no_loss;
mod remote;
