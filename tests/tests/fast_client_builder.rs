//! The client crate's connection settings (`Client::builder`): TLS with a CA
//! given as PEM or file, a client certificate from files, the bearer token
//! on every stub, bad settings refused before connecting, and the connect
//! timeout; against the in-process server on libvirt's test driver.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use libvirt_grpc_server::{
    auth::Role,
    config::{AuthConfig, ClientCertConfig, Config, HostConfig, TlsConfig, TokenConfig},
};
use libvirt_grpc_tests::{
    pki::{Ca, Pki},
    prefix, Client, ClientError, TestServer,
};
use sha2::Digest;

const READER_TOKEN: &str = "reader-token-builder-0123456789";

/// A TLS server (mutual when `mutual`) whose reader token is
/// [`READER_TOKEN`] and whose admin is the certificate `CN=ops`.
fn config(pki: &Pki, ca: &Ca, mutual: bool) -> Config {
    let server = ca.server();
    Config {
        hosts: vec![HostConfig::new("default", "test:///default")],
        tls: Some(TlsConfig {
            cert: pki.write("server.pem", &server.cert),
            key: pki.write("server.key", &server.key),
            client_ca: mutual.then(|| pki.write("ca.pem", &ca.pem)),
        }),
        auth: Some(AuthConfig {
            tokens: vec![TokenConfig {
                name: "builder".into(),
                role: Role::Reader,
                sha256: hex::encode(sha2::Sha256::digest(READER_TOKEN.as_bytes())),
            }],
            clients: if mutual {
                vec![ClientCertConfig {
                    name: None,
                    subject: Some("CN=ops".into()),
                    san: None,
                    role: Role::Admin,
                }]
            } else {
                Vec::new()
            },
            open_health: true,
            open_reflection: false,
        }),
        ..Config::default()
    }
}

#[tokio::test]
async fn tls_and_a_bearer_token_reach_every_stub() {
    let p = prefix();
    let pki = Pki::new(&p);
    let ca = Ca::new("builder test CA");
    let s = TestServer::start_tls(config(&pki, &ca, false)).await;
    let url = format!("https://{}", s.addr);

    // The CA as PEM, the server's name given (the URL has an IP address).
    let c = Client::builder(url.as_str())
        .tls_ca_pem(ca.pem.clone())
        .tls_domain_name("localhost")
        .bearer_token(READER_TOKEN)
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap();
    assert!(c
        .list_domains()
        .await
        .unwrap()
        .iter()
        .any(|d| d.name == "test"));
    // Generated stubs carry the token too, streams included.
    c.hosts()
        .list_hosts(libvirt_grpc_tests::v1::ListHostsRequest {})
        .await
        .unwrap();
    let mut events = c.watch(Default::default());
    let first = tokio_stream::StreamExt::next(&mut events)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            first.item,
            Some(libvirt_grpc_tests::v1::watch_events_response::Item::Started(_))
        ),
        "{first:?}"
    );
    // A reader may not change anything: the token's role holds.
    let e = c.domain("test").suspend().await.unwrap_err();
    assert!(matches!(e, ClientError::PermissionDenied(_)), "{e:?}");

    // The CA from a file; no token: refused as unauthenticated.
    let ca_file = pki.write("client-ca.pem", &ca.pem);
    let anon = Client::builder(url.as_str())
        .tls_ca_file(&ca_file)
        .tls_domain_name("localhost")
        .connect()
        .await
        .unwrap();
    let e = anon.list_domains().await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    // A wrong token is refused the same way.
    let wrong = anon.clone().with_bearer_token("not-the-token").unwrap();
    let e = wrong.list_domains().await.unwrap_err();
    assert!(matches!(e, ClientError::PermissionDenied(_)), "{e:?}");
    s.stop().await;
}

#[tokio::test]
async fn a_client_certificate_from_files_is_mutual_tls() {
    let p = prefix();
    let pki = Pki::new(&p);
    let ca = Ca::new("builder test CA");
    let s = TestServer::start_tls(config(&pki, &ca, true)).await;
    let ops = ca.client("ops");
    let c = Client::builder(format!("https://{}", s.addr))
        .tls_ca_pem(ca.pem.clone())
        .tls_identity_files(
            pki.write("ops.pem", &ops.cert),
            pki.write("ops.key", &ops.key),
        )
        .tls_domain_name("localhost")
        .connect_lazy()
        .unwrap();
    // The admin certificate may change things.
    c.domain("test").suspend().await.unwrap();
    c.domain("test").resume().await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn bad_settings_fail_before_connecting() {
    let e = Client::builder("http://127.0.0.1:1")
        .tls_ca_pem("x")
        .connect_lazy()
        .unwrap_err();
    assert!(matches!(e, ClientError::Config(_)), "{e:?}");
    let e = Client::builder("http://127.0.0.1:1")
        .bearer_token("two words")
        .connect_lazy()
        .unwrap_err();
    assert!(matches!(e, ClientError::Config(_)), "{e:?}");
    let e = Client::builder("https://127.0.0.1:1")
        .tls_ca_file("/nonexistent/lvgt-ca.pem")
        .connect_lazy()
        .unwrap_err();
    assert!(matches!(e, ClientError::Io { .. }), "{e:?}");
    assert_eq!(e.code(), tonic::Code::NotFound);
    let e = Client::builder("not a url").connect_lazy().unwrap_err();
    assert!(matches!(e, ClientError::Connect { .. }), "{e:?}");
}

#[tokio::test]
async fn the_connect_timeout_bounds_an_unanswered_connect() {
    // A port that accepts TCP but never answers the TLS ClientHello: the
    // timeout bounds the whole connect, handshake included.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let ca = Ca::new("builder test CA");
    let t = Instant::now();
    let e = Client::builder(format!("https://{addr}"))
        .tls_ca_pem(ca.pem.clone())
        .tls_domain_name("localhost")
        .connect_timeout(Duration::from_millis(300))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::ConnectTimeout { .. }), "{e:?}");
    assert_eq!(e.code(), tonic::Code::Unavailable);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    drop(silent);
}
