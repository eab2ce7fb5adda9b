//! HostService, health, deadlines, unreachable hosts and graceful shutdown,
//! against the in-process test driver and against hosts that cannot answer.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use libvirt_grpc_server::config::HostConfig;
use libvirt_grpc_tests::{code_of, v1, TestServer};
use tonic::Code;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

#[tokio::test]
async fn host_info_and_capabilities() {
    let s = TestServer::test_driver().await;
    let mut h = s.client.hosts();
    let hosts = h
        .list_hosts(v1::ListHostsRequest {})
        .await
        .unwrap()
        .into_inner()
        .hosts;
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].name, "default");
    assert_eq!(hosts[0].uri, "test:///default");
    assert!(hosts[0].is_default);

    let info = h
        .get_host_info(v1::GetHostInfoRequest {
            host: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.host, "default");
    assert_eq!(info.hypervisor_type, "TEST");
    assert!(info
        .libvirt_version
        .starts_with(|c: char| c.is_ascii_digit()));
    let node = info.node.unwrap();
    // The test driver's node: 16 CPUs in 2 NUMA cells of 2 sockets x 2 cores x 2 threads.
    assert_eq!(node.cpus, 16);
    assert_eq!(node.numa_nodes, 2);
    assert_eq!(
        node.sockets * node.cores * node.threads * node.numa_nodes,
        16
    );
    // Node memory is bytes: libvirt's KiB times 1024.
    let nodeinfo = libvirt_grpc_tests::virsh_on("test:///default", &["nodeinfo"]);
    let kib: u64 = nodeinfo
        .lines()
        .find_map(|l| l.strip_prefix("Memory size:"))
        .and_then(|v| v.trim().trim_end_matches("KiB").trim().parse().ok())
        .unwrap();
    assert_eq!(node.memory_bytes, kib * 1024);
    assert_eq!(info.free_memory_per_cell_bytes.len(), 2);
    assert!(info.max_vcpus > 0);

    let caps = h
        .get_host_capabilities(v1::GetHostCapabilitiesRequest {
            host: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .xml;
    assert!(caps.contains("<capabilities>"), "{caps}");
    // The test driver has no domain capabilities: UNIMPLEMENTED, not a fake.
    let r = h
        .get_domain_capabilities(v1::GetDomainCapabilitiesRequest::default())
        .await;
    assert_eq!(code_of(r), Code::Unimplemented);

    let r = h
        .get_host_info(v1::GetHostInfoRequest {
            host: "nope".into(),
        })
        .await;
    assert_eq!(code_of(r), Code::NotFound);

    // Several bad fields: one BadRequest names them all.
    let e = h
        .get_domain_capabilities(v1::GetDomainCapabilitiesRequest {
            host: "nope".into(),
            emulator: "qemu-system-x86_64".into(),
            arch: "x86\0".into(),
            machine: "q35\0".into(),
            virt_type: "kvm\0".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(
        libvirt_grpc_tests::bad_fields(&e),
        ["emulator", "arch", "machine", "virt_type"]
    );
}

#[tokio::test]
async fn health_is_reported_per_host() {
    let s = TestServer::start(vec![
        HostConfig::new("default", "test:///default"),
        // Nothing listens on port 1 of loopback: connection refused.
        HostConfig::new("down", "qemu+tcp://127.0.0.1:1/system"),
    ])
    .await;
    let mut health = HealthClient::new(s.client.channel());
    let status = |svc: &str| {
        let mut health = health.clone();
        let svc = svc.to_owned();
        async move {
            health
                .check(HealthCheckRequest { service: svc })
                .await
                .map(|r| r.into_inner().status)
        }
    };
    libvirt_grpc_tests::wait_until(Duration::from_secs(10), "both hosts probed", || async {
        let up = status("libvirt_grpc.host.default").await.ok()?;
        let down = status("libvirt_grpc.host.down").await.ok()?;
        (up == 1 && down == 2).then_some(())
    })
    .await;
    let overall = health
        .check(HealthCheckRequest {
            service: "libvirt_grpc.v1.DomainService".into(),
        })
        .await
        .unwrap();
    assert_eq!(overall.into_inner().status, 1);

    let hosts = s
        .client
        .hosts()
        .list_hosts(v1::ListHostsRequest {})
        .await
        .unwrap()
        .into_inner()
        .hosts;
    let up = hosts.iter().find(|h| h.name == "default").unwrap();
    assert_eq!(up.health(), v1::HostHealth::Serving);
    assert!(up.last_error.is_empty());
    let down = hosts.iter().find(|h| h.name == "down").unwrap();
    assert_eq!(down.health(), v1::HostHealth::NotServing);
    assert!(!down.last_error.is_empty());
}

#[tokio::test]
async fn unreachable_host_answers_unavailable_quickly() {
    let s = TestServer::start(vec![
        HostConfig::new("default", "test:///default"),
        HostConfig::new("down", "qemu+tcp://127.0.0.1:1/system"),
    ])
    .await;
    let mut dom = s.client.domains();
    for _ in 0..3 {
        let t = Instant::now();
        let r = dom
            .list_domains(v1::ListDomainsRequest {
                host: "down".into(),
                ..Default::default()
            })
            .await;
        let st = r.unwrap_err();
        assert_eq!(st.code(), Code::Unavailable);
        assert!(st.message().contains("down"), "{}", st.message());
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "took {:?}",
            t.elapsed()
        );
    }
    // The default host is unaffected.
    assert!(!s.client.list_domains().await.unwrap().is_empty());
}

#[tokio::test]
async fn deadline_is_honoured_when_libvirt_hangs() {
    // A loopback listener that accepts and never answers: libvirt's
    // connection handshake hangs.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let s = TestServer::start(vec![
        HostConfig::new("default", "test:///default"),
        HostConfig::new(
            "hung",
            format!("qemu+tcp://127.0.0.1:{port}/system?no_verify=1"),
        ),
    ])
    .await;
    let mut dom = s.client.domains();
    let mut req = tonic::Request::new(v1::ListDomainsRequest {
        host: "hung".into(),
        ..Default::default()
    });
    // 2 s: the server answers a tenth before the deadline (200 ms), which
    // leaves the answer room to arrive before the client gives up on its
    // own (CANCELLED) even on a loaded machine.
    req.set_timeout(Duration::from_secs(2));
    let t = Instant::now();
    let r = dom.list_domains(req).await;
    let elapsed = t.elapsed();
    assert_eq!(code_of(r), Code::DeadlineExceeded);
    assert!(
        elapsed < Duration::from_millis(2500),
        "answered after {elapsed:?}"
    );
    // Other hosts keep answering meanwhile.
    assert!(!s.client.list_domains().await.unwrap().is_empty());
    drop(silent);
}

#[tokio::test]
async fn graceful_shutdown_stops_the_server() {
    let s = TestServer::test_driver().await;
    let url = s.url();
    assert!(!s.client.list_domains().await.unwrap().is_empty());
    let epoch = |c: libvirt_grpc_tests::Client| async move {
        c.events()
            .get_event_position(v1::GetEventPositionRequest {})
            .await
            .map(|r| r.into_inner().epoch)
    };
    // Every server has an epoch of its own: what answers on this port
    // later, if anything, is another process's or test's server.
    let ours = epoch(s.client.clone()).await.unwrap();
    s.stop().await;
    if let Ok(c) = libvirt_grpc_tests::Client::connect(url).await {
        let after = epoch(c).await;
        assert!(
            after.as_ref().map_or(true, |e| *e != ours),
            "the stopped server still answers: {after:?}"
        );
    }
}
