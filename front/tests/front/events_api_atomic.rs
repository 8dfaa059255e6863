//! The API event of a call is written in the transaction of the call's changes: when the event
//! cannot be stored, the change is not stored either and the call fails.

use crate::api_common::{Front, NO_DRIVER_CONF};
use one_proto::encoding::b64_decode_strict;
use one_proto::event::{HookMessage, ParamDir};
use oned_lite::db::Db;
use oned_lite::events::EventBus;

const HOOK: &str = "NAME = atomic\nTYPE = api\nCOMMAND = /bin/true\nCALL = one.vm.allocate";

fn api_calls(bus: &EventBus) -> Vec<(String, Option<String>)> {
    bus.fetch(0, 1000)
        .unwrap()
        .iter()
        .filter_map(|e| {
            let xml = String::from_utf8(b64_decode_strict(&e.payload).ok()?).ok()?;
            match HookMessage::parse(&xml).ok()? {
                HookMessage::Api(a) => {
                    let out = a.param(ParamDir::Out, 2).map(str::to_string);
                    Some((a.call, out))
                }
                HookMessage::State(_) => None,
            }
        })
        .filter(|(call, _)| call != "one.system.version")
        .collect()
}

#[test]
fn a_call_whose_event_cannot_be_stored_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let front = Front::start(dir.path(), NO_DRIVER_CONF);
    let c = front.client();
    let path = dir.path().join("one.db");
    // Another connection makes every outbox insert fail, as a full disk would.
    let other = rusqlite::Connection::open(&path).unwrap();
    other
        .execute_batch(
            "CREATE TRIGGER outbox_broken BEFORE INSERT ON event_outbox
             BEGIN SELECT RAISE(ABORT, 'outbox unavailable'); END;",
        )
        .unwrap();
    let err = c.hook_allocate(HOOK).unwrap_err().to_string();
    assert!(err.contains("Internal database error."), "{err}");
    let pool = c.call("one.hookpool.info", vec![]).unwrap();
    assert!(
        !format!("{pool:?}").contains("<NAME>atomic</NAME>"),
        "the hook was not stored without its event: {pool:?}"
    );

    other.execute_batch("DROP TRIGGER outbox_broken").unwrap();
    let id = c.hook_allocate(HOOK).unwrap();
    let bus = EventBus::new(Db::open(&path).unwrap());
    assert_eq!(
        api_calls(&bus),
        [("one.hook.allocate".to_string(), Some(id.to_string()))],
        "one event, for the call that was stored"
    );
    front.stop().unwrap();
}
