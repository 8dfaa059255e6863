//! The endpoint over real TCP: routes, methods, health, and the bounds on what a client sends.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use one_metrics::{Counter, Exposition, Health, MetricsServer, Source};

struct Fake {
    requests: Counter,
    healthy: AtomicBool,
}

impl Source for Fake {
    fn render(&self, out: &mut Exposition) {
        self.requests.inc();
        out.counter(
            "one_test_scrapes_total",
            "Scrapes served.",
            self.requests.get(),
        );
    }

    fn health(&self) -> Health {
        if self.healthy.load(Ordering::SeqCst) {
            Health::Ok("fine".into())
        } else {
            Health::Unavailable("the journal is \"down\"".into())
        }
    }
}

fn start() -> (MetricsServer, Arc<Fake>) {
    let fake = Arc::new(Fake {
        requests: Counter::new(),
        healthy: AtomicBool::new(true),
    });
    let listener = one_metrics::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let server = MetricsServer::start(listener, fake.clone()).unwrap();
    (server, fake)
}

/// One request on a fresh connection; the whole response as text.
fn exchange(server: &MetricsServer, request: &[u8]) -> String {
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn get(server: &MetricsServer, method: &str, path: &str) -> String {
    exchange(
        server,
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

#[test]
fn metrics_health_and_the_other_routes() {
    let (server, fake) = start();
    let r = get(&server, "GET", "/metrics");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(
        r.contains("content-type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{r}"
    );
    assert!(
        r.ends_with("# TYPE one_test_scrapes_total counter\none_test_scrapes_total 1\n"),
        "{r}"
    );

    let r = get(&server, "GET", "/health");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(
        r.ends_with("{\"detail\":\"fine\",\"status\":\"ok\"}\n"),
        "{r}"
    );
    fake.healthy.store(false, Ordering::SeqCst);
    let r = get(&server, "GET", "/health?verbose=1");
    assert!(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{r}");
    assert!(
        r.contains("\"reason\":\"the journal is \\\"down\\\"\""),
        "{r}"
    );

    let r = get(&server, "GET", "/");
    assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{r}");
    for method in ["POST", "PUT", "DELETE", "HEAD"] {
        let r = get(&server, method, "/metrics");
        assert!(
            r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{method}: {r}"
        );
        assert!(r.contains("allow: GET\r\n"), "{r}");
    }
    // Only the one GET /metrics rendered.
    assert_eq!(fake.requests.get(), 1);
    server.stop();
}

#[test]
fn an_oversized_request_head_is_refused_and_the_server_goes_on() {
    let (server, _) = start();
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let r = exchange(&server, huge.as_bytes());
    assert!(r.is_empty() || r.starts_with("HTTP/1.1 431"), "{r}");
    assert!(get(&server, "GET", "/metrics").starts_with("HTTP/1.1 200 OK"));
}

#[test]
fn connections_beyond_the_bound_are_closed_at_once() {
    let (server, _) = start();
    // Idle connections that hold every slot.
    let held: Vec<TcpStream> = (0..16)
        .map(|_| TcpStream::connect(server.local_addr()).unwrap())
        .collect();
    // Each is accepted in turn; the 17th then finds no slot.
    let mut extra = TcpStream::connect(server.local_addr()).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = extra.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut buf = Vec::new();
    let n = extra.read_to_end(&mut buf);
    assert!(buf.is_empty(), "{n:?} {}", String::from_utf8_lossy(&buf));
    drop(held);
    // Slots come back once those connections close.
    wait_until(|| get(&server, "GET", "/metrics").starts_with("HTTP/1.1 200 OK"));
}

/// Bounded wait for slots released by closed connections (their tasks end asynchronously).
fn wait_until(mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the endpoint never served again");
}
