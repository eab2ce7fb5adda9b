//! OpenDomainConsole on the in-process test driver: the requests the server
//! refuses itself, and the driver's own answer (it has no consoles).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use libvirt_grpc_tests::{code_of, domain_ref, v1, TestServer};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request};
use v1::open_domain_console_request::Item;

/// Opens a console with these first messages; the call's code.
async fn open_with(s: &TestServer, first: Vec<v1::OpenDomainConsoleRequest>) -> Code {
    let (tx, rx) = mpsc::channel(4);
    for m in first {
        tx.send(m).await.unwrap();
    }
    drop(tx);
    let r = s
        .client
        .domains()
        .open_domain_console(Request::new(ReceiverStream::new(rx)))
        .await;
    code_of(r.map(|_| ()))
}

fn open(domain: Option<v1::DomainRef>, device: &str) -> v1::OpenDomainConsoleRequest {
    v1::OpenDomainConsoleRequest {
        item: Some(Item::Open(v1::ConsoleOpen {
            domain,
            device: device.into(),
            force: false,
        })),
    }
}

#[tokio::test]
async fn console_requests_the_server_refuses() {
    let s = TestServer::test_driver().await;
    // Input before `open`, or nothing at all.
    let input = v1::OpenDomainConsoleRequest {
        item: Some(Item::Input(b"ls\n".to_vec())),
    };
    assert_eq!(open_with(&s, vec![input]).await, Code::InvalidArgument);
    assert_eq!(open_with(&s, vec![]).await, Code::InvalidArgument);
    // No domain, a bad alias, an alias too long.
    assert_eq!(
        open_with(&s, vec![open(None, "")]).await,
        Code::InvalidArgument
    );
    let test = domain_ref("default", "test");
    assert_eq!(
        open_with(&s, vec![open(test.clone(), "serial0; rm")]).await,
        Code::InvalidArgument
    );
    assert_eq!(
        open_with(&s, vec![open(test.clone(), &"s".repeat(65))]).await,
        Code::InvalidArgument
    );
    // An unknown domain, an unknown host.
    assert_eq!(
        open_with(&s, vec![open(domain_ref("default", "no-such-domain"), "")]).await,
        Code::NotFound
    );
    assert_eq!(
        open_with(&s, vec![open(domain_ref("nohost", "test"), "")]).await,
        Code::NotFound
    );
    s.stop().await;
}

#[tokio::test]
async fn the_test_driver_has_no_consoles() {
    let s = TestServer::test_driver().await;
    let (tx, rx) = mpsc::channel(4);
    tx.send(open(domain_ref("default", "test"), ""))
        .await
        .unwrap();
    let e = s
        .client
        .domains()
        .open_domain_console(Request::new(ReceiverStream::new(rx)))
        .await
        .expect_err("the test driver cannot open consoles");
    assert_eq!(e.code(), Code::Unimplemented, "{e:?}");
    assert!(e.message().contains("virDomainOpenConsole"), "{e:?}");
    s.stop().await;
}
