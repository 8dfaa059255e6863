//! Every call that passed authentication, except the info calls, leaves one API event in the
//! outbox (reference §4.4); faults and authentication failures leave none.

use crate::api_common::{Front, NO_DRIVER_CONF};
use one_client::{Client, Value};
use one_proto::encoding::b64_decode_strict;
use one_proto::event::{ApiEvent, HookMessage, ParamDir};
use one_proto::retry::RetryMessage;
use oned_lite::db::Db;
use oned_lite::events::{EntryKind, EventBus};

fn api(payload: &str) -> ApiEvent {
    let xml = String::from_utf8(b64_decode_strict(payload).unwrap()).unwrap();
    match HookMessage::parse(&xml).unwrap() {
        HookMessage::Api(e) => e,
        other => panic!("not an API event: {other:?}"),
    }
}

#[test]
fn api_events_follow_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let front = Front::start(dir.path(), NO_DRIVER_CONF);
    let c = front.client();
    let bus = EventBus::new(Db::open(&dir.path().join("one.db")).unwrap());
    let before = bus
        .fetch(0, 1000)
        .unwrap()
        .last()
        .map(|e| e.seq)
        .unwrap_or(0);

    let id = c
        .hook_allocate("NAME=e\nTYPE=api\nCOMMAND=/bin/true\nCALL=one.vm.allocate")
        .unwrap();
    c.hook_info(id).unwrap(); // info: no event
    c.hookpool_info().unwrap(); // info: no event
    assert!(
        c.call("one.hook.info", vec![Value::String("x".into())])
            .is_err()
    ); // fault: no event
    let intruder = Client::new(&front.endpoint, "oneadmin:wrong");
    assert!(intruder.hook_delete(id).is_err()); // authentication failure: no event
    assert!(c.hook_delete(id + 5).is_err()); // NO_EXISTS: an event
    c.call(
        "one.user.allocate",
        vec!["carol".into(), "secret".into(), "".into()],
    )
    .unwrap();
    let db = Db::open(&dir.path().join("one.db")).unwrap();
    let b64 = base64_of(
        "<ARGUMENTS>x y</ARGUMENTS><EXECUTION_RESULT><COMMAND>c</COMMAND><STDOUT></STDOUT><STDERR></STDERR><CODE>0</CODE></EXECUTION_RESULT><REMOTE_HOST>n1</REMOTE_HOST>",
    );
    db.write(|tx| oned_lite::hook_log::add_result(tx, id, 0, &b64, 20, 10))
        .unwrap();
    c.hook_retry(id, 0).unwrap();
    c.hook_delete(id).unwrap();

    let entries: Vec<_> = bus.fetch(before, 1000).unwrap();
    let kinds: Vec<EntryKind> = entries.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EntryKind::Execute,
            EntryKind::Execute,
            EntryKind::Execute,
            EntryKind::Retry,
            EntryKind::Execute,
            EntryKind::Execute
        ]
    );

    let alloc = api(&entries[0].payload);
    assert_eq!(alloc.call, "one.hook.allocate");
    assert!(alloc.success);
    assert_eq!(alloc.param(ParamDir::In, 1), Some("****"));
    assert_eq!(
        alloc.param(ParamDir::In, 2),
        Some("NAME=e\nTYPE=api\nCOMMAND=/bin/true\nCALL=one.vm.allocate")
    );
    assert_eq!(alloc.param(ParamDir::Out, 1), Some("true"));
    assert_eq!(alloc.param(ParamDir::Out, 2), Some(id.to_string().as_str()));
    assert_eq!(alloc.param(ParamDir::Out, 3), Some("0"));
    assert!(
        alloc
            .extra
            .starts_with(&format!("<HOOK><ID>{id}</ID><NAME>e</NAME>")),
        "{}",
        alloc.extra
    );

    let missing = api(&entries[1].payload);
    assert_eq!(missing.call, "one.hook.delete");
    assert!(!missing.success);
    let gone = (id + 5).to_string();
    assert_eq!(missing.param(ParamDir::In, 2), Some(gone.as_str()));
    let message = format!("[one.hook.delete] Error getting hook [{gone}].");
    assert_eq!(missing.param(ParamDir::Out, 2), Some(message.as_str()));
    assert_eq!(missing.param(ParamDir::Out, 3), Some("1024"));
    assert_eq!(missing.param(ParamDir::Out, 4), Some(gone.as_str()));
    assert_eq!(missing.extra, "");

    let user = api(&entries[2].payload);
    assert_eq!(user.call, "one.user.allocate");
    assert_eq!(user.param(ParamDir::In, 2), Some("carol"));
    assert_eq!(
        user.param(ParamDir::In, 3),
        Some("****"),
        "the password is hidden"
    );
    assert!(user.extra.contains("<NAME>carol</NAME>"));

    let retry_xml = String::from_utf8(b64_decode_strict(&entries[3].payload).unwrap()).unwrap();
    let retry = RetryMessage::parse(&retry_xml).unwrap();
    assert_eq!(retry.hook_id, id);
    assert_eq!(retry.arguments, "x y");
    assert_eq!(retry.remote_host.as_deref(), Some("n1"));
    assert_eq!(api(&entries[4].payload).call, "one.hook.retry");

    let deleted = api(&entries[5].payload);
    assert_eq!(deleted.call, "one.hook.delete");
    assert!(deleted.success);
    assert!(
        deleted.extra.starts_with(&format!("<HOOK><ID>{id}</ID>")),
        "the hook as it was"
    );
    front.stop().unwrap();
}

fn base64_of(s: &str) -> String {
    one_proto::encoding::b64_encode(s.as_bytes())
}
