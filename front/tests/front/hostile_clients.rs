//! The real oned-lite against hostile clients: a thousand idle connections, a thousand that
//! send their headers byte by byte, and floods of wrong passwords. A well-behaved client must
//! still be answered within a second, and other users keep logging in.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use one_client::{Client, ClientError};
use one_e2e::stack::{Stack, StackOptions, XMLRPC_PORT};
use one_proto::xmlrpc::Value;

/// Connections each attack holds open.
const HOSTILE: usize = 1000;
/// The functional bound: a new call is answered within this, whatever the attack. Before the
/// cap shed idle and slow connections, such a call waited 30 s or more, or was never answered.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);
/// One call in this many may miss [`ANSWER_WITHIN`]. The attackers reconnect as fast as they
/// are shed, so the listen queue is sometimes full when a fresh client's SYN arrives; the kernel
/// drops it and the client's retries come 1, 3 and 7 s later. On a loaded machine one such call
/// in eight does happen; it must still be answered (within [`CALL_TIMEOUT`]).
const ONE_SLOW_CALL_IN: usize = 8;
/// How long a test's own calls may take before they count as failed (a hung call).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

fn stack(oned_extra: &str) -> Stack {
    // Each attack holds a thousand sockets: more than a default soft limit of 1,024.
    oned_lite::fd_limit::raise_to_hard_limit();
    Stack::start_with(StackOptions {
        hem: false,
        oned_extra: oned_extra.to_string(),
        ..StackOptions::default()
    })
    .expect("stack")
}

fn server(stack: &Stack) -> SocketAddr {
    SocketAddr::from((stack.ip, XMLRPC_PORT))
}

/// One call from a fresh client (new connection); how long it took.
fn fresh_call(stack: &Stack) -> Duration {
    let started = Instant::now();
    let client = Client::with_timeout(&stack.endpoint, &stack.session, CALL_TIMEOUT);
    let version = client.call("one.system.version", vec![]);
    assert!(
        matches!(version, Ok(Value::String(_))),
        "one.system.version from a fresh client: {version:?}"
    );
    started.elapsed()
}

/// Opens `n` connections to `addr` (each within 2 s); how many opened.
fn open_many(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok())
        .collect()
}

/// Whether the server has closed `s` (EOF or reset); `s` must be non-blocking.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// Eight fresh calls made while `hold` keeps its attack going; how long each took, sorted.
fn calls_during_attack(stack: &Stack, hold: impl FnOnce(&AtomicBool) + Send) -> Vec<Duration> {
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let attacker = scope.spawn(|| hold(&done));
        // Let the attack reach the cap before measuring.
        std::thread::sleep(Duration::from_millis(500));
        let mut took: Vec<Duration> = (0..8)
            .map(|_| {
                let t = fresh_call(stack);
                std::thread::sleep(Duration::from_millis(250));
                t
            })
            .collect();
        done.store(true, Ordering::Relaxed);
        attacker.join().expect("attacker thread");
        took.sort();
        took
    })
}

/// Every call answered, all but one in [`ONE_SLOW_CALL_IN`] within [`ANSWER_WITHIN`].
fn assert_answered_promptly(took: &[Duration], attack: &str) {
    let median = took[took.len() / 2];
    let slow = took.iter().filter(|t| **t >= ANSWER_WITHIN).count();
    let allowed = took.len().div_ceil(ONE_SLOW_CALL_IN);
    eprintln!(
        "{} calls during {attack}: median {median:?}, {slow} of them slower than {ANSWER_WITHIN:?}",
        took.len()
    );
    assert!(
        slow <= allowed,
        "{slow} calls slower than {ANSWER_WITHIN:?} during {attack}: {took:?}"
    );
}

/// A thousand connections that connect and send nothing, reconnected as the server closes
/// them: new clients are answered within a second (the cap sheds the idle ones).
#[test]
fn idle_connections_do_not_lock_out_new_clients() {
    let stack = stack("");
    let addr = server(&stack);
    let reconnected = AtomicUsize::new(0);
    let took = calls_during_attack(&stack, |done| {
        let mut held = open_many(addr, HOSTILE);
        eprintln!("holding {} idle connections", held.len());
        assert!(held.len() >= HOSTILE * 9 / 10, "connects were refused");
        for s in &held {
            s.set_nonblocking(true).expect("nonblocking");
        }
        let until = Instant::now() + Duration::from_secs(30);
        while !done.load(Ordering::Relaxed) && Instant::now() < until {
            for s in held.iter_mut() {
                if closed_by_server(s)
                    && let Ok(fresh) = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                {
                    let _ = fresh.set_nonblocking(true);
                    *s = fresh;
                    reconnected.fetch_add(1, Ordering::Relaxed);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    eprintln!(
        "idle connections reconnected {}",
        reconnected.load(Ordering::Relaxed)
    );
    assert_answered_promptly(&took, "1,000 idle connections");
    assert!(
        reconnected.load(Ordering::Relaxed) > 0,
        "the server closed none of the idle connections beyond its cap"
    );
}

/// A thousand connections that send a request's headers a byte at a time (slowloris), and
/// start again when closed: new clients are answered within a second.
#[test]
fn slow_connections_do_not_lock_out_new_clients() {
    let stack = stack("");
    let addr = server(&stack);
    const HEAD: &[u8] = b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nX-Slow: ";
    let restarted = AtomicUsize::new(0);
    let took = calls_during_attack(&stack, |done| {
        let mut held: Vec<(TcpStream, usize)> = open_many(addr, HOSTILE)
            .into_iter()
            .map(|s| (s, 0))
            .collect();
        eprintln!("holding {} slow connections", held.len());
        assert!(held.len() >= HOSTILE * 9 / 10, "connects were refused");
        for (s, _) in &held {
            s.set_nonblocking(true).expect("nonblocking");
        }
        let until = Instant::now() + Duration::from_secs(30);
        // One byte per connection per round; the header never ends (bounded by `until`).
        while !done.load(Ordering::Relaxed) && Instant::now() < until {
            for (s, sent) in held.iter_mut() {
                let byte = [HEAD.get(*sent).copied().unwrap_or(b'a')];
                let ok = !closed_by_server(s) && s.write(&byte).is_ok_and(|n| n == 1);
                if ok {
                    *sent += 1;
                } else if let Ok(fresh) = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                {
                    let _ = fresh.set_nonblocking(true);
                    *s = fresh;
                    *sent = 0;
                    restarted.fetch_add(1, Ordering::Relaxed);
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    });
    eprintln!(
        "slow connections restarted {}",
        restarted.load(Ordering::Relaxed)
    );
    assert_answered_promptly(&took, "1,000 slow connections");
}

/// Below the cap, an idle connection is closed after KEEPALIVE_TIMEOUT and a request still
/// arriving after TIMEOUT; a connection between calls is kept until KEEPALIVE_TIMEOUT.
#[test]
fn idle_and_slow_connections_are_closed_after_their_timeouts() {
    let stack = stack("KEEPALIVE_TIMEOUT = 2\nTIMEOUT = 1\n");
    let addr = server(&stack);
    let mut idle = TcpStream::connect(addr).expect("connect");
    let mut slow = TcpStream::connect(addr).expect("connect");
    let started = Instant::now();
    slow.write_all(b"POST /RPC2 HTTP/1.1\r\n").expect("write");
    let closed_after = move |s: &mut TcpStream| -> Duration {
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf);
        assert!(
            matches!(n, Ok(0)) || n.is_err(),
            "expected the server to close the connection, read {n:?}"
        );
        started.elapsed()
    };
    // The slow one keeps sending, a byte every 200 ms, and is still cut at TIMEOUT.
    let dribble = std::thread::spawn(move || {
        let mut sent = 0;
        while sent < 50 && slow.write_all(b"X").is_ok() {
            sent += 1;
            std::thread::sleep(Duration::from_millis(200));
        }
        slow.set_nonblocking(false).expect("blocking");
        (closed_after(&mut slow), sent)
    });
    let idle_closed = closed_after(&mut idle);
    let (slow_closed, bytes) = dribble.join().expect("dribble thread");
    eprintln!(
        "idle closed after {idle_closed:?}; slow closed after {slow_closed:?} and {bytes} bytes"
    );
    assert!(
        idle_closed >= Duration::from_millis(1900),
        "{idle_closed:?}"
    );
    assert!(idle_closed < Duration::from_secs(8), "{idle_closed:?}");
    assert!(slow_closed >= Duration::from_millis(900), "{slow_closed:?}");
    assert!(
        bytes < 40,
        "the slow request was not cut: {bytes} bytes over {slow_closed:?}"
    );
}

/// KEEPALIVE_MAX_CONN: after that many calls the server answers with `Connection: close`
/// and closes the connection.
#[test]
fn a_connection_closes_after_keepalive_max_conn_calls() {
    let stack = stack("KEEPALIVE_MAX_CONN = 2\n");
    let body = one_proto::xmlrpc::format_call(&one_proto::xmlrpc::MethodCall {
        method: "one.system.version".to_string(),
        params: vec![Value::String(stack.session.clone())],
    });
    let request = format!(
        "POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut s = TcpStream::connect(server(&stack)).expect("connect");
    s.set_read_timeout(Some(CALL_TIMEOUT)).expect("timeout");
    // Three requests at once: two are answered, then the connection closes.
    s.write_all(request.repeat(3).as_bytes()).expect("send");
    let mut answer = String::new();
    let read = s.read_to_string(&mut answer);
    assert!(read.is_ok(), "the connection was not closed: {read:?}");
    assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 2, "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
}

/// A raw call from source address `from` (a loopback address of the test's choosing): the
/// response body.
fn call_from(from: Ipv4Addr, to: SocketAddr, session: &str, method: &str) -> String {
    let body = one_proto::xmlrpc::format_call(&one_proto::xmlrpc::MethodCall {
        method: method.to_string(),
        params: vec![Value::String(session.to_string())],
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let stream = runtime
        .block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::from((from, 0)))?;
            socket.connect(to).await
        })
        .expect("connect from a chosen address");
    let mut stream = stream.into_std().expect("std stream");
    stream.set_nonblocking(false).expect("blocking");
    stream
        .set_read_timeout(Some(CALL_TIMEOUT))
        .expect("timeout");
    let request = format!(
        "POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    response
}

const AUTH_FAILURE: &str = "User couldn't be authenticated, aborting call.";

fn is_auth_failure(r: &Result<Value, ClientError>) -> bool {
    matches!(r, Err(ClientError::Api { code: 256, message }) if message.ends_with(AUTH_FAILURE))
}

fn add_user(stack: &Stack, name: &str, password: &str) {
    stack
        .client()
        .call(
            "one.user.allocate",
            vec![
                Value::String(name.into()),
                Value::String(password.into()),
                Value::String(String::new()),
            ],
        )
        .expect("one.user.allocate");
}

fn checked_failures(stack: &Stack) -> usize {
    std::fs::read_to_string(stack.log_path("oned"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("authentication failed"))
        .count()
}

/// 300 wrong passwords for one user: after FAILURES of them its logins from that address are
/// refused unchecked, even with the right password and with the reference's failure text, but
/// not from another address; another user's calls keep answering; after the refusal the right
/// password works again.
#[test]
fn wrong_passwords_throttle_their_user_only() {
    const DELAY_S: u64 = 3;
    let stack = stack(&format!(
        "LOGIN_THROTTLE = [ FAILURES = 5, DELAY = {DELAY_S}, MAX_DELAY = {DELAY_S}, ADDRESS_USERS = 10 ]\n"
    ));
    add_user(&stack, "alice", "right");
    add_user(&stack, "bob", "bobs");
    let alice = |password: &str| {
        Client::with_timeout(&stack.endpoint, &format!("alice:{password}"), CALL_TIMEOUT)
            .call("one.user.info", vec![Value::Int(-1)])
    };
    let before = checked_failures(&stack);
    for i in 0..5 {
        assert!(is_auth_failure(&alice(&format!("wrong{i}"))));
    }
    let fifth = Instant::now();
    let right = alice("right");
    assert!(
        is_auth_failure(&right),
        "the right password {:?} after the fifth failure must be refused like a wrong one: {right:?}",
        fifth.elapsed()
    );

    // Refused where the failures came from only: from another address alice logs in.
    let elsewhere = call_from(
        Ipv4Addr::new(127, 0, 0, 79),
        server(&stack),
        "alice:right",
        "one.user.info",
    );
    assert!(
        elsewhere.contains("&lt;USER&gt;") || elsewhere.contains("<USER>"),
        "alice from another address: {elsewhere}"
    );

    // The rest of the 300 from four clients at once, while bob keeps calling.
    let attempts = AtomicUsize::new(5);
    let stop = AtomicBool::new(false);
    let flood_started = Instant::now();
    let mut bob = std::thread::scope(|scope| {
        let bob = scope.spawn(|| {
            let client = Client::with_timeout(&stack.endpoint, "bob:bobs", CALL_TIMEOUT);
            let mut took = Vec::new();
            while !stop.load(Ordering::Relaxed) && took.len() < 10_000 {
                let t = Instant::now();
                let r = client.call("one.user.info", vec![Value::Int(-1)]);
                assert!(r.is_ok(), "bob's call during the flood: {r:?}");
                took.push(t.elapsed());
            }
            took
        });
        let flooders: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let client = Client::with_timeout(&stack.endpoint, "alice:guess", CALL_TIMEOUT);
                    while attempts.fetch_add(1, Ordering::Relaxed) < 300 {
                        let r = client.call("one.user.info", vec![Value::Int(-1)]);
                        assert!(is_auth_failure(&r), "{r:?}");
                    }
                })
            })
            .collect();
        for f in flooders {
            f.join().expect("flooder");
        }
        stop.store(true, Ordering::Relaxed);
        bob.join().expect("bob")
    });
    let flood = flood_started.elapsed();
    let checked = checked_failures(&stack) - before;
    eprintln!(
        "300 wrong passwords in {:?}: {checked} checked; bob answered {} calls",
        fifth.elapsed(),
        bob.len()
    );
    // Five free failures, then one checked failure per refusal that ran out during the flood
    // (at most one per DELAY), plus one in flight per client when a refusal began.
    let bound = 5 + (flood.as_secs() / DELAY_S) as usize + 1 + 4;
    assert!(
        (5..=bound).contains(&checked),
        "{checked} of 300 wrong passwords were checked in {flood:?} (bound {bound})"
    );
    assert!(!bob.is_empty(), "bob made no call during the flood");
    bob.sort();
    assert_answered_promptly(&bob, "300 wrong passwords for another user");

    // After the refusal, the right password works again (polled: a refused attempt is not a
    // failure, so polling does not extend it).
    let deadline = Instant::now() + Duration::from_secs(DELAY_S + 10);
    let back = loop {
        if alice("right").is_ok() {
            break Some(Instant::now());
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(back.is_some(), "alice never logged in again");
    assert!(alice("right").is_ok());
}

/// Wrong passwords for many user names from one address refuse that address, and only it.
#[test]
fn spraying_many_users_throttles_the_address() {
    let stack = stack(
        "LOGIN_THROTTLE = [ FAILURES = 5, DELAY = 30, MAX_DELAY = 30, ADDRESS_USERS = 10 ]\n",
    );
    add_user(&stack, "bob", "bobs");
    let to = server(&stack);
    let sprayer = Ipv4Addr::new(127, 0, 0, 77);
    let neighbour = Ipv4Addr::new(127, 0, 0, 78);
    for i in 0..10 {
        let r = call_from(sprayer, to, &format!("user{i}:guess"), "one.user.info");
        assert!(r.contains(AUTH_FAILURE), "{r}");
    }
    let from_sprayer = call_from(sprayer, to, "bob:bobs", "one.user.info");
    assert!(
        from_sprayer.contains(AUTH_FAILURE),
        "the refused address with a right password: {from_sprayer}"
    );
    let from_neighbour = call_from(neighbour, to, "bob:bobs", "one.user.info");
    assert!(
        from_neighbour.contains("<USER>") || from_neighbour.contains("&lt;USER&gt;"),
        "another address: {from_neighbour}"
    );
}
