//! TLS, mutual TLS, bearer tokens and roles, end to end over real TLS with
//! certificates the test makes itself, on libvirt's test driver.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use libvirt_grpc_server::{
    auth::Role,
    config::{AuthConfig, ClientCertConfig, Config, HostConfig, TlsConfig, TokenConfig},
};
use libvirt_grpc_tests::{
    domain_ref,
    pki::{self, Ca, Pair, Pki},
    prefix, small_spec, v1, Cleanup, Client, TestServer,
};
use sha2::Digest;
use tonic::{metadata::MetadataValue, Code};

const READER_TOKEN: &str = "reader-token-0123456789abcdef";
const OPERATOR_TOKEN: &str = "operator-token-0123456789abcdef";

fn sha(t: &str) -> String {
    hex::encode(sha2::Sha256::digest(t.as_bytes()))
}

/// A server's PKI and config: TLS with `client_ca` when `mutual`, tokens
/// for a reader and an operator, certificate `CN=ops` as admin.
struct Setup {
    /// Holds the PEM files (removed on drop).
    _pki: Pki,
    ca: Ca,
    config: Config,
}

fn setup(p: &str, mutual: bool) -> Setup {
    let pki = Pki::new(p);
    let ca = Ca::new("libvirt-grpc test CA");
    let server = ca.server();
    let cert = pki.write("server.pem", &server.cert);
    let key = pki.write("server.key", &server.key);
    let client_ca = mutual.then(|| pki.write("ca.pem", &ca.pem));
    let config = Config {
        hosts: vec![HostConfig::new("default", "test:///default")],
        tls: Some(TlsConfig {
            cert,
            key,
            client_ca,
        }),
        auth: Some(AuthConfig {
            tokens: vec![
                TokenConfig {
                    name: "inventory-bot".into(),
                    role: Role::Reader,
                    sha256: sha(READER_TOKEN),
                },
                TokenConfig {
                    name: "deployer".into(),
                    role: Role::Operator,
                    sha256: sha(OPERATOR_TOKEN),
                },
            ],
            // Certificate identities need mutual TLS.
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
    };
    config.validate().unwrap();
    Setup {
        _pki: pki,
        ca,
        config,
    }
}

/// A request carrying `authorization: <value>` when given.
fn with_auth<T>(msg: T, value: Option<&str>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(v) = value {
        r.metadata_mut()
            .insert("authorization", MetadataValue::try_from(v).unwrap());
    }
    r
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn error_info(st: &tonic::Status) -> tonic_types::ErrorInfo {
    use tonic_types::StatusExt;
    st.get_error_details()
        .error_info()
        .cloned()
        .unwrap_or_else(|| panic!("no ErrorInfo in {st:?}"))
}

async fn list(c: &Client, auth: Option<&str>) -> Result<usize, tonic::Status> {
    c.domains()
        .list_domains(with_auth(v1::ListDomainsRequest::default(), auth))
        .await
        .map(|r| r.into_inner().domains.len())
}

async fn stop(c: &Client, name: &str, auth: Option<&str>) -> Result<(), tonic::Status> {
    c.domains()
        .stop_domain(with_auth(
            v1::StopDomainRequest {
                domain: domain_ref("", name),
                graceful: false,
            },
            auth,
        ))
        .await
        .map(|_| ())
}

async fn tls_client(s: &TestServer, ca: &str, id: Option<&Pair>) -> Client {
    Client::from_channel(pki::channel(s.addr, ca, id).await.unwrap())
}

#[tokio::test]
async fn mutual_tls_identities_roles_and_tokens() {
    let p = prefix();
    let _c = Cleanup::new("test:///default", &p);
    let st = setup(&p, true);
    let s = TestServer::start_tls(st.config.clone()).await;
    let ops = st.ca.client("ops");
    let admin = tls_client(&s, &st.ca.pem, Some(&ops)).await;

    // The admin certificate may do everything: define, start, stop.
    let name = format!("{p}vm");
    admin.define_domain(small_spec(&name)).await.unwrap();
    admin.start_domain(&name).await.unwrap();
    assert!(list(&admin, None).await.unwrap() >= 1);

    // A token comes before the certificate: a reader token on the admin's
    // connection can list, but not stop; the error names the role needed.
    let reader = Some(bearer(READER_TOKEN));
    assert!(list(&admin, reader.as_deref()).await.unwrap() >= 1);
    let e = stop(&admin, &name, reader.as_deref()).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("'operator'"), "{}", e.message());
    let info = error_info(&e);
    assert_eq!(info.reason, "ROLE_REQUIRED");
    assert_eq!(
        info.metadata.get("required_role").map(String::as_str),
        Some("operator")
    );
    // ... and the domain is still running: nothing was done.
    assert_eq!(
        admin.get_domain(&name).await.unwrap().state(),
        v1::DomainState::Running
    );

    // An operator token may stop, but not run commands in a guest, nor
    // read the secure XML.
    let operator = Some(bearer(OPERATOR_TOKEN));
    let e = admin
        .agents()
        .exec_guest_command(with_auth(
            v1::ExecGuestCommandRequest {
                domain: domain_ref("", &name),
                path: "/bin/true".into(),
                ..Default::default()
            },
            operator.as_deref(),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("'admin'"), "{}", e.message());
    let e = admin
        .domains()
        .get_domain_xml(with_auth(
            v1::GetDomainXmlRequest {
                domain: domain_ref("", &name),
                secure: true,
                ..Default::default()
            },
            operator.as_deref(),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    stop(&admin, &name, operator.as_deref()).await.unwrap();

    // A certificate of the right CA that maps to no identity, without a
    // token: UNAUTHENTICATED; health stays open to it, reflection not.
    let stranger = tls_client(&s, &st.ca.pem, Some(&st.ca.client("stranger"))).await;
    let e = list(&stranger, None).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert_eq!(error_info(&e).reason, "UNAUTHENTICATED");
    let mut health = tonic_health::pb::health_client::HealthClient::new(stranger.channel());
    let h = health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        h.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    // Bad tokens: a valid prefix with a wrong tail, another scheme, an
    // oversized value; each UNAUTHENTICATED, and the message never echoes
    // what was sent.
    let wrong_tail = format!("Bearer {}X", &READER_TOKEN[..READER_TOKEN.len() - 1]);
    let huge = format!("Bearer {}", "a".repeat(8000));
    for bad in [
        wrong_tail.as_str(),
        "Basic b3BzOm9wcw==",
        "Bearer",
        huge.as_str(),
    ] {
        let e = list(&stranger, Some(bad)).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{bad:.20}: {e:?}");
        assert!(!e.message().contains("reader-token"), "{}", e.message());
        assert!(!e.message().contains("b3BzOm9wcw"), "{}", e.message());
    }
    // A wrong token is refused even on the admin's certificate.
    let e = list(&admin, Some(&wrong_tail)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);

    admin.undefine_domain(&name).await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn mutual_tls_refuses_the_handshake() {
    let p = prefix();
    let st = setup(&p, true);
    let s = TestServer::start_tls(st.config.clone()).await;
    // First, what works, so the refusals below are about the certificate.
    let good = tls_client(&s, &st.ca.pem, Some(&st.ca.client("ops"))).await;
    list(&good, None).await.unwrap();

    let other = Ca::new("another CA");
    let cases: [(&str, &str, Option<Pair>); 4] = [
        ("no client certificate", &st.ca.pem, None),
        (
            "a certificate of another CA",
            &st.ca.pem,
            Some(other.client("ops")),
        ),
        (
            "an expired certificate",
            &st.ca.pem,
            Some(st.ca.expired_client("ops")),
        ),
        (
            "a client that trusts another CA",
            &other.pem,
            Some(st.ca.client("ops")),
        ),
    ];
    for (what, ca, id) in cases {
        // The handshake fails at connect, or (TLS 1.3: the server checks
        // the client's certificate after the client's Finished) at the
        // first call; either way nothing is served.
        match pki::channel(s.addr, ca, id.as_ref()).await {
            Err(_) => {}
            Ok(ch) => {
                let e = list(&Client::from_channel(ch), None).await.unwrap_err();
                // A transport error, not an answer of the server.
                assert!(
                    matches!(e.code(), Code::Unknown | Code::Unavailable),
                    "{what}: {e:?}"
                );
                assert!(e.metadata().get("grpc-status").is_none(), "{what}: {e:?}");
            }
        }
    }
    // Plain text to a TLS port is not served either.
    let plain = Client::connect(format!("http://{}", s.addr)).await;
    if let Ok(c) = plain {
        assert!(list(&c, None).await.is_err());
    }
    s.stop().await;
}

#[tokio::test]
async fn tls_with_tokens_only() {
    let p = prefix();
    let _c = Cleanup::new("test:///default", &p);
    let st = setup(&p, false);
    let s = TestServer::start_tls(st.config.clone()).await;
    let c = tls_client(&s, &st.ca.pem, None).await;
    // No token: UNAUTHENTICATED, and no domain is listed.
    let e = list(&c, None).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert!(e.message().contains("Bearer"), "{}", e.message());
    // Reflection is closed without identity, open with a reader token.
    assert!(reflection_refused(&c, None).await);
    assert!(!reflection_refused(&c, Some(&bearer(READER_TOKEN))).await);
    // A reader lists the built-in domain, and cannot stop it.
    let reader = bearer(READER_TOKEN);
    assert!(list(&c, Some(&reader)).await.unwrap() >= 1);
    let e = stop(&c, "test", Some(&reader)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let op = bearer(OPERATOR_TOKEN);
    // An operator defines one of its own (the built-in domain is left
    // alone: other tests use it).
    let name = format!("{p}tok");
    let d = c
        .domains()
        .define_domain(with_auth(
            v1::DefineDomainRequest {
                host: String::new(),
                source: Some(v1::define_domain_request::Source::Spec(small_spec(&name))),
                ..Default::default()
            },
            Some(&op),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.domain.unwrap().name, name);
    // Below admin, XML that reaches past libvirt's model is refused before
    // libvirt sees it: the QEMU command-line passthrough namespace.
    let raw = format!(
        "<domain type='test' xmlns:q='http://libvirt.org/schemas/domain/qemu/1.0'><name>{p}qemu</name><memory>131072</memory><os><type>hvm</type></os><q:commandline><q:arg value='-D'/><q:arg value='/etc/evil'/></q:commandline></domain>"
    );
    let e = c
        .domains()
        .define_domain(with_auth(
            v1::DefineDomainRequest {
                source: Some(v1::define_domain_request::Source::Xml(raw)),
                ..Default::default()
            },
            Some(&op),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert_eq!(error_info(&e).reason, "ADMIN_ONLY_XML");
    c.domains()
        .undefine_domain(with_auth(
            v1::UndefineDomainRequest {
                domain: domain_ref("", &name),
                ..Default::default()
            },
            Some(&op),
        ))
        .await
        .unwrap();
    s.stop().await;
}

/// Whether a reflection call with `auth` is refused with UNAUTHENTICATED.
async fn reflection_refused(c: &Client, auth: Option<&str>) -> bool {
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, ServerReflectionRequest,
    };
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let r = ServerReflectionClient::new(c.channel())
        .server_reflection_info(with_auth(futures::stream::iter([req]), auth))
        .await;
    match r {
        Err(e) => e.code() == Code::Unauthenticated,
        Ok(mut s) => {
            // Served: the first answer lists the services.
            let first = s.get_mut().message().await.unwrap();
            assert!(first.is_some());
            false
        }
    }
}

#[tokio::test]
async fn plain_text_is_refused_beyond_loopback() {
    for listen in ["0.0.0.0:50051", "[::]:50051", "192.0.2.1:50051"] {
        let c = Config {
            listen: libvirt_grpc_server::config::Listen::parse(listen).unwrap(),
            ..Config::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("[tls]") && e.contains("loopback"),
            "{listen}: {e}"
        );
    }
    // TLS without auth is refused too: every caller would be admin.
    let st = setup(&prefix(), false);
    let c = Config {
        listen: libvirt_grpc_server::config::Listen::parse("0.0.0.0:50051").unwrap(),
        auth: None,
        ..st.config.clone()
    };
    assert!(c.validate().unwrap_err().to_string().contains("[auth]"));
    let ok = Config {
        listen: libvirt_grpc_server::config::Listen::parse("0.0.0.0:50051").unwrap(),
        ..st.config
    };
    ok.validate().unwrap();
}

#[tokio::test]
async fn unix_socket_is_owner_only_and_served() {
    use libvirt_grpc_server::{server::Listener, transport::accept::bind_unix};
    use std::os::unix::fs::PermissionsExt;
    let p = prefix();
    let dir = std::env::temp_dir().join(format!("{p}sock"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("grpc.sock");
    let listener = bind_unix(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode {mode:o}");
    // A second server on the same live socket is refused, the socket kept.
    assert!(bind_unix(&path).is_err());
    let config = Config::default();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        libvirt_grpc_server::server::serve(&config, Listener::Unix(listener), async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    let connect_to = path.clone();
    let channel = tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let p = connect_to.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(p).await?,
                ))
            }
        }))
        .await
        .unwrap();
    // Without [auth] the caller on the socket is admin: it may define.
    let c = Client::from_channel(channel);
    let _cleanup = Cleanup::new("test:///default", &p);
    let name = format!("{p}unix");
    c.define_domain(small_spec(&name)).await.unwrap();
    c.undefine_domain(&name).await.unwrap();
    let _ = tx.send(());
    server.await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
