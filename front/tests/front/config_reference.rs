//! docs/configuration.md describes every oned.conf key oned-lite reads, and no other.

#[test]
fn every_oned_conf_key_read_is_documented_and_every_documented_key_read() {
    let accepted = oned_lite::config::KEYS
        .iter()
        .map(|k| k.to_string())
        .collect();
    if let Err(e) = one_e2e::config_reference::compare("oned.conf", &accepted) {
        panic!("{e}");
    }
}
