//! The Prometheus endpoint against libvirt's in-process test driver: the
//! calls a test makes show up (by method and code, in the latency
//! histogram, and in flight only while they run), host health and pool
//! use of host `default` are there, an open WatchEvents stream counts as a
//! subscriber, published events are counted, the codes counted are the
//! ones the client gets (the metrics layer is outside the code
//! corrections), and only `GET /metrics` is served.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use libvirt_grpc_server::config::{Config, HostConfig};
use libvirt_grpc_tests::{http_get, prefix, small_spec, v1, wait_until, Cleanup, TestServer};
use tokio_stream::StreamExt;
use tonic::Code;

const URI: &str = "test:///default";
const LIST: &str = "libvirt_grpc.v1.DomainService/ListDomains";
const GET: &str = "libvirt_grpc.v1.DomainService/GetDomain";
const WATCH: &str = "libvirt_grpc.v1.EventService/WatchEvents";

/// One scrape: every sample line as `name{labels}` -> value.
struct Scrape(HashMap<String, f64>);

impl Scrape {
    async fn take(addr: SocketAddr) -> Scrape {
        let (status, body) = http_get(addr, "/metrics").await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body.ends_with("# EOF\n"),
            "OpenMetrics text ends with # EOF"
        );
        let mut samples = HashMap::new();
        for line in body.lines().filter(|l| !l.starts_with('#')) {
            let (key, value) = line.rsplit_once(' ').expect("a sample line");
            samples.insert(key.to_owned(), value.parse::<f64>().expect("a number"));
        }
        Scrape(samples)
    }

    /// The sample's value, 0 when the series is absent (a counter that
    /// never moved).
    fn value(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }

    /// The sample's value; fails when the series is absent.
    fn present(&self, key: &str) -> f64 {
        *self
            .0
            .get(key)
            .unwrap_or_else(|| panic!("no sample {key} in {:?}", self.0.keys()))
    }
}

fn requests(method: &str, code: &str) -> String {
    format!("libvirt_grpc_requests_total{{method=\"{method}\",code=\"{code}\"}}")
}

fn in_flight(method: &str) -> String {
    format!("libvirt_grpc_requests_in_flight{{method=\"{method}\"}}")
}

fn observed(method: &str) -> String {
    format!("libvirt_grpc_request_duration_seconds_count{{method=\"{method}\"}}")
}

async fn server() -> (TestServer, SocketAddr) {
    TestServer::with_metrics(Config {
        hosts: vec![HostConfig::new("default", URI)],
        health_interval_secs: 1,
        ..Config::default()
    })
    .await
}

#[tokio::test]
async fn calls_show_up_by_method_and_code() {
    let (s, metrics) = server().await;
    let before = Scrape::take(metrics).await;

    s.client.list_domains().await.unwrap();
    s.client.list_domains().await.unwrap();
    let missing = format!("{}missing", prefix());
    assert_eq!(
        s.client.get_domain(&missing).await.unwrap_err().code(),
        Code::NotFound
    );

    let after = Scrape::take(metrics).await;
    let delta = |key: &str| after.value(key) - before.value(key);
    assert_eq!(delta(&requests(LIST, "OK")), 2.0);
    assert_eq!(delta(&requests(GET, "NOT_FOUND")), 1.0);
    assert_eq!(delta(&requests(GET, "OK")), 0.0);
    assert_eq!(delta(&requests(LIST, "NOT_FOUND")), 0.0);
    // Every call is in the histogram, and none is in flight any more.
    assert_eq!(delta(&observed(LIST)), 2.0);
    assert_eq!(delta(&observed(GET)), 1.0);
    let all = |m: &str| {
        format!("libvirt_grpc_request_duration_seconds_bucket{{le=\"+Inf\",method=\"{m}\"}}")
    };
    let slow = |m: &str| {
        format!("libvirt_grpc_request_duration_seconds_bucket{{le=\"300.0\",method=\"{m}\"}}")
    };
    assert_eq!(delta(&all(GET)), 1.0);
    assert_eq!(
        delta(&slow(GET)),
        1.0,
        "a test-driver call takes under 5 min"
    );
    assert_eq!(delta(&all(LIST)), 2.0);
    assert_eq!(after.present(&in_flight(LIST)), 0.0);
    assert_eq!(after.present(&in_flight(GET)), 0.0);

    // Host health and pool use of host `default`.
    assert_eq!(after.present("libvirt_grpc_host_up{host=\"default\"}"), 1.0);
    assert_eq!(
        after.present("libvirt_grpc_host_health{host=\"default\",state=\"serving\"}"),
        1.0
    );
    assert_eq!(
        after.present("libvirt_grpc_host_health{host=\"default\",state=\"not_serving\"}"),
        0.0
    );
    assert_eq!(
        after.present("libvirt_grpc_pool_calls_in_flight{host=\"default\",lane=\"quick\"}"),
        0.0
    );
    assert_eq!(
        after.present("libvirt_grpc_pool_call_limit{host=\"default\",lane=\"quick\"}"),
        32.0
    );
    assert_eq!(
        after.present("libvirt_grpc_pool_call_limit{host=\"default\",lane=\"slow\"}"),
        4.0
    );
    assert!(after.present("libvirt_grpc_pool_connections_open{host=\"default\"}") >= 1.0);
    after.present("libvirt_grpc_events_lost_total{reason=\"subscriber_too_slow\"}");

    // Only GET /metrics is served.
    assert_eq!(http_get(metrics, "/").await.0, 404);
    assert_eq!(http_get(metrics, "/metrics/x").await.0, 404);
    s.stop().await;
}

#[tokio::test]
async fn subscribers_and_published_events() {
    let (s, metrics) = server().await;
    let p = prefix();
    let _cleanup = Cleanup::new(URI, &p);
    let before = Scrape::take(metrics).await;
    let subscribers = "libvirt_grpc_event_subscribers";
    let published = "libvirt_grpc_events_published_total";
    let base = before.present(subscribers);

    let mut stream = s
        .client
        .events()
        .watch_events(v1::WatchEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("no first message")
        .expect("stream ended")
        .unwrap();
    assert!(matches!(
        first.item,
        Some(v1::watch_events_response::Item::Started(_))
    ));
    let open = Scrape::take(metrics).await;
    assert_eq!(
        open.present(subscribers),
        base + 1.0,
        "the open stream counts"
    );
    assert_eq!(
        open.present(&in_flight(WATCH)),
        1.0,
        "a stream is in flight"
    );

    // A change publishes an event, which the counter shows.
    s.client
        .define_domain(small_spec(&format!("{p}vm")))
        .await
        .unwrap();
    let base_published = before.present(published);
    wait_until(Duration::from_secs(10), "the event counted", || async {
        (Scrape::take(metrics).await.present(published) > base_published).then_some(())
    })
    .await;

    // The stream ends (the client drops it): no longer a subscriber, no
    // longer in flight, counted as CANCELLED.
    drop(stream);
    wait_until(Duration::from_secs(10), "the subscriber gone", || async {
        let now = Scrape::take(metrics).await;
        (now.present(subscribers) == base
            && now.present(&in_flight(WATCH)) == 0.0
            && now.value(&requests(WATCH, "CANCELLED")) == 1.0)
            .then_some(())
    })
    .await;
    s.stop().await;
}

/// Raw bytes in and out: a gRPC codec that does not look at messages.
#[derive(Debug, Clone, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = bytes::Bytes;
    type Decode = bytes::Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = bytes::Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: bytes::Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put(dst, item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = bytes::Bytes;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<bytes::Bytes>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n)))
    }
}

/// A unary call of `path` with `body` as the raw request message; its code.
async fn raw_unary(s: &TestServer, path: &'static str, body: &'static [u8]) -> Code {
    let mut grpc = tonic::client::Grpc::new(s.client.channel());
    grpc.ready().await.unwrap();
    grpc.unary(
        tonic::Request::new(bytes::Bytes::from_static(body)),
        http::uri::PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(|_| Code::Ok)
    .unwrap_or_else(|st| st.code())
}

/// The codes counted are the ones the client gets, after the server's
/// code corrections (bytes that are not the request message: tonic says
/// INTERNAL, the client gets INVALID_ARGUMENT); a path that is no RPC is
/// counted under `other`.
#[tokio::test]
async fn counted_codes_are_what_the_client_sees() {
    let (s, metrics) = server().await;
    let before = Scrape::take(metrics).await;
    // Field 1 (the domain reference) with wire type 7: not a GetDomainRequest.
    let code = raw_unary(&s, "/libvirt_grpc.v1.DomainService/GetDomain", b"\x0f\x00").await;
    assert_eq!(code, Code::InvalidArgument);
    let code = raw_unary(&s, "/libvirt_grpc.v1.NoSuchService/Nothing", b"").await;
    assert_eq!(code, Code::Unimplemented);
    let after = Scrape::take(metrics).await;
    let delta = |key: &str| after.value(key) - before.value(key);
    assert_eq!(delta(&requests(GET, "INVALID_ARGUMENT")), 1.0);
    assert_eq!(delta(&requests(GET, "INTERNAL")), 0.0);
    assert_eq!(delta(&requests("other", "UNIMPLEMENTED")), 1.0);
    assert!(
        !after.0.keys().any(|k| k.contains("NoSuchService")),
        "unknown paths do not become labels"
    );
    s.stop().await;
}
