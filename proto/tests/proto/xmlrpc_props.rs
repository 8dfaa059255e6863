//! Property tests of the XML-RPC codec: what we write we read back, and no input panics.

use one_proto::xmlrpc::{
    MethodCall, Response, Value, format_call, format_fault, format_response, parse_call,
    parse_response,
};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    // Printable text plus the whitespace XML keeps (CR is written as a character reference).
    "[\\PC\t\r\n]{0,40}"
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i32>().prop_map(Value::Int),
        any::<i64>().prop_map(Value::I8),
        any::<bool>().prop_map(Value::Bool),
        (-1e12f64..1e12).prop_map(Value::Double),
        text().prop_map(Value::String),
        proptest::collection::vec(any::<u8>(), 0..32).prop_map(Value::Base64),
        "[0-9]{8}T[0-9]{2}:[0-9]{2}:[0-9]{2}".prop_map(Value::DateTime),
        Just(Value::Nil),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec(("[A-Za-z_][A-Za-z0-9_]{0,8}", inner), 0..6)
                .prop_map(Value::Struct),
        ]
    })
}

proptest! {
    #[test]
    fn calls_round_trip(method in "[a-z][a-z.]{0,20}", params in proptest::collection::vec(value(), 0..5)) {
        let call = MethodCall { method, params };
        prop_assert_eq!(parse_call(format_call(&call).as_bytes()).unwrap(), call);
    }

    #[test]
    fn responses_round_trip(v in value()) {
        prop_assert_eq!(parse_response(format_response(&v).as_bytes()).unwrap(), Response::Value(v));
    }

    #[test]
    fn faults_round_trip(code in any::<i32>(), message in text()) {
        prop_assert_eq!(
            parse_response(format_fault(code, &message).as_bytes()).unwrap(),
            Response::Fault { code, message }
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_call(&body);
        let _ = parse_response(&body);
    }

    #[test]
    fn mangled_documents_never_panic(v in value(), cut in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut doc = format_call(&MethodCall { method: "m".into(), params: vec![v] }).into_bytes();
        let i = cut.index(doc.len());
        doc[i] = byte;
        let _ = parse_call(&doc);
        doc.truncate(i);
        let _ = parse_call(&doc);
    }
}
