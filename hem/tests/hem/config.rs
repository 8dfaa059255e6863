//! Configuration parsing: the reference file as it is, plain keys, and every error at once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use onehem_server::config::{self, ConfigError, ReplayFrom};

fn parse(text: &str) -> Result<config::Config, ConfigError> {
    config::parse_with_location(text, Path::new("test.conf"), None)
}

#[test]
fn reference_file_is_accepted_as_it_is() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference-onehem-server.conf");
    let text = std::fs::read_to_string(&path).unwrap();
    let c = config::parse_with_location(&text, &path, None).unwrap();
    assert_eq!(c.debug_level, 2);
    assert_eq!(
        c.hook_base_path,
        PathBuf::from("/var/lib/one/remotes/hooks")
    );
    assert_eq!(c.remote_hook_base_path, "/var/tmp/one/hooks");
    assert_eq!(c.subscriber_endpoint, "tcp://localhost:2101");
    assert_eq!(c.replier_endpoint, "tcp://localhost:2102");
    assert_eq!(c.concurrency, 10);
    // Our keys are absent from the reference file and take their defaults.
    assert_eq!(c.replay_endpoint.as_deref(), Some("tcp://localhost:2103"));
    assert_eq!(c.replay_from, ReplayFrom::Head);
    assert_eq!(c.hook_concurrency, None);
    assert_eq!(c.state_db, PathBuf::from("/var/lib/one/onehem.db"));
    assert_eq!(c.log_file, Some(PathBuf::from("/var/log/one/onehem.log")));
}

#[test]
fn plain_keys_and_our_keys() {
    let c = parse(
        "debug_level: 3\nhook_base_path: /opt/hooks\nconcurrency: 50\n\
         replay_endpoint: none\nstate_db: /tmp/x/hem.db\noutput_cap: 4096\n\
         hook_concurrency: 2\nlog_file: ''\nlog_stderr: yes\none_xmlrpc: http://127.0.0.1:2633/RPC2\n\
         one_auth: /tmp/one_auth\nresync_interval: 60\nresult_timeout: 0.5\nreplay_from: oldest\n\
         remote:\n  :connect_timeout: 3\n  :hosts:\n    node1:\n      :address: 127.0.0.5\n",
    )
    .unwrap();
    assert_eq!(c.debug_level, 3);
    assert_eq!(c.hook_base_path, PathBuf::from("/opt/hooks"));
    assert_eq!(c.concurrency, 50);
    assert_eq!(c.replay_endpoint, None);
    assert_eq!(c.state_db, PathBuf::from("/tmp/x/hem.db"));
    assert_eq!(c.output_cap, 4096);
    assert_eq!(c.hook_concurrency, Some(2));
    assert_eq!(c.log_file, None);
    assert!(c.log_stderr);
    assert_eq!(c.one_xmlrpc.as_deref(), Some("http://127.0.0.1:2633/RPC2"));
    assert_eq!(c.one_auth, Some(PathBuf::from("/tmp/one_auth")));
    assert_eq!(c.resync_interval, Duration::from_secs(60));
    assert_eq!(c.result_timeout, Duration::from_millis(500));
    assert_eq!(c.replay_from, ReplayFrom::Oldest);
    // Symbol keys inside sections are normalised too.
    assert_eq!(c.remote.connect_timeout, Some(3.0));
    assert_eq!(
        c.remote.remote_hook_base_path.as_deref(),
        Some("/var/tmp/one/hooks")
    );
    assert_eq!(
        c.remote.hosts["node1"].address.as_deref(),
        Some("127.0.0.5")
    );
}

#[test]
fn empty_file_gives_every_default() {
    let c = parse("# nothing but a comment\n").unwrap();
    assert_eq!(c.concurrency, 10);
    assert_eq!(c.debug_level, 2);
    assert_eq!(c.remote_hook_base_path, "/var/tmp/one/hooks");
}

#[test]
fn one_location_moves_the_install_paths() {
    let c = config::parse_with_location("", Path::new("x"), Some(Path::new("/srv/one"))).unwrap();
    assert_eq!(
        c.hook_base_path,
        PathBuf::from("/srv/one/var/remotes/hooks")
    );
    assert_eq!(c.state_db, PathBuf::from("/srv/one/var/onehem.db"));
    assert_eq!(c.log_file, Some(PathBuf::from("/srv/one/var/onehem.log")));
}

#[test]
fn every_error_is_reported_at_once_with_its_key() {
    let err = parse(
        ":debug_level: 7\n:concurrency: -3\nsubscriber_endpoint: localhost\n\
         result_timeout: soon\nlog_stderr: maybe\nreplay_from: yesterday\nbogus_key: 1\n\
         remote: 5\nhook_base_path: ''\n",
    )
    .unwrap_err();
    let keys: Vec<&str> = err.key_errors().iter().map(|e| e.key.as_str()).collect();
    for key in [
        "debug_level",
        "concurrency",
        "subscriber_endpoint",
        "result_timeout",
        "log_stderr",
        "replay_from",
        "bogus_key",
        "remote",
        "hook_base_path",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    assert_eq!(keys.len(), 9, "{keys:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("Error loading test.conf: 9 invalid key(s)"),
        "{text}"
    );
    assert!(
        text.contains("concurrency: must be an integer from 1 to 10000, got -3"),
        "{text}"
    );
    assert!(text.contains("bogus_key: unknown key"), "{text}");
}

#[test]
fn a_key_given_with_and_without_colon_is_an_error() {
    let err = parse(":concurrency: 5\nconcurrency: 6\n").unwrap_err();
    assert_eq!(err.key_errors().len(), 1);
    assert_eq!(err.key_errors()[0].key, "concurrency");
}

#[test]
fn unreadable_and_malformed_files_are_reported_with_the_file() {
    let err = config::load(Path::new("/nonexistent/onehem-server.conf")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(
        err.to_string()
            .starts_with("Error loading /nonexistent/onehem-server.conf: "),
        "{err}"
    );

    let err = parse(":concurrency: [1,\n").unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err:?}");
    let err = parse("- a\n- b\n").unwrap_err();
    assert!(err.to_string().contains("mapping"), "{err}");
}

#[test]
fn numbers_written_as_strings_are_accepted() {
    let c = parse(":concurrency: '20'\n:debug_level: \"1\"\n").unwrap();
    assert_eq!(c.concurrency, 20);
    assert_eq!(c.debug_level, 1);
    let c = parse("replay_from: 42\n").unwrap();
    assert_eq!(c.replay_from, ReplayFrom::After(42));
}

#[test]
fn remote_section_errors_name_their_keys() {
    let err = parse("remote:\n  :connect_timeout: -1\n:concurrency: 0\n").unwrap_err();
    let keys: Vec<&str> = err.key_errors().iter().map(|e| e.key.as_str()).collect();
    assert!(keys.contains(&"remote.connect_timeout"), "{keys:?}");
    assert!(keys.contains(&"concurrency"), "{keys:?}");

    let err = parse("remote:\n  :mode: telnet\n").unwrap_err();
    assert_eq!(err.key_errors()[0].key, "remote");
    assert!(err.to_string().contains("telnet"), "{err}");
}

#[test]
fn the_shipped_file_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/onehem-server.conf");
    let c = config::load(&path).unwrap();
    assert_eq!(c.concurrency, 10);
    assert_eq!(c.replay_endpoint.as_deref(), Some("tcp://localhost:2103"));
    assert_eq!(c.log_file, None);
    assert!(c.log_stderr);
}

#[test]
fn the_shipped_file_holds_the_defaults_but_where_it_says_not() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/onehem-server.conf");
    let text = std::fs::read_to_string(&path).unwrap();
    let marked: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("NOT the default"))
        .collect();
    assert_eq!(marked.len(), 2, "{marked:?}");
    let unmarked: String = text
        .lines()
        .filter(|l| l.starts_with('#') || !l.contains("NOT the default"))
        .map(|l| format!("{l}\n"))
        .collect();
    let sample = config::parse_with_location(&unmarked, &path, None).unwrap();
    let defaults = config::parse_with_location("", &path, None).unwrap();
    assert_eq!(format!("{sample:?}"), format!("{defaults:?}"));
}

#[test]
fn the_distributed_mode_keys() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "x").unwrap();
    let c = parse(&format!(
        ":nats_servers: nats://127.0.0.1:4222, tls://127.0.0.2:4222\n\
         :nats_user: hem\n:nats_password: secret\n:nats_tls_ca: {}\n\
         nats_replicas: 3\nnats_takeover: 2.5\nnats_name: hem-a\n",
        ca.display()
    ))
    .unwrap();
    let nats = c.nats.expect("distributed mode");
    assert_eq!(
        nats.bus.servers,
        ["nats://127.0.0.1:4222", "tls://127.0.0.2:4222"]
    );
    assert_eq!(
        nats.bus.auth,
        one_bus::Auth::UserPassword {
            user: "hem".into(),
            password: "secret".into()
        }
    );
    assert_eq!(nats.bus.tls.ca.as_deref(), Some(ca.as_path()));
    assert_eq!(nats.replicas, 3);
    assert_eq!(nats.takeover, Duration::from_millis(2500));
    assert_eq!(nats.member, "hem-a");
    assert_eq!(nats.layout, one_bus::Layout::default());
    // A list works as well as a comma-separated text; without the key there is no NATS mode.
    let listed = parse("nats_servers:\n  - nats://a:1\n  - nats://b:2\n").unwrap();
    assert_eq!(
        listed.nats.unwrap().bus.servers,
        ["nats://a:1", "nats://b:2"]
    );
    assert!(parse("concurrency: 3\n").unwrap().nats.is_none());
}

#[test]
fn distributed_mode_mistakes_are_reported_at_once() {
    let err = parse(
        "nats_servers: http://x:1\nnats_user: hem\nnats_creds: /nonexistent.creds\n\
         nats_tls_cert: /nonexistent.pem\nnats_prefix: 'a..b'\nnats_bucket: 'x y'\n\
         nats_takeover: 0\n",
    )
    .unwrap_err();
    let keys: Vec<&str> = err.key_errors().iter().map(|e| e.key.as_str()).collect();
    for key in [
        "nats_servers",
        "nats_creds",
        "nats_tls_cert",
        "nats_prefix",
        "nats_bucket",
        "nats_takeover",
    ] {
        assert!(keys.contains(&key), "{key} not reported: {err}");
    }
    // Keys of the mode without the mode are refused, not ignored.
    let err = parse("nats_user: hem\nnats_takeover: 3\n").unwrap_err();
    let keys: Vec<&str> = err.key_errors().iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["nats_user", "nats_takeover"], "{err}");
}

#[test]
fn allowed_hook_paths_default_to_none() {
    let c = parse("").unwrap();
    assert!(c.hook_allowed_paths.is_empty());
    let paths = c.hook_paths();
    assert!(paths.allowed.is_empty());
    assert!(paths.check_local("/bin/true").is_err());
}

#[test]
fn allowed_hook_paths_are_existing_absolute_directories() {
    let here = env!("CARGO_MANIFEST_DIR");
    let c = parse(&format!(
        ":hook_allowed_paths: [{here}/src, ' {here}/tests/ ']\n"
    ))
    .unwrap();
    assert_eq!(
        c.hook_allowed_paths,
        vec![
            PathBuf::from(format!("{here}/src")),
            PathBuf::from(format!("{here}/tests/"))
        ]
    );
    // One directory may be given without the list.
    let c = parse(&format!("hook_allowed_paths: {here}\n")).unwrap();
    assert_eq!(c.hook_allowed_paths, vec![PathBuf::from(here)]);
    assert_eq!(c.hook_paths().check_local(&format!("{here}/x")), Ok(()));

    let file = format!("{here}/Cargo.toml");
    let err = parse(&format!(
        "hook_allowed_paths:\n  - bin\n  - /nonexistent/hooks\n  - {file}\n  - {here}/../hem\n  \
         - 7\n  - {here}\n:concurrency: 0\n"
    ))
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("Error loading test.conf: 6 invalid key(s)"),
        "{text}"
    );
    for problem in [
        "hook_allowed_paths: \"bin\" is not an absolute path".to_string(),
        "hook_allowed_paths: \"/nonexistent/hooks\" is not an existing directory".into(),
        format!("hook_allowed_paths: {file:?} is not an existing directory"),
        format!("hook_allowed_paths: \"{here}/../hem\" must not contain '..'"),
        "hook_allowed_paths: 7 is not a directory path (a string)".into(),
        "concurrency: must be an integer".into(),
    ] {
        assert!(text.contains(&problem), "{problem} missing from {text}");
    }
    let err = parse("hook_allowed_paths: {a: 1}\n").unwrap_err();
    assert!(
        err.to_string()
            .contains("hook_allowed_paths: must be a list of absolute directories, got a mapping"),
        "{err}"
    );
}

#[test]
fn curve_keys_come_in_pairs_and_their_files_are_read_now() {
    let dir = tempfile::tempdir().unwrap();
    let server = one_curve::cert::generate(dir.path(), "one_hm").unwrap();
    let hem = one_curve::cert::generate(dir.path(), "hem").unwrap();
    let keys = format!(
        ":curve_server_key: {}\n:curve_client_key: {}\n",
        server.public_file.display(),
        hem.secret_file.display()
    );
    let c = parse(&keys).unwrap();
    let curve = c.curve.expect("CURVE keys");
    assert_eq!(
        (curve.server, curve.cert.public),
        (server.public, hem.public)
    );
    assert!(parse("").unwrap().curve.is_none());

    let alone = parse(&format!(
        "curve_server_key: {}\n",
        server.public_file.display()
    ))
    .unwrap_err();
    assert_eq!(alone.key_errors().len(), 1, "{alone}");
    assert_eq!(alone.key_errors()[0].key, "curve_server_key");
    assert!(
        alone.to_string().contains("needs curve_client_key"),
        "{alone}"
    );

    // The driver's public file where the HEM's secret one belongs, and a typo in the other.
    let typo = dir.path().join("typo.key");
    std::fs::write(&typo, "curve\n    public-key = \"short\"\n").unwrap();
    let err = parse(&format!(
        "curve_server_key: {}\ncurve_client_key: {}\nconcurrency: 0\n",
        typo.display(),
        server.public_file.display()
    ))
    .unwrap_err();
    let keys: Vec<&str> = err.key_errors().iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        ["concurrency", "curve_server_key", "curve_client_key"],
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&format!("{}:2: public-key", typo.display())),
        "{err}"
    );
}

#[test]
fn metrics_listen_is_off_by_default_and_checked_with_the_other_keys() {
    assert_eq!(parse("").unwrap().metrics_listen, None);
    assert_eq!(
        parse(":metrics_listen: none\n").unwrap().metrics_listen,
        None
    );
    let c = parse(":metrics_listen: '127.0.0.1:9926'\n").unwrap();
    assert_eq!(c.metrics_listen, Some("127.0.0.1:9926".parse().unwrap()));
    let e = parse("metrics_listen: 'localhost:9926'\nconcurrency: 0\n").unwrap_err();
    let keys: Vec<&str> = e.key_errors().iter().map(|k| k.key.as_str()).collect();
    assert_eq!(keys, ["concurrency", "metrics_listen"], "{e}");
    assert!(e.to_string().contains("must be IP:PORT"), "{e}");
}
