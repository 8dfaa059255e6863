//! The HTTP endpoint: `GET /metrics` (the text exposition) and `GET /health` (200 or 503 with
//! a short JSON body), 404 for other paths, 405 for other methods. It runs on a thread of its
//! own with a single-threaded runtime, so a slow scraper never takes time from the daemon's
//! threads; connections, request heads and connection lifetimes are bounded.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;

use crate::exposition::{CONTENT_TYPE as EXPOSITION_TYPE, Exposition};

/// Connections served at once; one more is closed at accept.
const MAX_CONNECTIONS: usize = 16;
/// Largest request head (hyper's smallest allowed read buffer).
const MAX_HEAD_BYTES: usize = 8192;
/// Time for a request head to arrive.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a connection lives, however busy.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// What the endpoint shows: the daemon's metrics and its health.
pub trait Source: Send + Sync + 'static {
    /// Writes every family of the scrape.
    fn render(&self, out: &mut Exposition);
    /// Whether the daemon can do its work now.
    fn health(&self) -> Health;
}

/// A daemon's health.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Working; a short note (what it is connected to).
    Ok(String),
    /// Not working, and why.
    Unavailable(String),
}

/// The running endpoint; dropping it (or [`MetricsServer::stop`]) closes the listener and
/// every connection, and joins its thread.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Serves `source` on `listener` (already bound, so that a bad address fails the daemon's
    /// start and a test can pass port 0).
    pub fn start(
        listener: std::net::TcpListener,
        source: Arc<dyn Source>,
    ) -> std::io::Result<MetricsServer> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("metrics-http".into())
            .spawn(move || runtime.block_on(serve(listener, source, stopped)))?;
        tracing::info!(addr = %addr, "metrics endpoint listening (GET /metrics, GET /health)");
        Ok(MetricsServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stop(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the metrics endpoint's thread panicked");
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shut();
    }
}

async fn serve(
    listener: std::net::TcpListener,
    source: Arc<dyn Source>,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "metrics endpoint cannot use its listener");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // Dropped at the end, which aborts the connections still open.
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => break,
            a = listener.accept() => a,
        };
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors, typically: back off instead of spinning.
                tracing::warn!(error = %e, "metrics endpoint cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(peer = %peer, "metrics endpoint busy; connection closed");
            continue;
        };
        let source = source.clone();
        connections.spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req| {
                let source = source.clone();
                async move { Ok::<_, Infallible>(respond(&req, source.as_ref())) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_LIFETIME, conn).await {
                Ok(Err(e)) => tracing::debug!(peer = %peer, error = %e, "metrics connection"),
                Err(_) => {
                    tracing::debug!(peer = %peer, "metrics connection closed at its lifetime")
                }
                Ok(Ok(())) => {}
            }
        });
    }
}

fn respond(req: &Request<Incoming>, source: &dyn Source) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path != "/metrics" && path != "/health" {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics or /health\n".into(),
        );
    }
    if req.method() != Method::GET {
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET is allowed\n".into(),
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return r;
    }
    if path == "/metrics" {
        let mut out = Exposition::new();
        source.render(&mut out);
        return reply(StatusCode::OK, EXPOSITION_TYPE, out.finish());
    }
    let (status, body) = match source.health() {
        Health::Ok(detail) => (
            StatusCode::OK,
            serde_json::json!({"status": "ok", "detail": detail}),
        ),
        Health::Unavailable(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "unavailable", "reason": reason}),
        ),
    };
    reply(status, "application/json", format!("{body}\n"))
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}
