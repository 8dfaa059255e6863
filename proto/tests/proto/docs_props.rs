//! Property tests: every document we build is well-formed and reads back to what was built, and
//! no reader panics on any input.

use one_proto::encoding::{
    b64_decode_lenient, b64_decode_strict, b64_encode, b64_mime, b64_mime_decode, is_xml_char,
    xml_escape,
};
use one_proto::event::{
    ApiEvent, ApiParam, HookMessage, ObjectKind, ParamDir, StateEvent, hidden_param,
};
use one_proto::hook_log::{
    ExecutionRecord, ExecutionResult, hooklog_xml, parse_hooklog, record_xml,
};
use one_proto::retry::RetryMessage;
use one_proto::{check_xml_document, check_xml_fragment};
use proptest::prelude::*;

/// Pieces that stress escaping and the lenient readers' raw rules.
const TRICKY: &[&str] = &[
    "<",
    ">",
    "&",
    "]]>",
    "]]",
    "\"",
    "'",
    "\n",
    "\r",
    "\r\n",
    "\t",
    " ",
    "é",
    "漢字",
    "😀",
    "&amp;",
    "&lt;",
    "&#13;",
    "&#x1F600;",
    "&bogus;",
    "<![CDATA[",
    "<!--",
    "-->",
    "<?xml?>",
    "</VALUE>",
    "</VALUE></PARAMETER>",
    "<VALUE>",
    "</ARGUMENTS><EXECUTION_RESULT>",
    "</COMMAND><STDOUT>",
    "</HOOK_EXECUTION_RECORD>",
    "<HOOK_MESSAGE>",
    "</CALL_INFO>",
    "\u{0}",
    "\u{1}",
    "\u{b}",
    "\u{fffe}",
    "\u{ffff}",
    "\u{7f}",
    "\u{85}",
    "\u{2028}",
];

/// Arbitrary strings with a high share of tricky pieces.
fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => proptest::sample::select(TRICKY).prop_map(str::to_string),
        2 => "[a-zA-Z0-9 =_./-]{1,8}",
        1 => any::<char>().prop_map(|c| c.to_string()),
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

/// What a string becomes after a trip through XML: characters XML cannot carry are replaced.
fn xml_text(s: &str) -> String {
    s.chars()
        .map(|c| if is_xml_char(c) { c } else { '\u{FFFD}' })
        .collect()
}

/// A well-formed element named `root`, with escaped text, CDATA and nesting.
fn element(root: &'static str) -> impl Strategy<Value = String> {
    (
        proptest::collection::vec((text(), text()), 0..4),
        any::<bool>(),
    )
        .prop_map(move |(children, self_closing)| {
            if self_closing && children.is_empty() {
                return format!("<{root}/>");
            }
            let mut out = format!("<{root}><ID>7</ID>");
            for (i, (a, b)) in children.iter().enumerate() {
                let cdata = b.replace("]]>", "]]]]><![CDATA[>");
                let cdata: String = xml_text(&cdata);
                out.push_str(&format!(
                    "<C{i} k=\"{}\"><TEXT>{}</TEXT><![CDATA[{cdata}]]><E/></C{i}>",
                    xml_escape(a).replace('"', "&quot;"),
                    xml_escape(a)
                ));
            }
            out.push_str(&format!("</{root}>"));
            out
        })
}

fn api_event() -> impl Strategy<Value = ApiEvent> {
    (
        "[a-z]{1,6}(\\.[a-z]{1,8}){1,2}",
        proptest::sample::select(vec![
            "",
            "one.user.allocate",
            "one.user.passwd",
            "one.user.chauth",
            "one.internal.vmmonitor",
        ]),
        any::<bool>(),
        proptest::collection::vec(text(), 0..6),
        proptest::collection::vec(text(), 0..5),
        prop_oneof![
            Just(String::new()),
            element("HOOK"),
            text().prop_map(|t| xml_escape(&t).into_owned())
        ],
    )
        .prop_map(|(random_call, known_call, success, ins, outs, extra)| {
            let call = if known_call.is_empty() {
                random_call
            } else {
                known_call.to_string()
            };
            let mut params = Vec::new();
            for (position, value) in (1u32..).zip(ins) {
                params.push(ApiParam {
                    position,
                    dir: ParamDir::In,
                    value,
                });
            }
            for (position, value) in (1u32..).zip(outs) {
                params.push(ApiParam {
                    position,
                    dir: ParamDir::Out,
                    value,
                });
            }
            ApiEvent {
                call,
                success,
                params,
                extra,
                received_call_info: None,
            }
        })
}

/// What an API event reads back as: hidden IN values masked, text made XML-safe.
fn api_expected(event: &ApiEvent) -> ApiEvent {
    let mut expected = event.clone();
    for param in &mut expected.params {
        param.value = if param.dir == ParamDir::In && hidden_param(&event.call, param.position) {
            "****".to_string()
        } else {
            xml_text(&param.value)
        };
    }
    expected
}

fn state_event() -> impl Strategy<Value = StateEvent> {
    let kind = proptest::sample::select(vec![
        ObjectKind::Vm,
        ObjectKind::Host,
        ObjectKind::Image,
        ObjectKind::Net,
    ]);
    kind.prop_flat_map(|object| {
        (
            Just(object),
            text(),
            proptest::option::of(text()),
            any::<i64>(),
            proptest::option::of(any::<i64>()),
            proptest::option::of(text()),
            element(object.body_root()),
        )
    })
    .prop_map(
        |(object, state, lcm, resource_id, service_id, host, body)| {
            let trimmed = |s: &str| xml_text(s).trim().to_string();
            let is_vm = object == ObjectKind::Vm;
            StateEvent {
                object,
                state: trimmed(&state),
                lcm_state: lcm.filter(|_| is_vm).map(|l| trimmed(&l)),
                resource_id,
                service_id: service_id.filter(|_| is_vm),
                remote_host: host
                    .filter(|_| matches!(object, ObjectKind::Vm | ObjectKind::Host))
                    .map(|h| xml_text(&h))
                    .filter(|h| !h.is_empty()),
                body,
            }
        },
    )
}

fn exec_result() -> impl Strategy<Value = ExecutionResult> {
    (
        text(),
        text(),
        proptest::collection::vec(any::<u8>(), 0..200),
        proptest::collection::vec(any::<u8>(), 0..100),
        any::<i32>(),
        proptest::option::of(text()),
        any::<bool>(),
        proptest::option::of(text()),
    )
        .prop_map(
            |(arguments, command, stdout, stderr, code, host, retry, uid)| ExecutionResult {
                arguments: xml_text(&arguments),
                command: xml_text(&command),
                stdout,
                stderr,
                code,
                remote_host: host.map(|h| xml_text(&h)).filter(|h| !h.is_empty()),
                retry,
                execution_uid: uid.map(|u| xml_text(&u)),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn api_events_round_trip(event in api_event()) {
        let message = HookMessage::Api(event.clone());
        let xml = message.to_xml();
        prop_assert_eq!(check_xml_document(&xml), Ok(()), "{}", xml);
        let parsed = HookMessage::parse(&xml).unwrap();
        prop_assert_eq!(&parsed, &HookMessage::Api(api_expected(&event)));
        // $API is the CALL_INFO subtree we wrote, received or rebuilt alike.
        let start = xml.find("<CALL_INFO>").unwrap();
        let end = xml.rfind("</CALL_INFO>").unwrap() + "</CALL_INFO>".len();
        let call_info = &xml[start..end];
        prop_assert_eq!(b64_decode_strict(&parsed.api_argument()).unwrap(), call_info.as_bytes());
        prop_assert_eq!(b64_decode_strict(&message.api_argument()).unwrap(), call_info.as_bytes());
        prop_assert_eq!(check_xml_document(call_info), Ok(()));
    }

    #[test]
    fn state_events_round_trip(event in state_event()) {
        let message = HookMessage::State(event.clone());
        let xml = message.to_xml();
        prop_assert_eq!(check_xml_document(&xml), Ok(()), "{}", xml);
        let parsed = HookMessage::parse(&xml).unwrap();
        prop_assert_eq!(&parsed, &message);
        let content = b64_encode(xml.as_bytes());
        prop_assert_eq!(&HookMessage::from_content(content.as_bytes()).unwrap(), &message);
        prop_assert_eq!(
            b64_decode_strict(&parsed.template_argument()).unwrap(),
            event.body.as_bytes()
        );
    }

    #[test]
    fn results_and_records_round_trip(
        results in proptest::collection::vec(exec_result(), 1..4),
        hook_id in any::<i64>(),
        timestamp in any::<i64>(),
    ) {
        let mut records = Vec::new();
        for (execution_id, result) in (0i64..).zip(&results) {
            let body = result.to_xml();
            prop_assert_eq!(check_xml_fragment(&body), Ok(()), "{}", body);
            prop_assert_eq!(&ExecutionResult::parse(&body).unwrap(), result);
            let record = record_xml(hook_id, execution_id, timestamp, &body).unwrap();
            let parsed = ExecutionRecord::parse(&record).unwrap();
            prop_assert_eq!(parsed.stdout(), result.stdout.as_slice());
            prop_assert_eq!(parsed.stderr(), result.stderr.as_slice());
            prop_assert_eq!(parsed.result.as_ref(), Some(result));
            records.push(record);
        }
        let hooklog = hooklog_xml(&records);
        prop_assert_eq!(check_xml_document(&hooklog), Ok(()));
        let parsed = parse_hooklog(&hooklog).unwrap();
        let expected: Vec<ExecutionRecord> = (0i64..)
            .zip(&results)
            .map(|(execution_id, result)| ExecutionRecord {
                hook_id,
                execution_id,
                timestamp,
                result: Some(result.clone()),
            })
            .collect();
        prop_assert_eq!(parsed, expected);
    }

    #[test]
    fn retry_messages_round_trip(
        arguments in text(),
        hook_id in any::<i64>(),
        host in proptest::option::of(text()),
    ) {
        let retry = RetryMessage {
            arguments,
            hook_id,
            remote_host: host.map(|h| xml_text(&h)).filter(|h| !h.is_empty()),
        };
        let xml = retry.to_xml();
        prop_assert_eq!(check_xml_document(&xml), Ok(()));
        prop_assert_eq!(&RetryMessage::parse(&xml).unwrap(), &retry);
        let content = format!("{} ", b64_encode(xml.as_bytes()));
        prop_assert_eq!(&RetryMessage::from_content(content.as_bytes()).unwrap(), &retry);
    }

    #[test]
    fn base64_flavours(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        let strict = b64_encode(&data);
        prop_assert_eq!(b64_decode_strict(&strict).unwrap(), data.clone());
        prop_assert_eq!(b64_decode_lenient(&strict), data.clone());
        let mime = b64_mime(&data);
        prop_assert_eq!(b64_mime_decode(&mime), data.clone());
        prop_assert_eq!(mime.replace('\n', ""), strict);
        for line in mime.split_terminator('\n') {
            prop_assert!(line.len() <= 60 && !line.is_empty());
        }
        prop_assert!(mime.is_empty() || mime.ends_with('\n'));
        if data.len() > 45 {
            prop_assert!(b64_decode_strict(&mime).is_err());
        }
    }

    #[test]
    fn escaped_text_is_always_embeddable(s in text()) {
        let escaped = xml_escape(&s);
        prop_assert_eq!(check_xml_fragment(&escaped), Ok(()));
        let doc = format!("<A>{escaped}</A>");
        prop_assert_eq!(check_xml_document(&doc), Ok(()));
    }
}

/// XML-ish tokens so that random input reaches deep into the readers.
const TOKENS: &[&str] = &[
    "<HOOK_MESSAGE>",
    "</HOOK_MESSAGE>",
    "<HOOK_TYPE>API</HOOK_TYPE>",
    "<HOOK_TYPE>STATE</HOOK_TYPE>",
    "<CALL>one.vm.allocate</CALL>",
    "<CALL_INFO>",
    "</CALL_INFO>",
    "<RESULT>1</RESULT>",
    "<PARAMETERS>",
    "</PARAMETERS>",
    "<PARAMETER>",
    "</PARAMETER>",
    "<POSITION>2</POSITION>",
    "<TYPE>IN</TYPE>",
    "<TYPE>OUT</TYPE>",
    "<VALUE>",
    "</VALUE>",
    "<EXTRA>",
    "</EXTRA>",
    "<HOOK_OBJECT>VM</HOOK_OBJECT>",
    "<HOOK_OBJECT>NET</HOOK_OBJECT>",
    "<STATE>ACTIVE</STATE>",
    "<RESOURCE_ID>1</RESOURCE_ID>",
    "<SERVICE_ID>",
    "<REMOTE_HOST/>",
    "<VM>",
    "</VM>",
    "<VNET>",
    "<HOOKLOG>",
    "</HOOKLOG>",
    "<HOOK_EXECUTION_RECORD>",
    "</HOOK_EXECUTION_RECORD>",
    "<HOOK_ID>3</HOOK_ID>",
    "<EXECUTION_ID>0</EXECUTION_ID>",
    "<TIMESTAMP>9</TIMESTAMP>",
    "<ARGUMENTS>",
    "</ARGUMENTS>",
    "<EXECUTION_RESULT>",
    "</EXECUTION_RESULT>",
    "<COMMAND>",
    "</COMMAND>",
    "<STDOUT>",
    "</STDOUT>",
    "<CODE>0</CODE>",
    "<RETRY>yes</RETRY>",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<?",
    "?>",
    "<!DOCTYPE x>",
    "<",
    ">",
    "</",
    "/>",
    "&",
    ";",
    "&amp;",
    "&#",
    "&#x",
    "\"",
    "'",
    "=",
    " ",
    "\n",
    "\r",
    "é",
    "漢",
    "😀",
    "\u{0}",
    "x",
    "QQ==",
];

fn tokens() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(TOKENS), 0..40).prop_map(|t| t.concat())
}

/// Runs every reader we own on `input`; the point is that none of them panics.
fn read_everything(input: &str) {
    let _ =
        HookMessage::parse(input).map(|m| (m.api_argument(), m.template_argument(), m.to_xml()));
    let _ = ExecutionResult::parse(input).map(|r| r.to_xml());
    let _ = ExecutionRecord::parse(input);
    let _ = parse_hooklog(input);
    let _ = RetryMessage::parse(input).map(|r| r.to_xml());
    let _ = RetryMessage::from_content(input.as_bytes());
    let _ = HookMessage::from_content(input.as_bytes());
    let _ = record_xml(1, 2, 3, input);
    let _ = check_xml_document(input);
    let _ = check_xml_fragment(input);
    let _ = b64_decode_strict(input);
    let _ = b64_decode_lenient(input);
    let _ = xml_escape(input);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn no_reader_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        read_everything(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn no_reader_panics_on_xmlish_input(input in tokens()) {
        read_everything(&input);
    }

    #[test]
    fn no_reader_panics_on_damaged_documents(
        event in api_event(),
        result in exec_result(),
        cut in any::<proptest::sample::Index>(),
        insert in proptest::sample::select(TOKENS),
    ) {
        for doc in [
            HookMessage::Api(event).to_xml(),
            record_xml(1, 0, 0, &result.to_xml()).unwrap_or_default(),
        ] {
            let boundaries: Vec<usize> =
                doc.char_indices().map(|(i, _)| i).chain([doc.len()]).collect();
            let at = boundaries[cut.index(boundaries.len())];
            read_everything(&doc[..at]);
            read_everything(&format!("{}{insert}{}", &doc[..at], &doc[at..]));
        }
    }
}

#[test]
fn deep_nesting_is_handled() {
    let deep = format!("{}{}", "<A>".repeat(20_000), "</A>".repeat(20_000));
    read_everything(&deep);
    let open_only = "<HOOK_MESSAGE><VALUE>".repeat(10_000);
    read_everything(&open_only);
    let stray_ends = format!("{}{}", "<A>".repeat(10_000), "</B>".repeat(10_000));
    read_everything(&stray_ends);
}
