//! The distributed mode on a bus with TLS and authentication: the driver and the HEMs work with
//! the least permissions ARCHITECTURE.md lists, with users and passwords or with `.creds` files;
//! a client without credentials gets nothing in or out, and each component's user is kept to
//! its own part.

use std::time::Duration;

use anyhow::{Result, ensure};
use one_e2e::nats::{Auth, ClusterOptions, NatsCluster, NatsUser};
use one_e2e::stack::{Stack, StackOptions, run_python};

use crate::distributed::{Distributed, check_exactly_once, pending_hook, vm_range, write_vm_hook};
use crate::flood::allocate_vms;

fn users() -> Vec<NatsUser> {
    vec![
        NatsUser::driver("driver", "driver-secret"),
        NatsUser::hem("hem", "hem-secret"),
    ]
}

fn secured(auth: Auth) -> Result<Distributed> {
    let nats = NatsCluster::start(ClusterOptions {
        tls: true,
        auth,
        ..Default::default()
    })?;
    let users = users();
    let access = nats.access(Some(&users[0]), Some(&users[1]));
    let stack = Stack::start_with(StackOptions {
        hems: 2,
        log_retention: 100_000,
        nats: Some(access),
        ..Default::default()
    })?;
    Ok(Distributed { stack, nats })
}

fn run_hooks(d: &Distributed) -> Result<()> {
    write_vm_hook(&d.stack, "vm.sh", "0")?;
    let hook = pending_hook(&d.stack, "vm", "vm.sh")?;
    allocate_vms(&d.stack, 60, 2)?;
    let tally = check_exactly_once(&d.stack, hook, &vm_range(0, 60), &[])?;
    ensure!(tally.interrupted == 0);
    Ok(())
}

/// Runs a nats-py script with the cluster's URLs, CA and `args`; returns its output lines.
fn nats_py(nats: &NatsCluster, script: &str, args: &[&str]) -> Result<String> {
    let ca = nats
        .ca_file()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut all = vec![nats.url_list(), ca];
    all.extend(args.iter().map(|a| a.to_string()));
    run_python(script, &all)
}

/// Tries, as `argv[3]`/`argv[4]` (or without credentials when empty) and with or without the
/// CA (`argv[5]`), to connect, to publish an event and a result, and to read the events
/// stream; prints one verdict per try.
const PROBE: &str = r#"
import asyncio, ssl, sys, nats
urls, ca, user, password, use_ca = sys.argv[1].split(','), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == 'ca'
async def main():
    opts = dict(servers=urls, allow_reconnect=False, connect_timeout=3, max_reconnect_attempts=0)
    ctx = ssl.create_default_context(cafile=ca) if use_ca else ssl.create_default_context()
    opts['tls'] = ctx
    if user:
        opts['user'], opts['password'] = user, password
    errors = []
    async def on_error(e):
        errors.append(str(e))
    opts['error_cb'] = on_error
    try:
        nc = await nats.connect(**opts)
    except Exception as e:
        print('connect refused', type(e).__name__, e)
        return
    print('connected')
    js = nc.jetstream(timeout=3)
    for what, subject in [('event', 'one.event.api.one_vm_allocate.1.0'), ('result', 'one.result.999999')]:
        try:
            await js.publish(subject, b'0 999999 QUJD', headers={'Nats-Msg-Id': 'probe-' + what})
            print(what, 'published')
        except Exception as e:
            print(what, 'refused', type(e).__name__)
    try:
        sub = await js.pull_subscribe('one.event.>', durable=None, stream='ONE_EVENTS')
        msgs = await sub.fetch(1, timeout=3)
        print('events read', len(msgs))
    except Exception as e:
        print('events refused', type(e).__name__)
    try:
        kv = await js.key_value('ONE_HEM')
        await kv.put('x.probe', b'forged')
        print('marker written')
    except Exception as e:
        print('marker refused', type(e).__name__)
    await asyncio.sleep(0.5)
    for e in errors:
        if 'Permissions Violation' in e:
            print('violation', e.split("'")[1] if "'" in e else e)
    await nc.close()
asyncio.run(main())
"#;

#[test]
fn least_permissions_over_tls_suffice_and_outsiders_get_nothing() -> Result<()> {
    let d = secured(Auth::Users(users()))?;
    run_hooks(&d)?;
    let nobody = nats_py(&d.nats, PROBE, &["", "", "ca"])?;
    ensure!(
        nobody.starts_with("connect refused"),
        "a client without credentials: {nobody}"
    );
    let wrong = nats_py(&d.nats, PROBE, &["hem", "guess", "ca"])?;
    ensure!(
        wrong.starts_with("connect refused"),
        "a wrong password: {wrong}"
    );
    let no_ca = nats_py(&d.nats, PROBE, &["hem", "hem-secret", "system"])?;
    ensure!(
        no_ca.starts_with("connect refused"),
        "a client that does not trust the cluster's CA: {no_ca}"
    );
    // The HEM's user reads events and writes markers and results, but cannot forge events.
    let hem = nats_py(&d.nats, PROBE, &["hem", "hem-secret", "ca"])?;
    ensure!(hem.contains("event refused"), "the HEM's user: {hem}");
    ensure!(hem.contains("result published"), "the HEM's user: {hem}");
    // The driver's user publishes events and results but cannot touch the HEMs' markers.
    let driver = nats_py(&d.nats, PROBE, &["driver", "driver-secret", "ca"])?;
    ensure!(
        driver.contains("event published"),
        "the driver's user: {driver}"
    );
    ensure!(
        driver.contains("marker refused"),
        "the driver's user: {driver}"
    );
    println!("hem user:\n{hem}driver user:\n{driver}");
    // The stack still works after the probes.
    std::thread::sleep(Duration::from_millis(200));
    Ok(())
}

#[test]
fn credentials_files_of_an_operator_mode_cluster_work() -> Result<()> {
    let d = secured(Auth::Operator(users()))?;
    run_hooks(&d)
}

#[test]
fn the_sample_server_config_gives_each_component_its_own_part() {
    let driver = NatsUser::driver("d", "p");
    let hem = NatsUser::hem("h", "p");
    assert!(
        driver.publish.iter().any(|s| s == "one.event.>"),
        "{driver:?}"
    );
    assert!(
        !driver.publish.iter().any(|s| s.starts_with("$KV.")),
        "{driver:?}"
    );
    assert!(hem.publish.iter().any(|s| s == "$KV.ONE_HEM.>"), "{hem:?}");
    assert!(
        !hem.publish.iter().any(|s| s.starts_with("one.event")),
        "{hem:?}"
    );
    assert_eq!(driver.subscribe, ["_INBOX.>"]);
    assert_eq!(hem.subscribe, ["_INBOX.>"]);
}
