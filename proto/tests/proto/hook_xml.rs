//! The HOOK and HOOK_POOL documents of reference §4.1 and §4.2, built exactly and read
//! tolerantly.

use one_proto::hook::{
    Hook, HookParseError, HookType, Lock, pool_from_xml, pool_from_xml_lenient, pool_to_xml,
    validate_create,
};
use one_proto::template::Template;

fn vm_hook() -> Hook {
    let text = "NAME=hook-vm\nTYPE=state\nCOMMAND=vm-pending.rb\nARGUMENTS=\"$TEMPLATE pending\"\nON=CUSTOM\nRESOURCE=VM\nSTATE=PENDING\nLCM_STATE=LCM_INIT\n";
    validate_create(text, |_| None).unwrap().into_hook(3)
}

const LOG: &str = "<HOOKLOG><HOOK_EXECUTION_RECORD><HOOK_ID>3</HOOK_ID><EXECUTION_ID>0</EXECUTION_ID><TIMESTAMP>1727100638</TIMESTAMP><ARGUMENTS>PFZNPjxJRD4xMjwvSUQ+PC9WTT4= pending</ARGUMENTS><EXECUTION_RESULT><COMMAND>/var/lib/one/remotes/hooks/vm-pending.rb PFZNPjxJRD4xMjwvSUQ+PC9WTT4= pending</COMMAND><STDOUT>RXhlY3V0ZWQhCg==\n</STDOUT><STDERR></STDERR><CODE>0</CODE></EXECUTION_RESULT></HOOK_EXECUTION_RECORD></HOOKLOG>";

#[test]
fn hook_document_of_section_4_1() {
    let mut hook = vm_hook();
    hook.lock = Some(Lock {
        level: 1,
        owner: 0,
        time: 1727100000,
        req_id: 4711,
    });
    let xml = hook.to_xml(Some(LOG)).unwrap();
    assert_eq!(
        xml,
        format!(
            "<HOOK><ID>3</ID><NAME>hook-vm</NAME><TYPE>state</TYPE><LOCK><LOCKED>1</LOCKED><OWNER>0</OWNER><TIME>1727100000</TIME><REQ_ID>4711</REQ_ID></LOCK><TEMPLATE><ARGUMENTS><![CDATA[$TEMPLATE pending]]></ARGUMENTS><COMMAND><![CDATA[vm-pending.rb]]></COMMAND><LCM_STATE><![CDATA[LCM_INIT]]></LCM_STATE><REMOTE><![CDATA[NO]]></REMOTE><RESOURCE><![CDATA[VM]]></RESOURCE><STATE><![CDATA[PENDING]]></STATE></TEMPLATE>{LOG}</HOOK>"
        )
    );
    // Read back, the HOOKLOG child is ignored.
    let back = Hook::from_xml(&xml).unwrap();
    assert_eq!(back.id, 3);
    assert_eq!(back.name, "hook-vm");
    assert_eq!(back.hook_type, HookType::State);
    assert_eq!(back.lock, hook.lock);
    assert_eq!(
        back.template.to_xml().unwrap(),
        hook.template.to_xml().unwrap()
    );
    // Without a lock, no LOCK element; an empty HOOKLOG is passed through.
    let unlocked = vm_hook();
    let xml = unlocked.to_xml(Some("<HOOKLOG></HOOKLOG>")).unwrap();
    assert!(!xml.contains("<LOCK>"));
    assert!(xml.ends_with("</TEMPLATE><HOOKLOG></HOOKLOG></HOOK>"));
    assert_eq!(Hook::from_xml(&xml).unwrap().lock, None);
}

#[test]
fn pool_document_of_section_4_2() {
    let api = validate_create(
        "NAME=api-h\nTYPE=api\nCOMMAND=/usr/bin/echo\nCALL=one.vm.allocate",
        |_| None,
    )
    .unwrap()
    .into_hook(1);
    let vm = vm_hook();
    let xml = pool_to_xml(&[api.clone(), vm.clone()]).unwrap();
    assert!(xml.starts_with(
        "<HOOK_POOL><HOOK><ID>1</ID><NAME>api-h</NAME><TYPE>api</TYPE><TEMPLATE><CALL><![CDATA[one.vm.allocate]]></CALL><COMMAND><![CDATA[/usr/bin/echo]]></COMMAND><REMOTE><![CDATA[NO]]></REMOTE></TEMPLATE></HOOK><HOOK><ID>3</ID>"
    ));
    assert!(xml.ends_with("</HOOK></HOOK_POOL>"));
    let hooks = pool_from_xml(&xml).unwrap();
    assert_eq!(hooks.len(), 2);
    assert_eq!((hooks[0].id, hooks[1].id), (1, 3));
    assert_eq!(hooks[0].call(), Some("one.vm.allocate"));
    assert_eq!(pool_to_xml(&[]).unwrap(), "<HOOK_POOL></HOOK_POOL>");
    assert_eq!(pool_from_xml("<HOOK_POOL/>").unwrap(), vec![]);
}

#[test]
fn reading_is_tolerant() {
    // Any child order, escaped text or CDATA, whitespace between elements, extra children.
    let xml = "<HOOK>\n  <TEMPLATE>\n    <COMMAND>a &amp; b</COMMAND>\n    <REMOTE><![CDATA[YES]]></REMOTE>\n    <CALL>one.vm.deploy</CALL>\n  </TEMPLATE>\n  <TYPE><![CDATA[API]]></TYPE>\n  <NAME>n&lt;1</NAME>\n  <HOOKLOG/>\n  <ID> 9 </ID>\n  <UID>0</UID>\n</HOOK>";
    let h = Hook::from_xml(xml).unwrap();
    assert_eq!(
        (h.id, h.name.as_str(), h.hook_type),
        (9, "n<1", HookType::Api)
    );
    assert_eq!(
        (h.command(), h.remote(), h.call()),
        (Some("a & b"), true, Some("one.vm.deploy"))
    );
    // Names written by the XML form's rules; stored values are not trimmed on load.
    let h = Hook::from_xml("<HOOK><ID>1</ID><NAME>x</NAME><TYPE>state</TYPE><TEMPLATE><arguments> a </arguments><V><k>1</k></V></TEMPLATE></HOOK>").unwrap();
    assert_eq!(h.template.get("ARGUMENTS"), Some(" a "));
    assert_eq!(
        h.template.get_vector("V").unwrap(),
        &[("k".to_string(), "1".to_string())]
    );
    // A LOCK with LOCKED 0 is no lock; missing lock fields take oned's defaults.
    let h = Hook::from_xml("<HOOK><ID>1</ID><NAME>x</NAME><TYPE>api</TYPE><LOCK><LOCKED>0</LOCKED></LOCK><TEMPLATE/></HOOK>").unwrap();
    assert_eq!(h.lock, None);
    let h = Hook::from_xml("<HOOK><ID>1</ID><NAME>x</NAME><TYPE>api</TYPE><LOCK><LOCKED>2</LOCKED></LOCK><TEMPLATE/></HOOK>").unwrap();
    assert_eq!(
        h.lock,
        Some(Lock {
            level: 2,
            owner: -1,
            time: 0,
            req_id: -1
        })
    );
    assert_eq!(h.template, Template::new());
}

#[test]
fn unreadable_documents() {
    let cases: &[(&str, HookParseError)] = &[
        ("<HOOK><ID>1</ID>", HookParseError::Malformed(String::new())),
        (
            "<HOOKS/>",
            HookParseError::WrongRoot {
                expected: "HOOK",
                found: "HOOKS".into(),
            },
        ),
        (
            "<HOOK><NAME>x</NAME><TYPE>api</TYPE><TEMPLATE/></HOOK>",
            HookParseError::Missing {
                id: "?".into(),
                element: "ID",
            },
        ),
        (
            "<HOOK><ID>x1</ID><NAME>x</NAME><TYPE>api</TYPE><TEMPLATE/></HOOK>",
            HookParseError::Invalid {
                id: "x1".into(),
                element: "ID",
                value: "x1".into(),
            },
        ),
        (
            "<HOOK><ID>4</ID><TYPE>api</TYPE><TEMPLATE/></HOOK>",
            HookParseError::Missing {
                id: "4".into(),
                element: "NAME",
            },
        ),
        (
            "<HOOK><ID>4</ID><NAME>x</NAME><TYPE>both</TYPE><TEMPLATE/></HOOK>",
            HookParseError::Invalid {
                id: "4".into(),
                element: "TYPE",
                value: "both".into(),
            },
        ),
        (
            "<HOOK><ID>4</ID><NAME>x</NAME><TYPE>api</TYPE></HOOK>",
            HookParseError::Missing {
                id: "4".into(),
                element: "TEMPLATE",
            },
        ),
        (
            "<HOOK><ID>4</ID><NAME>x</NAME><TYPE>api</TYPE><LOCK><LOCKED>999</LOCKED></LOCK><TEMPLATE/></HOOK>",
            HookParseError::Invalid {
                id: "4".into(),
                element: "LOCKED",
                value: "999".into(),
            },
        ),
    ];
    for (xml, expected) in cases {
        let got = Hook::from_xml(xml).unwrap_err();
        match (expected, &got) {
            (HookParseError::Malformed(_), HookParseError::Malformed(_)) => {}
            _ => assert_eq!(&got, expected, "{xml}"),
        }
    }
    // One bad hook fails the strict pool reader; the lenient one keeps the others.
    let pool = "<HOOK_POOL><HOOK><ID>1</ID><NAME>a</NAME><TYPE>api</TYPE><TEMPLATE/></HOOK><HOOK><ID>2</ID><NAME>b</NAME><TYPE>odd</TYPE><TEMPLATE/></HOOK></HOOK_POOL>";
    assert!(matches!(
        pool_from_xml(pool),
        Err(HookParseError::Invalid {
            element: "TYPE",
            ..
        })
    ));
    let (hooks, errors) = pool_from_xml_lenient(pool).unwrap();
    assert_eq!((hooks.len(), hooks[0].id, errors.len()), (1, 1, 1));
    assert!(matches!(
        pool_from_xml("<HOOK/>"),
        Err(HookParseError::WrongRoot {
            expected: "HOOK_POOL",
            ..
        })
    ));
}

#[test]
fn names_and_values_that_xml_cannot_carry() {
    let mut hook = vm_hook();
    hook.name = "a&b<c".into();
    let xml = hook.to_xml(None).unwrap();
    assert!(xml.contains("<NAME>a&amp;b&lt;c</NAME>"));
    assert_eq!(Hook::from_xml(&xml).unwrap().name, "a&b<c");
    hook.name = "bell\u{7}".into();
    assert_eq!(
        hook.to_xml(None).unwrap_err().oned_message(),
        "Error transforming the Hook to XML."
    );
    let mut hook = vm_hook();
    hook.template.set("X", "a]]>b");
    assert!(hook.to_xml(None).is_err());
    assert!(pool_to_xml(&[hook]).is_err());
}
