//! NetworkService against a real libvirtd: a NAT network with its own bridge
//! and DHCP, defined, started, updated live and in its config, stopped and
//! undefined. Runs only with LIBVIRT_GRPC_REAL=1.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use libvirt_grpc_tests::{code_of, prefix, real_enabled, v1, Cleanup, TestServer, REAL_URI};
use tonic::Code;
use v1::{
    define_network_request::Source, update_network_request::Item, DhcpHost, DhcpRange,
    NetworkForwardMode, NetworkSpec,
};

fn net(name: &str) -> Option<v1::NetworkRef> {
    libvirt_grpc_tests::network_ref("real", name)
}

#[tokio::test]
async fn nat_network_lifecycle_with_dhcp_update() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let _c = Cleanup::new(REAL_URI, &p);
    let name = format!("{p}net");
    // A subnet and bridge per process, so parallel runs do not collide.
    let octet = 100 + std::process::id() % 100;
    let bridge = format!("lvgb{}", std::process::id() % 100_000);
    let mut nw = s.client.networks();
    let n = nw
        .define_network(s.client.request(v1::DefineNetworkRequest {
            host: "real".into(),
            source: Some(Source::Spec(NetworkSpec {
                name: name.clone(),
                bridge: bridge.clone(),
                forward_mode: NetworkForwardMode::Nat as i32,
                ip_address: format!("10.231.{octet}.1"),
                prefix: 24,
                dhcp_range: Some(DhcpRange {
                    start: format!("10.231.{octet}.100"),
                    end: format!("10.231.{octet}.150"),
                }),
                dhcp_hosts: vec![DhcpHost {
                    mac: "52:54:00:bb:00:01".into(),
                    name: "first".into(),
                    ip: format!("10.231.{octet}.10"),
                }],
            })),
            start: true,
            autostart: false,
        }))
        .await
        .unwrap()
        .into_inner()
        .network
        .unwrap();
    assert!(n.active && n.persistent);
    assert_eq!(n.bridge, bridge);
    assert_eq!(n.forward_mode(), NetworkForwardMode::Nat);
    let sys_bridge = format!("/sys/class/net/{bridge}");
    assert!(
        Path::new(&sys_bridge).exists(),
        "no bridge {bridge} on the host"
    );

    let updated = nw
        .update_network(s.client.request(v1::UpdateNetworkRequest {
            network: net(&name),
            command: v1::NetworkUpdateCommand::AddLast as i32,
            section: v1::NetworkSection::IpDhcpHost as i32,
            parent_index: -1,
            item: Some(Item::DhcpHost(DhcpHost {
                mac: "52:54:00:bb:00:02".into(),
                name: "second".into(),
                ip: format!("10.231.{octet}.11"),
            })),
            scope: Some(v1::ModifyScope {
                live: true,
                config: true,
            }),
        }))
        .await
        .unwrap()
        .into_inner()
        .network
        .unwrap();
    assert!(updated.active && updated.name == name);
    // No scope: the current definition, which of a running network is the
    // live one only.
    nw.update_network(s.client.request(v1::UpdateNetworkRequest {
        network: net(&name),
        command: v1::NetworkUpdateCommand::AddLast as i32,
        item: Some(Item::DhcpHost(DhcpHost {
            mac: "52:54:00:bb:00:03".into(),
            name: "third".into(),
            ip: format!("10.231.{octet}.12"),
        })),
        ..Default::default()
    }))
    .await
    .unwrap();
    for (inactive, want) in [(false, true), (true, false)] {
        let xml = nw
            .get_network_xml(s.client.request(v1::GetNetworkXmlRequest {
                network: net(&name),
                inactive,
            }))
            .await
            .unwrap()
            .into_inner()
            .xml;
        assert_eq!(
            xml.contains("52:54:00:bb:00:03"),
            want,
            "inactive={inactive}: {xml}"
        );
    }
    for inactive in [false, true] {
        let xml = nw
            .get_network_xml(s.client.request(v1::GetNetworkXmlRequest {
                network: net(&name),
                inactive,
            }))
            .await
            .unwrap()
            .into_inner()
            .xml;
        assert!(
            xml.contains("52:54:00:bb:00:02"),
            "inactive={inactive}: {xml}"
        );
    }
    // dnsmasq's host file follows the live update.
    let hosts = std::fs::read_to_string(format!("/var/lib/libvirt/dnsmasq/{name}.hostsfile"))
        .unwrap_or_default();
    assert!(hosts.contains("52:54:00:bb:00:02"), "{hosts}");

    // Deleting a reservation that is not there is refused.
    let missing = nw
        .update_network(s.client.request(v1::UpdateNetworkRequest {
            network: net(&name),
            command: v1::NetworkUpdateCommand::Delete as i32,
            parent_index: -1,
            item: Some(Item::DhcpHost(DhcpHost {
                mac: "52:54:00:bb:00:99".into(),
                name: String::new(),
                ip: format!("10.231.{octet}.99"),
            })),
            ..Default::default()
        }))
        .await;
    assert_ne!(code_of(missing), Code::Ok);

    // No guest has asked for an address: an empty list, not an error.
    let leases = nw
        .get_network_dhcp_leases(s.client.request(v1::GetNetworkDhcpLeasesRequest {
            network: net(&name),
            mac: String::new(),
        }))
        .await
        .unwrap()
        .into_inner()
        .leases;
    assert!(leases.is_empty(), "{leases:?}");

    let stopped = nw
        .stop_network(s.client.request(v1::StopNetworkRequest {
            network: net(&name),
        }))
        .await
        .unwrap()
        .into_inner()
        .network
        .unwrap();
    assert!(!stopped.active);
    // Stopping it again is a state conflict.
    let again = nw
        .stop_network(s.client.request(v1::StopNetworkRequest {
            network: net(&name),
        }))
        .await;
    assert_eq!(code_of(again), Code::FailedPrecondition);
    assert!(
        !Path::new(&sys_bridge).exists(),
        "bridge {bridge} left behind"
    );
    nw.undefine_network(s.client.request(v1::UndefineNetworkRequest {
        network: net(&name),
    }))
    .await
    .unwrap();
    let gone = nw
        .get_network(s.client.request(v1::GetNetworkRequest {
            network: net(&name),
        }))
        .await;
    assert_eq!(code_of(gone), Code::NotFound);
}
