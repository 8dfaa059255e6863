//! The XML-RPC API through real third-party clients: Python's xmlrpc.client and pyone.

use crate::api_common::{Front, NO_DRIVER_CONF, run_py};

#[test]
fn hook_api_with_python_xmlrpc_client() {
    let dir = tempfile::tempdir().unwrap();
    let front = Front::start(dir.path(), NO_DRIVER_CONF);
    let out = run_py(&front, "hook_api.py");
    assert!(out.contains("hook_api: ok"), "{out}");
    // The state the script left is what the server holds.
    let pool = front.client().hookpool_info().unwrap();
    assert!(
        pool.contains("<NAME>hook-vm</NAME>") && pool.contains("<NAME>api-h</NAME>"),
        "{pool}"
    );
    front.stop().unwrap();
}

#[test]
fn hook_api_with_pyone() {
    let dir = tempfile::tempdir().unwrap();
    let front = Front::start(dir.path(), NO_DRIVER_CONF);
    let out = run_py(&front, "hook_pyone.py");
    assert!(out.contains("hook_pyone: ok"), "{out}");
    front.stop().unwrap();
}

#[test]
fn every_seed_template_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let front = Front::start(dir.path(), NO_DRIVER_CONF);
    let out = run_py(&front, "hook_seed_templates.py");
    assert!(
        out.contains("hook_seed_templates: ok (11 templates)"),
        "{out}"
    );
    front.stop().unwrap();
}

#[test]
fn malformed_requests_get_faults_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let front = Front::start(dir.path(), NO_DRIVER_CONF);
    let out = run_py(&front, "hook_robustness.py");
    assert!(out.contains("hook_robustness: ok"), "{out}");
    assert!(front.client().hookpool_info().is_ok());
    front.stop().unwrap();
}

#[test]
fn bad_timeout_remote_and_unterminated_quotes_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let front = Front::start(dir.path(), NO_DRIVER_CONF);
    let out = run_py(&front, "hook_validation.py");
    assert!(out.contains("hook_validation: ok"), "{out}");
    // The one hook the script created, as the last accepted update left it.
    let pool = one_proto::hook::pool_from_xml(&front.client().hookpool_info().unwrap()).unwrap();
    assert_eq!(pool.len(), 1);
    let hook = &pool[0];
    assert_eq!((hook.id, hook.name.as_str()), (0, "guarded"));
    assert_eq!(hook.check_run_settings(), Ok(()));
    assert_eq!(
        (hook.template.get("TIMEOUT"), hook.template.get("REMOTE")),
        (Some("0"), Some("NO"))
    );
    front.stop().unwrap();
}
