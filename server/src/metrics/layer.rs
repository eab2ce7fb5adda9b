//! The tower layer that counts, times and tracks every gRPC call.
//!
//! A call starts when the layer is called with its request headers
//! (`libvirt_grpc_requests_in_flight` goes up) and ends when its status is
//! known; then it is counted by method and code and its duration observed:
//!
//! - a trailers-only answer (every error a handler returns before any
//!   message, and tonic's own errors): the status is in the response
//!   headers, and the call ends there;
//! - any other answer (unary or streaming): the status is in the trailers
//!   at the end of the body, and the call ends when they pass; a unary
//!   call is thus timed until its response has been sent, a stream until
//!   it ends;
//! - a body that fails: the status the body fails with (tonic's body
//!   errors are statuses);
//! - a body that ends without trailers, or a service error before any
//!   response: `UNKNOWN`;
//! - a call dropped before its status (the client cancelled, or the
//!   connection went away): `CANCELLED`, timed until the drop.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Instant,
};

use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::{body::Body, Code};

use super::{CallLabels, MethodLabels, Metrics};

pub use crate::transport::status_codes::code_name;

/// The status code in `headers` (response headers of a trailers-only
/// answer, or trailers), if they carry one. A value that is no code reads
/// as `UNKNOWN`, as a client reads it.
pub fn status_code(headers: &HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .map(|v| Code::from_bytes(v.as_bytes()))
}

/// The layer; with no [`Metrics`] it only passes calls through.
#[derive(Debug, Clone, Default)]
pub struct MetricsLayer {
    metrics: Option<Arc<Metrics>>,
}

impl MetricsLayer {
    /// Records into `metrics`, or nothing when `None`.
    pub fn new(metrics: Option<Arc<Metrics>>) -> Self {
        MetricsLayer { metrics }
    }
}

impl<S> tower_layer::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// See [`MetricsLayer`].
#[derive(Debug, Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Option<Arc<Metrics>>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, ReqBody> tower_service::Service<http::Request<ReqBody>> for MetricsService<S>
where
    S: tower_service::Service<http::Request<ReqBody>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let call = self
            .metrics
            .as_ref()
            .map(|m| Call::start(Arc::clone(m), req.uri().path()));
        let fut = self.inner.call(req);
        Box::pin(async move {
            // Dropping this future before it answers drops `call`, which
            // counts the call as CANCELLED.
            let result = fut.await;
            let Some(call) = call else {
                return result;
            };
            match result {
                Ok(resp) => Ok(call.respond(resp)),
                Err(e) => {
                    call.finish(Code::Unknown);
                    Err(e)
                }
            }
        })
    }
}

/// One call being tracked; counted exactly once, at the latest when
/// dropped.
struct Call {
    metrics: Arc<Metrics>,
    method: &'static str,
    start: Instant,
    done: AtomicBool,
}

impl Call {
    fn start(metrics: Arc<Metrics>, path: &str) -> Self {
        let method = metrics.method_label(path);
        metrics
            .in_flight
            .get_or_create(&MethodLabels { method })
            .inc();
        Call {
            metrics,
            method,
            start: Instant::now(),
            done: AtomicBool::new(false),
        }
    }

    /// Counts the call with `code`; only the first finish counts.
    fn finish(&self, code: Code) {
        if self.done.swap(true, Ordering::Relaxed) {
            return;
        }
        let method = self.method;
        let m = &self.metrics;
        m.requests
            .get_or_create(&CallLabels {
                method,
                code: code_name(code),
            })
            .inc();
        m.duration
            .get_or_create(&MethodLabels { method })
            .observe(self.start.elapsed().as_secs_f64());
        m.in_flight.get_or_create(&MethodLabels { method }).dec();
    }

    /// Ends the call now if the headers carry its status, else hands it to
    /// the body, which ends it at the trailers.
    fn respond(self, resp: http::Response<Body>) -> http::Response<Body> {
        if let Some(code) = status_code(resp.headers()) {
            self.finish(code);
            return resp;
        }
        let (parts, body) = resp.into_parts();
        http::Response::from_parts(
            parts,
            Body::new(TrackedBody {
                inner: body,
                call: self,
            }),
        )
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.finish(Code::Cancelled);
    }
}

/// A response body that ends its call at the trailers (or at its end).
struct TrackedBody {
    inner: Body,
    call: Call,
}

impl HttpBody for TrackedBody {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = status_code(trailers).unwrap_or(Code::Unknown);
                    self.call.finish(code);
                }
            }
            Poll::Ready(Some(Err(status))) => self.call.finish(status.code()),
            Poll::Ready(None) => self.call.finish(Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let end = self.inner.is_end_stream();
        if end {
            // The transport will not poll a body that says it has ended:
            // it ended without trailers, hence without a status.
            self.call.finish(Code::Unknown);
        }
        end
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use http_body_util::BodyExt;
    use tonic::Status;
    use tower_layer::Layer;
    use tower_service::Service;

    const METHOD: &str = "/libvirt_grpc.v1.DomainService/GetDomain";
    const LABEL: &str = "libvirt_grpc.v1.DomainService/GetDomain";

    fn count(m: &Metrics, method: &'static str, code: &'static str) -> u64 {
        m.requests
            .get(&CallLabels { method, code })
            .map(|c| c.get())
            .unwrap_or(0)
    }

    fn in_flight(m: &Metrics, method: &'static str) -> i64 {
        m.in_flight
            .get(&MethodLabels { method })
            .map(|g| g.get())
            .unwrap_or(0)
    }

    /// Observations of `method`'s latency histogram, from the exposition.
    fn observed(m: &Metrics, method: &'static str) -> u64 {
        let prefix = format!("libvirt_grpc_request_duration_seconds_count{{method=\"{method}\"}} ");
        m.encode()
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).map(|n| n.parse().unwrap()))
            .unwrap_or(0)
    }

    fn request(path: &str) -> http::Request<()> {
        http::Request::builder().uri(path).body(()).unwrap()
    }

    fn trailers_of(status: &Status) -> HeaderMap {
        let mut h = HeaderMap::new();
        status.add_header(&mut h).unwrap();
        h
    }

    /// A service answering with a data frame and then `trailers`.
    fn streamed(
        trailers: Option<HeaderMap>,
    ) -> impl tower_service::Service<
        http::Request<()>,
        Response = http::Response<Body>,
        Error = std::convert::Infallible,
        Future = impl Future<Output = Result<http::Response<Body>, std::convert::Infallible>>
                     + Send
                     + 'static,
    > + Clone {
        tower::service_fn(move |_req: http::Request<()>| {
            let t = trailers.clone();
            async move {
                let mut frames = vec![Ok::<_, Status>(Frame::data(bytes::Bytes::from_static(
                    b"x",
                )))];
                if let Some(t) = t {
                    frames.push(Ok(Frame::trailers(t)));
                }
                let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
                Ok::<_, std::convert::Infallible>(http::Response::new(Body::new(body)))
            }
        })
    }

    #[test]
    fn code_from_headers() {
        assert_eq!(status_code(&HeaderMap::new()), None);
        let h = trailers_of(&Status::not_found("x"));
        assert_eq!(status_code(&h), Some(Code::NotFound));
        let mut h = HeaderMap::new();
        h.insert("grpc-status", http::HeaderValue::from_static("0"));
        assert_eq!(status_code(&h), Some(Code::Ok));
        h.insert("grpc-status", http::HeaderValue::from_static("banana"));
        assert_eq!(status_code(&h), Some(Code::Unknown));
        assert_eq!(code_name(Code::NotFound), "NOT_FOUND");
        assert_eq!(code_name(Code::Unauthenticated), "UNAUTHENTICATED");
    }

    #[test]
    fn unknown_paths_share_one_label() {
        let m = Metrics::new(None);
        assert_eq!(m.method_label(METHOD), LABEL);
        assert_eq!(
            m.method_label("/grpc.health.v1.Health/Check"),
            "grpc.health.v1.Health/Check"
        );
        assert_eq!(m.method_label("/no.Such/Thing"), super::super::OTHER_METHOD);
        assert_eq!(m.method_label(""), super::super::OTHER_METHOD);
    }

    /// Trailers-only: the status is in the response headers and the call
    /// ends when the headers are out.
    #[tokio::test]
    async fn trailers_only_status_is_counted_at_the_headers() {
        let m = Metrics::new(None);
        let mut svc = MetricsLayer::new(Some(Arc::clone(&m))).layer(tower::service_fn(
            |_req: http::Request<()>| async {
                Ok::<_, std::convert::Infallible>(Status::not_found("no such domain").into_http())
            },
        ));
        let resp = svc.call(request(METHOD)).await.unwrap();
        assert_eq!(count(&m, LABEL, "NOT_FOUND"), 1);
        assert_eq!(in_flight(&m, LABEL), 0);
        assert_eq!(observed(&m, LABEL), 1);
        drop(resp);
        assert_eq!(count(&m, LABEL, "NOT_FOUND"), 1, "counted once");
        assert_eq!(count(&m, LABEL, "CANCELLED"), 0);
    }

    /// A streamed answer: in flight until its trailers pass, then counted
    /// with their code.
    #[tokio::test]
    async fn status_in_trailers_ends_the_call() {
        let m = Metrics::new(None);
        let mut svc = MetricsLayer::new(Some(Arc::clone(&m)))
            .layer(streamed(Some(trailers_of(&Status::ok("")))));
        let resp = svc.call(request(METHOD)).await.unwrap();
        assert_eq!(in_flight(&m, LABEL), 1, "headers out, stream still open");
        assert_eq!(count(&m, LABEL, "OK"), 0);
        let collected = resp.into_body().collect().await.unwrap();
        assert!(collected.trailers().is_some());
        assert_eq!(count(&m, LABEL, "OK"), 1);
        assert_eq!(in_flight(&m, LABEL), 0);
        assert_eq!(observed(&m, LABEL), 1);

        let mut svc = MetricsLayer::new(Some(Arc::clone(&m)))
            .layer(streamed(Some(trailers_of(&Status::unavailable("bye")))));
        let resp = svc.call(request(METHOD)).await.unwrap();
        resp.into_body().collect().await.unwrap();
        assert_eq!(count(&m, LABEL, "UNAVAILABLE"), 1);
        assert_eq!(count(&m, LABEL, "OK"), 1);
    }

    /// A body dropped before its trailers (client gone): CANCELLED; one
    /// that ends without trailers: UNKNOWN.
    #[tokio::test]
    async fn dropped_and_truncated_bodies() {
        let m = Metrics::new(None);
        let mut svc = MetricsLayer::new(Some(Arc::clone(&m)))
            .layer(streamed(Some(trailers_of(&Status::ok("")))));
        let resp = svc.call(request(METHOD)).await.unwrap();
        assert_eq!(in_flight(&m, LABEL), 1);
        drop(resp);
        assert_eq!(count(&m, LABEL, "CANCELLED"), 1);
        assert_eq!(in_flight(&m, LABEL), 0);

        let mut svc = MetricsLayer::new(Some(Arc::clone(&m))).layer(streamed(None));
        let resp = svc.call(request(METHOD)).await.unwrap();
        resp.into_body().collect().await.unwrap();
        assert_eq!(count(&m, LABEL, "UNKNOWN"), 1);
        assert_eq!(count(&m, LABEL, "OK"), 0);

        // An empty body without a status, which the transport never polls
        // once it says it has ended: UNKNOWN too, not CANCELLED.
        let mut svc = MetricsLayer::new(Some(Arc::clone(&m))).layer(tower::service_fn(
            |_req: http::Request<()>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
            },
        ));
        let resp = svc.call(request(METHOD)).await.unwrap();
        assert!(resp.body().is_end_stream());
        drop(resp);
        assert_eq!(count(&m, LABEL, "UNKNOWN"), 2);
        assert_eq!(count(&m, LABEL, "CANCELLED"), 1, "only the dropped stream");

        // A call whose future is dropped before it answers.
        let mut svc = MetricsLayer::new(Some(Arc::clone(&m))).layer(tower::service_fn(
            |_req: http::Request<()>| async {
                std::future::pending::<()>().await;
                Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
            },
        ));
        let fut = svc.call(request("/x.Y/Z"));
        assert_eq!(in_flight(&m, super::super::OTHER_METHOD), 1);
        drop(fut);
        assert_eq!(count(&m, super::super::OTHER_METHOD, "CANCELLED"), 1);
        assert_eq!(in_flight(&m, super::super::OTHER_METHOD), 0);
    }

    /// Without metrics the layer changes nothing.
    #[tokio::test]
    async fn off_passes_through() {
        let mut svc = MetricsLayer::new(None).layer(streamed(Some(trailers_of(&Status::ok("")))));
        let resp = svc.call(request(METHOD)).await.unwrap();
        let collected = resp.into_body().collect().await.unwrap();
        assert_eq!(status_code(collected.trailers().unwrap()), Some(Code::Ok));
    }

    /// The exposition has the call's counter, histogram and gauge.
    #[tokio::test]
    async fn exposition_names_the_call() {
        let m = Metrics::new(None);
        let mut svc = MetricsLayer::new(Some(Arc::clone(&m))).layer(tower::service_fn(
            |_req: http::Request<()>| async {
                Ok::<_, std::convert::Infallible>(Status::not_found("x").into_http())
            },
        ));
        svc.call(request(METHOD)).await.unwrap();
        let text = m.encode().unwrap();
        assert!(
            text.contains(&format!(
                "libvirt_grpc_requests_total{{method=\"{LABEL}\",code=\"NOT_FOUND\"}} 1"
            )),
            "{text}"
        );
        assert!(text.contains(&format!(
            "libvirt_grpc_request_duration_seconds_count{{method=\"{LABEL}\"}} 1"
        )));
        assert!(text.contains(&format!(
            "libvirt_grpc_requests_in_flight{{method=\"{LABEL}\"}} 0"
        )));
        assert!(text.contains(&format!(
            "libvirt_grpc_build_info{{version=\"{}\",revision=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            env!("LIBVIRT_GRPC_GIT_REVISION")
        )));
        assert!(text.ends_with("# EOF\n"));
    }
}
