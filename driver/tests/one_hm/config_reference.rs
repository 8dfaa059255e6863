//! docs/configuration.md describes every one_hm flag, long and short, and no other.

use clap::CommandFactory as _;

#[test]
fn every_flag_is_documented_and_every_documented_flag_exists() {
    let mut command = one_hm::config::Cli::command();
    command.build();
    let mut accepted = std::collections::BTreeSet::new();
    for arg in command.get_arguments() {
        if let Some(long) = arg.get_long() {
            accepted.insert(format!("--{long}"));
        }
        if let Some(short) = arg.get_short() {
            accepted.insert(format!("-{short}"));
        }
    }
    assert!(accepted.contains("--publisher-port"), "{accepted:?}");
    if let Err(e) = one_e2e::config_reference::compare("one_hm", &accepted) {
        panic!("{e}");
    }
}
