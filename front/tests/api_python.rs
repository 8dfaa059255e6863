//! The XML-RPC API through real third-party clients: Python's xmlrpc.client and pyone.

mod api_common;

use api_common::{Front, NO_DRIVER_CONF, run_py};

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
