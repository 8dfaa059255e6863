//! Plans (expansion, command resolution, placement) and the result bodies they end as.

use std::time::{Duration, SystemTime};

use one_proto::encoding::{b64_decode_strict, b64_encode};
use one_proto::event::{ApiEvent, HookMessage, ObjectKind, StateEvent};
use one_proto::hook::HookType;
use one_proto::hook_log::ExecutionResult;
use one_proto::retry::RetryMessage;
use onehem_server::execution::{Execution, HookPaths, Plan, Target, expand_arguments};
use onehem_server::executor::ExecOutcome;
use onehem_server::hook_map::HookSpec;

const VM_BODY: &str = "<VM><ID>12</ID><NAME>test</NAME></VM>";

fn paths() -> HookPaths {
    HookPaths {
        local: "/var/lib/one/remotes/hooks".into(),
        remote: "/var/tmp/one/hooks/".into(),
        allowed: vec!["/usr/bin".into()],
    }
}

fn vm_event(host: Option<&str>) -> HookMessage {
    HookMessage::State(StateEvent {
        object: ObjectKind::Vm,
        state: "PENDING".into(),
        lcm_state: Some("LCM_INIT".into()),
        resource_id: 12,
        service_id: None,
        remote_host: host.map(str::to_string),
        body: VM_BODY.into(),
    })
}

fn api_event() -> HookMessage {
    HookMessage::Api(ApiEvent::success(
        "one.vm.allocate",
        vec!["oneadmin:secret".into(), "CPU=1".into(), "false".into()],
        "42",
        "",
    ))
}

fn hook(arguments: &str) -> HookSpec {
    HookSpec {
        id: 3,
        kind: HookType::State,
        key: "VM/PENDING/LCM_INIT".into(),
        command: Some("vm-pending.rb".into()),
        arguments: arguments.into(),
        arguments_stdin: false,
        timeout_secs: None,
        remote: false,
    }
}

fn exec(plan: Plan) -> Execution {
    Execution {
        uid: "abc-1-17-3".into(),
        seq: 17,
        hook_id: 3,
        lane: "3|VM/12".into(),
        resource: "VM/12".into(),
        event_key: "EVENT STATE VM/PENDING/LCM_INIT/12".into(),
        plan,
    }
}

fn outcome(code: i32) -> ExecOutcome {
    ExecOutcome {
        code,
        signal: None,
        stdout: b"Executed!\n".to_vec(),
        stderr: Vec::new(),
        stdout_truncated: false,
        stderr_truncated: false,
        timed_out: false,
        start_error: None,
        started: SystemTime::now(),
        duration: Duration::from_millis(3),
    }
}

#[test]
fn template_and_api_tokens_are_replaced_as_whole_words() {
    let ev = vm_event(None);
    let t = b64_encode(VM_BODY.as_bytes());
    assert_eq!(
        expand_arguments("$TEMPLATE pending", &ev),
        format!("{t} pending")
    );
    // $API is empty for a state event: the double space stays in the middle, the ends are trimmed.
    assert_eq!(expand_arguments("a $API b", &ev), "a  b");
    assert_eq!(expand_arguments("$API pending", &ev), "pending");
    // Only whole words are tokens.
    assert_eq!(
        expand_arguments("\"$TEMPLATE\" $TEMPLATE, x$API", &ev),
        "\"$TEMPLATE\" $TEMPLATE, x$API"
    );
    assert_eq!(expand_arguments("  one\t two\n", &ev), "one two");

    let api = api_event();
    let expanded = expand_arguments("$API", &api);
    let xml = String::from_utf8(b64_decode_strict(&expanded).unwrap()).unwrap();
    assert!(
        xml.starts_with("<CALL_INFO>") && xml.ends_with("</CALL_INFO>"),
        "{xml}"
    );
    assert_eq!(expand_arguments("$TEMPLATE", &api), "");
}

#[test]
fn commands_resolve_against_the_base_paths() {
    let p = paths();
    assert_eq!(
        p.resolve("vm-pending.rb", false),
        "/var/lib/one/remotes/hooks/vm-pending.rb"
    );
    assert_eq!(
        p.resolve("autostart/host", true),
        "/var/tmp/one/hooks/autostart/host"
    );
    assert_eq!(p.resolve("/usr/bin/true", true), "/usr/bin/true");
}

#[test]
fn argv_and_stdin_modes() {
    let ev = vm_event(None);
    let plan = Plan::for_event(&hook("$TEMPLATE ;touch  pwned"), Some(&ev), &paths());
    let req = plan.request(100);
    let t = b64_encode(VM_BODY.as_bytes());
    assert_eq!(
        req.argv,
        vec![
            "/var/lib/one/remotes/hooks/vm-pending.rb".to_string(),
            t.clone(),
            ";touch".into(),
            "pwned".into()
        ]
    );
    assert_eq!(req.stdin, None);
    assert_eq!(
        plan.command_line(),
        format!("/var/lib/one/remotes/hooks/vm-pending.rb {t} ;touch pwned")
    );

    let mut h = hook("$TEMPLATE pending");
    h.arguments_stdin = true;
    h.timeout_secs = Some(7);
    let plan = Plan::for_event(&h, Some(&ev), &paths());
    let req = plan.request(100);
    assert_eq!(
        req.argv,
        vec!["/var/lib/one/remotes/hooks/vm-pending.rb".to_string()]
    );
    assert_eq!(req.stdin, Some(format!("{t} pending").into_bytes()));
    assert_eq!(req.timeout, Some(Duration::from_secs(7)));
    assert_eq!(
        plan.command_line(),
        "/var/lib/one/remotes/hooks/vm-pending.rb"
    );

    // An unreadable event gives empty arguments, as in the reference.
    let plan = Plan::for_event(&hook("$TEMPLATE pending"), None, &paths());
    assert_eq!(plan.arguments, "");
}

#[test]
fn remote_placement_follows_the_event_host() {
    let mut h = hook("");
    h.remote = true;
    let plan = Plan::for_event(&h, Some(&vm_event(Some("node1"))), &paths());
    assert_eq!(
        plan.target,
        Target::Remote {
            host: "node1".into()
        }
    );
    assert_eq!(plan.report_host.as_deref(), Some("node1"));
    assert_eq!(plan.command, "/var/tmp/one/hooks/vm-pending.rb");

    // No host: a failure record that says so, never silence.
    let plan = Plan::for_event(&h, Some(&vm_event(None)), &paths());
    assert!(
        matches!(&plan.target, Target::Refused { reason } if reason == "No remote host specified for a remote hook.")
    );
    let e = exec(plan);
    let out = ExecOutcome::start_failure(
        "No remote host specified for a remote hook.",
        SystemTime::now(),
    );
    let r = e.result(&out);
    assert_eq!(r.code, 255);
    assert_eq!(
        r.stderr,
        b"Internal error No remote host specified for a remote hook."
    );

    // A local hook never reports a host for a normal execution.
    let plan = Plan::for_event(&hook(""), Some(&vm_event(Some("node1"))), &paths());
    assert_eq!(plan.target, Target::Local);
    assert_eq!(plan.report_host, None);
}

#[test]
fn local_commands_outside_the_allowed_directories_are_refused() {
    let refused = |command: &str, remote: bool| {
        let mut h = hook("$TEMPLATE");
        h.command = Some(command.into());
        h.remote = remote;
        let plan = Plan::for_event(&h, Some(&vm_event(Some("node1"))), &paths());
        match &plan.target {
            Target::Refused { reason } => Some((plan.command.clone(), reason.clone())),
            _ => None,
        }
    };
    let (command, reason) = refused("../escape.sh", false).expect("../ refused");
    assert_eq!(command, "/var/lib/one/remotes/hooks/../escape.sh");
    assert!(
        reason.contains("must stay below hook_base_path"),
        "{reason}"
    );
    let (_, reason) = refused("/bin/sh", false).expect("/bin/sh refused");
    assert!(reason.contains("hook_allowed_paths"), "{reason}");
    assert_eq!(refused("/usr/bin/true", false), None);
    assert_eq!(refused("/var/lib/one/remotes/hooks/x.sh", false), None);
    assert_eq!(refused("./vm/x.sh", false), None);
    // Remote commands are confined by the remote executor, against the host's directory.
    assert_eq!(refused("/bin/sh", true), None);

    // A retry runs the hook's current command: refused the same way, the record says why.
    let retry = RetryMessage {
        arguments: "x".into(),
        hook_id: 3,
        remote_host: None,
    };
    let mut h = hook("");
    h.command = Some("a/../../escape.sh".into());
    let plan = Plan::for_retry(3, Some(&h), &retry, &paths());
    let Target::Refused { reason } = &plan.target else {
        panic!("retry not refused: {plan:?}");
    };
    let r = exec(plan.clone()).result(&ExecOutcome::start_failure(
        reason.clone(),
        SystemTime::now(),
    ));
    assert_eq!(r.code, 255);
    assert_eq!(
        String::from_utf8_lossy(&r.stderr),
        format!("Internal error {reason}")
    );
    assert_eq!(r.command, "/var/lib/one/remotes/hooks/a/../../escape.sh x");
}

#[test]
fn retries_use_recorded_arguments_and_host() {
    let retry = RetryMessage {
        arguments: "PFZNPg== pending".into(),
        hook_id: 3,
        remote_host: Some("node1".into()),
    };
    let mut h = hook("$TEMPLATE other");
    let plan = Plan::for_retry(3, Some(&h), &retry, &paths());
    assert_eq!(plan.arguments, "PFZNPg== pending");
    assert_eq!(plan.target, Target::Local);
    assert_eq!(plan.report_host.as_deref(), Some("node1"));
    assert!(plan.retry);

    h.remote = true;
    let plan = Plan::for_retry(3, Some(&h), &retry, &paths());
    assert_eq!(
        plan.target,
        Target::Remote {
            host: "node1".into()
        }
    );

    let no_host = RetryMessage {
        remote_host: None,
        ..retry.clone()
    };
    let plan = Plan::for_retry(3, Some(&h), &no_host, &paths());
    assert!(matches!(plan.target, Target::Refused { .. }));

    let plan = Plan::for_retry(9, None, &retry, &paths());
    assert!(
        matches!(&plan.target, Target::Refused { reason } if reason == "hook 9 is not known to the HEM")
    );
    let r = exec(plan).result(&ExecOutcome::start_failure(
        "hook 9 is not known to the HEM",
        SystemTime::now(),
    ));
    assert!(r.retry);
    assert_eq!(r.arguments, "PFZNPg== pending");
}

#[test]
fn result_bodies_are_well_formed_and_carry_the_uid() {
    let plan = Plan::for_event(&hook("a<b & c"), Some(&vm_event(None)), &paths());
    let e = exec(plan);
    let r = e.result(&outcome(0));
    let xml = r.to_xml();
    assert!(
        xml.contains("<ARGUMENTS>a&lt;b &amp; c</ARGUMENTS>"),
        "{xml}"
    );
    assert!(
        xml.contains("<EXECUTION_UID>abc-1-17-3</EXECUTION_UID>"),
        "{xml}"
    );
    let back = ExecutionResult::parse(&xml).unwrap();
    assert_eq!(back.arguments, "a<b & c");
    assert_eq!(back.stdout, b"Executed!\n");
    assert_eq!(back.code, 0);
}

#[test]
fn failure_texts_are_the_reference_ones() {
    let plan = Plan::for_event(&hook("$TEMPLATE pending"), Some(&vm_event(None)), &paths());
    let e = exec(plan);
    let cmd = e.plan.command_line();

    let missing = ExecOutcome::start_failure(
        "No such file or directory - /var/lib/one/remotes/hooks/vm-pending.rb",
        SystemTime::now(),
    );
    let r = e.result(&missing);
    assert_eq!(r.code, 255);
    assert_eq!(
        String::from_utf8(r.stderr).unwrap(),
        "Internal error No such file or directory - /var/lib/one/remotes/hooks/vm-pending.rb"
    );

    let mut timeout = outcome(255);
    timeout.timed_out = true;
    timeout.stderr = b"partial".to_vec();
    let r = e.result(&timeout);
    assert_eq!(
        (r.code, String::from_utf8(r.stderr).unwrap()),
        (255, format!("Timeout executing {cmd}"))
    );

    let mut big = outcome(0);
    big.stdout = vec![b'x'; 10];
    big.stdout_truncated = true;
    let r = e.result(&big);
    assert_eq!(
        String::from_utf8(r.stdout).unwrap(),
        "xxxxxxxxxx\n[output truncated at 10 bytes]"
    );

    let r = e.interrupted();
    assert_eq!(r.code, 255);
    assert!(
        String::from_utf8(r.stderr)
            .unwrap()
            .contains("interrupted by HEM restart")
    );
    assert_eq!(r.arguments, e.plan.arguments);
    assert_eq!(r.execution_uid.as_deref(), Some("abc-1-17-3"));
}

#[test]
fn resources_name_the_object() {
    assert_eq!(vm_event(None).resource(), "VM/12");
    assert_eq!(api_event().resource(), "vm/42");
    let update = HookMessage::Api(ApiEvent::success(
        "one.vm.action",
        vec!["s".into(), "terminate".into(), "7".into()],
        "7",
        "",
    ));
    assert_eq!(update.resource(), "vm/7");
}
