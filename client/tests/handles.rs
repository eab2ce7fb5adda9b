//! The handle-style API (domains by name/UUID/id, snapshots, pools and
//! volumes, networks, hosts, the guest agent) against an in-process server
//! on libvirt's test driver. Every object a test makes carries a per-run
//! prefix and is removed at the end, also when an assertion fails.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use libvirt_grpc_client::{v1, Client, ClientError};
use libvirt_grpc_server::config::{Config, HostConfig};

const URI: &str = "test:///default";

async fn server() -> (Client, tokio::sync::oneshot::Sender<()>) {
    virt::error::clear_error_callback();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = Config {
        hosts: vec![HostConfig::new("default", URI)],
        host_path_roots: vec![std::env::temp_dir()],
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
    let c = Client::connect(url)
        .await
        .unwrap()
        .with_timeout(std::time::Duration::from_secs(60));
    (c, stop)
}

fn prefix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "lvgh{}x{}-",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes on drop the domains, networks and pools named `prefix*`.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(conn) = virt::connect::Connect::open(Some(URI)) else {
            return;
        };
        let mine = |n: Result<String, virt::error::Error>| {
            n.map(|n| n.starts_with(&self.0)).unwrap_or(false)
        };
        for d in conn.list_all_domains(0).unwrap_or_default() {
            if mine(d.name()) {
                let _ = d.destroy();
                let _ = d.undefine_flags(virt::sys::VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA);
            }
        }
        for n in conn.list_all_networks(0).unwrap_or_default() {
            if mine(n.name()) {
                let _ = n.destroy();
                let _ = n.undefine();
            }
        }
        for p in conn.list_all_storage_pools(0).unwrap_or_default() {
            if mine(p.name()) {
                for v in p.list_all_volumes(0).unwrap_or_default() {
                    let _ = v.delete(0);
                }
                let _ = p.destroy();
                let _ = p.undefine();
            }
        }
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("{}pool", self.0)));
    }
}

fn xml(name: &str) -> String {
    format!(
        "<domain type='test'><name>{name}</name><memory unit='MiB'>128</memory>\
         <vcpu>2</vcpu><os><type>hvm</type></os></domain>"
    )
}

fn config() -> v1::ModifyScope {
    v1::ModifyScope {
        live: false,
        config: true,
    }
}

#[tokio::test]
async fn domains_by_name_uuid_and_id_with_their_settings_and_snapshots() {
    let (c, _stop) = server().await;
    let p = prefix();
    let _cleanup = Cleanup(p.clone());
    let name = format!("{p}vm");
    let defined = c.define_domain_xml(xml(&name)).await.unwrap();
    let d = c.domain(name.as_str());
    assert_eq!(d.name(), Some(name.as_str()));

    // Settings of the definition, each answering the domain after it.
    assert_eq!(
        d.set_memory(64 << 20, config(), false)
            .await
            .unwrap()
            .memory_bytes,
        64 << 20
    );
    assert_eq!(d.set_vcpus(1, config(), false).await.unwrap().vcpus, 1);
    assert!(d.inactive_xml().await.unwrap().contains(&name));
    // The test driver has no device hot-plug: the typed answer.
    let disk = "<disk type='file' device='disk'><source file='/tmp/x.img'/>\
                <target dev='vdb' bus='virtio'/></disk>";
    assert!(matches!(
        d.attach_device(disk, config()).await,
        Err(ClientError::Unimplemented(_))
    ));
    assert!(matches!(
        d.attach_device("", config()).await,
        Err(ClientError::InvalidArgument(_))
    ));

    let running = d.start().await.unwrap();
    assert_eq!(running.state(), v1::DomainState::Running);
    // The same domain by UUID and by id.
    let by_uuid = c
        .domain_by_uuid(defined.uuid.as_str())
        .info()
        .await
        .unwrap();
    assert_eq!(by_uuid.name, name);
    let by_id = c.domain_by_id(running.id).info().await.unwrap();
    assert_eq!(by_id.uuid, defined.uuid);
    assert_eq!(c.domain_by_id(running.id).name(), None);
    d.send_keys(&[30]).await.unwrap();
    assert!(matches!(
        d.send_keys(&[]).await,
        Err(ClientError::InvalidArgument(_))
    ));
    let stats = d.stats().await.unwrap().expect("stats of a running domain");
    assert_eq!(stats.name, name);
    assert_eq!(stats.state(), v1::DomainState::Running);

    // Snapshots through the domain's handle and the client's.
    let snap = d
        .create_snapshot(v1::SnapshotSpec {
            name: "one".into(),
            description: "first".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (snap.name.as_str(), snap.domain.as_str()),
        ("one", name.as_str())
    );
    d.create_snapshot(v1::SnapshotSpec {
        name: "two".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let names: Vec<String> = d
        .snapshots()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["one", "two"]);
    assert_eq!(d.current_snapshot().await.unwrap().name, "two");
    let two = c.snapshot(name.as_str(), "two");
    assert_eq!(two.parent().await.unwrap().name, "one");
    let (info, snap_xml) = d.snapshot("one").info().await.unwrap();
    assert_eq!(info.description, "first");
    assert!(snap_xml.contains("<name>one</name>"), "{snap_xml}");
    assert_eq!(
        d.snapshot("one").children(false).await.unwrap()[0].name,
        "two"
    );
    let (dom, reverted) = d.snapshot("one").revert().await.unwrap();
    assert_eq!(
        (dom.name.as_str(), reverted.name.as_str()),
        (name.as_str(), "one")
    );
    d.snapshot("one").delete_with_descendants().await.unwrap();
    assert!(d.snapshots().await.unwrap().is_empty());
    assert!(matches!(
        d.snapshot("one").info().await,
        Err(ClientError::NotFound(_))
    ));

    // A running domain undefined becomes transient, and is gone once off.
    let transient = d.undefine().await.unwrap().expect("it was running");
    assert!(!transient.persistent);
    assert!(d.destroy().await.unwrap().is_none());
    assert!(matches!(d.info().await, Err(ClientError::NotFound(_))));

    // A transient domain from a spec; the same name again is refused.
    let t = c
        .create_domain(v1::DomainSpec {
            name: format!("{p}t"),
            memory_bytes: 64 << 20,
            vcpus: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!t.persistent && t.state() == v1::DomainState::Running);
    assert!(matches!(
        c.create_domain_xml(xml(&format!("{p}t"))).await,
        Err(ClientError::AlreadyExists(_))
    ));
}

#[tokio::test]
async fn pools_volumes_networks_hosts_and_the_agent() {
    let (c, _stop) = server().await;
    let p = prefix();
    let _cleanup = Cleanup(p.clone());
    let pool_name = format!("{p}pool");
    let dir = std::env::temp_dir().join(&pool_name);
    c.storage()
        .define_storage_pool(v1::DefineStoragePoolRequest {
            host: String::new(),
            source: Some(v1::define_storage_pool_request::Source::Spec(
                v1::StoragePoolSpec {
                    name: pool_name.clone(),
                    r#type: v1::StoragePoolType::Dir as i32,
                    target_path: dir.to_string_lossy().into_owned(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        })
        .await
        .unwrap();
    let pool = c.pool(pool_name.as_str());
    assert_eq!(
        pool.info().await.unwrap().state(),
        v1::StoragePoolState::Inactive
    );
    assert!(matches!(
        pool.volumes().await,
        Err(ClientError::FailedPrecondition(_))
    ));
    assert_eq!(
        pool.start(false).await.unwrap().state(),
        v1::StoragePoolState::Running
    );
    assert!(pool.set_autostart(true).await.unwrap().autostart);
    assert!(pool.xml(false).await.unwrap().contains(&pool_name));
    assert!(c
        .list_pools()
        .await
        .unwrap()
        .iter()
        .any(|x| x.name == pool_name));

    let vol = pool.volume("a.img");
    let made = vol
        .create(v1::StorageVolumeSpec {
            capacity_bytes: 1 << 20,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (made.name.as_str(), made.capacity_bytes),
        ("a.img", 1 << 20)
    );
    // The test driver has neither virStorageVolResize nor virStorageVolWipe.
    assert!(matches!(
        vol.resize(2 << 20, false).await,
        Err(ClientError::Unimplemented(_))
    ));
    assert!(matches!(
        vol.wipe().await,
        Err(ClientError::Unimplemented(_))
    ));
    assert!(vol.xml().await.unwrap().contains("a.img"));
    assert_eq!(vol.clone_to("b.img").await.unwrap().name, "b.img");
    let names: Vec<String> = pool
        .volumes()
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(names, ["a.img", "b.img"]);
    vol.delete().await.unwrap();
    assert!(matches!(vol.info().await, Err(ClientError::NotFound(_))));
    pool.volume("b.img").delete().await.unwrap();
    pool.refresh().await.unwrap();
    pool.stop().await.unwrap();
    pool.undefine().await.unwrap();
    assert!(matches!(pool.info().await, Err(ClientError::NotFound(_))));

    // Networks: the test driver's own `default`, and one of ours.
    let net_name = format!("{p}net");
    c.networks()
        .define_network(v1::DefineNetworkRequest {
            host: String::new(),
            source: Some(v1::define_network_request::Source::Spec(v1::NetworkSpec {
                name: net_name.clone(),
                ..Default::default()
            })),
            start: false,
            autostart: false,
        })
        .await
        .unwrap();
    let net = c.network(net_name.as_str());
    assert!(!net.info().await.unwrap().active);
    assert!(net.start().await.unwrap().active);
    assert!(net.set_autostart(true).await.unwrap().autostart);
    assert!(net.xml(false).await.unwrap().contains(&net_name));
    assert!(c
        .list_networks()
        .await
        .unwrap()
        .iter()
        .any(|n| n.name == net_name));
    assert!(matches!(
        net.dhcp_leases().await,
        Err(ClientError::Unimplemented(_))
    ));
    assert!(!net.stop().await.unwrap().active);
    net.undefine().await.unwrap();
    assert!(matches!(net.info().await, Err(ClientError::NotFound(_))));

    // Hosts: the default host by name and by the empty name.
    let host = c.host("default");
    let info = host.info().await.unwrap();
    assert_eq!(info.host, "default");
    assert!(info.node.is_some());
    assert!(host
        .capabilities()
        .await
        .unwrap()
        .contains("<capabilities>"));
    assert!(host.status().await.unwrap().is_default);
    assert_eq!(c.host("").status().await.unwrap().name, "default");
    assert!(matches!(
        c.host("lvgh-nowhere").status().await,
        Err(ClientError::NotFound(_))
    ));
    assert!(matches!(
        c.host("lvgh-nowhere").info().await,
        Err(ClientError::NotFound(_))
    ));
    assert_eq!(host.domain("test").info().await.unwrap().name, "test");

    // The agent: the test driver has none, and says so with the type.
    let vm = format!("{p}vm");
    c.define_domain_xml(xml(&vm)).await.unwrap();
    c.domain(vm.as_str()).start().await.unwrap();
    let agent = c.agent(vm.as_str());
    assert!(matches!(
        agent.ping().await,
        Err(ClientError::Unimplemented(_))
    ));
    assert!(matches!(
        agent.exec("/bin/true", Vec::<String>::new()).await,
        Err(ClientError::Unimplemented(_))
    ));
    assert!(matches!(
        agent.info().await,
        Err(ClientError::Unimplemented(_))
    ));
    assert!(matches!(
        agent.freeze_status().await,
        Err(ClientError::Unimplemented(_))
    ));
}
