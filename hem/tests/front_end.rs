//! Where the HEM finds the front-end when the configuration does not say: ONE_XMLRPC /
//! ONE_AUTH, then the OpenNebula default files; and what local hooks are given. The test sets
//! environment variables, so it is the only one in this binary.

use std::ffi::OsString;
use std::path::PathBuf;

use onehem_server::front_end::FrontEndAccess;

fn set_env(name: &str, value: Option<&std::ffi::OsStr>) {
    // SAFETY: this binary runs a single test on a single thread, so nothing reads the
    // environment concurrently.
    #[allow(unsafe_code)]
    unsafe {
        match value {
            Some(v) => std::env::set_var(name, v),
            None => std::env::remove_var(name),
        }
    }
}

#[test]
fn configuration_then_environment_then_default_files() {
    let home = tempfile::tempdir().unwrap();
    let one = home.path().join(".one");
    std::fs::create_dir_all(&one).unwrap();
    std::fs::write(one.join("one_auth"), "oneadmin:secret\n\n").unwrap();
    std::fs::write(one.join("one_endpoint"), "http://10.0.0.1:2633/RPC2\n").unwrap();
    set_env("HOME", Some(home.path().as_os_str()));
    set_env("ONE_XMLRPC", None);
    set_env("ONE_AUTH", None);

    // Nothing configured, nothing in the environment: the files in ~/.one.
    let found = FrontEndAccess::resolve(None, None).unwrap();
    assert_eq!(found.endpoint, "http://10.0.0.1:2633/RPC2");
    assert_eq!(found.auth_file, one.join("one_auth"));
    assert_eq!(found.session().unwrap(), "oneadmin:secret");
    assert_eq!(
        found.hook_env(),
        vec![
            (
                "ONE_XMLRPC".to_string(),
                OsString::from("http://10.0.0.1:2633/RPC2")
            ),
            (
                "ONE_AUTH".to_string(),
                one.join("one_auth").into_os_string()
            ),
        ]
    );

    // The environment wins over the files; a relative ONE_AUTH is made absolute for hooks
    // that change directory.
    set_env("ONE_XMLRPC", Some("http://127.0.0.9:2633/RPC2".as_ref()));
    std::env::set_current_dir(home.path()).unwrap();
    set_env("ONE_AUTH", Some(".one/one_auth".as_ref()));
    let from_env = FrontEndAccess::resolve(None, None).unwrap();
    assert_eq!(from_env.endpoint, "http://127.0.0.9:2633/RPC2");
    assert!(from_env.auth_file.is_absolute());
    assert_eq!(
        from_env.auth_file.canonicalize().unwrap(),
        one.join("one_auth").canonicalize().unwrap()
    );

    // The configuration wins over both.
    let configured = FrontEndAccess::resolve(
        Some("http://front:2633/RPC2"),
        Some(&PathBuf::from("/x/auth")),
    )
    .unwrap();
    assert_eq!(
        (configured.endpoint.as_str(), configured.auth_file.as_path()),
        ("http://front:2633/RPC2", std::path::Path::new("/x/auth"))
    );
    // A file that cannot be read is a clear error naming it.
    let err = configured.session().unwrap_err().to_string();
    assert!(err.contains("/x/auth"), "{err}");

    // No credentials anywhere: an error, not a guess.
    set_env("ONE_AUTH", None);
    std::fs::remove_file(one.join("one_auth")).unwrap();
    if !std::path::Path::new("/var/lib/one/.one/one_auth").exists() {
        let err = FrontEndAccess::resolve(None, None).unwrap_err().to_string();
        assert!(err.contains("ONE_AUTH is not set"), "{err}");
        assert!(err.contains("/var/lib/one/.one/one_auth"), "{err}");
    }
}
