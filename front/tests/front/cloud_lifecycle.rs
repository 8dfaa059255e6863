//! The simulated cloud through the XML-RPC API, observed where hooks observe it: the STATE
//! HOOK_MESSAGEs a (fake) HM_MAD driver receives.

use crate::api_common::Front;
use crate::cloud_common::*;
use one_proto::event::ObjectKind::{Host, Image, Vm};

const ACTION: i32 = 0x800;
const NO_EXISTS: i32 = 0x400;

#[test]
fn a_deployed_vm_walks_prolog_boot_running_poweroff_resume_terminate() {
    let dir = tempfile::tempdir().unwrap();
    let driver = FakeDriver::new(dir.path());
    let front = Front::start(dir.path(), &driver.conf(ZERO_SIM));
    let c = front.client();

    let hid = monitored_host(&c, "node1");
    driver.wait_state(Host, hid, "MONITORED", "");
    assert_eq!(
        driver.states_of(Host, hid),
        pairs(&[("INIT", ""), ("MONITORED", "")])
    );
    let host_events = driver.wait_state(Host, hid, "MONITORED", "");
    assert_eq!(host_events[0].remote_host.as_deref(), Some("node1"));
    assert!(
        host_events[1]
            .body
            .contains("<STATE>2</STATE><PREV_STATE>0</PREV_STATE>")
    );

    let vid = int(c
        .call(
            "one.vm.allocate",
            vec!["NAME = web\nCPU = 1\nMEMORY = 128\nAUTOSTART = yes".into()],
        )
        .unwrap());
    let allocated = driver.wait_state(Vm, vid, "PENDING", "LCM_INIT");
    let body = &allocated[0].body;
    assert_eq!(allocated[0].remote_host, None, "no history yet");
    assert!(body.starts_with(&format!("<VM><ID>{vid}</ID>")), "{body}");
    assert!(
        body.contains("<NAME>web</NAME>") && body.contains("<HISTORY_RECORDS/>"),
        "{body}"
    );
    assert!(
        body.contains("<USER_TEMPLATE><AUTOSTART><![CDATA[yes]]></AUTOSTART></USER_TEMPLATE>"),
        "{body}"
    );
    assert!(
        body.contains("<STATE>1</STATE><LCM_STATE>0</LCM_STATE><PREV_STATE>1</PREV_STATE>"),
        "{body}"
    );

    assert_eq!(
        int(c
            .call("one.vm.deploy", vec![vid.into(), hid.into()])
            .unwrap()),
        vid
    );
    let events = driver.wait_state(Vm, vid, "ACTIVE", "RUNNING");
    assert_eq!(
        driver.states_of(Vm, vid),
        pairs(&[
            ("PENDING", "LCM_INIT"),
            ("ACTIVE", "LCM_INIT"),
            ("ACTIVE", "PROLOG"),
            ("ACTIVE", "BOOT"),
            ("ACTIVE", "RUNNING")
        ])
    );
    for e in &events[1..] {
        assert_eq!(
            e.remote_host.as_deref(),
            Some("node1"),
            "REMOTE_HOST is the last history's host"
        );
        assert_eq!(last_history(&e.body, "HID"), Some(hid.to_string()));
        assert_eq!(last_history(&e.body, "HOSTNAME").as_deref(), Some("node1"));
    }
    let running = &events[4].body;
    assert!(running.contains("<STATE>3</STATE><LCM_STATE>3</LCM_STATE><PREV_STATE>3</PREV_STATE><PREV_LCM_STATE>2</PREV_LCM_STATE>"), "{running}");
    assert_eq!(
        last_history(running, "ACTION").as_deref(),
        Some("0"),
        "deployed: ACTION none"
    );
    let host_xml = text(c.call("one.host.info", vec![hid.into()]).unwrap());
    assert!(
        host_xml.contains(&format!("<VMS><ID>{vid}</ID></VMS>")),
        "{host_xml}"
    );
    assert!(
        host_xml.contains("<RUNNING_VMS>1</RUNNING_VMS>"),
        "{host_xml}"
    );

    c.call("one.vm.action", vec!["poweroff".into(), vid.into()])
        .unwrap();
    let events = driver.wait_state(Vm, vid, "POWEROFF", "LCM_INIT");
    assert_eq!(
        driver.states_of(Vm, vid)[5..],
        pairs(&[("ACTIVE", "SHUTDOWN_POWEROFF"), ("POWEROFF", "LCM_INIT")])
    );
    assert_eq!(
        last_history(&events[6].body, "ACTION").as_deref(),
        Some("19"),
        "ACTION poweroff"
    );

    c.call("one.vm.action", vec!["resume".into(), vid.into()])
        .unwrap();
    let states = driver.wait_count(Vm, vid, 9);
    assert_eq!(
        states[7..],
        pairs(&[("ACTIVE", "BOOT_POWEROFF"), ("ACTIVE", "RUNNING")])
    );
    let info = text(c.call("one.vm.info", vec![vid.into()]).unwrap());
    assert_eq!(
        info.matches("<HISTORY>").count(),
        2,
        "resume opens a new history record: {info}"
    );
    assert_eq!(
        last_history(&info, "ACTION").as_deref(),
        Some("11"),
        "ACTION resume"
    );

    c.call("one.vm.action", vec!["terminate".into(), vid.into()])
        .unwrap();
    driver.wait_state(Vm, vid, "DONE", "LCM_INIT");
    assert_eq!(
        driver.states_of(Vm, vid)[9..],
        pairs(&[
            ("ACTIVE", "SHUTDOWN"),
            ("ACTIVE", "EPILOG"),
            ("DONE", "LCM_INIT")
        ])
    );
    let host_xml = text(c.call("one.host.info", vec![hid.into()]).unwrap());
    assert!(
        host_xml.contains("<VMS></VMS>"),
        "a DONE VM leaves its host: {host_xml}"
    );

    let (code, message) = failure(&c, "one.vm.action", vec!["poweroff".into(), vid.into()]);
    assert_eq!(code, ACTION);
    assert!(
        message.ends_with(
            "Error performing action \"poweroff\": This action is not available for state DONE"
        ),
        "{message}"
    );
    let (code, message) = failure(&c, "one.vm.action", vec!["explode".into(), vid.into()]);
    assert_eq!(code, ACTION);
    assert!(
        message.ends_with("Action \"explode\" is not supported"),
        "{message}"
    );
    let (code, _) = failure(&c, "one.vm.deploy", vec![vid.into(), (hid + 100).into()]);
    assert_eq!(code, NO_EXISTS);
    front.stop().unwrap();
}

#[test]
fn stop_undeploy_suspend_and_resume_go_through_the_boot_states() {
    let dir = tempfile::tempdir().unwrap();
    let driver = FakeDriver::new(dir.path());
    let front = Front::start(dir.path(), &driver.conf(ZERO_SIM));
    let c = front.client();
    let hid = monitored_host(&c, "node2");
    let vid = int(c
        .call("one.vm.allocate", vec!["CPU=1\nMEMORY=64".into()])
        .unwrap());
    c.call("one.vm.deploy", vec![vid.into(), hid.into()])
        .unwrap();
    let mut seen = driver.wait_state(Vm, vid, "ACTIVE", "RUNNING").len();
    let mut step = |action: &str, until: (&str, &str), expect: &[(&str, &str)]| {
        c.call("one.vm.action", vec![action.into(), vid.into()])
            .unwrap();
        driver.wait_state(Vm, vid, until.0, until.1);
        wait_until(&format!("{action} to settle"), || {
            let states = driver.states_of(Vm, vid);
            (states.len() >= seen + expect.len()).then_some(())
        });
        let states = driver.states_of(Vm, vid);
        assert_eq!(states[seen..], pairs(expect), "after {action}");
        seen = states.len();
    };
    step(
        "stop",
        ("STOPPED", "LCM_INIT"),
        &[
            ("ACTIVE", "SAVE_STOP"),
            ("ACTIVE", "EPILOG_STOP"),
            ("STOPPED", "LCM_INIT"),
        ],
    );
    // Resumed, the VM is PENDING again and the simulated scheduler puts it back on its host.
    step(
        "resume",
        ("ACTIVE", "RUNNING"),
        &[
            ("PENDING", "LCM_INIT"),
            ("ACTIVE", "LCM_INIT"),
            ("ACTIVE", "PROLOG_RESUME"),
            ("ACTIVE", "BOOT_STOPPED"),
            ("ACTIVE", "RUNNING"),
        ],
    );
    step(
        "undeploy",
        ("UNDEPLOYED", "LCM_INIT"),
        &[
            ("ACTIVE", "SHUTDOWN_UNDEPLOY"),
            ("ACTIVE", "EPILOG_UNDEPLOY"),
            ("UNDEPLOYED", "LCM_INIT"),
        ],
    );
    step(
        "resume",
        ("ACTIVE", "RUNNING"),
        &[
            ("PENDING", "LCM_INIT"),
            ("ACTIVE", "LCM_INIT"),
            ("ACTIVE", "PROLOG_UNDEPLOY"),
            ("ACTIVE", "BOOT_UNDEPLOY"),
            ("ACTIVE", "RUNNING"),
        ],
    );
    step(
        "suspend",
        ("SUSPENDED", "LCM_INIT"),
        &[("ACTIVE", "SAVE_SUSPEND"), ("SUSPENDED", "LCM_INIT")],
    );
    step(
        "resume",
        ("ACTIVE", "RUNNING"),
        &[("ACTIVE", "BOOT_SUSPENDED"), ("ACTIVE", "RUNNING")],
    );
    front.stop().unwrap();
}

#[test]
fn hold_release_and_user_template_updates() {
    let dir = tempfile::tempdir().unwrap();
    let driver = FakeDriver::new(dir.path());
    let front = Front::start(dir.path(), &driver.conf(ZERO_SIM));
    let c = front.client();
    let held = int(c
        .call(
            "one.vm.allocate",
            vec!["CPU=1\nMEMORY=64\nSUBMIT_ON_HOLD=YES".into()],
        )
        .unwrap());
    let flagged = int(c
        .call(
            "one.vm.allocate",
            vec!["CPU=1\nMEMORY=64\nSERVICE_ID=4".into(), true.into()],
        )
        .unwrap());
    driver.wait_state(Vm, held, "HOLD", "LCM_INIT");
    let events = driver.wait_state(Vm, flagged, "HOLD", "LCM_INIT");
    assert_eq!(
        events[0].service_id,
        Some(4),
        "SERVICE_ID of the user template"
    );
    assert_eq!(driver.state_events()[0].service_id, None);
    c.call("one.vm.action", vec!["release".into(), held.into()])
        .unwrap();
    driver.wait_state(Vm, held, "PENDING", "LCM_INIT");

    c.call(
        "one.vm.update",
        vec![held.into(), "AUTOSTART = yes\nLABEL = a".into(), 1.into()],
    )
    .unwrap();
    c.call(
        "one.vm.update",
        vec![held.into(), "LABEL = b".into(), 1.into()],
    )
    .unwrap();
    let info = text(c.call("one.vm.info", vec![held.into()]).unwrap());
    let user = element(&info, "USER_TEMPLATE").unwrap();
    assert!(
        user.contains("<AUTOSTART><![CDATA[yes]]></AUTOSTART>")
            && user.contains("<LABEL><![CDATA[b]]></LABEL>"),
        "{user}"
    );
    c.call(
        "one.vm.update",
        vec![held.into(), "ONLY = this".into(), 0.into()],
    )
    .unwrap();
    let info = text(c.call("one.vm.info", vec![held.into()]).unwrap());
    assert_eq!(
        element(&info, "USER_TEMPLATE"),
        Some("<ONLY><![CDATA[this]]></ONLY>")
    );
    let (code, message) = failure(
        &c,
        "one.vm.update",
        vec![held.into(), "A=1".into(), 7.into()],
    );
    assert_eq!(
        (code, message.as_str()),
        (0x1000, "[one.vm.update] Wrong update type")
    );
    // An update changes no state, so it emits no STATE event.
    assert_eq!(
        driver.states_of(Vm, held),
        pairs(&[("HOLD", "LCM_INIT"), ("PENDING", "LCM_INIT")])
    );
    let (code, message) = failure(&c, "one.vm.allocate", vec!["CPU=1".into()]);
    assert_eq!(code, 0x2000);
    assert!(
        message.ends_with("MEMORY attribute must be a positive integer value."),
        "{message}"
    );
    front.stop().unwrap();
}

#[test]
fn a_host_crash_gives_error_and_unknown_then_monitored_and_poweroff_by_the_monitor() {
    let dir = tempfile::tempdir().unwrap();
    let driver = FakeDriver::new(dir.path());
    let front = Front::start(dir.path(), &driver.conf(ZERO_SIM));
    let c = front.client();
    let hid = monitored_host(&c, "kvm1");
    let other = monitored_host(&c, "kvm2");
    let deploy = |on: i64, template: &str| {
        let vid = int(c.call("one.vm.allocate", vec![template.into()]).unwrap());
        c.call("one.vm.deploy", vec![vid.into(), on.into()])
            .unwrap();
        wait_vm(&c, vid, 3, 3);
        vid
    };
    let autostart = deploy(hid, "NAME=a\nCPU=1\nMEMORY=64\nAUTOSTART=yes");
    let plain = deploy(hid, "NAME=b\nCPU=1\nMEMORY=64");
    let off = deploy(hid, "NAME=c\nCPU=1\nMEMORY=64");
    let elsewhere = deploy(other, "NAME=d\nCPU=1\nMEMORY=64");
    c.call("one.vm.action", vec!["poweroff".into(), off.into()])
        .unwrap();
    wait_vm(&c, off, 8, 0);

    c.call("one.hostsim.fail", vec![hid.into(), "kernel panic".into()])
        .unwrap();
    let host_events = driver.wait_state(Host, hid, "ERROR", "");
    let error = host_events.last().unwrap();
    assert_eq!(error.remote_host.as_deref(), Some("kvm1"));
    assert!(
        error.body.contains("Error monitoring Host kvm1"),
        "{}",
        error.body
    );
    for vid in [autostart, plain] {
        let events = driver.wait_state(Vm, vid, "ACTIVE", "UNKNOWN");
        assert_eq!(events.last().unwrap().remote_host.as_deref(), Some("kvm1"));
    }
    assert_eq!(vm_state(&c, off), (8, 0), "a powered-off VM is not touched");
    assert_eq!(
        vm_state(&c, elsewhere),
        (3, 3),
        "VMs of other hosts are not touched"
    );

    c.call("one.hostsim.recover", vec![hid.into()]).unwrap();
    driver.wait_state(Host, hid, "MONITORED", "");
    for vid in [autostart, plain] {
        let events = driver.wait_state(Vm, vid, "POWEROFF", "LCM_INIT");
        let n = events.len();
        let tail: Vec<(String, String)> = events[n - 3..]
            .iter()
            .map(|e| (e.state.clone(), e.lcm_state.clone().unwrap_or_default()))
            .collect();
        assert_eq!(
            tail,
            pairs(&[
                ("ACTIVE", "UNKNOWN"),
                ("ACTIVE", "SHUTDOWN_POWEROFF"),
                ("POWEROFF", "LCM_INIT")
            ])
        );
        let poweroff = &events[n - 1].body;
        assert_eq!(
            last_history(poweroff, "ACTION").as_deref(),
            Some("44"),
            "ACTION monitor: {poweroff}"
        );
        assert_eq!(last_history(poweroff, "HID"), Some(hid.to_string()));
    }
    let info = text(c.call("one.vm.info", vec![autostart.into()]).unwrap());
    assert!(info.contains("<AUTOSTART><![CDATA[yes]]></AUTOSTART>"));
    assert_eq!(last_history(&info, "ACTION").as_deref(), Some("44"));
    let host_xml = text(c.call("one.host.info", vec![hid.into()]).unwrap());
    assert!(
        host_xml.contains("<STATE>2</STATE>") && !host_xml.contains("<ERROR>"),
        "{host_xml}"
    );
    for vid in [autostart, plain, off] {
        assert!(
            host_xml.contains(&format!("<ID>{vid}</ID>")),
            "powered-off VMs stay on their host"
        );
    }
    assert_eq!(vm_state(&c, off), (8, 0));
    let (code, message) = failure(&c, "one.hostsim.recover", vec![hid.into()]);
    assert_eq!(code, ACTION);
    assert!(
        message.ends_with(&format!("Host {hid} has not failed")),
        "{message}"
    );

    // A reboot is a failure and a recovery on its own; what autostart hooks do afterwards.
    c.call("one.vm.action", vec!["resume".into(), autostart.into()])
        .unwrap();
    wait_vm(&c, autostart, 3, 3);
    // Host: INIT, MONITORED, ERROR, MONITORED so far; VM: 8 events up to POWEROFF, then
    // BOOT_POWEROFF and RUNNING.
    driver.wait_count(Vm, autostart, 10);
    c.call("one.hostsim.reboot", vec![hid.into(), 0.into()])
        .unwrap();
    let states = driver.wait_count(Host, hid, 6);
    assert_eq!(
        states[2..],
        pairs(&[
            ("ERROR", ""),
            ("MONITORED", ""),
            ("ERROR", ""),
            ("MONITORED", "")
        ])
    );
    let states = driver.wait_count(Vm, autostart, 13);
    assert_eq!(
        states[8..],
        pairs(&[
            ("ACTIVE", "BOOT_POWEROFF"),
            ("ACTIVE", "RUNNING"),
            ("ACTIVE", "UNKNOWN"),
            ("ACTIVE", "SHUTDOWN_POWEROFF"),
            ("POWEROFF", "LCM_INIT")
        ])
    );
    front.stop().unwrap();
}

#[test]
fn host_status_changes_each_give_an_event_and_deletion_needs_an_empty_host() {
    let dir = tempfile::tempdir().unwrap();
    let driver = FakeDriver::new(dir.path());
    let front = Front::start(dir.path(), &driver.conf(ZERO_SIM));
    let c = front.client();
    let hid = monitored_host(&c, "h1");
    c.call("one.host.status", vec![hid.into(), 1.into()])
        .unwrap();
    c.call("one.host.status", vec![hid.into(), 0.into()])
        .unwrap();
    c.call("one.host.status", vec![hid.into(), 2.into()])
        .unwrap();
    c.call("one.host.status", vec![hid.into(), 0.into()])
        .unwrap();
    wait_until("the host monitored again", || {
        (driver.states_of(Host, hid).len() >= 7).then_some(())
    });
    assert_eq!(
        driver.states_of(Host, hid),
        pairs(&[
            ("INIT", ""),
            ("MONITORED", ""),
            ("DISABLED", ""),
            ("MONITORED", ""),
            ("OFFLINE", ""),
            ("INIT", ""),
            ("MONITORED", ""),
        ])
    );
    let (code, _) = failure(&c, "one.host.status", vec![hid.into(), 9.into()]);
    assert_eq!(code, 0x2000);
    let (code, message) = failure(
        &c,
        "one.host.allocate",
        vec!["h1".into(), "kvm".into(), "kvm".into()],
    );
    assert_eq!(code, 0x2000);
    assert!(
        message.ends_with(&format!("NAME is already taken by HOST {hid}.")),
        "{message}"
    );

    let vid = int(c
        .call("one.vm.allocate", vec!["CPU=1\nMEMORY=64".into()])
        .unwrap());
    c.call("one.vm.deploy", vec![vid.into(), hid.into()])
        .unwrap();
    wait_vm(&c, vid, 3, 3);
    let (code, message) = failure(&c, "one.host.delete", vec![hid.into()]);
    assert_eq!(code, ACTION);
    assert!(
        message.ends_with("Can not remove a host with running VMs"),
        "{message}"
    );
    c.call("one.vm.action", vec!["terminate-hard".into(), vid.into()])
        .unwrap();
    wait_vm(&c, vid, 6, 0);
    c.call("one.host.delete", vec![hid.into()]).unwrap();
    let (code, _) = failure(&c, "one.host.info", vec![hid.into()]);
    assert_eq!(code, NO_EXISTS);
    let pool = text(c.call("one.hostpool.info", vec![]).unwrap());
    assert_eq!(pool, "<HOST_POOL></HOST_POOL>");
    front.stop().unwrap();
}

#[test]
fn images_go_locked_ready_disabled_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let driver = FakeDriver::new(dir.path());
    let front = Front::start(dir.path(), &driver.conf(ZERO_SIM));
    let c = front.client();
    let iid = int(c
        .call(
            "one.image.allocate",
            vec!["NAME = disk\nTYPE = DATABLOCK\nSIZE = 128".into(), 1.into()],
        )
        .unwrap());
    let events = driver.wait_state(Image, iid, "READY", "");
    assert_eq!(
        events.len(),
        1,
        "allocation itself emits nothing, as in oned"
    );
    assert_eq!(events[0].remote_host, None);
    assert!(
        events[0]
            .body
            .starts_with(&format!("<IMAGE><ID>{iid}</ID>")),
        "{}",
        events[0].body
    );
    assert!(events[0].body.contains("<STATE>1</STATE>"));

    c.call("one.image.enable", vec![iid.into(), false.into()])
        .unwrap();
    c.call("one.image.enable", vec![iid.into(), true.into()])
        .unwrap();
    c.call("one.image.delete", vec![iid.into()]).unwrap();
    driver.wait_state(Image, iid, "DELETE", "");
    assert_eq!(
        driver.states_of(Image, iid),
        pairs(&[
            ("READY", ""),
            ("DISABLED", ""),
            ("READY", ""),
            ("DELETE", "")
        ])
    );
    wait_until("the image removed", || {
        c.call("one.image.info", vec![iid.into()])
            .is_err()
            .then_some(())
    });
    let (code, _) = failure(&c, "one.image.info", vec![iid.into()]);
    assert_eq!(code, NO_EXISTS);

    let (code, message) = failure(
        &c,
        "one.image.allocate",
        vec!["NAME = x\nTYPE = CDROM".into(), 1.into()],
    );
    assert_eq!(code, 0x2000);
    assert!(
        message.ends_with("No PATH nor SOURCE in template."),
        "{message}"
    );
    let (code, _) = failure(
        &c,
        "one.image.allocate",
        vec!["NAME = x\nPATH = /x".into(), 77.into()],
    );
    assert_eq!(code, NO_EXISTS);
    front.stop().unwrap();
}

#[test]
fn a_restart_completes_the_transitions_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let driver = FakeDriver::new(dir.path());
    // Long enough that the stop below lands while the VM is in PROLOG.
    let slow = "SIM = [ PROLOG_DELAY_MS = 1500, BOOT_DELAY_MS = 0, MONITOR_DELAY_MS = 0 ]\n";
    let front = Front::start(dir.path(), &driver.conf(slow));
    let c = front.client();
    let hid = monitored_host(&c, "n1");
    let vid = int(c
        .call("one.vm.allocate", vec!["CPU=1\nMEMORY=64".into()])
        .unwrap());
    c.call("one.vm.deploy", vec![vid.into(), hid.into()])
        .unwrap();
    front.stop().unwrap();

    let front = Front::start(dir.path(), &driver.conf(slow));
    let c = front.client();
    wait_vm(&c, vid, 3, 3);
    driver.wait_state(Vm, vid, "ACTIVE", "RUNNING");
    assert_eq!(
        driver.states_of(Vm, vid),
        pairs(&[
            ("PENDING", "LCM_INIT"),
            ("ACTIVE", "LCM_INIT"),
            ("ACTIVE", "PROLOG"),
            ("ACTIVE", "BOOT"),
            ("ACTIVE", "RUNNING")
        ]),
        "every state once, none skipped"
    );
    front.stop().unwrap();
}

#[test]
fn pyone_reads_the_cloud_documents() {
    let dir = tempfile::tempdir().unwrap();
    let driver = FakeDriver::new(dir.path());
    let front = Front::start(dir.path(), &driver.conf(ZERO_SIM));
    let out = crate::api_common::run_py(&front, "cloud_pyone.py");
    assert!(out.contains("cloud_pyone: ok"), "{out}");
    front.stop().unwrap();
}
