//! Property tests of hook validation and the hook documents: no input makes them panic, every
//! created hook is loadable and survives its XML round trip, every accepted update can be
//! stored.

use one_proto::hook::{
    Hook, UpdateMode, pool_from_xml, pool_from_xml_lenient, pool_to_xml, validate_create,
    validate_update,
};
use one_proto::template::{AttrValue, Template};
use proptest::prelude::*;

/// Lines of hook templates, valid and invalid, to combine.
fn template_line() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "NAME=h",
        "NAME=\"a b\"",
        "NAME=\"x/y\"",
        "NAME=",
        "TYPE=api",
        "TYPE=STATE",
        "TYPE=state",
        "TYPE=x",
        "COMMAND=/bin/true",
        "COMMAND=run.sh",
        "COMMAND=",
        "CALL=one.vm.allocate",
        "CALL=one.vm.info",
        "CALL=one.internal.vmmonitor",
        "CALL=bogus",
        "RESOURCE=VM",
        "RESOURCE=HOST",
        "RESOURCE=IMAGE",
        "RESOURCE=NET",
        "RESOURCE=VNET",
        "ON=PROLOG",
        "ON=custom",
        "ON=bogus",
        "STATE=ACTIVE",
        "STATE=pending",
        "STATE=ERROR",
        "STATE=READY",
        "STATE=used_pers",
        "STATE=MONITORED",
        "STATE=ready",
        "LCM_STATE=RUNNING",
        "LCM_STATE=lcm_init",
        "REMOTE=yes",
        "REMOTE=no",
        "ARGUMENTS=\"$TEMPLATE x\"",
        "ARGUMENTS=\\$API",
        "TIMEOUT=5",
        "TIMEOUT=0",
        "TIMEOUT=-5",
        "TIMEOUT=abc",
        "REMOTE=maybe",
        "REMOTE=YES",
        "X=[A=1,b=\"2\"]",
        "V=[]",
        "D=\"multi\nline\"",
        "E=\"x\ny]]>\"",
        "W=[1A=x]",
        "A=",
        "# comment",
    ])
    .prop_map(str::to_owned)
}

/// Mostly plausible hook templates: NAME, TYPE and COMMAND usually valid, then a mix of
/// type-specific and unrelated lines.
fn template_text() -> impl Strategy<Value = String> {
    let pick = |valid: Vec<&'static str>, invalid: Vec<&'static str>| {
        prop_oneof![9 => prop::sample::select(valid), 1 => prop::sample::select(invalid)]
            .prop_map(str::to_owned)
    };
    let name = pick(
        vec!["NAME=h", "NAME=\"a b\"", "NAME=hook-1"],
        vec!["NAME=\"x/y\"", "NAME=", ""],
    );
    let kind = pick(
        vec!["TYPE=api", "TYPE=STATE", "TYPE=state"],
        vec!["TYPE=x", ""],
    );
    let command = pick(
        vec!["COMMAND=/bin/true", "COMMAND=\"run.sh\"\nCOMMAND=other"],
        vec!["COMMAND=", ""],
    );
    let specific = pick(
        vec![
            "CALL=one.vm.allocate",
            "CALL=one.internal.vmmonitor",
            "RESOURCE=VM\nON=PROLOG",
            "RESOURCE=VM\nON=custom\nSTATE=pending\nLCM_STATE=lcm_init",
            "RESOURCE=HOST\nSTATE=monitored",
            "RESOURCE=IMAGE\nSTATE=used_pers",
            "RESOURCE=NET\nSTATE=LOCK_CREATE",
        ],
        vec![
            "CALL=one.vm.info",
            "RESOURCE=VNET",
            "RESOURCE=VM\nON=bogus",
            "RESOURCE=NET\nSTATE=ready",
            "",
        ],
    );
    (
        name,
        kind,
        command,
        specific,
        prop::collection::vec(template_line(), 0..6),
    )
        .prop_map(|(n, k, c, s, extra)| [vec![n, k, c, s], extra].concat().join("\n"))
}

fn some_hooks() -> Vec<Hook> {
    [
        "NAME=a\nTYPE=api\nCOMMAND=c\nCALL=one.vm.allocate",
        "NAME=v\nTYPE=state\nCOMMAND=c\nRESOURCE=VM\nON=RUNNING",
        "NAME=h\nTYPE=state\nCOMMAND=c\nRESOURCE=HOST\nSTATE=ERROR",
        "NAME=i\nTYPE=state\nCOMMAND=c\nRESOURCE=IMAGE\nSTATE=READY",
        "NAME=n\nTYPE=state\nCOMMAND=c\nRESOURCE=NET\nSTATE=READY",
    ]
    .iter()
    .enumerate()
    .map(|(i, t)| validate_create(t, |_| None).unwrap().into_hook(i as i64))
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn created_hooks_load_and_round_trip(text in template_text(), id in 0i64..1000) {
        if let Ok(new) = validate_create(&text, |_| None) {
            let hook = new.into_hook(id);
            prop_assert_eq!(hook.check_loadable(), Ok(()), "created from {:?}", text);
            prop_assert!(hook.template.contains("REMOTE"));
            let xml = hook.to_xml(None).unwrap();
            let back = Hook::from_xml(&xml).unwrap();
            // Reloading drops empty vectors (stored as empty elements), as oned's does.
            let without_empty_vectors = Template::from_attributes(
                hook.template
                    .attributes()
                    .iter()
                    .filter(|a| !matches!(&a.value, AttrValue::Vector(p) if p.is_empty()))
                    .cloned()
                    .collect(),
            );
            prop_assert_eq!(back.template.to_xml().unwrap(), without_empty_vectors.to_xml().unwrap());
            prop_assert_eq!(Hook::from_xml(&back.to_xml(None).unwrap()).unwrap(), back.clone());
            prop_assert_eq!((back.id, &back.name, back.hook_type), (hook.id, &hook.name, hook.hook_type));
            let pool = pool_from_xml(&pool_to_xml(&[hook.clone(), back]).unwrap()).unwrap();
            prop_assert_eq!(pool.len(), 2);
        }
    }

    #[test]
    fn accepted_updates_can_be_stored(text in template_text(), which in 0usize..5, merge in any::<bool>()) {
        let hooks = some_hooks();
        let hook = &hooks[which];
        let mode = if merge { UpdateMode::Merge } else { UpdateMode::Replace };
        if let Ok(t) = validate_update(hook, &text, mode) {
            prop_assert!(t.get("COMMAND").is_some_and(|c| !c.is_empty()));
            let updated = Hook { template: t, ..hook.clone() };
            prop_assert!(updated.to_xml(None).is_ok());
            prop_assert_eq!(updated.check_run_settings(), Ok(()));
        }
    }

    #[test]
    fn validation_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300), s in "\\PC{0,300}", which in 0usize..5) {
        let hooks = some_hooks();
        let lossy = String::from_utf8_lossy(&bytes);
        for input in [lossy.as_ref(), s.as_str()] {
            let _ = validate_create(input, |_| Some(1));
            let _ = validate_create(input, |_| None);
            let _ = validate_update(&hooks[which], input, UpdateMode::Replace);
            let _ = validate_update(&hooks[which], input, UpdateMode::Merge);
            let _ = one_proto::hook::validate_name(input);
        }
    }

    #[test]
    fn documents_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300), s in "\\PC{0,300}") {
        let lossy = String::from_utf8_lossy(&bytes);
        for input in [lossy.as_ref(), s.as_str()] {
            let _ = Hook::from_xml(input);
            let _ = pool_from_xml(input);
            let _ = pool_from_xml_lenient(input);
        }
    }

    /// Damaged versions of a real document: deleted, inserted and replaced characters.
    #[test]
    fn damaged_documents_never_panic(edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<char>()), 1..6)) {
        let mut hook = some_hooks().remove(1);
        hook.lock = Some(one_proto::hook::Lock { level: 1, owner: 0, time: 1, req_id: 2 });
        let mut chars: Vec<char> = pool_to_xml(&[hook]).unwrap().chars().collect();
        for (at, op, c) in edits {
            let i = at.index(chars.len());
            match op {
                0 => { chars.remove(i); }
                1 => chars.insert(i, c),
                _ => chars[i] = c,
            }
        }
        let damaged: String = chars.into_iter().collect();
        let _ = pool_from_xml(&damaged);
        let _ = pool_from_xml_lenient(&damaged);
        let _ = Hook::from_xml(damaged.trim_start_matches("<HOOK_POOL>"));
    }
}
