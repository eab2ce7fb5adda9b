//! Corrects two status codes that tonic itself answers before (or beside)
//! any handler, where gRPC's status code table says otherwise:
//!
//! | tonic says | message starts with | gRPC says |
//! | --- | --- | --- |
//! | `INTERNAL` | `failed to decode Protobuf message` | `INVALID_ARGUMENT` (the caller sent bytes that are not the request type) |
//! | `OUT_OF_RANGE` | `Error, decoded message length too large` / `Error, encoded message length too large` | `RESOURCE_EXHAUSTED` (a message over the size limit) |
//!
//! tonic reports these from its codec and framing layers, so no handler
//! sees them (for unary and server-streaming calls they answer the call
//! before the handler runs). [`StatusCodeLayer`] wraps the whole server and
//! rewrites `grpc-status` wherever it travels: in the response headers of a
//! trailers-only answer, or in the trailers at the end of the body. Only
//! those exact (code, message) pairs are touched; the message is kept.
//!
//! The same layer keeps the error contract for statuses no handler made
//! (these, an unknown method's `UNIMPLEMENTED`, ...): an error status
//! without details gets a `google.rpc.ErrorInfo` in the server's domain
//! whose reason is the code's name (`INVALID_ARGUMENT`), and a
//! `google.rpc.RetryInfo` when it is `UNAVAILABLE`.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use futures::TryFutureExt;
use http::{HeaderMap, HeaderValue};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::{body::Body, Code};

/// The rewrites: tonic's code, its message prefix, the right code.
const REWRITES: [(Code, &str, Code); 3] = [
    (
        Code::Internal,
        "failed to decode Protobuf message",
        Code::InvalidArgument,
    ),
    (
        Code::OutOfRange,
        "Error, decoded message length too large",
        Code::ResourceExhausted,
    ),
    (
        Code::OutOfRange,
        "Error, encoded message length too large",
        Code::ResourceExhausted,
    ),
];

/// Rewrites the status in `headers` (response headers or trailers) if it is
/// one of tonic's own miscoded ones.
pub fn fix_status(headers: &mut HeaderMap) {
    let Some(code) = headers
        .get("grpc-status")
        .map(|v| Code::from_bytes(v.as_bytes()))
    else {
        return;
    };
    let message = headers
        .get("grpc-message")
        .map(|v| percent_encoding::percent_decode(v.as_bytes()).decode_utf8_lossy())
        .unwrap_or_default();
    let mut code = code;
    for (from, prefix, to) in REWRITES {
        if code == from && message.starts_with(prefix) {
            headers.insert("grpc-status", HeaderValue::from(to as i32));
            code = to;
            break;
        }
    }
    if code != Code::Ok && !headers.contains_key(DETAILS_HEADER) {
        add_error_info(headers, code);
    }
}

/// The header that carries a status's details.
const DETAILS_HEADER: &str = "grpc-status-details-bin";

/// Adds the details every error status carries (see the module doc).
fn add_error_info(headers: &mut HeaderMap, code: Code) {
    use tonic_types::{ErrorDetails, StatusExt};
    let mut details = ErrorDetails::with_error_info(
        code_name(code),
        crate::error::SERVER_ERROR_DOMAIN,
        std::collections::HashMap::new(),
    );
    if code == Code::Unavailable {
        details.set_retry_info(Some(crate::error::RETRY_DELAY));
    }
    let mut built = HeaderMap::new();
    if tonic::Status::with_error_details(code, "", details)
        .add_header(&mut built)
        .is_ok()
    {
        if let Some(v) = built.remove(DETAILS_HEADER) {
            headers.insert(DETAILS_HEADER, v);
        }
    }
}

/// The gRPC name of `code`, e.g. `INVALID_ARGUMENT`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The tower layer that applies [`fix_status`] to every response.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatusCodeLayer;

impl<S> tower_layer::Layer<S> for StatusCodeLayer {
    type Service = StatusCodeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StatusCodeService { inner }
    }
}

/// See [`StatusCodeLayer`].
#[derive(Debug, Clone)]
pub struct StatusCodeService<S> {
    inner: S,
}

type FixFn = fn(http::Response<Body>) -> http::Response<Body>;

impl<S, ReqBody> tower_service::Service<http::Request<ReqBody>> for StatusCodeService<S>
where
    S: tower_service::Service<http::Request<ReqBody>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = futures::future::MapOk<S::Future, FixFn>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        self.inner.call(req).map_ok(fix_response as FixFn)
    }
}

fn fix_response(resp: http::Response<Body>) -> http::Response<Body> {
    let (mut parts, body) = resp.into_parts();
    fix_status(&mut parts.headers);
    http::Response::from_parts(parts, Body::new(FixTrailers { inner: body }))
}

/// A response body whose trailers go through [`fix_status`].
struct FixTrailers {
    inner: Body,
}

impl HttpBody for FixTrailers {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(match frame.into_trailers() {
                Ok(mut trailers) => {
                    fix_status(&mut trailers);
                    Frame::trailers(trailers)
                }
                Err(frame) => frame,
            }))),
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
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

    fn headers_of(status: &Status) -> HeaderMap {
        let mut h = HeaderMap::new();
        status.add_header(&mut h).unwrap();
        h
    }

    fn code_in(h: &HeaderMap) -> Code {
        Code::from_bytes(h.get("grpc-status").unwrap().as_bytes())
    }

    #[test]
    fn rewrites_exactly_tonics_own_codes() {
        let rows = [
            (
                Status::internal("failed to decode Protobuf message: invalid wire type value: 7"),
                Code::InvalidArgument,
            ),
            (
                Status::out_of_range(
                    "Error, decoded message length too large: found 68157440 bytes, the limit is: 67108864 bytes",
                ),
                Code::ResourceExhausted,
            ),
            (
                Status::out_of_range("Error, encoded message length too large: found 9 bytes"),
                Code::ResourceExhausted,
            ),
            // Everything else stays as it is.
            (Status::internal("Internal error: boom"), Code::Internal),
            (Status::out_of_range("offset past the end"), Code::OutOfRange),
            (
                Status::invalid_argument("failed to decode Protobuf message"),
                Code::InvalidArgument,
            ),
            (Status::ok(""), Code::Ok),
        ];
        for (status, want) in rows {
            let mut h = headers_of(&status);
            let message = h.get("grpc-message").cloned();
            fix_status(&mut h);
            assert_eq!(code_in(&h), want, "{status:?}");
            assert_eq!(h.get("grpc-message").cloned(), message, "message kept");
        }
        let mut none = HeaderMap::new();
        fix_status(&mut none);
        assert!(none.is_empty());
    }

    /// The ErrorInfo in headers `h`, decoded as a client would.
    fn info_in(h: &HeaderMap) -> Option<(tonic_types::ErrorInfo, bool)> {
        use tonic_types::StatusExt;
        let status = Status::from_header_map(h)?;
        let details = status.get_error_details();
        Some((
            details.error_info()?.clone(),
            details.retry_info().is_some(),
        ))
    }

    #[test]
    fn statuses_without_details_get_error_info() {
        let decode = Status::internal("failed to decode Protobuf message: invalid wire type");
        let mut h = headers_of(&decode);
        fix_status(&mut h);
        let (info, retry) = info_in(&h).expect("error info");
        assert_eq!(info.domain, crate::error::SERVER_ERROR_DOMAIN);
        assert_eq!(info.reason, "INVALID_ARGUMENT", "the corrected code's name");
        assert!(!retry);
        let mut h = headers_of(&Status::unimplemented("no such method"));
        fix_status(&mut h);
        assert_eq!(info_in(&h).unwrap().0.reason, "UNIMPLEMENTED");
        let mut h = headers_of(&Status::unavailable("busy"));
        fix_status(&mut h);
        let (info, retry) = info_in(&h).unwrap();
        assert_eq!(info.reason, "UNAVAILABLE");
        assert!(retry, "RetryInfo on UNAVAILABLE");
        // Details a handler set are kept as they are.
        let own = Status::from(crate::error::Error::UnknownHost("h".into()));
        let mut h = headers_of(&own);
        fix_status(&mut h);
        assert_eq!(info_in(&h).unwrap().0.reason, "UNKNOWN_HOST");
        // OK gets nothing.
        let mut h = headers_of(&Status::ok(""));
        fix_status(&mut h);
        assert!(!h.contains_key(DETAILS_HEADER));
    }

    #[tokio::test]
    async fn layer_rewrites_headers_and_trailers() {
        use tower_layer::Layer;
        use tower_service::Service;
        let decode = Status::internal("failed to decode Protobuf message: buffer underflow");

        // Trailers-only: the status is in the response headers.
        let trailers_only = decode.clone().into_http::<Body>();
        let mut svc = StatusCodeLayer.layer(tower::service_fn(move |_req: http::Request<()>| {
            let r = trailers_only_clone(&trailers_only);
            async move { Ok::<_, std::convert::Infallible>(r) }
        }));
        let resp = svc.call(http::Request::new(())).await.unwrap();
        assert_eq!(code_in(resp.headers()), Code::InvalidArgument);

        // A streamed answer: the status is in the trailers.
        let trailers = headers_of(&decode);
        let mut svc = StatusCodeLayer.layer(tower::service_fn(move |_req: http::Request<()>| {
            let t = trailers.clone();
            async move {
                let body = http_body_util::StreamBody::new(futures::stream::iter(vec![
                    Ok::<_, tonic::Status>(Frame::data(bytes::Bytes::from_static(b"x"))),
                    Ok(Frame::trailers(t)),
                ]));
                Ok::<_, std::convert::Infallible>(http::Response::new(Body::new(body)))
            }
        }));
        let resp = svc.call(http::Request::new(())).await.unwrap();
        let collected = resp.into_body().collect().await.unwrap();
        assert_eq!(
            code_in(collected.trailers().unwrap()),
            Code::InvalidArgument
        );
    }

    fn trailers_only_clone(r: &http::Response<Body>) -> http::Response<Body> {
        let mut out = http::Response::new(Body::empty());
        *out.headers_mut() = r.headers().clone();
        out
    }
}
