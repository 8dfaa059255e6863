//! docs/configuration.md describes every key onehem-server.conf accepts, and no other.

#[test]
fn every_accepted_key_is_documented_and_every_documented_key_accepted() {
    let accepted = onehem_server::config::accepted_keys().into_iter().collect();
    if let Err(e) = one_e2e::config_reference::compare("onehem-server.conf", &accepted) {
        panic!("{e}");
    }
}
