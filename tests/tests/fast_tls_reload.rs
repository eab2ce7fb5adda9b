//! The real binary with TLS and tokens: a certificate reload on SIGHUP
//! takes effect for new connections while an open event stream stays
//! open, and every change is logged once with caller, method, host and
//! target, without the token.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use libvirt_grpc_tests::{
    daemon::Daemon,
    pki::{self, Ca, Pki},
    prefix, small_spec, v1, Client,
};
use sha2::Digest;
use tonic::metadata::MetadataValue;

const TOKEN: &str = "reload-test-admin-token-5f1e0c";

fn authed<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {TOKEN}")).unwrap(),
    );
    r
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_open_streams_stay() {
    let p = prefix();
    let files = Pki::new(&p);
    let (ca1, ca2) = (Ca::new("first CA"), Ca::new("second CA"));
    let first = ca1.server();
    let cert = files.write("server.pem", &first.cert);
    let key = files.write("server.key", &first.key);
    let config = format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n[[auth.tokens]]\nname = \"reload-admin\"\nrole = \"admin\"\nsha256 = \"{}\"\n",
        cert.display(),
        key.display(),
        hex::encode(sha2::Sha256::digest(TOKEN.as_bytes()))
    );
    let d = Daemon::start(&config, &[]);
    let old = Client::from_channel(pki::channel(d.addr, &ca1.pem, None).await.unwrap());

    // An event stream opened before the reload.
    let mut stream = old
        .events()
        .watch_events(authed(v1::WatchEventsRequest {
            names: vec![format!("{p}vm")],
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let started = stream.message().await.unwrap().unwrap();
    assert!(matches!(
        started.item,
        Some(v1::watch_events_response::Item::Started(_))
    ));

    // New certificate (of another CA) in place, then SIGHUP.
    let second = ca2.server();
    files.write("server.key", &second.key);
    files.write("server.pem", &second.cert);
    d.hangup();
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    let new = loop {
        if let Ok(ch) = pki::channel(d.addr, &ca2.pem, None).await {
            let c = Client::from_channel(ch);
            if c.domains()
                .list_domains(authed(v1::ListDomainsRequest::default()))
                .await
                .is_ok()
            {
                break c;
            }
        }
        assert!(
            tokio::time::Instant::now() < end,
            "the reloaded certificate was not served within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(d.logged("TLS certificate and key reloaded"));
    // A new connection that trusts only the first CA is refused now.
    let stale = match pki::channel(d.addr, &ca1.pem, None).await {
        Err(_) => true,
        Ok(ch) => Client::from_channel(ch)
            .domains()
            .list_domains(authed(v1::ListDomainsRequest::default()))
            .await
            .is_err(),
    };
    assert!(
        stale,
        "the old certificate is still served to new connections"
    );

    // A change through the new connection reaches the stream opened
    // before the reload, and its old connection still answers calls.
    let name = format!("{p}vm");
    new.domains()
        .define_domain(authed(v1::DefineDomainRequest {
            source: Some(v1::define_domain_request::Source::Spec(small_spec(&name))),
            ..Default::default()
        }))
        .await
        .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("no event on the old stream within 10 s")
        .unwrap()
        .expect("the old stream ended");
    match ev.item {
        Some(v1::watch_events_response::Item::Event(e)) => assert_eq!(e.name, name),
        other => panic!("expected the define event, got {other:?}"),
    }
    old.domains()
        .get_domain(authed(v1::GetDomainRequest {
            domain: libvirt_grpc_tests::domain_ref("", &name),
            ..Default::default()
        }))
        .await
        .unwrap();
    new.domains()
        .undefine_domain(authed(v1::UndefineDomainRequest {
            domain: libvirt_grpc_tests::domain_ref("", &name),
            ..Default::default()
        }))
        .await
        .unwrap();

    // One audit line per change, naming caller, method, host and target;
    // reads get none; the token appears nowhere in the log. (The child's
    // output is read by a thread of its own: wait for the last line.)
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    while !d.logged("DomainService/UndefineDomain") {
        assert!(
            tokio::time::Instant::now() < end,
            "no audit line for UndefineDomain"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines = d.lines();
    let audit: Vec<_> = lines.iter().filter(|l| l.contains(" audit:")).collect();
    let defines: Vec<_> = audit
        .iter()
        .filter(|l| l.contains("DomainService/DefineDomain"))
        .collect();
    assert_eq!(defines.len(), 1, "{audit:#?}");
    assert!(defines[0].contains("caller=reload-admin"), "{}", defines[0]);
    assert!(defines[0].contains("host=default"), "{}", defines[0]);
    assert!(defines[0].contains(&name), "{}", defines[0]);
    let undefines: Vec<_> = audit
        .iter()
        .filter(|l| l.contains("DomainService/UndefineDomain"))
        .collect();
    assert_eq!(undefines.len(), 1, "{audit:#?}");
    assert!(undefines[0].contains(&name), "{}", undefines[0]);
    assert!(
        !audit
            .iter()
            .any(|l| l.contains("ListDomains") || l.contains("GetDomain")),
        "{audit:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains(TOKEN)),
        "the token was logged"
    );
}

#[tokio::test]
async fn sighup_without_tls_is_logged_not_fatal() {
    let mut d = Daemon::start("", &[]);
    d.hangup();
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    while !d.logged("SIGHUP: no [tls], nothing to reload") {
        assert!(
            tokio::time::Instant::now() < end,
            "no log line for the SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        d.wait_exit(Duration::from_millis(200)).await.is_none(),
        "SIGHUP ended the server"
    );
    let c = Client::connect(d.url()).await.unwrap();
    assert!(!c.list_domains().await.unwrap().is_empty());
}
