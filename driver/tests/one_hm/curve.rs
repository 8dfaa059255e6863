//! CURVE on the three sockets: pyzmq peers without a key (logged by the sockets' handshake
//! monitors), with a key the driver does not list, and with listed keys made by
//! `one_hm --curve-keygen` and by pyzmq.

use std::process::Command;
use std::time::Duration;

use one_e2e::nats::{ClusterOptions, NatsCluster};
use serde_json::json;

use crate::fixture::*;

/// How long an unauthorised REQ waits for the reply that must not come.
const NO_REPLY_MS: &str = "2000";

/// Keys by `maker` for the driver, and the driver started with them and `extra` flags.
fn started(dir: &std::path::Path, maker: KeyMaker, extra: &[&str]) -> (CurveKeys, Driver) {
    let keys = CurveKeys::make(dir, maker);
    let mut flags = keys.driver_flags();
    flags.extend(extra.iter().map(|f| f.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut driver = Driver::start(dir, &flags);
    driver.init();
    (keys, driver)
}

fn with_timeout(mut env: Vec<(String, String)>) -> Vec<(String, String)> {
    env.push(("REPLY_TIMEOUT_MS".into(), NO_REPLY_MS.into()));
    env
}

/// A `sub.py` for every event, connected with `env`'s keys; only READY is awaited.
fn raw_subscriber(driver: &Driver, env: &[(String, String)]) -> Peer {
    let sub = Peer::start_env("sub.py", &[&driver.endpoints.publisher, "10", "EVENT"], env);
    assert_eq!(sub.next_line(), "READY");
    sub
}

#[test]
fn curve_subscribers_without_an_allowed_key_get_no_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (keys, mut driver) = started(dir.path(), KeyMaker::OneHm, &[]);
    only_listed_subscribers_get_events(&mut driver, &keys);
    driver.send("FINALIZE");
    assert!(driver.wait().success());
}

#[test]
fn curve_guards_the_publisher_in_the_nats_mode_too() {
    let nats = NatsCluster::start(ClusterOptions {
        nodes: 1,
        ..ClusterOptions::default()
    })
    .expect("NATS server");
    let dir = tempfile::tempdir().expect("tempdir");
    let (keys, mut driver) = started(dir.path(), KeyMaker::OneHm, &["--nats", &nats.url_list()]);
    only_listed_subscribers_get_events(&mut driver, &keys);
}

/// A SUB without a key and one with an unlisted key get nothing, not even probes, while the
/// two listed ones get an event with a password in it.
fn only_listed_subscribers_get_events(driver: &mut Driver, keys: &CurveKeys) {
    let nobody = raw_subscriber(driver, &[]);
    let stranger = raw_subscriber(driver, &keys.client_env("stranger"));
    let allowed: Vec<Peer> = ["ours", "py"]
        .iter()
        .map(|name| {
            let sub = raw_subscriber(driver, &keys.client_env(name));
            sync(driver, &sub, "PROBE");
            sub
        })
        .collect();
    // The stranger reached the driver and was turned away, by its key.
    let log = driver.wait_for_log("CURVE client denied");
    let denied = log
        .lines()
        .find(|l| l.contains("CURVE client denied"))
        .expect("denial line");
    assert!(denied.contains(&keys.public_z85("stranger")), "{denied}");
    assert!(
        denied.contains("socket=publisher") && denied.contains("peer=127.0.0.1"),
        "{denied}"
    );
    // The keyless one never reached ZAP; the socket's monitor reported it, as a mechanism
    // mismatch, or as a hang-up when pyzmq's libzmq saw the mismatch first.
    let log = driver.wait_for_log("CURVE handshake failed before authentication");
    let failed = log
        .lines()
        .find(|l| l.contains("CURVE handshake failed"))
        .expect("handshake line");
    assert!(
        failed.contains("socket=publisher")
            && (failed.contains("does not use CURVE")
                || failed.contains("ended during the handshake")),
        "{failed}"
    );

    let secret = api_event("one.vm.update", true, "CONTEXT=[PASSWORD=s3cret]");
    driver.send(&execute(&secret));
    for sub in &allowed {
        let event = received(&sub.next_line());
        assert!(
            event.key.starts_with("EVENT API one.vm.update 1 #"),
            "{}",
            event.key
        );
        assert_eq!(event.content, secret);
    }
    // The allowed subscribers have the event; the others got nothing at all.
    for sub in [&nobody, &stranger] {
        assert_eq!(sub.try_line(Duration::from_millis(300)), None);
    }
}

#[test]
fn curve_results_from_unlisted_keys_are_never_stored_or_forwarded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (keys, mut driver) = started(dir.path(), KeyMaker::OneHm, &[]);
    let forged = result_body("/bin/true", 0, Some("forged"));
    for env in [
        with_timeout(Vec::new()),
        with_timeout(keys.client_env("stranger")),
    ] {
        let mut peer = Peer::start_env("req.py", &[&driver.endpoints.logger], &env);
        peer.send(&json!([format!("0 66 {forged}")]).to_string());
        let (out, status) = peer.finish_unchecked();
        assert_eq!(out, ["TIMEOUT"]);
        assert!(!status.success());
    }
    let log = driver.wait_for_log("CURVE client denied");
    let denied = log
        .lines()
        .find(|l| l.contains("CURVE client denied"))
        .expect("denial line");
    assert!(
        denied.contains("socket=replier") && denied.contains(&keys.public_z85("stranger")),
        "{denied}"
    );

    for (n, name) in ["ours", "py"].iter().enumerate() {
        let genuine = result_body("/bin/true", 0, Some(&format!("genuine-{n}")));
        let mut peer = Peer::start_env(
            "req.py",
            &[&driver.endpoints.logger],
            &keys.client_env(name),
        );
        peer.send(&json!([format!("0 7 {genuine}")]).to_string());
        assert_eq!(peer.finish(), [json!(["ACK"]).to_string()]);
        // Results are forwarded in arrival order: had a forged one been stored, it came first.
        assert_eq!(driver.next_line(), format!("EXECUTE SUCCESS 7 0 {genuine}"));
    }
    driver.send("FINALIZE");
    assert!(driver.wait().success());
    assert!(driver.rest_of_stdout().is_empty());
}

#[test]
fn curve_replay_answers_only_listed_keys_with_a_pyzmq_server_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (keys, mut driver) = started(dir.path(), KeyMaker::Pyzmq, &[]);
    let event = api_event("one.vm.allocate", true, "template");
    driver.send(&execute(&event));
    // The journal's content is reached only by listed clients.
    for env in [
        with_timeout(Vec::new()),
        with_timeout(keys.client_env("stranger")),
    ] {
        let peer = Peer::start_env("replay.py", &[&driver.endpoints.replay, "0", "10"], &env);
        let (out, status) = peer.finish_unchecked();
        let out: Vec<serde_json::Value> = out
            .iter()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(out, [json!({"error": "TIMEOUT"})]);
        assert!(!status.success());
    }
    for name in ["ours", "py"] {
        let deadline = std::time::Instant::now() + PATIENCE;
        // The event is journaled asynchronously; ask again until it is there.
        let events = loop {
            let peer = Peer::start_env(
                "replay.py",
                &[&driver.endpoints.replay, "0", "10"],
                &keys.client_env(name),
            );
            let lines = peer.finish();
            if lines.len() > 1 {
                break lines;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "event never journaled"
            );
        };
        let first: serde_json::Value = serde_json::from_str(&events[0]).expect("json");
        assert_eq!(first["content"], event);
    }
    assert!(driver.stderr().contains("socket=replay"));
    driver.send("FINALIZE");
    assert!(driver.wait().success());
}

/// Runs one_hm with `args` until it exits; returns its status and stderr.
fn run_to_exit(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_one_hm"))
        .args(["-p", "0", "-l", "0", "--replay-port", "0", "--journal"])
        .arg(dir.join("journal.db"))
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run one_hm");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn curve_flags_and_key_files_are_checked_before_anything_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = CurveKeys::make(dir.path(), KeyMaker::OneHm);
    let secret = keys.server_secret.display().to_string();
    let clients = keys.clients.display().to_string();
    let (code, log) = run_to_exit(dir.path(), &["--curve-secret-key", &secret]);
    assert_eq!(code, Some(255));
    assert!(
        log.contains("--curve-secret-key: needs --curve-clients"),
        "{log}"
    );

    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&keys.server_secret, std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let bad = keys.clients.join("typo.key");
    std::fs::write(&bad, "curve\n    public-key = \"too short\"\n").expect("write");
    let (code, log) = run_to_exit(
        dir.path(),
        &["--curve-secret-key", &secret, "--curve-clients", &clients],
    );
    assert_eq!(code, Some(255));
    assert!(
        log.contains(&format!(
            "{secret}: mode 0644 lets other users read this secret key"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "{}:2: public-key: a key is 40 Z85 characters, this one has 9",
            bad.display()
        )),
        "{log}"
    );
    assert!(
        !dir.path().join("journal.db").exists(),
        "nothing was started"
    );
}

#[test]
fn a_non_loopback_bind_without_curve_is_warned_about_and_loopback_is_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Bound on every address, but the test's traffic stays on loopback.
    let mut open = Driver::start(dir.path(), &["-b", "0.0.0.0"]);
    open.init();
    let log = open.stderr();
    for exposure in [
        "publisher socket binds 0.0.0.0 without CURVE: any host that reaches it can read every event",
        "replier socket binds 0.0.0.0 without CURVE: any host that reaches it can forge hook results",
        "replay socket binds 0.0.0.0 without CURVE: any host that reaches it can read every event the journal retains",
    ] {
        assert!(log.contains(exposure), "{exposure}\n{log}");
    }
    assert!(log.contains("WARN"), "{log}");
    open.send("FINALIZE");
    assert!(open.wait().success());

    let quiet = tempfile::tempdir().expect("tempdir");
    let mut local = Driver::start(quiet.path(), &[]);
    local.init();
    let keys = CurveKeys::make(quiet.path(), KeyMaker::OneHm);
    let mut flags = keys.driver_flags();
    flags.extend(["-b".to_string(), "0.0.0.0".to_string()]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let curve_dir = quiet.path().join("curve-driver");
    std::fs::create_dir(&curve_dir).expect("dir");
    let mut guarded = Driver::start(&curve_dir, &flags);
    guarded.init();
    for driver in [&mut local, &mut guarded] {
        driver.send("FINALIZE");
        assert!(driver.wait().success());
        assert!(
            !driver.stderr().contains("without CURVE"),
            "{}",
            driver.stderr()
        );
    }
}
