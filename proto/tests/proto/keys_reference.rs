//! Event keys against the reference's examples (§4.4, §4.5, §5.3, §5.4).

use one_proto::keys::{KeyError, event_keys, parse_key, with_seq};

const API_ALLOCATE: &str = "<HOOK_MESSAGE><HOOK_TYPE>API</HOOK_TYPE><CALL>one.hook.allocate</CALL><CALL_INFO><RESULT>1</RESULT><PARAMETERS><PARAMETER><POSITION>1</POSITION><TYPE>IN</TYPE><VALUE>****</VALUE></PARAMETER><PARAMETER><POSITION>2</POSITION><TYPE>IN</TYPE><VALUE>NAME=h\nTYPE=api\nCOMMAND=/bin/true\nCALL=one.vm.allocate</VALUE></PARAMETER><PARAMETER><POSITION>1</POSITION><TYPE>OUT</TYPE><VALUE>true</VALUE></PARAMETER><PARAMETER><POSITION>2</POSITION><TYPE>OUT</TYPE><VALUE>5</VALUE></PARAMETER><PARAMETER><POSITION>3</POSITION><TYPE>OUT</TYPE><VALUE>0</VALUE></PARAMETER></PARAMETERS><EXTRA><HOOK><ID>5</ID><NAME>h</NAME><TYPE>api</TYPE><TEMPLATE><CALL><![CDATA[one.vm.allocate]]></CALL></TEMPLATE></HOOK></EXTRA></CALL_INFO></HOOK_MESSAGE>";

const VM_RUNNING: &str = "<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>VM</HOOK_OBJECT><STATE>ACTIVE</STATE><LCM_STATE>RUNNING</LCM_STATE><RESOURCE_ID>12</RESOURCE_ID><SERVICE_ID>4</SERVICE_ID><REMOTE_HOST>node1</REMOTE_HOST><VM><ID>12</ID><UID>0</UID><GID>0</GID><STATE>3</STATE><LCM_STATE>3</LCM_STATE><HISTORY_RECORDS></HISTORY_RECORDS></VM></HOOK_MESSAGE>";

fn keys(xml: &str) -> Vec<String> {
    event_keys(xml).expect("keys")
}

#[test]
fn api_event_key_has_call_and_result_without_trailing_space() {
    assert_eq!(keys(API_ALLOCATE), ["EVENT API one.hook.allocate 1"]);
    let failed = API_ALLOCATE.replace("<RESULT>1</RESULT>", "<RESULT>0</RESULT>");
    assert_eq!(keys(&failed), ["EVENT API one.hook.allocate 0"]);
}

#[test]
fn vm_state_event_publishes_three_keys_in_reference_order() {
    assert_eq!(
        keys(VM_RUNNING),
        [
            "EVENT VM 12/ACTIVE/RUNNING ",
            "EVENT STATE VM/ACTIVE/RUNNING/12 ",
            "EVENT SERVICE 4 ",
        ]
    );
    let no_service = VM_RUNNING.replace("<SERVICE_ID>4</SERVICE_ID>", "");
    assert_eq!(
        keys(&no_service),
        [
            "EVENT VM 12/ACTIVE/RUNNING ",
            "EVENT STATE VM/ACTIVE/RUNNING/12 "
        ]
    );
}

#[test]
fn host_image_and_net_keys_have_an_empty_lcm_part() {
    let host = "<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>HOST</HOOK_OBJECT><STATE>ERROR</STATE><REMOTE_HOST>node1</REMOTE_HOST><RESOURCE_ID>3</RESOURCE_ID><HOST><ID>3</ID><NAME>node1</NAME><STATE>3</STATE></HOST></HOOK_MESSAGE>";
    assert_eq!(
        keys(host),
        ["EVENT HOST 3/ERROR/ ", "EVENT STATE HOST/ERROR//3 "]
    );
    let image = "<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>IMAGE</HOOK_OBJECT><STATE>READY</STATE><RESOURCE_ID>7</RESOURCE_ID><IMAGE><ID>7</ID><STATE>1</STATE></IMAGE></HOOK_MESSAGE>";
    assert_eq!(
        keys(image),
        ["EVENT IMAGE 7/READY/ ", "EVENT STATE IMAGE/READY//7 "]
    );
    let net = "<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>NET</HOOK_OBJECT><STATE>READY</STATE><RESOURCE_ID>2</RESOURCE_ID><VNET><ID>2</ID></VNET></HOOK_MESSAGE>";
    assert_eq!(
        keys(net),
        ["EVENT NET 2/READY/ ", "EVENT STATE NET/READY//2 "]
    );
}

#[test]
fn a_host_event_ignores_an_lcm_state_and_finds_a_service_id_anywhere() {
    let host = "<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>HOST</HOOK_OBJECT><STATE>MONITORED</STATE><REMOTE_HOST>n</REMOTE_HOST><RESOURCE_ID>0</RESOURCE_ID><HOST><TEMPLATE><LCM_STATE>X</LCM_STATE><SERVICE_ID><![CDATA[9]]></SERVICE_ID></TEMPLATE></HOST></HOOK_MESSAGE>";
    assert_eq!(
        keys(host),
        [
            "EVENT HOST 0/MONITORED/ ",
            "EVENT STATE HOST/MONITORED//0 ",
            "EVENT SERVICE 9 "
        ]
    );
}

#[test]
fn hook_type_concatenates_every_match_so_a_body_copy_makes_the_type_unknown() {
    let vm = VM_RUNNING.replace(
        "<HISTORY_RECORDS>",
        "<USER_TEMPLATE><HOOK_TYPE>x</HOOK_TYPE></USER_TEMPLATE><HISTORY_RECORDS>",
    );
    assert_eq!(keys(&vm), ["EVENT "]);
}

#[test]
fn garbage_is_published_as_the_bare_event_key() {
    for garbage in [
        "",
        "not xml at all",
        "\u{1}\u{2}binary",
        "text before <HOOK_MESSAGE><HOOK_TYPE>API</HOOK_TYPE></HOOK_MESSAGE>",
        "<HOOK_MESSAGE><HOOK_TYPE>api</HOOK_TYPE><CALL>c</CALL></HOOK_MESSAGE>",
        "<A/><HOOK_TYPE>API</HOOK_TYPE>",
        "<<<>>>&&&",
    ] {
        assert_eq!(keys(garbage), ["EVENT "], "input {garbage:?}");
    }
}

#[test]
fn missing_key_elements_are_errors_naming_the_first_missing_one() {
    let no_call = "<HOOK_MESSAGE><HOOK_TYPE>API</HOOK_TYPE><CALL_INFO><RESULT>1</RESULT></CALL_INFO></HOOK_MESSAGE>";
    assert_eq!(
        event_keys(no_call),
        Err(KeyError::MissingElement {
            hook_type: "API",
            element: "CALL"
        })
    );
    // RESULT must be a child of CALL_INFO.
    let stray_result = "<HOOK_MESSAGE><HOOK_TYPE>API</HOOK_TYPE><CALL>c</CALL><RESULT>1</RESULT><CALL_INFO><X><RESULT>1</RESULT></X></CALL_INFO></HOOK_MESSAGE>";
    assert_eq!(
        event_keys(stray_result),
        Err(KeyError::MissingElement {
            hook_type: "API",
            element: "CALL_INFO/RESULT"
        })
    );
    let vm_no_lcm = VM_RUNNING
        .replace("<LCM_STATE>RUNNING</LCM_STATE>", "")
        .replace("<LCM_STATE>3</LCM_STATE>", "");
    let err = event_keys(&vm_no_lcm).expect_err("no LCM_STATE");
    assert_eq!(
        err.to_string(),
        "STATE HOOK_MESSAGE has no LCM_STATE element"
    );
    let no_object = "<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><STATE>A</STATE></HOOK_MESSAGE>";
    assert!(event_keys(no_object).is_err());
}

#[test]
fn first_match_anywhere_wins_even_when_broken_xml_precedes_it() {
    // oned writes API values raw: a `<` or `&` in a value must not hide the key elements.
    let api = "<?xml version=\"1.0\"?><!-- c --><HOOK_MESSAGE><HOOK_TYPE>API</HOOK_TYPE><CALL>one.vm.update</CALL><CALL_INFO><RESULT>1</RESULT><PARAMETERS><PARAMETER><VALUE>a & b <c and </x> d</VALUE></PARAMETER></PARAMETERS><EXTRA></EXTRA></CALL_INFO></HOOK_MESSAGE>trailing junk";
    assert_eq!(keys(api), ["EVENT API one.vm.update 1"]);
    let entities = "<HOOK_MESSAGE><HOOK_TYPE>A&#80;I</HOOK_TYPE><CALL a=\"x>y\">one.x&amp;y</CALL><CALL_INFO><RESULT><![CDATA[1]]></RESULT></CALL_INFO></HOOK_MESSAGE>";
    assert_eq!(keys(entities), ["EVENT API one.x&y 1"]);
}

#[test]
fn element_text_is_the_text_of_all_descendants() {
    let api = "<HOOK_MESSAGE><HOOK_TYPE>API</HOOK_TYPE><CALL>one.<B>vm</B>.info</CALL><CALL_INFO><RESULT>1</RESULT></CALL_INFO></HOOK_MESSAGE>";
    assert_eq!(keys(api), ["EVENT API one.vm.info 1"]);
}

#[test]
fn truncated_documents_still_give_the_keys_they_contain() {
    let cut = &VM_RUNNING[..VM_RUNNING.find("<REMOTE_HOST>").expect("marker")];
    assert_eq!(
        keys(cut),
        [
            "EVENT VM 12/ACTIVE/RUNNING ",
            "EVENT STATE VM/ACTIVE/RUNNING/12 ",
            "EVENT SERVICE 4 "
        ]
    );
}

#[test]
fn sequence_token_is_one_extra_last_word() {
    assert_eq!(
        with_seq("EVENT VM 42/PENDING/LCM_INIT ", 17),
        "EVENT VM 42/PENDING/LCM_INIT #17"
    );
    assert_eq!(
        with_seq("EVENT API one.vm.allocate 1", 17),
        "EVENT API one.vm.allocate 1 #17"
    );
    assert_eq!(with_seq("RETRY", 17), "RETRY #17");
    assert_eq!(with_seq("EVENT ", 1), "EVENT #1");
    // A reference prefix filter that matched the bare key still matches.
    let filter = "EVENT STATE VM/PENDING/LCM_INIT/42 ";
    assert!(with_seq(filter, 9).starts_with(filter));
}

#[test]
fn parse_key_follows_the_hem_matching_rule() {
    let k = parse_key("EVENT STATE VM/ACTIVE/RUNNING/12 #5");
    assert_eq!(k.action, "EVENT");
    assert_eq!(k.kind.as_deref(), Some("state"));
    assert_eq!(k.key.as_deref(), Some("VM/ACTIVE/RUNNING"));
    assert_eq!(k.seq, Some(5));

    let k = parse_key("EVENT STATE HOST/ERROR//3 ");
    assert_eq!(k.key.as_deref(), Some("HOST/ERROR/"));
    assert_eq!(k.seq, None);

    let k = parse_key("EVENT API one.vm.allocate 1 #18446744073709551615");
    assert_eq!(k.kind.as_deref(), Some("api"));
    assert_eq!(k.key.as_deref(), Some("one.vm.allocate"));
    assert_eq!(k.seq, Some(u64::MAX));

    let k = parse_key("RETRY #3");
    assert_eq!(
        (k.action, k.kind, k.key, k.seq),
        ("RETRY", None, None, Some(3))
    );

    let k = parse_key("EVENT #7");
    assert_eq!(
        (k.action, k.kind, k.key, k.seq),
        ("EVENT", None, None, Some(7))
    );

    // A lone `#7` is the action, and a non-numeric token is an ordinary word.
    assert_eq!(parse_key("#7").seq, None);
    assert_eq!(parse_key("EVENT VM 1/A/B #x").seq, None);
    assert_eq!(parse_key("").action, "");
}

#[test]
fn keys_of_every_event_parse_back_to_the_hooks_lookup_key() {
    let k = keys(VM_RUNNING);
    let parsed: Vec<_> = k.iter().map(|key| with_seq(key, 1)).collect();
    let state = parse_key(&parsed[1]);
    assert_eq!(state.kind.as_deref(), Some("state"));
    assert_eq!(state.key.as_deref(), Some("VM/ACTIVE/RUNNING"));
    let vm = parse_key(&parsed[0]);
    assert_eq!(vm.kind.as_deref(), Some("vm"));
    assert_eq!(vm.key.as_deref(), Some("12/ACTIVE/RUNNING"));
}

#[test]
fn hook_keys_and_filters_match_the_reference_hem() {
    use one_proto::hook::Hook;
    use one_proto::keys::{hook_filter, hook_key};
    let vm = Hook::from_xml("<HOOK><ID>3</ID><NAME>hook-vm</NAME><TYPE>state</TYPE><TEMPLATE><ARGUMENTS><![CDATA[$TEMPLATE pending]]></ARGUMENTS><COMMAND><![CDATA[vm-pending.rb]]></COMMAND><LCM_STATE><![CDATA[LCM_INIT]]></LCM_STATE><REMOTE><![CDATA[NO]]></REMOTE><RESOURCE><![CDATA[VM]]></RESOURCE><STATE><![CDATA[PENDING]]></STATE></TEMPLATE></HOOK>").expect("hook");
    assert_eq!(
        hook_key(&vm),
        Some(("state".to_owned(), "VM/PENDING/LCM_INIT".to_owned()))
    );
    assert_eq!(
        hook_filter(&vm).as_deref(),
        Some("EVENT STATE VM/PENDING/LCM_INIT")
    );
    let host = Hook::from_xml("<HOOK><ID>4</ID><NAME>h</NAME><TYPE>state</TYPE><TEMPLATE><COMMAND><![CDATA[x]]></COMMAND><RESOURCE><![CDATA[HOST]]></RESOURCE><STATE><![CDATA[ERROR]]></STATE></TEMPLATE></HOOK>").expect("hook");
    assert_eq!(
        hook_filter(&host).as_deref(),
        Some("EVENT STATE HOST/ERROR/")
    );
    let api = Hook::from_xml("<HOOK><ID>1</ID><NAME>api-h</NAME><TYPE>api</TYPE><TEMPLATE><CALL><![CDATA[one.vm.allocate]]></CALL><COMMAND><![CDATA[/usr/bin/echo]]></COMMAND><REMOTE><![CDATA[NO]]></REMOTE></TEMPLATE></HOOK>").expect("hook");
    assert_eq!(
        hook_key(&api),
        Some(("api".to_owned(), "one.vm.allocate".to_owned()))
    );
    assert_eq!(
        hook_filter(&api).as_deref(),
        Some("EVENT API one.vm.allocate")
    );
    // The filter of a hook is a byte prefix of the keys of the events it fires on.
    let event = keys(
        API_ALLOCATE
            .replace("one.hook.allocate", "one.vm.allocate")
            .as_str(),
    );
    assert!(with_seq(&event[0], 3).starts_with(&hook_filter(&api).expect("filter")));
    let host_keys = keys(
        "<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>HOST</HOOK_OBJECT><STATE>ERROR</STATE><REMOTE_HOST>n</REMOTE_HOST><RESOURCE_ID>3</RESOURCE_ID></HOOK_MESSAGE>",
    );
    assert!(host_keys[1].starts_with(&hook_filter(&host).expect("filter")));
    let parsed = parse_key(&host_keys[1]);
    assert_eq!(
        (
            parsed.kind.unwrap_or_default(),
            parsed.key.unwrap_or_default()
        ),
        hook_key(&host).expect("key")
    );
}
