//! The metrics endpoint: plain HTTP/1.1 on its own listener, `GET /metrics`
//! answers the OpenMetrics text; every other path or method gets 404.
//!
//! It carries no secrets (names of hosts and RPCs, counts), but it has no
//! authentication and no TLS: keep `metrics_listen` on loopback or behind
//! the network's own controls.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{body::Incoming, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::Semaphore, task::JoinSet};

use super::Metrics;

/// Scrape connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 16;
/// How long a connection may take to send its request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The content type of the answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The metrics address could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for metrics on {addr}")]
pub struct BindError {
    /// The address.
    pub addr: SocketAddr,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Binds the metrics listener; the error names the address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

/// Serves `metrics` on `listener` until the returned guard is dropped
/// (which also closes every scrape connection still open).
pub fn spawn(listener: TcpListener, metrics: Arc<Metrics>) -> Serving {
    match listener.local_addr() {
        Ok(addr) => {
            tracing::info!(%addr, "metrics on http://{addr}/metrics");
            if !addr.ip().is_loopback() {
                tracing::warn!(
                    %addr,
                    "the metrics endpoint is served beyond loopback, without TLS or authentication: restrict who can reach it"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics endpoint (address unknown)"),
    }
    Serving(tokio::spawn(accept_loop(listener, metrics)))
}

/// The endpoint's task; dropping it stops the endpoint.
#[derive(Debug)]
pub struct Serving(tokio::task::JoinHandle<()>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn accept_loop(listener: TcpListener, metrics: Arc<Metrics>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // Owned here: when this task is aborted, every connection task is too.
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: do not spin.
                tracing::warn!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!(%peer, "metrics endpoint: too many connections, closing one");
            continue;
        };
        let metrics = Arc::clone(&metrics);
        conns.spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| {
                let answer = answer(&req, &metrics);
                async move { Ok::<_, std::convert::Infallible>(answer) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "metrics connection ended");
            }
        });
    }
}

/// The answer to one request.
fn answer(req: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    if req.method() != Method::GET || req.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: the metrics are at GET /metrics\n",
        );
    }
    match metrics.encode() {
        Ok(text) => {
            let mut resp = Response::new(Full::new(Bytes::from(text)));
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(CONTENT_TYPE),
            );
            resp
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode the metrics");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the metrics\n",
            )
        }
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
