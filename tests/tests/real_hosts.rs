//! Many hosts: the machine's libvirtd (`real`) and a libvirtd "host in a
//! box" (`b0`, `scripts/libvirtd-box.sh`) behind one server. A box that
//! goes down answers UNAVAILABLE while the other host is unaffected; when
//! it comes back its events resume and what changed meanwhile is
//! reconciled.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use libvirt_grpc_server::config::HostConfig;
use libvirt_grpc_tests::{
    boxes::LibvirtBox, prefix, real_enabled, v1, wait_until, Cleanup, TestServer, REAL_URI,
};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
use v1::{watch_events_response::Item, DomainLifecycleEvent as L, EventKind};

/// One call's bound: "at once" for an answer of a host that is down.
const AT_ONCE: Duration = Duration::from_secs(3);

async fn next(st: &mut tonic::codec::Streaming<v1::WatchEventsResponse>) -> Item {
    match tokio::time::timeout(Duration::from_secs(60), st.next()).await {
        Ok(Some(Ok(m))) => m.item.unwrap(),
        other => panic!("no event within 60 s: {other:?}"),
    }
}

/// Creates a tiny transient guest `name` on `host` (running, named after
/// that host) and waits for its Started event, which must name that host.
async fn create_and_see_started(s: &TestServer, host: &str, name: &str) {
    let mut st = s
        .client
        .events()
        .watch_events(v1::WatchEventsRequest {
            hosts: vec![host.into()],
            names: vec![name.into()],
            kinds: vec![EventKind::Lifecycle as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let d = s
        .client
        .domains()
        .create_domain(v1::CreateDomainRequest {
            host: host.into(),
            source: Some(v1::create_domain_request::Source::Xml(format!(
                "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>\
                 <vcpu>1</vcpu><os><type>hvm</type></os><devices/></domain>"
            ))),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert_eq!(
        (d.host.as_str(), d.state()),
        (host, v1::DomainState::Running)
    );
    loop {
        if let Item::Event(e) = next(&mut st).await {
            if let Some(v1::event::Details::Lifecycle(l)) = &e.details {
                if l.event() == L::Started {
                    assert_eq!(e.host, host);
                    break;
                }
            }
        }
    }
}

#[tokio::test]
async fn a_box_down_and_back() {
    if !real_enabled() {
        return;
    }
    let p = prefix();
    let b = LibvirtBox::start(&format!("{p}b0"));
    let s = TestServer::start(vec![
        HostConfig::new("real", REAL_URI),
        HostConfig::new("b0", &b.uri),
    ])
    .await;
    let mut c = Cleanup::new(&b.uri, &p);
    let _c_real = Cleanup::new(REAL_URI, &p);
    let health = HealthClient::new(s.client.channel());
    let status = |host: &str| {
        let mut health = health.clone();
        let service = format!("libvirt_grpc.host.{host}");
        async move {
            health
                .check(HealthCheckRequest { service })
                .await
                .ok()
                .map(|r| r.into_inner().status)
        }
    };
    wait_until(Duration::from_secs(20), "both hosts serving", || async {
        (status("real").await == Some(1) && status("b0").await == Some(1)).then_some(())
    })
    .await;
    let mut events = s
        .client
        .events()
        .watch_events(v1::WatchEventsRequest::default())
        .await
        .unwrap()
        .into_inner();

    // A running guest on the box (diskless, SeaBIOS).
    let name = format!("{p}g");
    let console = format!("/tmp/{name}-console.log");
    c.file(&console);
    s.client
        .domains()
        .create_domain(v1::CreateDomainRequest {
            host: "b0".into(),
            source: Some(v1::create_domain_request::Source::Xml(
                libvirt_grpc_tests::guest::xml(&name, &console),
            )),
            ..Default::default()
        })
        .await
        .unwrap();

    // The box's daemon dies (its guest lives on): the server sees it, the
    // box's calls are UNAVAILABLE at once, the other host is unaffected.
    b.kill();
    loop {
        if let Item::Event(e) = next(&mut events).await {
            if e.kind() == EventKind::HostDisconnected && e.host == "b0" {
                break;
            }
        }
    }
    let get = |host: &'static str, n: String| {
        let mut dom = s.client.domains();
        async move {
            let r = dom.get_domain(v1::GetDomainRequest {
                domain: libvirt_grpc_tests::domain_ref(host, &n),
                ..Default::default()
            });
            tokio::time::timeout(AT_ONCE, r)
                .await
                .unwrap_or_else(|_| panic!("a call to {host} took longer than {AT_ONCE:?}"))
        }
    };
    assert_eq!(
        get("b0", name.clone()).await.unwrap_err().code(),
        Code::Unavailable
    );
    // `real` answers (NOT_FOUND: no such domain there), and lists at once.
    assert_eq!(
        get("real", name.clone()).await.unwrap_err().code(),
        Code::NotFound
    );
    let listed = tokio::time::timeout(
        AT_ONCE,
        s.client.domains().list_domains(v1::ListDomainsRequest {
            host: "real".into(),
            ..Default::default()
        }),
    )
    .await
    .expect("a listing of real took longer than AT_ONCE");
    assert!(listed.is_ok(), "{listed:?}");
    wait_until(
        Duration::from_secs(20),
        "b0 reported not serving",
        || async { (status("b0").await == Some(2)).then_some(()) },
    )
    .await;
    assert_eq!(status("real").await, Some(1));

    // While the daemon is away the guest ends too: its QEMU is killed.
    let qemu_pid = b.state_dir().join(format!("run/qemu/{name}.pid"));
    let pid: i32 = std::fs::read_to_string(&qemu_pid)
        .unwrap_or_else(|e| panic!("{}: {e}", qemu_pid.display()))
        .trim()
        .parse()
        .unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert!(
        comm.starts_with("qemu"),
        "pid {pid} is {comm:?}, not the guest's QEMU"
    );
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();

    // Back: reconnected, the guest's end reconciled, health serving again.
    b.restart();
    let (mut reconciled_stop, mut reconnected) = (false, false);
    while !(reconciled_stop && reconnected) {
        if let Item::Event(e) = next(&mut events).await {
            if e.host != "b0" {
                continue;
            }
            match (e.kind(), &e.details) {
                (EventKind::HostReconnected, _) => reconnected = true,
                (_, Some(v1::event::Details::Lifecycle(l))) if e.name == name && e.reconciled => {
                    // A transient guest that ended is gone: a reconciled stop
                    // or undefine, whichever libvirt's view gives.
                    assert!(matches!(l.event(), L::Stopped | L::Undefined), "{e:?}");
                    reconciled_stop = true;
                }
                _ => {}
            }
        }
    }
    wait_until(Duration::from_secs(20), "b0 serving again", || async {
        (status("b0").await == Some(1)).then_some(())
    })
    .await;
    // Events flow again from the box.
    let again = format!("{p}again");
    s.client
        .domains()
        .define_domain(v1::DefineDomainRequest {
            host: "b0".into(),
            source: Some(v1::define_domain_request::Source::Spec(v1::DomainSpec {
                domain_type: "qemu".into(),
                arch: "x86_64".into(),
                ..libvirt_grpc_tests::small_spec(&again)
            })),
            ..Default::default()
        })
        .await
        .unwrap();
    loop {
        if let Item::Event(e) = next(&mut events).await {
            if e.host == "b0" && e.name == again {
                assert!(!e.reconciled);
                break;
            }
        }
    }
}

/// A host reached over libvirt's TLS transport (`qemu+tls://`, client
/// certificate from `?pkipath=`): served like any other, its events on the
/// stream; the same daemon reached by a client that trusts another CA is
/// NOT_SERVING and its calls answer UNAVAILABLE with the TLS failure.
#[tokio::test]
async fn a_host_over_qemu_tls() {
    use libvirt_grpc_tests::pki::{Ca, Pki};
    if !real_enabled() {
        return;
    }
    let p = prefix();
    let ca = Ca::new("lvg box CA");
    let server_pki = Pki::new(&format!("{p}srv"));
    let server = ca.server();
    server_pki.write("cacert.pem", &ca.pem);
    server_pki.write("servercert.pem", &server.cert);
    server_pki.write("serverkey.pem", &server.key);
    // libvirt's client reads cacert.pem, clientcert.pem and clientkey.pem
    // from `pkipath`.
    let client_pki = Pki::new(&format!("{p}cli"));
    let client = ca.client("libvirt-grpc");
    client_pki.write("cacert.pem", &ca.pem);
    client_pki.write("clientcert.pem", &client.cert);
    client_pki.write("clientkey.pem", &client.key);
    let other = Ca::new("another CA");
    let stranger_pki = Pki::new(&format!("{p}str"));
    let stranger = other.client("libvirt-grpc");
    // It trusts only its own CA, which did not sign the daemon's
    // certificate: the handshake fails on the daemon's certificate.
    stranger_pki.write("cacert.pem", &other.pem);
    stranger_pki.write("clientcert.pem", &stranger.cert);
    stranger_pki.write("clientkey.pem", &stranger.key);

    let b = LibvirtBox::start_tls(&format!("{p}tls"), &server_pki.dir);
    let tls = b.tls_uri.clone().expect("a TLS box");
    let uri = format!("{tls}?pkipath={}", client_pki.dir.display());
    let bad_uri = format!("{tls}?pkipath={}", stranger_pki.dir.display());
    let s = TestServer::start(vec![
        HostConfig::new("t0", &uri),
        HostConfig::new("bad", &bad_uri),
    ])
    .await;
    let _c = Cleanup::new(&b.uri, &p);

    let name = format!("{p}overtls");
    create_and_see_started(&s, "t0", &name).await;
    let hosts = s
        .client
        .hosts()
        .list_hosts(v1::ListHostsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .hosts;
    let t0 = hosts.iter().find(|h| h.name == "t0").unwrap();
    assert_eq!(t0.health(), v1::HostHealth::Serving, "{t0:?}");

    let e = s
        .client
        .domains()
        .list_domains(v1::ListDomainsRequest {
            host: "bad".into(),
            ..Default::default()
        })
        .await
        .expect_err("a daemon certificate of an unknown CA is refused");
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    let hosts = s
        .client
        .hosts()
        .list_hosts(v1::ListHostsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .hosts;
    let bad = hosts.iter().find(|h| h.name == "bad").unwrap();
    assert_eq!(bad.health(), v1::HostHealth::NotServing, "{bad:?}");
    assert!(bad.last_error.contains("certificate"), "{bad:?}");
    s.stop().await;
}

/// A host reached over libvirt's ssh transport (`qemu+ssh://`): the
/// machine's libvirtd through an sshd of the test's own on loopback, the
/// daemon's host key checked against a per-run known_hosts. It serves
/// reads, calls that change things and events like any other host; when
/// the sshd and every session under it are killed, the host is NOT_SERVING
/// and its calls UNAVAILABLE, while a host on the same daemon reached
/// directly answers.
#[tokio::test]
async fn a_host_over_qemu_ssh() {
    use libvirt_grpc_tests::sshd::Sshd;
    if !real_enabled() {
        return;
    }
    let p = prefix();
    let mut sshd = Sshd::start(&p);
    let uri = sshd.uri("system");
    let s = TestServer::start(vec![
        HostConfig::new("ssh", &uri),
        HostConfig::new("real", REAL_URI),
    ])
    .await;
    let _c = Cleanup::new(REAL_URI, &p);
    let health = HealthClient::new(s.client.channel());
    let status = |host: &str| {
        let mut health = health.clone();
        let service = format!("libvirt_grpc.host.{host}");
        async move {
            health
                .check(HealthCheckRequest { service })
                .await
                .ok()
                .map(|r| r.into_inner().status)
        }
    };
    let host_info = |host: &'static str| {
        let mut hosts = s.client.hosts();
        async move {
            hosts
                .get_host_info(v1::GetHostInfoRequest { host: host.into() })
                .await
                .map(|r| r.into_inner())
        }
    };

    // A read: the daemon behind ssh is this machine's.
    let over_ssh = host_info("ssh")
        .await
        .unwrap_or_else(|e| panic!("GetHostInfo over ssh: {e:?}\nsshd: {}", sshd.log()));
    let direct = host_info("real").await.unwrap();
    assert_eq!(
        (
            over_ssh.hostname.as_str(),
            over_ssh.hypervisor_type.as_str()
        ),
        (direct.hostname.as_str(), "QEMU"),
        "{over_ssh:?}"
    );
    wait_until(Duration::from_secs(20), "ssh serving", || async {
        (status("ssh").await == Some(1)).then_some(())
    })
    .await;
    let hosts = s
        .client
        .hosts()
        .list_hosts(v1::ListHostsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .hosts;
    let h = hosts.iter().find(|h| h.name == "ssh").unwrap();
    assert_eq!(
        (h.health(), h.uri.as_str()),
        (v1::HostHealth::Serving, uri.as_str()),
        "{h:?}"
    );

    // A guest created through ssh; its start is an event of the ssh host.
    let name = format!("{p}overssh");
    create_and_see_started(&s, "ssh", &name).await;
    let listed = s
        .client
        .domains()
        .list_domains(v1::ListDomainsRequest {
            host: "ssh".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.domains.iter().any(|x| x.name == name),
        "{name} not listed over ssh"
    );

    // The sshd and its sessions die: the ssh host goes down, `real` (the
    // same daemon, reached directly) is unaffected.
    sshd.kill();
    wait_until(
        Duration::from_secs(20),
        "ssh reported not serving",
        || async { (status("ssh").await == Some(2)).then_some(()) },
    )
    .await;
    let list = |host: &'static str| {
        let mut dom = s.client.domains();
        async move {
            let r = dom.list_domains(v1::ListDomainsRequest {
                host: host.into(),
                ..Default::default()
            });
            tokio::time::timeout(AT_ONCE, r)
                .await
                .unwrap_or_else(|_| panic!("a listing of {host} took longer than {AT_ONCE:?}"))
        }
    };
    let e = list("ssh").await.expect_err("the ssh host is down");
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    let real = list("real").await.unwrap().into_inner();
    assert!(real.domains.iter().any(|x| x.name == name), "{real:?}");
    assert_eq!(status("real").await, Some(1));
    let hosts = s
        .client
        .hosts()
        .list_hosts(v1::ListHostsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .hosts;
    let h = hosts.iter().find(|h| h.name == "ssh").unwrap();
    assert_eq!(h.health(), v1::HostHealth::NotServing, "{h:?}");
    s.stop().await;
}

/// Sends SIGCONT to a daemon this test froze, also when the test fails.
struct Thaw(i32);

impl Drop for Thaw {
    fn drop(&mut self) {
        // A signal to the pid the box script checked, nothing else.
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

/// A box whose daemon is frozen (SIGSTOP: its socket stays open, nothing
/// answers) is found dead by libvirt's keepalive, which the server's own
/// event loop drives with its timers: HOST_DISCONNECTED comes after the
/// keepalive's interval has passed unanswered, not before, and once the
/// daemon runs again the host is reconnected.
#[tokio::test]
async fn a_frozen_box_is_found_by_the_keepalive() {
    if !real_enabled() {
        return;
    }
    let p = prefix();
    let b = LibvirtBox::start(&format!("{p}fz"));
    let s = TestServer::start(vec![HostConfig::new("fz", &b.uri)]).await;
    let mut events = s
        .client
        .events()
        .watch_events(v1::WatchEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(next(&mut events).await, Item::Started(_)));
    let pid = b.pid();
    let frozen = std::time::Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "SIGSTOP to the box's daemon {pid}");
    let thaw = Thaw(pid);
    let reason = loop {
        if let Item::Event(e) = next(&mut events).await {
            if e.kind() == EventKind::HostDisconnected && e.host == "fz" {
                match e.details {
                    Some(v1::event::Details::HostDetails(h)) => break h.disconnect_reason(),
                    other => panic!("host event without host details: {other:?}"),
                }
            }
        }
    };
    let after = frozen.elapsed();
    assert!(
        matches!(
            reason,
            v1::HostDisconnectReason::Keepalive | v1::HostDisconnectReason::NotAlive
        ),
        "reason {reason:?}"
    );
    // The keepalive pings after 5 s of silence and gives up after three
    // more unanswered intervals.
    assert!(
        after >= Duration::from_secs(5),
        "found dead after {after:?}"
    );
    drop(thaw);
    loop {
        if let Item::Event(e) = next(&mut events).await {
            if e.kind() == EventKind::HostReconnected && e.host == "fz" {
                break;
            }
        }
    }
    let listed = s
        .client
        .domains()
        .list_domains(v1::ListDomainsRequest {
            host: "fz".into(),
            ..Default::default()
        })
        .await;
    assert!(listed.is_ok(), "the thawed host answers: {listed:?}");
}
