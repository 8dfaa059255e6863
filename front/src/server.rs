//! The HTTP/1.1 listener: `POST /RPC2` with keep-alive, a bounded request body, XML-RPC decoding
//! and encoding. Calls run on the blocking pool because they use SQLite.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use one_proto::xmlrpc::{self, Response as RpcResponse};

use crate::AppState;
use crate::{api, call};

/// The path of the XML-RPC endpoint.
pub const RPC_PATH: &str = "/RPC2";
/// Largest request body accepted; templates are small, so this only stops abuse.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Connections served at the same time; further clients wait in the accept queue.
pub const MAX_CONNECTIONS: usize = 512;
/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take to send its request body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Serves `listener` until `shutdown` completes, then lets open connections finish their
/// current request.
pub async fn serve(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(5);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
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
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                    conn.as_mut().graceful_shutdown();
                    conn.as_mut().await
                }
            };
            if let Err(e) = result {
                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
            }
        });
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    let _ = stop_tx.send(true);
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
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
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != RPC_PATH {
        return Ok(reply(StatusCode::NOT_FOUND, "XML-RPC is served at /RPC2\n"));
    }
    if req.method() != Method::POST {
        let mut r = reply(StatusCode::METHOD_NOT_ALLOWED, "XML-RPC needs POST\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return Ok(r);
    }
    let collected = tokio::time::timeout(
        BODY_READ_TIMEOUT,
        Limited::new(req.into_body(), MAX_BODY_BYTES).collect(),
    )
    .await;
    let body = match collected {
        Err(_) => {
            tracing::warn!(
                timeout_s = BODY_READ_TIMEOUT.as_secs(),
                "request body too slow"
            );
            return Ok(reply(
                StatusCode::REQUEST_TIMEOUT,
                "request body too slow\n",
            ));
        }
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                tracing::warn!(limit = MAX_BODY_BYTES, "request body too large");
                return Ok(reply(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body too large\n",
                ));
            }
            tracing::debug!(error = %e, "cannot read request body");
            return Ok(reply(StatusCode::BAD_REQUEST, "cannot read request body\n"));
        }
    };
    let call = match xmlrpc::parse_call(&body) {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(error = %e, "malformed XML-RPC request");
            return Ok(xml_reply(xmlrpc::format_fault(
                call::FAULT_PARSE,
                &format!("Invalid XML-RPC call: {e}"),
            )));
        }
    };
    let method = call.method.clone();
    let outcome = tokio::task::spawn_blocking(move || api::handle(&state, call)).await;
    let text = match outcome {
        Ok(RpcResponse::Value(v)) => xmlrpc::format_response(&v),
        Ok(RpcResponse::Fault { code, message }) => xmlrpc::format_fault(code, &message),
        Err(e) => {
            tracing::error!(method = %method, error = %e, "call handler failed");
            xmlrpc::format_fault(call::FAULT_INTERNAL, "Internal error")
        }
    };
    Ok(xml_reply(text))
}
