//! The client crate's read retries against a server made to fail: a host
//! whose libvirt cannot be reached answers UNAVAILABLE with a RetryInfo,
//! and the server's own request counters show how many attempts a read
//! made (1 + retries) and that a bad request (INVALID_ARGUMENT) or a change
//! is sent once; the waits follow the backoff and the server's delay.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    collections::HashMap,
    net::SocketAddr,
    time::{Duration, Instant},
};

use libvirt_grpc_server::config::{Config, HostConfig};
use libvirt_grpc_tests::{free_port, http_get, ClientError, TestServer};

const GET: &str = "libvirt_grpc.v1.DomainService/GetDomain";
const START: &str = "libvirt_grpc.v1.DomainService/StartDomain";

/// The server's request counter for `method` answered `code`.
async fn count(metrics: SocketAddr, method: &str, code: &str) -> f64 {
    let (status, body) = http_get(metrics, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    let key = format!("libvirt_grpc_requests_total{{method=\"{method}\",code=\"{code}\"}}");
    let samples: HashMap<&str, f64> = body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| (k, v.parse().unwrap()))
        .collect();
    samples.get(key.as_str()).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn reads_retry_unavailable_with_backoff_and_nothing_else() {
    let port = free_port();
    let (s, metrics) = TestServer::with_metrics(Config {
        hosts: vec![
            HostConfig::new("default", "test:///default"),
            HostConfig::new("down", format!("qemu+tcp://127.0.0.1:{port}/system")),
        ],
        ..Config::default()
    })
    .await;
    let down = s.client.clone().with_default_host("down");

    // Without retries: one attempt, the server's delay in the error.
    let e = down.domain("x").info().await.unwrap_err();
    let ClientError::Unavailable(d) = &e else {
        panic!("expected Unavailable, got {e:?}");
    };
    let server_delay = d.retry_after.expect("a RetryInfo");
    assert_eq!(count(metrics, GET, "UNAVAILABLE").await, 1.0);

    // Two retries: three attempts, each wait at least the server's delay.
    let c = down.clone().with_read_retries(2);
    let t = Instant::now();
    let e = c.domain("x").info().await.unwrap_err();
    let took = t.elapsed();
    assert!(matches!(e, ClientError::Unavailable(_)), "{e:?}");
    assert_eq!(count(metrics, GET, "UNAVAILABLE").await, 4.0);
    assert!(took >= server_delay * 2, "{took:?} < 2 x {server_delay:?}");
    // ... and at most that plus the jitter (a quarter) and slack.
    assert!(
        took <= server_delay * 2 + server_delay / 2 + Duration::from_secs(2),
        "{took:?}"
    );

    // A change is never retried, even with retries on.
    let e = c.domain("x").start().await.unwrap_err();
    assert!(matches!(e, ClientError::Unavailable(_)), "{e:?}");
    assert_eq!(count(metrics, START, "UNAVAILABLE").await, 1.0);

    // A bad request is answered at once and not retried.
    let ok = s.client.clone().with_read_retries(3);
    let t = Instant::now();
    let e = ok.domain_by_uuid("not-a-uuid").info().await.unwrap_err();
    let ClientError::InvalidArgument(d) = &e else {
        panic!("expected InvalidArgument, got {e:?}");
    };
    assert_eq!(d.violations[0].field, "domain.uuid");
    assert_eq!(count(metrics, GET, "INVALID_ARGUMENT").await, 1.0);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    // NOT_FOUND neither.
    assert!(matches!(
        ok.domain("lvgt-no-such").info().await,
        Err(ClientError::NotFound(_))
    ));
    assert_eq!(count(metrics, GET, "NOT_FOUND").await, 1.0);
    s.stop().await;
}

#[tokio::test]
async fn a_server_that_is_gone_is_retried_with_backoff_then_unavailable() {
    // The in-process server is stopped; a read with retries fails over
    // the retries, and none of it hangs.
    let s = TestServer::test_driver().await;
    let c = s.client.clone().with_read_retries(2);
    assert!(c.list_domains().await.is_ok());
    s.stop().await;
    let t = Instant::now();
    let e = c.list_domains().await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    // Two waits: 100 ms and 200 ms (no RetryInfo from a server that is
    // gone), each up to a quarter more.
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}
