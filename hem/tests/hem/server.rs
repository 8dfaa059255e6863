//! The whole HEM in-process against a stand-in front-end and driver: the seed's example
//! (failure record, then a successful retry), API hooks with stdin, reloads, remote hooks
//! without a host, and events the subscriber missed.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::fake_cloud::{FakeDriver, FakeFrontEnd, hem_config, hook, vm_state, wait_for};
use one_proto::encoding::{b64_decode_strict, b64_encode};
use one_proto::event::{ApiEvent, HookMessage};
use one_proto::execution_uid::{EventRef, claim};
use one_proto::hook::HookType;
use one_proto::retry::RetryMessage;
use onehem_server::ingest::IngestShared;

struct Hem {
    rt: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

fn start_hem(config: &Path) -> Hem {
    let mut config = onehem_server::config::load(config).unwrap();
    // In-process, the running executable is this test: the hook supervisor is the real binary.
    config.supervisor_program = env!("CARGO_BIN_EXE_onehem-server").into();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let shared = Arc::new(IngestShared::new().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = rt.spawn(onehem_server::run_with_status(
        config,
        async {
            let _ = rx.await;
        },
        shared.clone(),
    ));
    wait_for("the HEM to be ready", Duration::from_secs(30), || {
        shared.ready.load(Ordering::SeqCst)
    });
    Hem {
        rt,
        stop: Some(tx),
        task: Some(task),
    }
}

impl Hem {
    fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let task = self.task.take().unwrap();
        let result = self
            .rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(30), task).await });
        result.expect("the HEM did not stop").unwrap().unwrap();
    }
}

fn script(path: &Path, body: &str, mode: u32) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn the_seed_example_failure_then_retry() {
    let dir = tempfile::tempdir().unwrap();
    let front = FakeFrontEnd::start();
    front.set(hook(
        0,
        HookType::State,
        "NAME=hook-vm\nTYPE=state\nCOMMAND=vm-pending.rb\nARGUMENTS=\"$TEMPLATE pending\"\n\
         ON=CUSTOM\nRESOURCE=VM\nSTATE=PENDING\nLCM_STATE=LCM_INIT\nREMOTE=NO\n",
    ));
    let driver = FakeDriver::start();
    let conf = hem_config(dir.path(), &front, &driver, "");
    let hem = start_hem(&conf);
    let base = dir.path().join("hooks");
    let cmd = base.join("vm-pending.rb").display().to_string();

    let event = vm_state(0, "PENDING", "LCM_INIT", None);
    driver.publish(&event);
    let results = driver.wait_results(1);
    let (frame, r) = &results[0];
    assert_eq!((frame.rc, frame.hook_id), (255, 0));
    let template = b64_encode(b"<VM><ID>0</ID><NAME>test</NAME></VM>");
    assert_eq!(r.arguments, format!("{template} pending"));
    assert_eq!(r.command, format!("{cmd} {template} pending"));
    assert_eq!(
        String::from_utf8_lossy(&r.stderr),
        format!("Internal error No such file or directory - {cmd}")
    );
    assert_eq!(r.code, 255);
    assert!(!r.retry);
    let first_uid = r.execution_uid.clone().expect("execution uid");

    // Fix the hook and retry the record, as the seed does with `onehook retry 0 0`.
    script(&base.join("vm-pending.rb"), "echo \"Executed!\"", 0o760);
    let retry = RetryMessage {
        arguments: r.arguments.clone(),
        hook_id: 0,
        remote_host: None,
    };
    driver.publish_retry(&retry.to_xml());
    let results = driver.wait_results(2);
    let (frame, r) = &results[1];
    assert_eq!((frame.rc, frame.hook_id), (0, 0));
    assert_eq!(r.stdout, b"Executed!\n");
    assert!(r.retry);
    assert_eq!(r.arguments, format!("{template} pending"));
    assert_ne!(r.execution_uid.as_deref(), Some(first_uid.as_str()));
    hem.stop();
}

#[test]
fn api_hooks_stdin_modes_and_reload_on_allocate() {
    let dir = tempfile::tempdir().unwrap();
    let front = FakeFrontEnd::start();
    let cat = dir.path().join("hooks/cat.sh");
    std::fs::create_dir_all(cat.parent().unwrap()).unwrap();
    script(&cat, "cat", 0o755);
    front.set(hook(1, HookType::Api, "NAME=a\nTYPE=api\nCALL=one.vm.allocate\nCOMMAND=cat.sh\nARGUMENTS=$API\nARGUMENTS_STDIN=yes\n"));
    front.set(hook(2, HookType::Api, "NAME=b\nTYPE=api\nCALL=one.vm.allocate\nCOMMAND=cat.sh\nARGUMENTS=\"x $API\"\nARGUMENTS_STDIN=true\n"));
    let driver = FakeDriver::start();
    let conf = hem_config(dir.path(), &front, &driver, "");
    let hem = start_hem(&conf);

    let allocate = HookMessage::Api(ApiEvent::success(
        "one.vm.allocate",
        vec!["oneadmin:x".into(), "CPU=1".into(), "false".into()],
        "5",
        "",
    ));
    driver.publish(&allocate.to_xml());
    let results = driver.wait_results(2);
    let mut by_hook: Vec<_> = results
        .iter()
        .map(|(f, r)| (f.hook_id, r.clone()))
        .collect();
    by_hook.sort_by_key(|(id, _)| *id);
    let api = String::from_utf8(by_hook[0].1.stdout.clone()).unwrap();
    let call_info = String::from_utf8(b64_decode_strict(&api).unwrap()).unwrap();
    assert!(
        call_info.starts_with("<CALL_INFO><RESULT>1</RESULT>"),
        "{call_info}"
    );
    // Stdin mode: the command line is the path alone, the arguments went to stdin.
    assert_eq!(by_hook[0].1.command, cat.display().to_string());
    assert_eq!(
        String::from_utf8(by_hook[1].1.stdout.clone()).unwrap(),
        format!("x {api}")
    );

    // A hook created after the start is picked up from its allocate event.
    front.set(hook(3, HookType::State, "NAME=c\nTYPE=state\nRESOURCE=VM\nSTATE=ACTIVE\nLCM_STATE=RUNNING\nCOMMAND=/bin/echo\nARGUMENTS=running\n"));
    let created = HookMessage::Api(ApiEvent::success(
        "one.hook.allocate",
        vec!["s".into(), "NAME=c".into()],
        "3",
        "",
    ));
    driver.publish(&created.to_xml());
    driver.publish(&vm_state(5, "ACTIVE", "RUNNING", Some("node1")));
    let results = driver.wait_results(3);
    let (frame, r) = &results[2];
    assert_eq!(frame.hook_id, 3);
    assert_eq!(r.stdout, b"running\n");
    assert_eq!(r.command, "/bin/echo running");
    hem.stop();
}

#[test]
fn remote_hooks_without_a_host_get_a_failure_record() {
    let dir = tempfile::tempdir().unwrap();
    let front = FakeFrontEnd::start();
    front.set(hook(4, HookType::State, "NAME=r\nTYPE=state\nRESOURCE=VM\nSTATE=PENDING\nLCM_STATE=LCM_INIT\nCOMMAND=x.sh\nREMOTE=YES\n"));
    let driver = FakeDriver::start();
    let conf = hem_config(dir.path(), &front, &driver, "");
    let hem = start_hem(&conf);
    driver.publish(&vm_state(8, "PENDING", "LCM_INIT", None));
    let results = driver.wait_results(1);
    let (frame, r) = &results[0];
    assert_eq!((frame.rc, frame.hook_id), (255, 4));
    assert_eq!(
        String::from_utf8_lossy(&r.stderr),
        "Internal error No remote host specified for a remote hook."
    );
    assert_eq!(r.command, "/var/tmp/one/hooks/x.sh");
    hem.stop();
}

#[test]
fn events_the_subscriber_missed_are_replayed_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let front = FakeFrontEnd::start();
    front.set(hook(6, HookType::State, "NAME=p\nTYPE=state\nRESOURCE=VM\nSTATE=PENDING\nLCM_STATE=LCM_INIT\nCOMMAND=/bin/echo\nARGUMENTS=$TEMPLATE\n"));
    let driver = FakeDriver::start();
    // Before the first start: not for this HEM (it starts at the journal's head).
    driver.publish(&vm_state(1, "PENDING", "LCM_INIT", None));
    let conf = hem_config(dir.path(), &front, &driver, "");
    let hem = start_hem(&conf);
    // Journaled but never seen live (as in the slow-joiner window or a dropped message).
    let b = driver.journal_only(&vm_state(2, "PENDING", "LCM_INIT", None));
    let c = driver.publish(&vm_state(3, "PENDING", "LCM_INIT", None));
    let results = driver.wait_results(2);
    std::thread::sleep(Duration::from_millis(300));
    let results_now = driver.results();
    assert_eq!(
        results_now.len(),
        2,
        "an event ran twice or the old one ran"
    );
    // Different VMs, so their executions may finish in either order.
    let mut outputs: Vec<String> = results
        .iter()
        .map(|(_, r)| String::from_utf8_lossy(&r.stdout).into_owned())
        .collect();
    outputs.sort();
    let vm2 = b64_encode(b"<VM><ID>2</ID><NAME>test</NAME></VM>");
    let vm3 = b64_encode(b"<VM><ID>3</ID><NAME>test</NAME></VM>");
    assert_eq!(outputs, vec![format!("{vm2}\n"), format!("{vm3}\n")]);
    // Each uid names its event's sequence number and the hook.
    let mut claims: Vec<(EventRef, i64)> = results
        .iter()
        .map(|(_, r)| {
            let c = claim(r.execution_uid.as_deref().unwrap()).unwrap();
            (c.event, c.hook_id)
        })
        .collect();
    claims.sort();
    let mut expected = vec![(EventRef::Seq(b), 6), (EventRef::Seq(c), 6)];
    expected.sort();
    assert_eq!(claims, expected);
    hem.stop();
}

#[test]
fn local_hooks_call_back_into_the_front_end_the_hem_uses() {
    let dir = tempfile::tempdir().unwrap();
    let front = FakeFrontEnd::start();
    // The hook reads the API endpoint and the credentials the way OpenNebula's hooks do and
    // asks the front-end about itself.
    let callback = dir.path().join("hooks/callback.py");
    std::fs::create_dir_all(callback.parent().unwrap()).unwrap();
    std::fs::write(
        &callback,
        "#!/usr/bin/env python3\n\
         import os, sys, xmlrpc.client\n\
         session = open(os.environ['ONE_AUTH']).read().strip()\n\
         ok, body, _ = xmlrpc.client.ServerProxy(os.environ['ONE_XMLRPC']).one.hook.info(session, int(sys.argv[1]))\n\
         print(os.environ['ONE_XMLRPC'], os.environ['ONE_AUTH'], session, ok, '<ID>7</ID>' in body)\n",
    )
    .unwrap();
    std::fs::set_permissions(&callback, std::fs::Permissions::from_mode(0o755)).unwrap();
    front.set(hook(
        7,
        HookType::State,
        "NAME=callback\nTYPE=state\nCOMMAND=callback.py\nARGUMENTS=7\n\
         ON=CUSTOM\nRESOURCE=VM\nSTATE=PENDING\nLCM_STATE=LCM_INIT\n",
    ));
    let driver = FakeDriver::start();
    let conf = hem_config(dir.path(), &front, &driver, "");
    let hem = start_hem(&conf);
    driver.publish(&vm_state(1, "PENDING", "LCM_INIT", None));
    let results = driver.wait_results(1);
    let (frame, r) = &results[0];
    assert_eq!(
        (frame.rc, frame.hook_id),
        (0, 7),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    // hem_config sets one_xmlrpc and one_auth (an absolute path) explicitly.
    let auth = dir.path().join("one_auth");
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        format!(
            "{} {} oneadmin:password True True\n",
            front.url,
            auth.display()
        )
    );
    hem.stop();
}
