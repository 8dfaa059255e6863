//! The HTTP/1.1 listener: `POST /RPC2` with keep-alive, a bounded request body, XML-RPC decoding
//! and encoding. Calls run where [`crate::api::handle`] puts them: on the database's writer
//! thread, or on the blocking pool for read-only calls.
//!
//! Connections are capped and timed by [`crate::connections`]: the accept loop never waits for
//! an idle or slow client, it closes the one that waited longest instead.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONNECTION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio::task::JoinSet;

use one_proto::xmlrpc::{self, Response as RpcResponse};

use crate::AppState;
use crate::config::ServerLimits;
use crate::connections::{Connections, Limits, Phase, Slot, Tracked};
use crate::{api, call, fd_limit};

/// The path of the XML-RPC endpoint.
pub const RPC_PATH: &str = "/RPC2";
/// Largest request body accepted; templates are small, so this only stops abuse.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Binds the XML-RPC listener with the configured backlog (`MAX_CONN_BACKLOG`).
pub fn listen(addr: SocketAddr, backlog: u32) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Serves `listener` until `shutdown` completes, then lets open connections finish their
/// current request.
pub async fn serve(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let limits = state.config.server;
    let descriptors = fd_limit::raise_to_hard_limit();
    let cap = fd_limit::fit_cap(limits.max_conn, descriptors);
    if cap < limits.max_conn {
        tracing::warn!(
            max_conn = limits.max_conn,
            nofile = descriptors.unwrap_or_default(),
            cap,
            "MAX_CONN exceeds the file descriptor limit: fewer connections are kept open"
        );
    }
    let connections = Connections::new(cap);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(5);
    'accept: loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(s) => {
                backoff = Duration::from_millis(5);
                s
            }
            Err(e) => {
                // Typically EMFILE: wait a little instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        // Only when every connection is running a call does a new one wait, and then the
        // backlog holds the clients behind it.
        while !connections.make_room() {
            tokio::select! {
                _ = &mut shutdown => break 'accept,
                _ = connections.wait_for_room() => {}
            }
        }
        let _ = stream.set_nodelay(true);
        let registered = connections.register();
        let state = state.clone();
        let stop = stop_rx.clone();
        tasks.spawn(async move {
            let slot = registered.slot().clone();
            serve_connection(state, stream, peer, slot, limits, stop).await;
            drop(registered);
        });
        // Reap finished connection tasks so the set does not grow.
        while tasks.try_join_next().is_some() {}
    }
    let _ = stop_tx.send(true);
    drop(listener);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Serves one connection until it ends, its phase outlasts its timeout, it is shed, or the
/// server stops (then after its current request).
async fn serve_connection(
    state: Arc<AppState>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    slot: Arc<Slot>,
    limits: ServerLimits,
    mut stop: watch::Receiver<bool>,
) {
    let timeouts = Limits {
        keepalive_timeout: limits.keepalive_timeout,
        request_timeout: limits.timeout,
    };
    let per_connection = limits.keepalive_max_conn;
    let service_slot = slot.clone();
    let service = hyper::service::service_fn(move |req| {
        handle(
            state.clone(),
            service_slot.clone(),
            per_connection,
            peer.ip(),
            req,
        )
    });
    // hyper's header timeout also runs while a connection waits between requests; the
    // connection's own deadlines below tell the two apart.
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(Tracked::new(stream, slot.clone())), service);
    tokio::pin!(conn);
    let shed = slot.shed();
    tokio::pin!(shed);
    let stopping = async {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::pin!(stopping);
    let mut stopped = false;
    let mut timer: Pin<Box<tokio::time::Sleep>> =
        Box::pin(tokio::time::sleep(Duration::from_secs(3600)));
    let mut armed = None;
    // Polled as one future so that the deadline is read again after every step of the
    // connection (a call ending makes it idle) without a wake-up of its own.
    let ended = std::future::poll_fn(|cx| {
        if !stopped && stopping.as_mut().poll(cx).is_ready() {
            stopped = true;
            conn.as_mut().graceful_shutdown();
        }
        if let Poll::Ready(result) = conn.as_mut().poll(cx) {
            return Poll::Ready(result.map_err(|e| e.to_string()));
        }
        if shed.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err("shed to make room for a new connection".into()));
        }
        let deadline = slot.deadline(&timeouts);
        if deadline != armed {
            armed = deadline;
            if let Some(at) = deadline {
                timer.as_mut().reset(at.into());
            }
        }
        if armed.is_some() && timer.as_mut().poll(cx).is_ready() {
            let why = match slot.phase() {
                Phase::Request => "request not received in time (TIMEOUT)",
                _ => "idle for longer than KEEPALIVE_TIMEOUT",
            };
            return Poll::Ready(Err(why.into()));
        }
        Poll::Pending
    })
    .await;
    if let Err(why) = ended {
        tracing::debug!(peer = %peer, reason = %why, "connection closed");
    }
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

fn xml_reply(body: String) -> Response<Full<Bytes>> {
    let mut r = reply(StatusCode::OK, body);
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    r
}

async fn handle(
    state: Arc<AppState>,
    slot: Arc<Slot>,
    per_connection: Option<u32>,
    peer: IpAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = respond(state, &slot, peer, req).await;
    // Whatever the answer, the connection now waits for its next request.
    let calls = slot.end_request();
    if per_connection.is_some_and(|max| calls >= max) {
        // KEEPALIVE_MAX_CONN: hyper closes the connection after this response.
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}

async fn respond(
    state: Arc<AppState>,
    slot: &Slot,
    peer: IpAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    if req.uri().path() != RPC_PATH {
        return reply(StatusCode::NOT_FOUND, "XML-RPC is served at /RPC2\n");
    }
    if req.method() != Method::POST {
        let mut r = reply(StatusCode::METHOD_NOT_ALLOWED, "XML-RPC needs POST\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    // A body that comes too slowly is cut by the connection's TIMEOUT deadline.
    let collected = Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await;
    let body = match collected {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                tracing::warn!(limit = MAX_BODY_BYTES, "request body too large");
                return reply(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
            }
            tracing::debug!(error = %e, "cannot read request body");
            return reply(StatusCode::BAD_REQUEST, "cannot read request body\n");
        }
    };
    let call = match xmlrpc::parse_call(&body) {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(error = %e, "malformed XML-RPC request");
            return xml_reply(xmlrpc::format_fault(
                call::FAULT_PARSE,
                &format!("Invalid XML-RPC call: {e}"),
            ));
        }
    };
    if !slot.begin_call() {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "connection closed to make room\n",
        );
    }
    let text = match api::handle(state, call, peer).await {
        RpcResponse::Value(v) => xmlrpc::format_response(&v),
        RpcResponse::Fault { code, message } => xmlrpc::format_fault(code, &message),
    };
    xml_reply(text)
}
