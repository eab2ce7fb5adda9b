//! The client's typed errors and read retries against a server made to
//! fail (a missing domain, a bad request, a host that is down), and the
//! handle-style domain API.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use libvirt_grpc_client::{v1, Client, ClientError};
use libvirt_grpc_server::config::{Config, HostConfig};

/// A server on the test driver (`default`) and a host nothing answers for
/// (`down`); stops when the sender drops.
async fn server() -> (String, tokio::sync::oneshot::Sender<()>) {
    virt::error::clear_error_callback();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let config = Config {
        hosts: vec![
            HostConfig::new("default", "test:///default"),
            HostConfig::new("down", format!("qemu+tcp://127.0.0.1:{port}/system")),
        ],
        ..Config::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        libvirt_grpc_server::server::serve(&config, listener, shutdown)
            .await
            .unwrap();
    });
    (url, stop)
}

#[tokio::test]
async fn errors_are_typed_with_their_details() {
    let (url, _stop) = server().await;
    let c = Client::connect(url).await.unwrap();
    match c.get_domain("no-such-domain-rs").await {
        Err(ClientError::NotFound(d)) => {
            assert_eq!(
                (d.domain.as_str(), d.reason.as_str()),
                ("libvirt.org", "NO_DOMAIN")
            );
            assert_eq!(d.metadata.get("host").map(String::as_str), Some("default"));
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    let r = c
        .domains()
        .get_domain(v1::GetDomainRequest {
            domain: Some(v1::DomainRef {
                host: String::new(),
                key: Some(v1::domain_ref::Key::Uuid("nope".into())),
            }),
            ..Default::default()
        })
        .await
        .map_err(ClientError::from);
    match r {
        Err(ClientError::InvalidArgument(d)) => {
            assert_eq!(d.reason, "INVALID_ARGUMENT");
            let fields: Vec<&str> = d.violations.iter().map(|v| v.field.as_str()).collect();
            assert_eq!(fields, ["domain.uuid"]);
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    // Starting a running domain: the state forbids it.
    match c.start_domain("test").await {
        Err(ClientError::FailedPrecondition(d)) => assert_eq!(d.reason, "OPERATION_INVALID"),
        other => panic!("expected FailedPrecondition, got {other:?}"),
    }
}

#[tokio::test]
async fn a_host_that_is_down_is_unavailable_and_reads_retry_after_its_delay() {
    let (url, _stop) = server().await;
    let c = Client::connect(url)
        .await
        .unwrap()
        .with_default_host("down");
    let e = c.list_domains().await.expect_err("the host is down");
    let ClientError::Unavailable(d) = &e else {
        panic!("expected Unavailable, got {e:?}");
    };
    assert_eq!(d.reason, "HOST_UNAVAILABLE");
    let delay = d.retry_after.expect("a RetryInfo");
    // One retry: the read waits the server's delay once, then fails the
    // same way (a change would never be retried).
    let c = c.with_read_retries(1);
    let t = Instant::now();
    let e = c.get_domain("x").await.expect_err("still down");
    assert!(matches!(e, ClientError::Unavailable(_)), "{e:?}");
    assert!(
        t.elapsed() >= delay,
        "retried after {:?}, not {delay:?}",
        t.elapsed()
    );
    assert!(delay <= Duration::from_secs(5));
}

#[tokio::test]
async fn a_domain_handle_runs_libvirts_verbs() {
    let (url, _stop) = server().await;
    let c = Client::connect(url).await.unwrap();
    let name = format!("handle-{}", std::process::id());
    c.domains()
        .define_domain(v1::DefineDomainRequest {
            host: String::new(),
            source: Some(v1::define_domain_request::Source::Xml(format!(
                "<domain type='test'><name>{name}</name><memory unit='MiB'>64</memory>\
                 <vcpu>1</vcpu><os><type>hvm</type></os></domain>"
            ))),
            validate: false,
        })
        .await
        .unwrap();
    let d = c.domain(name.as_str());
    assert_eq!(d.start().await.unwrap().state(), v1::DomainState::Running);
    assert_eq!(d.suspend().await.unwrap().state(), v1::DomainState::Paused);
    assert_eq!(d.resume().await.unwrap().state(), v1::DomainState::Running);
    assert!(d.set_autostart(true).await.unwrap().autostart);
    assert!(d
        .xml()
        .await
        .unwrap()
        .contains(&format!("<name>{name}</name>")));
    let png = d.screenshot(0).await.unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let off = d
        .destroy()
        .await
        .unwrap()
        .expect("persistent: still defined");
    assert_eq!(off.state(), v1::DomainState::Shutoff);
    d.undefine().await.unwrap();
    assert!(matches!(d.info().await, Err(ClientError::NotFound(_))));
}
