//! One executor with a hundred hosts in agent mode (the benchmark's thousand, scaled down): every
//! host gets its own connection and agent, each hook runs on the host it was meant for, and a
//! hung host and a host that dies fail only their own hooks, within the connect timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use one_e2e::sshd::{ClientIdentity, SshFleet, agent_binary};
use onehem_server::executor::{ExecOutcome, ExecRequest};
use onehem_server::remote::{ExecMode, RemoteConfig, RemoteExecutor};

use crate::remote_support::{GLOBAL_BASE, install_hook};

const HOSTS: usize = 100;
/// Hung from the start: its sshd takes TCP connections and never answers.
const HUNG: usize = 20;
/// Killed, with its sessions and agent, once it is connected.
const KILLED: usize = 70;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Prints the address of the sshd that started it (the third word of `$SSH_CONNECTION`).
const WHERE_HOOK: &str = r#"set -- $SSH_CONNECTION; echo "$3""#;

fn config(
    fleet: &SshFleet,
    identity: &ClientIdentity,
    known_hosts: &std::path::Path,
) -> RemoteConfig {
    let mut cfg = RemoteConfig {
        mode: ExecMode::Agent,
        user: Some("root".into()),
        identity: Some(identity.private_key.clone()),
        known_hosts: Some(known_hosts.to_path_buf()),
        connect_timeout: Some(CONNECT_TIMEOUT.as_secs_f64()),
        // A debug build's key exchange costs many times a release build's; fewer openings
        // at once keep each within the connect timeout on a loaded two-core machine.
        max_connecting: Some(8),
        reconnect_backoff_min: Some(0.2),
        reconnect_backoff_max: Some(1.0),
        agent_path: Some(agent_binary().expect("agent built").display().to_string()),
        remote_hook_base_path: Some(GLOBAL_BASE.into()),
        ..RemoteConfig::default()
    };
    for h in &fleet.hosts {
        cfg.add_host(&h.name, h.addr, h.port, &h.base_path);
    }
    cfg
}

fn where_req() -> ExecRequest {
    ExecRequest {
        argv: vec![format!("{GLOBAL_BASE}/where.sh")],
        stdin: None,
        // Far beyond the connect timeout: a dead host's hook that failed only at this bound
        // would not have failed within the connect timeout.
        timeout: Some(Duration::from_secs(60)),
        output_cap: 4096,
    }
}

/// Runs the hook once on each host of `targets`, `in_flight` at a time; the outcomes in the
/// order of `targets`, with the time each took.
async fn run_on(
    exec: &Arc<RemoteExecutor>,
    names: &Arc<Vec<String>>,
    targets: Vec<usize>,
    in_flight: usize,
) -> Vec<(usize, ExecOutcome, Duration)> {
    let targets = Arc::new(targets);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..in_flight)
        .map(|_| {
            let (exec, names, targets, next) = (
                Arc::clone(exec),
                Arc::clone(names),
                Arc::clone(&targets),
                Arc::clone(&next),
            );
            tokio::spawn(async move {
                let mut seen = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&host) = targets.get(i) else {
                        return seen;
                    };
                    let start = Instant::now();
                    let out = exec.run(&names[host], where_req()).await;
                    seen.push((host, out, start.elapsed()));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// Every live host ran its hooks at its own address; every dead one failed each of its hooks
/// with code 255 and a reason, within the connect timeout (and a margin for a loaded machine).
fn check(fleet: &SshFleet, dead: &[usize], outcomes: &[(usize, ExecOutcome, Duration)]) {
    for (host, out, took) in outcomes {
        let h = &fleet.hosts[*host];
        if dead.contains(host) {
            assert_eq!(out.code, 255, "{}: {out:?}", h.name);
            let why = out.start_error.as_deref().unwrap_or_default();
            assert!(why.contains(&h.name), "{}: {why}", h.name);
            assert!(
                *took < CONNECT_TIMEOUT + Duration::from_secs(10),
                "{} took {took:?} to fail",
                h.name
            );
        } else {
            assert_eq!(
                (out.code, out.start_error.as_deref()),
                (0, None),
                "{}: {out:?}",
                h.name
            );
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                h.addr.to_string(),
                "{} ran its hook elsewhere",
                h.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_hosts_with_a_hung_and_a_dead_one() {
    let identity = ClientIdentity::generate().unwrap();
    let mut fleet = SshFleet::start(HOSTS, &identity, &[HUNG, KILLED]).unwrap();
    // 98 shared hosts on 7 sshd, and one sshd each for the two that fail.
    assert_eq!(fleet.sshds.len(), 9);
    for sshd in &fleet.sshds {
        install_hook(&sshd.base_path, "where.sh", WHERE_HOOK);
    }
    let known_hosts = identity.dir().join("known_hosts");
    fleet.write_known_hosts(&known_hosts).unwrap();
    fleet.freeze_host(HUNG);
    let exec = Arc::new(RemoteExecutor::new(config(&fleet, &identity, &known_hosts)));
    let names: Arc<Vec<String>> = Arc::new(fleet.hosts.iter().map(|h| h.name.clone()).collect());

    // Every host at once: one connection and one agent each.
    let first = run_on(&exec, &names, (0..HOSTS).collect(), HOSTS).await;
    assert_eq!(first.len(), HOSTS);
    check(&fleet, &[HUNG], &first);
    let hung = first.iter().find(|(h, ..)| *h == HUNG).unwrap();
    let why = hung.1.start_error.as_deref().unwrap_or_default();
    assert!(
        why.contains("timed out") || why.contains("timeout"),
        "{why}"
    );
    let states = exec.host_states();
    assert_eq!(states.len(), HOSTS);
    let down: Vec<&str> = states
        .iter()
        .filter(|s| !s.up)
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(down, [names[HUNG].as_str()]);

    // One host dies with its sessions; three rounds over all hosts, 16 in flight.
    fleet.stop_host(KILLED);
    let rounds: Vec<usize> = (0..3).flat_map(|_| 0..HOSTS).collect();
    let load = run_on(&exec, &names, rounds, 16).await;
    assert_eq!(load.len(), 3 * HOSTS);
    check(&fleet, &[HUNG, KILLED], &load);
    let mut down: Vec<String> = exec
        .host_states()
        .into_iter()
        .filter(|s| !s.up)
        .map(|s| s.name)
        .collect();
    down.sort();
    assert_eq!(down, [names[HUNG].clone(), names[KILLED].clone()]);

    // The dead host back: the same executor reaches it again once its backoff has passed.
    fleet.restart_host(KILLED).unwrap();
    let mut back = Vec::new();
    for _ in 0..40 {
        back = run_on(&exec, &names, vec![KILLED], 1).await;
        if back[0].1.code == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    check(&fleet, &[], &back);
    exec.shutdown().await;
}
