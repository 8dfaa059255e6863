//! The documents of reference §4.3-4.7, built from the same inputs and compared byte for byte.
//! Where the reference elides content (`…`) a concrete, representative value is used on both
//! sides.

use one_proto::encoding::{b64_decode_strict, b64_encode};
use one_proto::event::{ApiEvent, ApiParam, HookMessage, ObjectKind, ParamDir, StateEvent};
use one_proto::hook_log::{
    ExecutionRecord, ExecutionResult, hooklog_xml, parse_hooklog, record_xml,
};
use one_proto::retry::RetryMessage;

const HOOK_TEMPLATE: &str = "<TEMPLATE><CALL><![CDATA[one.vm.allocate]]></CALL><COMMAND><![CDATA[/bin/true]]></COMMAND><REMOTE><![CDATA[NO]]></REMOTE></TEMPLATE>";

fn allocate_event() -> ApiEvent {
    ApiEvent::success(
        "one.hook.allocate",
        vec![
            "oneadmin:opennebula".to_string(),
            "NAME=h\nTYPE=api\nCOMMAND=/bin/true\nCALL=one.vm.allocate".to_string(),
        ],
        "5",
        format!("<HOOK><ID>5</ID><NAME>h</NAME><TYPE>api</TYPE>{HOOK_TEMPLATE}</HOOK>"),
    )
}

fn allocate_reference() -> String {
    format!(
        "<HOOK_MESSAGE><HOOK_TYPE>API</HOOK_TYPE><CALL>one.hook.allocate</CALL><CALL_INFO><RESULT>1</RESULT><PARAMETERS><PARAMETER><POSITION>1</POSITION><TYPE>IN</TYPE><VALUE>****</VALUE></PARAMETER><PARAMETER><POSITION>2</POSITION><TYPE>IN</TYPE><VALUE>NAME=h
TYPE=api
COMMAND=/bin/true
CALL=one.vm.allocate</VALUE></PARAMETER><PARAMETER><POSITION>1</POSITION><TYPE>OUT</TYPE><VALUE>true</VALUE></PARAMETER><PARAMETER><POSITION>2</POSITION><TYPE>OUT</TYPE><VALUE>5</VALUE></PARAMETER><PARAMETER><POSITION>3</POSITION><TYPE>OUT</TYPE><VALUE>0</VALUE></PARAMETER></PARAMETERS><EXTRA><HOOK><ID>5</ID><NAME>h</NAME><TYPE>api</TYPE>{HOOK_TEMPLATE}</HOOK></EXTRA></CALL_INFO></HOOK_MESSAGE>"
    )
}

#[test]
fn api_event_success_is_byte_exact() {
    let message = HookMessage::Api(allocate_event());
    assert_eq!(message.to_xml(), allocate_reference());
}

#[test]
fn api_event_parses_back_and_keeps_received_call_info() {
    let reference = allocate_reference();
    let parsed = HookMessage::parse(&reference).unwrap();
    let HookMessage::Api(api) = &parsed else {
        panic!("not an API event: {parsed:?}");
    };
    // The session was hidden on the wire, so the parsed value is the mask.
    let mut expected = allocate_event();
    expected.params[0].value = "****".to_string();
    assert_eq!(api, &expected);
    assert_eq!(api.param(ParamDir::Out, 2), Some("5"));
    let start = reference.find("<CALL_INFO>").unwrap();
    let end = reference.find("</CALL_INFO>").unwrap() + "</CALL_INFO>".len();
    assert_eq!(
        api.received_call_info.as_deref(),
        Some(&reference[start..end])
    );
    assert_eq!(
        parsed.api_argument(),
        b64_encode(&reference.as_bytes()[start..end])
    );
    assert_eq!(parsed.template_argument(), "");
}

#[test]
fn api_argument_of_built_event_is_its_call_info() {
    let message = HookMessage::Api(allocate_event());
    let xml = message.to_xml();
    let start = xml.find("<CALL_INFO>").unwrap();
    let end = xml.find("</CALL_INFO>").unwrap() + "</CALL_INFO>".len();
    let decoded = b64_decode_strict(&message.api_argument()).unwrap();
    assert_eq!(decoded, &xml.as_bytes()[start..end]);
}

#[test]
fn api_event_failure_out_block_is_byte_exact() {
    let event = ApiEvent::failure(
        "one.hook.delete",
        vec!["oneadmin:opennebula".to_string(), "9".to_string()],
        "[one.hook.delete] Error getting hook [9].",
        1024,
        9,
        "",
    );
    let xml = HookMessage::Api(event.clone()).to_xml();
    let expected = "<HOOK_MESSAGE><HOOK_TYPE>API</HOOK_TYPE><CALL>one.hook.delete</CALL><CALL_INFO><RESULT>0</RESULT><PARAMETERS><PARAMETER><POSITION>1</POSITION><TYPE>IN</TYPE><VALUE>****</VALUE></PARAMETER><PARAMETER><POSITION>2</POSITION><TYPE>IN</TYPE><VALUE>9</VALUE></PARAMETER><PARAMETER><POSITION>1</POSITION><TYPE>OUT</TYPE><VALUE>false</VALUE></PARAMETER><PARAMETER><POSITION>2</POSITION><TYPE>OUT</TYPE><VALUE>[one.hook.delete] Error getting hook [9].</VALUE></PARAMETER><PARAMETER><POSITION>3</POSITION><TYPE>OUT</TYPE><VALUE>1024</VALUE></PARAMETER><PARAMETER><POSITION>4</POSITION><TYPE>OUT</TYPE><VALUE>9</VALUE></PARAMETER></PARAMETERS><EXTRA></EXTRA></CALL_INFO></HOOK_MESSAGE>";
    assert_eq!(xml, expected);
    let HookMessage::Api(parsed) = HookMessage::parse(&xml).unwrap() else {
        panic!("not an API event");
    };
    assert!(!parsed.success);
    assert_eq!(parsed.param(ParamDir::Out, 3), Some("1024"));
    assert_eq!(parsed.param(ParamDir::Out, 4), Some("9"));
}

#[test]
fn hidden_positions_follow_the_reference() {
    let masked = |call: &str, values: &[&str]| -> Vec<String> {
        let event = ApiEvent::success(
            call,
            values.iter().map(|v| v.to_string()).collect(),
            "0",
            "",
        );
        let HookMessage::Api(parsed) =
            HookMessage::parse(&HookMessage::Api(event).to_xml()).unwrap()
        else {
            panic!("not an API event");
        };
        parsed
            .params
            .iter()
            .filter(|p| p.dir == ParamDir::In)
            .map(|p| p.value.clone())
            .collect()
    };
    assert_eq!(
        masked("one.user.allocate", &["s", "bob", "pw", "core", "[]"]),
        ["****", "bob", "****", "core", "[]"]
    );
    assert_eq!(
        masked("one.user.passwd", &["s", "3", "pw"]),
        ["****", "3", "****"]
    );
    assert_eq!(
        masked("one.user.login", &["s", "bob", "token", "60"]),
        ["****", "bob", "****", "60"]
    );
    assert_eq!(
        masked("one.user.chauth", &["s", "3", "core", "pw"]),
        ["****", "3", "core", "****"]
    );
    assert_eq!(
        masked("one.vm.update", &["s", "3", "pw"]),
        ["****", "3", "pw"]
    );
    // The internal monitor event has no session: nothing is hidden.
    assert_eq!(
        masked("one.internal.vmmonitor", &["A=1", "B=2"]),
        ["A=1", "B=2"]
    );
}

#[test]
fn hiding_applies_to_hand_built_params_too() {
    let event = ApiEvent {
        call: "one.user.passwd".to_string(),
        success: true,
        params: vec![
            ApiParam {
                position: 1,
                dir: ParamDir::In,
                value: "oneadmin:secret".to_string(),
            },
            ApiParam {
                position: 3,
                dir: ParamDir::In,
                value: "newpass".to_string(),
            },
        ],
        extra: String::new(),
        received_call_info: None,
    };
    let xml = HookMessage::Api(event).to_xml();
    assert!(!xml.contains("secret"), "{xml}");
    assert!(!xml.contains("newpass"), "{xml}");
}

#[test]
fn vmmonitor_event_is_byte_exact() {
    let event = ApiEvent {
        call: "one.internal.vmmonitor".to_string(),
        success: true,
        params: vec![
            ApiParam {
                position: 1,
                dir: ParamDir::In,
                value: "A=1".to_string(),
            },
            ApiParam {
                position: 2,
                dir: ParamDir::In,
                value: "B=2".to_string(),
            },
        ],
        extra: "<VM_ID>7</VM_ID>".to_string(),
        received_call_info: None,
    };
    assert_eq!(
        HookMessage::Api(event).to_xml(),
        "<HOOK_MESSAGE><HOOK_TYPE>API</HOOK_TYPE><CALL>one.internal.vmmonitor</CALL><CALL_INFO><RESULT>1</RESULT><PARAMETERS><PARAMETER><POSITION>1</POSITION><TYPE>IN</TYPE><VALUE>A=1</VALUE></PARAMETER><PARAMETER><POSITION>2</POSITION><TYPE>IN</TYPE><VALUE>B=2</VALUE></PARAMETER></PARAMETERS><EXTRA><VM_ID>7</VM_ID></EXTRA></CALL_INFO></HOOK_MESSAGE>"
    );
}

const VM_BODY: &str = "<VM><ID>12</ID><UID>0</UID><GID>0</GID><NAME>vm-12</NAME><STATE>3</STATE><LCM_STATE>3</LCM_STATE><TEMPLATE><CPU><![CDATA[1]]></CPU></TEMPLATE><USER_TEMPLATE><SERVICE_ID><![CDATA[4]]></SERVICE_ID></USER_TEMPLATE><HISTORY_RECORDS><HISTORY><SEQ>0</SEQ><HOSTNAME>node1</HOSTNAME></HISTORY></HISTORY_RECORDS></VM>";

fn state_cases() -> Vec<(StateEvent, String)> {
    let host_body = "<HOST><ID>0</ID><NAME>node1</NAME><STATE>3</STATE><TEMPLATE/></HOST>";
    let image_body = "<IMAGE><ID>7</ID><NAME>img</NAME><STATE>1</STATE></IMAGE>";
    let vnet_body = "<VNET><ID>2</ID><NAME>net</NAME><STATE>1</STATE></VNET>";
    vec![
        (
            StateEvent {
                object: ObjectKind::Vm,
                state: "ACTIVE".to_string(),
                lcm_state: Some("RUNNING".to_string()),
                resource_id: 12,
                service_id: Some(4),
                remote_host: Some("node1".to_string()),
                body: VM_BODY.to_string(),
            },
            format!(
                "<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>VM</HOOK_OBJECT><STATE>ACTIVE</STATE><LCM_STATE>RUNNING</LCM_STATE><RESOURCE_ID>12</RESOURCE_ID><SERVICE_ID>4</SERVICE_ID><REMOTE_HOST>node1</REMOTE_HOST>{VM_BODY}</HOOK_MESSAGE>"
            ),
        ),
        (
            StateEvent {
                object: ObjectKind::Vm,
                state: "PENDING".to_string(),
                lcm_state: Some("LCM_INIT".to_string()),
                resource_id: 42,
                service_id: None,
                remote_host: None,
                body: "<VM><ID>42</ID></VM>".to_string(),
            },
            "<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>VM</HOOK_OBJECT><STATE>PENDING</STATE><LCM_STATE>LCM_INIT</LCM_STATE><RESOURCE_ID>42</RESOURCE_ID><REMOTE_HOST/><VM><ID>42</ID></VM></HOOK_MESSAGE>".to_string(),
        ),
        (
            StateEvent {
                object: ObjectKind::Host,
                state: "ERROR".to_string(),
                lcm_state: None,
                resource_id: 0,
                service_id: None,
                remote_host: Some("node1".to_string()),
                body: host_body.to_string(),
            },
            format!(
                "<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>HOST</HOOK_OBJECT><STATE>ERROR</STATE><REMOTE_HOST>node1</REMOTE_HOST><RESOURCE_ID>0</RESOURCE_ID>{host_body}</HOOK_MESSAGE>"
            ),
        ),
        (
            StateEvent {
                object: ObjectKind::Image,
                state: "READY".to_string(),
                lcm_state: None,
                resource_id: 7,
                service_id: None,
                remote_host: None,
                body: image_body.to_string(),
            },
            format!(
                "<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>IMAGE</HOOK_OBJECT><STATE>READY</STATE><RESOURCE_ID>7</RESOURCE_ID>{image_body}</HOOK_MESSAGE>"
            ),
        ),
        (
            StateEvent {
                object: ObjectKind::Net,
                state: "READY".to_string(),
                lcm_state: None,
                resource_id: 2,
                service_id: None,
                remote_host: None,
                body: vnet_body.to_string(),
            },
            format!(
                "<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>NET</HOOK_OBJECT><STATE>READY</STATE><RESOURCE_ID>2</RESOURCE_ID>{vnet_body}</HOOK_MESSAGE>"
            ),
        ),
        (
            // NET UPDATE_FAILURE carries an empty state name.
            StateEvent {
                object: ObjectKind::Net,
                state: String::new(),
                lcm_state: None,
                resource_id: 2,
                service_id: None,
                remote_host: None,
                body: vnet_body.to_string(),
            },
            format!(
                "<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>NET</HOOK_OBJECT><STATE></STATE><RESOURCE_ID>2</RESOURCE_ID>{vnet_body}</HOOK_MESSAGE>"
            ),
        ),
    ]
}

#[test]
fn state_events_are_byte_exact_and_parse_back() {
    for (event, reference) in state_cases() {
        let message = HookMessage::State(event.clone());
        assert_eq!(message.to_xml(), reference);
        let parsed = HookMessage::parse(&reference).unwrap();
        assert_eq!(parsed, message, "{reference}");
        assert_eq!(
            b64_decode_strict(&parsed.template_argument()).unwrap(),
            event.body.as_bytes()
        );
        assert_eq!(parsed.api_argument(), "");
    }
}

#[test]
fn template_argument_matches_the_hook_log_example() {
    let message = HookMessage::State(StateEvent {
        object: ObjectKind::Vm,
        state: "PENDING".to_string(),
        lcm_state: Some("LCM_INIT".to_string()),
        resource_id: 12,
        service_id: None,
        remote_host: None,
        body: "<VM><ID>12</ID></VM>".to_string(),
    });
    // §4.3: `$TEMPLATE pending` expanded for this VM.
    assert_eq!(message.template_argument(), "PFZNPjxJRD4xMjwvSUQ+PC9WTT4=");
}

#[test]
fn template_argument_takes_the_first_object_element() {
    // A body after unrelated elements, and a NET event whose body root is VNET.
    let xml = "<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>NET</HOOK_OBJECT><STATE>READY</STATE><RESOURCE_ID>2</RESOURCE_ID><NET>no</NET><VNET><ID>2</ID><TEMPLATE><VNET><![CDATA[x]]></VNET></TEMPLATE></VNET></HOOK_MESSAGE>";
    let parsed = HookMessage::parse(xml).unwrap();
    let HookMessage::State(state) = &parsed else {
        panic!("not a state event");
    };
    assert_eq!(
        state.body,
        "<VNET><ID>2</ID><TEMPLATE><VNET><![CDATA[x]]></VNET></TEMPLATE></VNET>"
    );
    assert_eq!(
        b64_decode_strict(&parsed.template_argument()).unwrap(),
        state.body.as_bytes()
    );
}

fn first_result() -> ExecutionResult {
    ExecutionResult {
        arguments: "PFZNPjxJRD4xMjwvSUQ+PC9WTT4= pending".to_string(),
        command: "/var/lib/one/remotes/hooks/vm-pending.rb PFZNPjxJRD4xMjwvSUQ+PC9WTT4= pending"
            .to_string(),
        stdout: b"Executed!\n".to_vec(),
        stderr: Vec::new(),
        code: 0,
        remote_host: None,
        retry: false,
        execution_uid: None,
    }
}

fn retried_result() -> ExecutionResult {
    ExecutionResult {
        stdout: Vec::new(),
        stderr: b"Timeout executing /var/lib/one/remotes/hooks/vm-pending.rb".to_vec(),
        code: 255,
        retry: true,
        ..first_result()
    }
}

const FIRST_BODY: &str = "<ARGUMENTS>PFZNPjxJRD4xMjwvSUQ+PC9WTT4= pending</ARGUMENTS><EXECUTION_RESULT><COMMAND>/var/lib/one/remotes/hooks/vm-pending.rb PFZNPjxJRD4xMjwvSUQ+PC9WTT4= pending</COMMAND><STDOUT>RXhlY3V0ZWQhCg==\n</STDOUT><STDERR></STDERR><CODE>0</CODE></EXECUTION_RESULT>";

#[test]
fn result_body_is_byte_exact() {
    assert_eq!(first_result().to_xml(), FIRST_BODY);
    let remote = ExecutionResult {
        remote_host: Some("node1".to_string()),
        retry: true,
        execution_uid: Some("0f3c2a".to_string()),
        ..first_result()
    };
    assert_eq!(
        remote.to_xml(),
        format!(
            "{FIRST_BODY}<REMOTE_HOST>node1</REMOTE_HOST><RETRY>yes</RETRY><EXECUTION_UID>0f3c2a</EXECUTION_UID>"
        )
    );
    assert_eq!(ExecutionResult::parse(&remote.to_xml()).unwrap(), remote);
    assert_eq!(ExecutionResult::parse(FIRST_BODY).unwrap(), first_result());
}

#[test]
fn hooklog_is_byte_exact() {
    let second_body = retried_result().to_xml();
    let records = vec![
        record_xml(3, 0, 1727100638, FIRST_BODY).unwrap(),
        record_xml(3, 1, 1727103540, &second_body).unwrap(),
    ];
    let reference = format!(
        "<HOOKLOG><HOOK_EXECUTION_RECORD><HOOK_ID>3</HOOK_ID><EXECUTION_ID>0</EXECUTION_ID><TIMESTAMP>1727100638</TIMESTAMP><ARGUMENTS>PFZNPjxJRD4xMjwvSUQ+PC9WTT4= pending</ARGUMENTS><EXECUTION_RESULT><COMMAND>/var/lib/one/remotes/hooks/vm-pending.rb PFZNPjxJRD4xMjwvSUQ+PC9WTT4= pending</COMMAND><STDOUT>RXhlY3V0ZWQhCg==\n</STDOUT><STDERR></STDERR><CODE>0</CODE></EXECUTION_RESULT></HOOK_EXECUTION_RECORD><HOOK_EXECUTION_RECORD><HOOK_ID>3</HOOK_ID><EXECUTION_ID>1</EXECUTION_ID><TIMESTAMP>1727103540</TIMESTAMP><ARGUMENTS>PFZNPjxJRD4xMjwvSUQ+PC9WTT4= pending</ARGUMENTS><EXECUTION_RESULT><COMMAND>/var/lib/one/remotes/hooks/vm-pending.rb PFZNPjxJRD4xMjwvSUQ+PC9WTT4= pending</COMMAND><STDOUT></STDOUT><STDERR>{}</STDERR><CODE>255</CODE></EXECUTION_RESULT><RETRY>yes</RETRY></HOOK_EXECUTION_RECORD></HOOKLOG>",
        one_proto::encoding::b64_mime(&retried_result().stderr)
    );
    let hooklog = hooklog_xml(&records);
    assert_eq!(hooklog, reference);

    let parsed = parse_hooklog(&hooklog).unwrap();
    assert_eq!(
        parsed,
        vec![
            ExecutionRecord {
                hook_id: 3,
                execution_id: 0,
                timestamp: 1727100638,
                result: Some(first_result()),
            },
            ExecutionRecord {
                hook_id: 3,
                execution_id: 1,
                timestamp: 1727103540,
                result: Some(retried_result()),
            },
        ]
    );
    assert_eq!(parsed[0].stdout(), b"Executed!\n");
    assert_eq!(
        parsed[1].stderr(),
        b"Timeout executing /var/lib/one/remotes/hooks/vm-pending.rb"
    );
    assert_eq!(ExecutionRecord::parse(&records[1]).unwrap(), parsed[1]);
}

#[test]
fn record_with_an_empty_body_holds_only_the_ids() {
    let record = record_xml(3, 2, 1727100000, "").unwrap();
    assert_eq!(
        record,
        "<HOOK_EXECUTION_RECORD><HOOK_ID>3</HOOK_ID><EXECUTION_ID>2</EXECUTION_ID><TIMESTAMP>1727100000</TIMESTAMP></HOOK_EXECUTION_RECORD>"
    );
    let parsed = ExecutionRecord::parse(&record).unwrap();
    assert_eq!(parsed.result, None);
    assert_eq!(parsed.stdout(), b"");
    assert_eq!(hooklog_xml(&[]), "<HOOKLOG></HOOKLOG>");
    assert_eq!(parse_hooklog("<HOOKLOG></HOOKLOG>").unwrap(), vec![]);
}

#[test]
fn retry_message_is_byte_exact() {
    let retry = RetryMessage {
        arguments: "PFZNPjxJRD4xMjwvSUQ+PC9WTT4= pending".to_string(),
        hook_id: 3,
        remote_host: Some("node1".to_string()),
    };
    let reference = "<HOOK_MESSAGE><ARGUMENTS>UEZaTlBqeEpSRDR4TWp3dlNVUStQQzlXVFQ0PSBwZW5kaW5n</ARGUMENTS><HOOK_ID>3</HOOK_ID><REMOTE_HOST>node1</REMOTE_HOST></HOOK_MESSAGE>";
    assert_eq!(retry.to_xml(), reference);
    assert_eq!(RetryMessage::parse(reference).unwrap(), retry);
    // The driver publishes the base64 content with a trailing space.
    let content = format!("{} ", b64_encode(reference.as_bytes()));
    assert_eq!(
        RetryMessage::from_content(content.as_bytes()).unwrap(),
        retry
    );
    assert_eq!(
        RetryMessage::parse(&format!("{reference} ")).unwrap(),
        retry
    );

    let local = RetryMessage {
        arguments: String::new(),
        hook_id: 0,
        remote_host: Some(String::new()),
    };
    assert_eq!(
        local.to_xml(),
        "<HOOK_MESSAGE><ARGUMENTS></ARGUMENTS><HOOK_ID>0</HOOK_ID></HOOK_MESSAGE>"
    );
    assert_eq!(
        RetryMessage::parse(&local.to_xml()).unwrap(),
        RetryMessage {
            remote_host: None,
            ..local
        }
    );
}
