//! NetworkService against libvirt's in-process test driver.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use libvirt_grpc_tests::{bad_fields, code_of, prefix, v1, Cleanup, TestServer};
use tonic::Code;
use v1::{
    define_network_request::Source, update_network_request::Item, DhcpHost, DhcpRange,
    NetworkForwardMode, NetworkRef, NetworkSpec,
};

const URI: &str = "test:///default";

fn net(name: &str) -> Option<v1::NetworkRef> {
    libvirt_grpc_tests::network_ref("", name)
}

fn spec(name: &str, third_octet: u8) -> NetworkSpec {
    NetworkSpec {
        name: name.to_owned(),
        bridge: String::new(),
        forward_mode: NetworkForwardMode::Nat as i32,
        ip_address: format!("192.168.{third_octet}.1"),
        prefix: 24,
        dhcp_range: Some(DhcpRange {
            start: format!("192.168.{third_octet}.100"),
            end: format!("192.168.{third_octet}.200"),
        }),
        dhcp_hosts: vec![DhcpHost {
            mac: "52:54:00:aa:00:01".into(),
            name: "first".into(),
            ip: format!("192.168.{third_octet}.10"),
        }],
    }
}

#[tokio::test]
async fn define_start_update_stop_undefine() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}net");
    let mut nw = s.client.networks();
    let n = nw
        .define_network(s.client.request(v1::DefineNetworkRequest {
            source: Some(Source::Spec(NetworkSpec {
                bridge: "lvgt-br201".into(),
                ..spec(&name, 201)
            })),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .network
        .unwrap();
    assert!(n.persistent && !n.active && !n.autostart);
    assert_eq!(n.forward_mode(), NetworkForwardMode::Nat);
    assert!(uuid::Uuid::parse_str(&n.uuid).is_ok());

    // A request without a source is refused before libvirt sees it.
    let empty = nw
        .define_network(s.client.request(v1::DefineNetworkRequest::default()))
        .await;
    assert_eq!(code_of(empty), Code::InvalidArgument);

    let started = nw
        .start_network(s.client.request(v1::StartNetworkRequest {
            network: net(&name),
        }))
        .await
        .unwrap()
        .into_inner()
        .network
        .unwrap();
    assert!(started.active);
    assert_eq!(started.bridge, "lvgt-br201");
    let again = nw
        .start_network(s.client.request(v1::StartNetworkRequest {
            network: net(&name),
        }))
        .await;
    assert_eq!(code_of(again), Code::FailedPrecondition);

    // Listing filters: active and persistent.
    let listed = nw
        .list_networks(s.client.request(v1::ListNetworksRequest {
            run_filter: v1::RunFilter::Active as i32,
            persistence_filter: v1::PersistenceFilter::Persistent as i32,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .networks;
    assert!(listed.iter().any(|x| x.name == name));
    let inactive = nw
        .list_networks(s.client.request(v1::ListNetworksRequest {
            run_filter: v1::RunFilter::Inactive as i32,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .networks;
    assert!(!inactive.iter().any(|x| x.name == name));

    // Add a DHCP host live and in the config; the answer is the network.
    let updated = nw
        .update_network(s.client.request(v1::UpdateNetworkRequest {
            network: net(&name),
            command: v1::NetworkUpdateCommand::AddLast as i32,
            section: 0,
            parent_index: -1,
            item: Some(Item::DhcpHost(DhcpHost {
                mac: "52:54:00:aa:00:02".into(),
                name: "second".into(),
                ip: "192.168.201.11".into(),
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
    assert_eq!(updated.name, name);
    assert!(updated.active);
    let xml = nw
        .get_network_xml(s.client.request(v1::GetNetworkXmlRequest {
            network: net(&name),
            inactive: false,
        }))
        .await
        .unwrap()
        .into_inner()
        .xml;
    assert!(xml.contains("52:54:00:aa:00:02"), "{xml}");
    assert!(xml.contains("52:54:00:aa:00:01"), "{xml}");

    // No scope means the current definition. Section UNSPECIFIED with dhcp_host means IP_DHCP_HOST;
    // parent_index 0 the first <ip>.
    nw.update_network(s.client.request(v1::UpdateNetworkRequest {
        network: net(&name),
        command: v1::NetworkUpdateCommand::AddLast as i32,
        item: Some(Item::DhcpHost(DhcpHost {
            mac: "52:54:00:aa:00:03".into(),
            name: "third".into(),
            ip: "192.168.201.12".into(),
        })),
        ..Default::default()
    }))
    .await
    .unwrap();
    let probe = nw.clone();
    let xml_of = |inactive: bool| {
        let mut nw = probe.clone();
        let req = s.client.request(v1::GetNetworkXmlRequest {
            network: net(&name),
            inactive,
        });
        async move { nw.get_network_xml(req).await.unwrap().into_inner().xml }
    };
    // `inactive` false (the default) reads the live XML.
    assert!(xml_of(false).await.contains("52:54:00:aa:00:03"));
    // The test driver keeps no separate inactive XML: UNIMPLEMENTED.
    let inactive = nw
        .get_network_xml(s.client.request(v1::GetNetworkXmlRequest {
            network: net(&name),
            inactive: true,
        }))
        .await;
    assert_eq!(code_of(inactive), Code::Unimplemented);

    // The test driver has no virNetworkGetDHCPLeases.
    let leases = nw
        .get_network_dhcp_leases(s.client.request(v1::GetNetworkDhcpLeasesRequest {
            network: net(&name),
            mac: String::new(),
        }))
        .await;
    assert_eq!(code_of(leases), Code::Unimplemented);

    let auto = nw
        .set_network_autostart(s.client.request(v1::SetNetworkAutostartRequest {
            network: net(&name),
            autostart: true,
        }))
        .await
        .unwrap()
        .into_inner()
        .network
        .unwrap();
    assert!(auto.autostart);

    let stopped = nw
        .stop_network(s.client.request(v1::StopNetworkRequest {
            network: net(&name),
        }))
        .await
        .unwrap()
        .into_inner()
        .network
        .unwrap();
    assert!(!stopped.active && stopped.persistent);
    // The test driver keeps one definition for live and config (the real
    // suite proves that no scope changes the live one only).
    let config = xml_of(false).await;
    assert!(config.contains("52:54:00:aa:00:02"), "{config}");
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

#[tokio::test]
async fn transient_network_vanishes_when_stopped() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}tnet");
    let mut nw = s.client.networks();
    let n = nw
        .create_network(s.client.request(v1::CreateNetworkRequest {
            host: String::new(),
            source: Some(v1::create_network_request::Source::Xml(format!(
                "<network><name>{name}</name></network>"
            ))),
        }))
        .await
        .unwrap()
        .into_inner()
        .network
        .unwrap();
    assert!(n.active && !n.persistent);
    let listed = nw
        .list_networks(s.client.request(v1::ListNetworksRequest {
            persistence_filter: v1::PersistenceFilter::Transient as i32,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .networks;
    assert!(listed.iter().any(|x| x.name == name));
    // No filter (every filter UNSPECIFIED) lists active and inactive,
    // persistent and transient networks alike.
    let all = nw
        .list_networks(s.client.request(v1::ListNetworksRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .networks;
    assert!(all.iter().any(|x| x.name == name));
    assert!(all.iter().any(|x| x.persistent));
    // An isolated network (no <forward>) reports NONE.
    assert_eq!(n.forward_mode(), NetworkForwardMode::None);
    // The answer describes the network as it was, stopped: a transient
    // network is gone afterwards.
    let stopped = nw
        .stop_network(s.client.request(v1::StopNetworkRequest {
            network: net(&name),
        }))
        .await
        .unwrap()
        .into_inner()
        .network
        .unwrap();
    assert_eq!(stopped.name, name);
    assert_eq!(stopped.uuid, n.uuid);
    assert!(!stopped.active && !stopped.persistent);
    assert_eq!(stopped.forward_mode(), NetworkForwardMode::None);
    let gone = nw
        .get_network(s.client.request(v1::GetNetworkRequest {
            network: net(&name),
        }))
        .await;
    assert_eq!(code_of(gone), Code::NotFound);
}

#[tokio::test]
async fn bad_network_input() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let mut nw = s.client.networks();
    let mut bad = spec(&format!("{p}bad"), 202);
    bad.prefix = 40;
    let mut bad_mac = spec(&format!("{p}bad"), 202);
    bad_mac.dhcp_hosts[0].mac = "nope".into();
    let mut bad_name = spec("a<b", 202);
    bad_name.dhcp_hosts.clear();
    for (s_, field) in [
        (bad, "spec.prefix"),
        (bad_mac, "spec.dhcp_hosts[0].mac"),
        (bad_name, "spec.name"),
    ] {
        let e = nw
            .define_network(s.client.request(v1::DefineNetworkRequest {
                source: Some(Source::Spec(s_)),
                ..Default::default()
            }))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains(field), "{}", e.message());
    }
    let malformed = nw
        .define_network(s.client.request(v1::DefineNetworkRequest {
            source: Some(Source::Xml("<network><name>x".into())),
            ..Default::default()
        }))
        .await;
    assert_eq!(code_of(malformed), Code::InvalidArgument);
    let no_section = nw
        .update_network(s.client.request(v1::UpdateNetworkRequest {
            network: net("default"),
            command: v1::NetworkUpdateCommand::AddLast as i32,
            item: Some(Item::Xml("<host/>".into())),
            ..Default::default()
        }))
        .await;
    assert_eq!(code_of(no_section), Code::InvalidArgument);
    let listed = nw
        .list_networks(s.client.request(v1::ListNetworksRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .networks;
    assert!(!listed.iter().any(|n| n.name.starts_with(&p)), "{listed:?}");
}

#[tokio::test]
async fn spec_defaults() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}iso");
    let mut nw = s.client.networks();
    // forward_mode UNSPECIFIED renders an isolated network; no start and no
    // autostart unless asked.
    let n = nw
        .define_network(s.client.request(v1::DefineNetworkRequest {
            source: Some(Source::Spec(NetworkSpec {
                name: name.clone(),
                ip_address: "192.168.203.1".into(),
                prefix: 24,
                ..Default::default()
            })),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .network
        .unwrap();
    assert_eq!(n.forward_mode(), NetworkForwardMode::None);
    assert!(!n.active && !n.autostart && n.persistent);
    let xml = nw
        .get_network_xml(s.client.request(v1::GetNetworkXmlRequest {
            network: net(&name),
            inactive: false,
        }))
        .await
        .unwrap()
        .into_inner()
        .xml;
    assert!(!xml.contains("<forward"), "{xml}");
    // A mode a spec cannot render is refused, not approximated.
    let hostdev = nw
        .define_network(s.client.request(v1::DefineNetworkRequest {
            source: Some(Source::Spec(NetworkSpec {
                name: format!("{p}hostdev"),
                forward_mode: NetworkForwardMode::Hostdev as i32,
                ..Default::default()
            })),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&hostdev), ["spec.forward_mode"]);
}

#[tokio::test]
async fn one_bad_request_names_every_bad_field() {
    let s = TestServer::test_driver().await;
    let mut nw = s.client.networks();
    let e = nw
        .update_network(s.client.request(v1::UpdateNetworkRequest {
            network: Some(NetworkRef {
                host: String::new(),
                key: None,
            }),
            command: 0,
            section: 0,
            parent_index: -5,
            item: None,
            scope: None,
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(
        bad_fields(&e),
        ["network", "command", "item", "section", "parent_index"]
    );
    let e = nw
        .list_networks(s.client.request(v1::ListNetworksRequest {
            host: "nope".into(),
            run_filter: 7,
            persistence_filter: 8,
            autostart_filter: 9,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(
        bad_fields(&e),
        ["run_filter", "persistence_filter", "autostart_filter"]
    );
    let e = nw
        .define_network(s.client.request(v1::DefineNetworkRequest {
            source: Some(Source::Spec(NetworkSpec {
                name: "a b".into(),
                forward_mode: 99,
                ip_address: "192.168.204.1".into(),
                prefix: 33,
                dhcp_range: Some(DhcpRange {
                    start: "x".into(),
                    end: "192.168.204.9".into(),
                }),
                ..Default::default()
            })),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(
        bad_fields(&e),
        [
            "spec.name",
            "spec.forward_mode",
            "spec.prefix",
            "spec.dhcp_range.start"
        ]
    );
}
