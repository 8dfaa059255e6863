//! A restart keeps hooks, their log, users and the id counter; a bad configuration stops the
//! binary with every problem listed.

use crate::api_common::{Front, NO_DRIVER_CONF};
use base64::Engine as _;
use oned_lite::db::Db;

#[test]
fn restart_keeps_state() {
    let dir = tempfile::tempdir().unwrap();
    let front = Front::start(dir.path(), NO_DRIVER_CONF);
    let c = front.client();
    let a = c
        .hook_allocate("NAME=a\nTYPE=api\nCOMMAND=/bin/true\nCALL=one.vm.allocate")
        .unwrap();
    let b = c
        .hook_allocate("NAME=b\nTYPE=state\nCOMMAND=c\nRESOURCE=IMAGE\nSTATE=used_pers")
        .unwrap();
    c.hook_lock(b, 2).unwrap();
    c.hook_delete(a).unwrap();
    let uid = c
        .call(
            "one.user.allocate",
            vec!["bob".into(), "builder".into(), "".into()],
        )
        .unwrap();
    let record = base64::engine::general_purpose::STANDARD.encode("<ARGUMENTS>x</ARGUMENTS>");
    let db = Db::open(&dir.path().join("one.db")).unwrap();
    db.write(|tx| oned_lite::hook_log::add_result(tx, b, 0, &record, 20, 1000))
        .unwrap();
    drop(db);
    let session = front.session.clone();
    let pool_before = c.hookpool_info().unwrap();
    let info_before = c.hook_info(b).unwrap();
    front.stop().unwrap();

    let front = Front::start(dir.path(), NO_DRIVER_CONF);
    assert_eq!(front.session, session, "one_auth is kept");
    let c = front.client();
    assert_eq!(c.hookpool_info().unwrap(), pool_before);
    assert_eq!(c.hook_info(b).unwrap(), info_before);
    assert!(
        info_before.contains("<LOCKED>2</LOCKED>")
            && info_before.contains("<STATE><![CDATA[USED]]></STATE>")
    );
    assert!(info_before.contains("<EXECUTION_ID>0</EXECUTION_ID>"));
    // Ids are never reused, across restarts too.
    let next = c
        .hook_allocate("NAME=c\nTYPE=api\nCOMMAND=x\nCALL=one.vm.allocate")
        .unwrap();
    assert_eq!(next, b + 1);
    let bob = one_client::Client::new(&front.endpoint, "bob:builder");
    let me = bob.call("one.user.info", vec![(-1).into()]).unwrap();
    assert!(
        me.as_str()
            .unwrap()
            .contains(&format!("<ID>{}</ID>", uid.as_i64().unwrap()))
    );
    front.stop().unwrap();
}

#[test]
fn bad_configuration_lists_every_key_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("oned.conf");
    std::fs::write(
        &conf,
        "PORT = http\nLISTEN_ADDRESS = somewhere\nHOOK_LOG_CONF = [ LOG_RETENTION = -2 ]\nHM_MAD = [ ARGUMENTS = \"-p 1\" ]\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_oned-lite"))
        .arg("--config")
        .arg(&conf)
        .arg("--var-dir")
        .arg(dir.path().join("var"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for key in [
        "PORT",
        "LISTEN_ADDRESS",
        "HOOK_LOG_CONF/LOG_RETENTION",
        "HM_MAD/EXECUTABLE",
    ] {
        assert!(
            err.contains(&format!("{key}: ")),
            "{key} missing from: {err}"
        );
    }
    assert!(
        !dir.path().join("var").exists(),
        "nothing is created on a bad configuration"
    );

    std::fs::write(&conf, "PORT = [ A = 1 \n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_oned-lite"))
        .arg("--config")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Parse error"));
}
