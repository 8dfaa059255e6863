//! The NATS JetStream cluster fixture against a client nobody here wrote (nats-py): replicated
//! streams that survive a node crash, TLS with users and permissions, decentralized auth with
//! generated `.creds` files.

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use one_e2e::nats::{Auth, ClusterOptions, NatsCluster, NatsUser};
use one_e2e::stack::python;

/// How long one client script may run; each bounds its own waits well below this.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(40);

/// Runs `script` with the venv's Python (`python -c script args...`), killed after
/// [`SCRIPT_TIMEOUT`]; returns its stdout, or fails with its output when it fails.
fn run_python(cluster: &NatsCluster, name: &str, script: &str, args: &[&str]) -> Result<String> {
    // Output goes to files, so that a chatty script can never block on a full pipe while
    // the test waits for it.
    let out_path = cluster.dir().join(format!("{name}.out"));
    let err_path = cluster.dir().join(format!("{name}.err"));
    let mut child = Command::new(python()?)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path)?)
        .stderr(fs::File::create(&err_path)?)
        .spawn()
        .context("starting python")?;
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = fs::read_to_string(&err_path).unwrap_or_default();
    match status {
        Some(s) if s.success() => Ok(stdout),
        Some(s) => bail!(
            "{name} exited with {s}\nstdout:\n{stdout}\nstderr:\n{stderr}\n{}",
            cluster.logs()
        ),
        None => bail!(
            "{name} ran longer than {SCRIPT_TIMEOUT:?}\nstdout:\n{stdout}\nstderr:\n{stderr}\n{}",
            cluster.logs()
        ),
    }
}

/// The value of the first `key=value` line of a script's output.
fn field<'a>(output: &'a str, key: &str) -> Result<&'a str> {
    output
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .with_context(|| format!("no {key}= line in:\n{output}"))
}

/// Python: `leader_info(js)`, the info of stream EVENTS once it names a leader. A stream can be
/// briefly leaderless even after it took a message (a loaded machine misses heartbeats and the
/// group re-elects), and then its info names none.
const LEADER_INFO: &str = r#"
import asyncio, sys, time, nats

async def leader_info(js):
    deadline = time.monotonic() + 15
    last = None
    while time.monotonic() < deadline:
        try:
            info = await js.stream_info("EVENTS")
            if info.cluster and info.cluster.leader:
                return info
            last = f"no leader in {info.cluster}"
        except Exception as e:
            last = f"{type(e).__name__}: {e}"
        print(f"stream info: {last}", file=sys.stderr)
        await asyncio.sleep(0.1)
    raise TimeoutError(f"stream EVENTS named no leader within 15 s: {last}")
"#;

/// Creates stream EVENTS (subjects `events.>`, three replicas), publishes one message, reads
/// it back by sequence number; prints its sequence, the stream leader and how many followers
/// it has.
const CREATE_AND_PUBLISH: &str = r#"

async def main():
    nc = await nats.connect(servers=sys.argv[1].split(","), connect_timeout=2,
                            allow_reconnect=False)
    js = nc.jetstream(timeout=30)
    await js.add_stream(name="EVENTS", subjects=["events.>"], num_replicas=3)
    ack = await js.publish("events.first", b"one")
    msg = await js.get_msg("EVENTS", ack.seq)
    assert msg.data == b"one", msg.data
    info = await leader_info(js)
    print(f"seq={ack.seq}")
    print(f"leader={info.cluster.leader}")
    print(f"replicas={len(info.cluster.replicas or [])}")
    await nc.close()

asyncio.run(main())
"#;

/// Publishes `argv[2]` to `events.<argv[2]>` through the nodes of `argv[1]`, retrying for up
/// to 25 s while the stream has no leader (a stream's replicas wait 4 to 9 s before they
/// elect a new one), then reads every message of the stream back; prints the new sequence,
/// the stream leader and the stream's messages.
const PUBLISH_WITH_RETRY: &str = r#"

async def main():
    nc = await nats.connect(servers=sys.argv[1].split(","), connect_timeout=2,
                            allow_reconnect=False)
    js = nc.jetstream(timeout=2)
    word = sys.argv[2]
    deadline = time.monotonic() + 25
    attempts = 0
    while True:
        attempts += 1
        try:
            ack = await js.publish(f"events.{word}", word.encode())
            break
        except Exception as e:
            if time.monotonic() > deadline:
                raise
            print(f"retry: {type(e).__name__}: {e}", file=sys.stderr)
            await asyncio.sleep(0.2)
    info = await leader_info(js)
    words = []
    for seq in range(1, ack.seq + 1):
        words.append((await js.get_msg("EVENTS", seq)).data.decode())
    print(f"seq={ack.seq}")
    print(f"attempts={attempts}")
    print(f"leader={info.cluster.leader}")
    print(f"messages={','.join(words)}")
    await nc.close()

asyncio.run(main())
"#;

/// Three nodes; a stream replicated on all three keeps taking messages when its leader
/// crashes, and the crashed node comes back.
#[test]
fn nats_cluster_survives_a_node_crash() -> Result<()> {
    let mut cluster = NatsCluster::start(ClusterOptions::default())?;
    assert_eq!(cluster.urls().len(), 3);
    // Both scripts use leader_info.
    let create = format!("{LEADER_INFO}{CREATE_AND_PUBLISH}");
    let publish = format!("{LEADER_INFO}{PUBLISH_WITH_RETRY}");
    let out = run_python(&cluster, "create", &create, &[&cluster.url_list()])?;
    assert_eq!(field(&out, "seq")?, "1");
    assert_eq!(field(&out, "replicas")?, "2", "two followers: {out}");

    // Crash the stream's leader: the remaining two must elect a new one.
    let leader = field(&out, "leader")?.to_string();
    let victim = cluster
        .node_index(&leader)
        .with_context(|| format!("stream leader {leader:?} is no node of the cluster"))?;
    cluster.kill_node(victim)?;
    assert!(!cluster.is_running(victim));
    let survivors: Vec<String> = (0..cluster.len())
        .filter(|&i| i != victim)
        .map(|i| cluster.node_url(i))
        .collect::<Result<_>>()?;
    let out = run_python(
        &cluster,
        "after-crash",
        &publish,
        &[&survivors.join(","), "second"],
    )?;
    assert_eq!(field(&out, "seq")?, "2");
    assert_eq!(field(&out, "messages")?, "one,second");
    assert_ne!(field(&out, "leader")?, leader, "a new leader: {out}");

    // Back with the same store; it catches up, and a client of only that node sees it all.
    cluster.start_node(victim)?;
    assert!(cluster.is_running(victim));
    let out = run_python(
        &cluster,
        "after-restart",
        &publish,
        &[&cluster.node_url(victim)?, "third"],
    )?;
    assert_eq!(field(&out, "messages")?, "one,second,third");
    Ok(())
}

/// Connects as several clients and prints one `name=result` line each: `ok` or the error.
/// argv: URLs, CA file, password of `hem`, password of `limited`.
const TLS_CLIENTS: &str = r#"
import asyncio, ssl, sys, nats

urls, ca, hem_password, limited_password = sys.argv[1].split(","), sys.argv[2], sys.argv[3], sys.argv[4]

def with_ca():
    ctx = ssl.create_default_context(cafile=ca)
    return ctx

async def quiet(e):
    pass

async def connect(servers, **kw):
    return await nats.connect(servers=servers, connect_timeout=2, allow_reconnect=False,
                              max_reconnect_attempts=0, error_cb=quiet, **kw)

async def attempt(name, coro):
    try:
        print(f"{name}={await coro}")
    except Exception as e:
        print(f"{name}=error {type(e).__name__}: {e!r}")

async def roundtrip(url):
    nc = await connect([url], tls=with_ca(), user="hem", password=hem_password)
    sub = await nc.subscribe("greet")
    await nc.publish("greet", b"hello")
    msg = await sub.next_msg(timeout=2)
    await nc.close()
    return f"ok {msg.data.decode()}"

async def refused(**kw):
    nc = await connect(urls, **kw)
    await nc.close()
    return "connected"

async def limited():
    errors = []
    async def collect(e):
        errors.append(str(e))
    nc = await nats.connect(servers=urls, tls=with_ca(), user="limited",
                            password=limited_password, connect_timeout=2,
                            allow_reconnect=False, error_cb=collect)
    sub = await nc.subscribe("allowed.x")
    await nc.publish("allowed.x", b"fine")
    got = (await sub.next_msg(timeout=2)).data.decode()
    await nc.publish("forbidden.x", b"no")
    await nc.flush()
    for _ in range(100):
        if errors:
            break
        await asyncio.sleep(0.02)
    await nc.close()
    return f"ok {got} errors={errors}"

async def main():
    for i, url in enumerate(urls):
        await attempt(f"roundtrip{i}", roundtrip(url))
    await attempt("no_credentials", refused(tls=with_ca()))
    await attempt("wrong_password", refused(tls=with_ca(), user="hem", password="wrong"))
    await attempt("no_ca", refused(tls=ssl.create_default_context(), user="hem",
                                    password=hem_password))
    await attempt("limited", limited())

asyncio.run(main())
"#;

/// Client TLS and users: the right user with the CA talks to every node (the server
/// certificate covers every node's address); no credentials, a wrong password or no CA are
/// refused; permissions hold.
#[test]
fn nats_cluster_tls_and_users() -> Result<()> {
    let limited = NatsUser {
        publish: vec!["allowed.>".into()],
        subscribe: vec!["allowed.>".into()],
        ..NatsUser::new("limited", "limited-secret")
    };
    let cluster = NatsCluster::start(ClusterOptions {
        tls: true,
        auth: Auth::Users(vec![NatsUser::new("hem", "s3cret \"quoted\""), limited]),
        ..ClusterOptions::default()
    })?;
    assert!(cluster.url_list().starts_with("tls://"));
    for path in [
        cluster.ca_file(),
        cluster.client_cert(),
        cluster.client_key(),
    ] {
        let path = path.context("TLS files")?;
        assert!(path.is_file(), "{} is missing", path.display());
    }
    let ca = cluster.ca_file().context("CA")?;
    let out = run_python(
        &cluster,
        "tls-clients",
        TLS_CLIENTS,
        &[
            &cluster.url_list(),
            &ca.to_string_lossy(),
            "s3cret \"quoted\"",
            "limited-secret",
        ],
    )?;
    for i in 0..cluster.len() {
        assert_eq!(field(&out, &format!("roundtrip{i}"))?, "ok hello");
    }
    for refused in ["no_credentials", "wrong_password"] {
        let line = field(&out, refused)?;
        assert!(
            line.starts_with("error") && line.to_lowercase().contains("authorization violation"),
            "{refused}: {line}"
        );
    }
    let line = field(&out, "no_ca")?;
    assert!(
        line.starts_with("error") && line.contains("CERTIFICATE_VERIFY_FAILED"),
        "no_ca: {line}"
    );
    let line = field(&out, "limited")?;
    assert!(
        line.starts_with("ok fine")
            && line
                .to_lowercase()
                .contains(r#"permissions violation for publish to "forbidden.x""#),
        "limited: {line}"
    );
    Ok(())
}

/// With the `.creds` file of `argv[2]` and of `argv[3]`, then without: prints one
/// `name=result` line each. The first user may do everything, the second only `allowed.>`.
const OPERATOR_CLIENTS: &str = r#"
import asyncio, sys, nats

urls, full, limited = sys.argv[1].split(","), sys.argv[2], sys.argv[3]

async def connect(**kw):
    return await nats.connect(servers=urls, connect_timeout=2, allow_reconnect=False,
                              max_reconnect_attempts=0, **kw)

async def attempt(name, coro):
    try:
        print(f"{name}={await coro}")
    except Exception as e:
        print(f"{name}=error {type(e).__name__}: {e!r}")

async def quiet(e):
    pass

async def jetstream():
    nc = await connect(user_credentials=full, error_cb=quiet)
    js = nc.jetstream(timeout=5)
    await js.add_stream(name="HOOKS", subjects=["hooks.>"], num_replicas=3)
    ack = await js.publish("hooks.created", b"hook")
    msg = await js.get_msg("HOOKS", ack.seq)
    await nc.close()
    return f"ok {msg.data.decode()} seq={ack.seq}"

async def limited_user():
    errors = []
    async def collect(e):
        errors.append(str(e))
    nc = await connect(user_credentials=limited, error_cb=collect)
    sub = await nc.subscribe("allowed.x")
    await nc.publish("allowed.x", b"fine")
    got = (await sub.next_msg(timeout=2)).data.decode()
    await nc.publish("forbidden.x", b"no")
    await nc.flush()
    for _ in range(100):
        if errors:
            break
        await asyncio.sleep(0.02)
    await nc.close()
    return f"ok {got} errors={errors}"

async def anonymous():
    nc = await connect(error_cb=quiet)
    await nc.close()
    return "connected"

async def main():
    await attempt("jetstream", jetstream())
    await attempt("limited", limited_user())
    await attempt("anonymous", anonymous())

asyncio.run(main())
"#;

/// Decentralized auth: generated operator, account and user JWTs. A client with its `.creds`
/// file uses JetStream (replicated on every node); its permissions hold; a client without
/// credentials is refused.
#[test]
fn nats_cluster_operator_mode() -> Result<()> {
    let limited = NatsUser {
        publish: vec!["allowed.>".into()],
        subscribe: vec!["allowed.>".into()],
        ..NatsUser::new("limited", "")
    };
    let cluster = NatsCluster::start(ClusterOptions {
        auth: Auth::Operator(vec![NatsUser::new("hem", ""), limited]),
        ..ClusterOptions::default()
    })?;
    let full = cluster.creds_file("hem")?;
    let limited = cluster.creds_file("limited")?;
    assert!(cluster.creds_file("nobody").is_err());
    let out = run_python(
        &cluster,
        "operator-clients",
        OPERATOR_CLIENTS,
        &[
            &cluster.url_list(),
            &full.to_string_lossy(),
            &limited.to_string_lossy(),
        ],
    )?;
    assert_eq!(field(&out, "jetstream")?, "ok hook seq=1");
    let line = field(&out, "limited")?;
    assert!(
        line.starts_with("ok fine")
            && line
                .to_lowercase()
                .contains(r#"permissions violation for publish to "forbidden.x""#),
        "limited: {line}"
    );
    let line = field(&out, "anonymous")?;
    assert!(
        line.starts_with("error") && line.to_lowercase().contains("authorization violation"),
        "anonymous: {line}"
    );
    Ok(())
}

/// `argv[2]` = `write`: creates stream KEPT (file storage, one replica) and stores a message;
/// `read`: prints the stored message.
const SINGLE_NODE: &str = r#"
import asyncio, sys, nats

async def main():
    nc = await nats.connect(servers=[sys.argv[1]], connect_timeout=2, allow_reconnect=False)
    js = nc.jetstream(timeout=5)
    if sys.argv[2] == "write":
        await js.add_stream(name="KEPT", subjects=["kept"])
        await js.publish("kept", b"still here")
    msg = await js.get_msg("KEPT", 1)
    print(f"message={msg.data.decode()}")
    await nc.close()

asyncio.run(main())
"#;

/// One node (no cluster block): a clean stop and a start keep its JetStream store.
#[test]
fn nats_single_node_keeps_its_store_across_a_restart() -> Result<()> {
    let mut cluster = NatsCluster::start(ClusterOptions {
        nodes: 1,
        ..ClusterOptions::default()
    })?;
    let url = cluster.node_url(0)?;
    assert_eq!(cluster.url_list(), url);
    assert!(cluster.node_url(1).is_err());
    let out = run_python(&cluster, "write", SINGLE_NODE, &[&url, "write"])?;
    assert_eq!(field(&out, "message")?, "still here");
    cluster.stop_node(0)?;
    assert!(!cluster.is_running(0));
    assert!(cluster.node_log(0).contains("Server Exiting"));
    cluster.start_node(0)?;
    let out = run_python(&cluster, "read", SINGLE_NODE, &[&url, "read"])?;
    assert_eq!(field(&out, "message")?, "still here");
    Ok(())
}
