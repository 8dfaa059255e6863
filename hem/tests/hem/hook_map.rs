//! Hooks are indexed under the key `one_proto::keys::hook_key` gives them, and the keys the
//! driver publishes find them.

use one_proto::event::{HookMessage, ObjectKind, StateEvent};
use one_proto::hook::{Hook, HookType};
use one_proto::keys::{event_keys, parse_key, with_seq};
use onehem_server::hook_map::{HookMap, HookSpec};

fn hook(id: i64, template: &str) -> Hook {
    let xml = format!(
        "<HOOK><ID>{id}</ID><NAME>h{id}</NAME><TYPE>state</TYPE><TEMPLATE>{template}\
         <COMMAND>/bin/true</COMMAND></TEMPLATE></HOOK>"
    );
    Hook::from_xml(&xml).unwrap()
}

/// The hook ids the HEM finds for a state event, from its published `EVENT STATE` key.
fn matches(map: &HookMap, object: ObjectKind, state: &str, lcm: Option<&str>) -> Vec<i64> {
    let xml = HookMessage::State(StateEvent {
        object,
        state: state.into(),
        lcm_state: lcm.map(str::to_string),
        resource_id: 3,
        service_id: None,
        remote_host: Some("node1".into()),
        body: "<HOST><ID>3</ID></HOST>".into(),
    })
    .to_xml();
    let keys = event_keys(&xml).unwrap();
    let state_key = keys.iter().find(|k| k.starts_with("EVENT STATE ")).unwrap();
    let sequenced = with_seq(state_key, 7);
    let parsed = parse_key(&sequenced);
    let kind = parsed.kind.as_deref().and_then(HookType::from_name);
    map.lookup(kind.unwrap(), parsed.key.as_deref().unwrap())
        .to_vec()
}

#[test]
fn a_host_hook_with_a_stray_lcm_state_still_fires() {
    // An update can leave LCM_STATE in a HOST hook's template; the reference then never runs it.
    let stray = hook(
        1,
        "<RESOURCE>HOST</RESOURCE><STATE>ERROR</STATE><LCM_STATE>RUNNING</LCM_STATE>",
    );
    let plain = hook(2, "<RESOURCE>HOST</RESOURCE><STATE>ERROR</STATE>");
    let vm = hook(
        3,
        "<RESOURCE>VM</RESOURCE><STATE>ACTIVE</STATE><LCM_STATE>RUNNING</LCM_STATE>",
    );
    let specs: Vec<HookSpec> = [&stray, &plain, &vm]
        .into_iter()
        .map(|h| HookSpec::from_hook(h).unwrap())
        .collect();
    assert_eq!(specs[0].key, "HOST/ERROR/");
    let map = HookMap::from_specs(specs);
    assert_eq!(matches(&map, ObjectKind::Host, "ERROR", None), [1, 2]);
    assert_eq!(
        matches(&map, ObjectKind::Vm, "ACTIVE", Some("RUNNING")),
        [3]
    );
    assert!(matches(&map, ObjectKind::Vm, "ACTIVE", Some("BOOT")).is_empty());
}

#[test]
fn an_api_hook_without_call_is_refused() {
    let xml = "<HOOK><ID>4</ID><NAME>a</NAME><TYPE>api</TYPE><TEMPLATE>\
               <COMMAND>/bin/true</COMMAND></TEMPLATE></HOOK>";
    let err = HookSpec::from_hook(&Hook::from_xml(xml).unwrap()).unwrap_err();
    assert!(err.contains("has no CALL"), "{err}");
}

#[test]
fn a_hook_with_an_invalid_timeout_or_remote_is_not_loaded() {
    for (template, error) in [
        ("<TIMEOUT>-5</TIMEOUT>", "Invalid TIMEOUT: -5."),
        ("<TIMEOUT>abc</TIMEOUT>", "Invalid TIMEOUT: abc."),
        ("<REMOTE>maybe</REMOTE>", "Invalid REMOTE: maybe."),
    ] {
        let h = hook(
            5,
            &format!("<RESOURCE>HOST</RESOURCE><STATE>ERROR</STATE>{template}"),
        );
        let err = HookSpec::from_hook(&h).unwrap_err();
        assert!(err.starts_with(&format!("Hook 5: {error}")), "{err}");
    }
    let h = hook(
        6,
        "<RESOURCE>HOST</RESOURCE><STATE>ERROR</STATE><TIMEOUT>30</TIMEOUT><REMOTE>yes</REMOTE>",
    );
    let spec = HookSpec::from_hook(&h).unwrap();
    assert_eq!((spec.timeout_secs, spec.remote), (Some(30), true));
}
