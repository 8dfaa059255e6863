//! What a real oned and the reference HEM send is not always well-formed (reference §10): API
//! values and result ARGUMENTS/COMMAND are written raw. These tests feed such documents to the
//! readers and check that they recover the values a lenient reader would, and that bad input
//! gets an error rather than a wrong answer.

use one_proto::encoding::b64_decode_strict;
use one_proto::event::{EventError, HookMessage, ParamDir};
use one_proto::hook_log::{ExecutionRecord, ExecutionResult, LogError, record_xml};

fn api(xml: &str) -> one_proto::event::ApiEvent {
    match HookMessage::parse(xml) {
        Ok(HookMessage::Api(api)) => api,
        other => panic!("not an API event: {other:?}"),
    }
}

/// An API message as oned writes it, with `values` written raw into IN positions 2.. and
/// `out` as the OUT block.
fn oned_api_message(call: &str, result: u8, values: &[&str], out: &[&str], extra: &str) -> String {
    let mut xml = format!(
        "<HOOK_MESSAGE><HOOK_TYPE>API</HOOK_TYPE><CALL>{call}</CALL><CALL_INFO><RESULT>{result}</RESULT><PARAMETERS><PARAMETER><POSITION>1</POSITION><TYPE>IN</TYPE><VALUE>****</VALUE></PARAMETER>"
    );
    for (i, value) in values.iter().enumerate() {
        xml.push_str(&format!(
            "<PARAMETER><POSITION>{}</POSITION><TYPE>IN</TYPE><VALUE>{value}</VALUE></PARAMETER>",
            i + 2
        ));
    }
    for (i, value) in out.iter().enumerate() {
        xml.push_str(&format!(
            "<PARAMETER><POSITION>{}</POSITION><TYPE>OUT</TYPE><VALUE>{value}</VALUE></PARAMETER>",
            i + 1
        ));
    }
    xml.push_str(&format!(
        "</PARAMETERS><EXTRA>{extra}</EXTRA></CALL_INFO></HOOK_MESSAGE>"
    ));
    xml
}

#[test]
fn raw_ampersand_and_angle_bracket_in_an_in_value() {
    // §8.2: `a & b <c` inside a VALUE; Nokogiri mangles it, we keep it.
    let xml = oned_api_message(
        "one.vm.update",
        1,
        &["7", "DESCRIPTION=\"a & b <c\"", "1"],
        &["true", "7", "0"],
        "",
    );
    let event = api(&xml);
    assert_eq!(event.param(ParamDir::In, 2), Some("7"));
    assert_eq!(
        event.param(ParamDir::In, 3),
        Some("DESCRIPTION=\"a & b <c\"")
    );
    assert_eq!(event.param(ParamDir::In, 4), Some("1"));
    assert_eq!(event.param(ParamDir::Out, 2), Some("7"));
    // The received CALL_INFO was malformed, so $API carries our well-formed rebuild of it.
    assert_eq!(event.received_call_info, None);
    let message = HookMessage::Api(event.clone());
    let call_info = String::from_utf8(b64_decode_strict(&message.api_argument()).unwrap()).unwrap();
    assert!(
        call_info.contains("DESCRIPTION=\"a &amp; b &lt;c\""),
        "{call_info}"
    );
    // And what we would forward parses back to the same event.
    assert_eq!(HookMessage::parse(&message.to_xml()).unwrap(), message);
}

#[test]
fn raw_xml_returned_in_out_position_2() {
    let returned = "<MONITORING_DATA><MONITORING><ID>3</ID><CPU>1.5</CPU><NOTE>x &amp; y</NOTE></MONITORING></MONITORING_DATA>";
    let xml = oned_api_message("one.vm.monitoring", 1, &["3"], &["true", returned, "0"], "");
    let event = api(&xml);
    assert_eq!(event.param(ParamDir::Out, 2), Some(returned));
    assert_eq!(event.param(ParamDir::Out, 3), Some("0"));
    // Well-formed overall, so the received subtree is kept for $API.
    assert!(event.received_call_info.is_some());
}

#[test]
fn raw_template_text_with_markup_and_closing_tags() {
    // A template value that itself contains `</VALUE>` and XML.
    let template = "ARGS=\"<x>1</x>\"\nNOTE=\"ends with </VALUE> inside\"";
    let xml = oned_api_message(
        "one.hook.update",
        0,
        &["4", template, "0"],
        &[
            "false",
            "[one.hook.update] Cannot update template. Parse error: syntax error, unexpected < at line 0",
            "8192",
            "4",
        ],
        "",
    );
    let event = api(&xml);
    assert!(!event.success);
    assert_eq!(event.param(ParamDir::In, 3), Some(template));
    assert_eq!(
        event.param(ParamDir::Out, 2),
        Some(
            "[one.hook.update] Cannot update template. Parse error: syntax error, unexpected < at line 0"
        )
    );
    assert_eq!(event.param(ParamDir::Out, 4), Some("4"));
}

#[test]
fn release_7_cdata_wrapped_error_message() {
    let xml = oned_api_message(
        "one.hook.delete",
        0,
        &["9"],
        &[
            "false",
            "<![CDATA[[one.hook.delete] Error getting hook [9].]]>",
            "1024",
            "9",
        ],
        "",
    );
    let event = api(&xml);
    assert_eq!(
        event.param(ParamDir::Out, 2),
        Some("[one.hook.delete] Error getting hook [9].")
    );
}

#[test]
fn ha_follower_event_has_no_out_block() {
    let xml = oned_api_message("one.vm.deploy", 0, &["3", "0"], &[], "");
    let event = api(&xml);
    assert!(!event.success);
    assert!(event.params.iter().all(|p| p.dir == ParamDir::In));
    assert_eq!(event.extra, "");
}

#[test]
fn extra_object_body_is_kept_as_received() {
    let body = "<HOOK><ID>5</ID><NAME>h</NAME><TYPE>api</TYPE><TEMPLATE><EXTRA><![CDATA[nested]]></EXTRA><VALUE><![CDATA[v]]></VALUE></TEMPLATE></HOOK>";
    let xml = oned_api_message(
        "one.hook.allocate",
        1,
        &["NAME=h"],
        &["true", "5", "0"],
        body,
    );
    let event = api(&xml);
    assert_eq!(event.extra, body);
    let self_closing = xml.replace(&format!("<EXTRA>{body}</EXTRA>"), "<EXTRA/>");
    assert_eq!(api(&self_closing).extra, "");
}

#[test]
fn pretty_printed_and_declared_documents() {
    let xml = "<?xml version=\"1.0\"?>\n<HOOK_MESSAGE>\n  <HOOK_TYPE>STATE</HOOK_TYPE>\n  <HOOK_OBJECT>VNET</HOOK_OBJECT>\n  <STATE>READY</STATE>\n  <RESOURCE_ID> 2 </RESOURCE_ID>\n  <VNET>\n    <ID>2</ID>\n  </VNET>\n</HOOK_MESSAGE>\n";
    let HookMessage::State(state) = HookMessage::parse(xml).unwrap() else {
        panic!("not a state event");
    };
    assert_eq!(state.object.name(), "NET");
    assert_eq!(state.state, "READY");
    assert_eq!(state.resource_id, 2);
    assert_eq!(state.body, "<VNET>\n    <ID>2</ID>\n  </VNET>");
    assert_eq!(state.remote_host, None);
}

#[test]
fn vm_without_history_has_no_remote_host() {
    let xml = "<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>VM</HOOK_OBJECT><STATE>PENDING</STATE><LCM_STATE>LCM_INIT</LCM_STATE><RESOURCE_ID>0</RESOURCE_ID><REMOTE_HOST/><VM><ID>0</ID></VM></HOOK_MESSAGE>";
    let HookMessage::State(state) = HookMessage::parse(xml).unwrap() else {
        panic!("not a state event");
    };
    assert_eq!(state.remote_host, None);
    assert_eq!(state.lcm_state.as_deref(), Some("LCM_INIT"));
}

#[test]
fn bad_messages_get_errors() {
    let cases: &[(&str, EventError)] = &[
        (
            "",
            EventError::NotAMessage {
                expected: "HOOK_MESSAGE",
                found: "no element".to_string(),
            },
        ),
        (
            "garbage & <<<",
            EventError::NotAMessage {
                expected: "HOOK_MESSAGE",
                found: "no element".to_string(),
            },
        ),
        (
            "<HOOK><ID>1</ID></HOOK>",
            EventError::NotAMessage {
                expected: "HOOK_MESSAGE",
                found: "<HOOK>".to_string(),
            },
        ),
        (
            "<HOOK_MESSAGE></HOOK_MESSAGE>",
            EventError::Missing {
                element: "HOOK_TYPE",
            },
        ),
        (
            "<HOOK_MESSAGE><HOOK_TYPE>FOO</HOOK_TYPE></HOOK_MESSAGE>",
            EventError::UnknownHookType("FOO".to_string()),
        ),
        (
            "<HOOK_MESSAGE><HOOK_TYPE>API</HOOK_TYPE><CALL_INFO><RESULT>1</RESULT></CALL_INFO></HOOK_MESSAGE>",
            EventError::Missing { element: "CALL" },
        ),
        (
            "<HOOK_MESSAGE><HOOK_TYPE>API</HOOK_TYPE><CALL>one.vm.allocate</CALL></HOOK_MESSAGE>",
            EventError::Missing {
                element: "CALL_INFO",
            },
        ),
        (
            "<HOOK_MESSAGE><HOOK_TYPE>API</HOOK_TYPE><CALL>x</CALL><CALL_INFO><RESULT>yes</RESULT></CALL_INFO></HOOK_MESSAGE>",
            EventError::Invalid {
                element: "RESULT",
                value: "yes".to_string(),
                reason: "expected 1 or 0",
            },
        ),
        (
            "<HOOK_MESSAGE><HOOK_TYPE>API</HOOK_TYPE><CALL>x</CALL><CALL_INFO><RESULT>1</RESULT><PARAMETERS><PARAMETER><POSITION>one</POSITION><TYPE>IN</TYPE><VALUE/></PARAMETER></PARAMETERS></CALL_INFO></HOOK_MESSAGE>",
            EventError::Invalid {
                element: "POSITION",
                value: "one".to_string(),
                reason: "not an integer",
            },
        ),
        (
            "<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>VROUTER</HOOK_OBJECT></HOOK_MESSAGE>",
            EventError::UnknownObject("VROUTER".to_string()),
        ),
        (
            "<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>HOST</HOOK_OBJECT><STATE>ERROR</STATE></HOOK_MESSAGE>",
            EventError::Missing {
                element: "RESOURCE_ID",
            },
        ),
        (
            "<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>VM</HOOK_OBJECT><STATE>ACTIVE</STATE><RESOURCE_ID>1</RESOURCE_ID><SERVICE_ID>x</SERVICE_ID></HOOK_MESSAGE>",
            EventError::Invalid {
                element: "SERVICE_ID",
                value: "x".to_string(),
                reason: "not an integer",
            },
        ),
    ];
    for (xml, expected) in cases {
        assert_eq!(HookMessage::parse(xml).as_ref(), Err(expected), "{xml}");
    }
}

/// A result body as the reference HEM writes it: ARGUMENTS and COMMAND unescaped.
const REFERENCE_RAW_BODY: &str = "<ARGUMENTS>a & b <c> d</ARGUMENTS><EXECUTION_RESULT><COMMAND>/var/lib/one/remotes/hooks/x.sh a & b <c> d</COMMAND><STDOUT>b2sK\n</STDOUT><STDERR></STDERR><CODE>0</CODE></EXECUTION_RESULT><REMOTE_HOST>node1</REMOTE_HOST>";

#[test]
fn reference_unescaped_result_body_is_read_but_not_recorded() {
    let result = ExecutionResult::parse(REFERENCE_RAW_BODY).unwrap();
    assert_eq!(result.arguments, "a & b <c> d");
    assert_eq!(
        result.command,
        "/var/lib/one/remotes/hooks/x.sh a & b <c> d"
    );
    assert_eq!(result.stdout, b"ok\n");
    assert_eq!(result.remote_host.as_deref(), Some("node1"));
    // oned drops this record (§6.4 step 3), and so do we...
    assert!(matches!(
        record_xml(1, 0, 1727100000, REFERENCE_RAW_BODY),
        Err(LogError::NotWellFormed {
            hook_id: 1,
            execution_id: 0,
            ..
        })
    ));
    // ...while our escaped body of the same result is stored and reads back the same.
    let record = record_xml(1, 0, 1727100000, &result.to_xml()).unwrap();
    assert_eq!(
        ExecutionRecord::parse(&record).unwrap().result,
        Some(result)
    );
}

#[test]
fn reference_unescaped_but_well_formed_record_is_read() {
    // `>` needs no escaping, so the reference's record with it is stored by oned.
    let body = "<ARGUMENTS>x > y</ARGUMENTS><EXECUTION_RESULT><COMMAND>/bin/echo x > y</COMMAND><STDOUT></STDOUT><STDERR></STDERR><CODE>1</CODE></EXECUTION_RESULT>";
    let record = record_xml(4, 7, 1, body).unwrap();
    let parsed = ExecutionRecord::parse(&record).unwrap();
    let result = parsed.result.unwrap();
    assert_eq!(result.arguments, "x > y");
    assert_eq!(result.command, "/bin/echo x > y");
    assert_eq!(result.code, 1);
}

#[test]
fn malformed_bodies_are_rejected_by_record_xml() {
    for body in [
        "<ARGUMENTS>",
        "</HOOK_EXECUTION_RECORD><X>",
        "<A></B>",
        "a & b",
        "<ARGUMENTS>\u{1}</ARGUMENTS>",
        "<?xml version=\"1.0\"?><A/>",
        "x ]]> y",
    ] {
        assert!(record_xml(1, 2, 3, body).is_err(), "{body:?}");
    }
    for body in ["", "plain text", "<A/><B>x</B>", "<![CDATA[a & b]]>"] {
        assert!(record_xml(1, 2, 3, body).is_ok(), "{body:?}");
    }
}

#[test]
fn bad_records_get_errors() {
    assert_eq!(
        ExecutionRecord::parse(
            "<HOOK_EXECUTION_RECORD><HOOK_ID>1</HOOK_ID></HOOK_EXECUTION_RECORD>"
        ),
        Err(LogError::Missing {
            element: "EXECUTION_ID"
        })
    );
    assert!(matches!(
        ExecutionRecord::parse(
            "<HOOK_EXECUTION_RECORD><HOOK_ID>1</HOOK_ID><EXECUTION_ID>0</EXECUTION_ID><TIMESTAMP>5</TIMESTAMP><EXECUTION_RESULT><CODE>zero</CODE></EXECUTION_RESULT></HOOK_EXECUTION_RECORD>"
        ),
        Err(LogError::Invalid {
            element: "CODE",
            ..
        })
    ));
    assert!(matches!(
        ExecutionResult::parse("<ARGUMENTS>x</ARGUMENTS>"),
        Err(LogError::Missing {
            element: "EXECUTION_RESULT"
        })
    ));
    assert!(matches!(
        one_proto::hook_log::parse_hooklog("<HOOK_POOL/>"),
        Err(LogError::NotALog { .. })
    ));
}
