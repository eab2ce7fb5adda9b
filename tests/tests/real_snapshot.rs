//! SnapshotService against a real libvirtd: internal snapshots of a shut-off
//! QEMU domain whose disk is a qcow2 volume in a per-run `dir` pool.
//! Runs only with LIBVIRT_GRPC_REAL=1.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use libvirt_grpc_tests::{code_of, prefix, real_enabled, v1, Cleanup, TestServer, REAL_URI};
use tonic::Code;
use v1::{create_snapshot_request::Source, storage_pool_ref, SnapshotRef, SnapshotSpec};

fn dom(name: &str) -> Option<v1::DomainRef> {
    libvirt_grpc_tests::domain_ref("real", name)
}

fn snap(d: &str, name: &str) -> Option<SnapshotRef> {
    Some(SnapshotRef {
        domain: dom(d),
        name: name.to_owned(),
    })
}

#[tokio::test]
async fn internal_snapshot_tree_of_a_qcow2_guest() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let dir = std::env::temp_dir().join(format!("{p}snappool"));
    c.file(&dir);
    let pool = format!("{p}snappool");
    let mut st = s.client.storage();
    st.define_storage_pool(s.client.request(v1::DefineStoragePoolRequest {
        host: "real".into(),
        source: Some(v1::define_storage_pool_request::Source::Spec(
            v1::StoragePoolSpec {
                name: pool.clone(),
                r#type: v1::StoragePoolType::Dir as i32,
                target_path: dir.to_str().unwrap().to_owned(),
                ..Default::default()
            },
        )),
        build: true,
        start: true,
        autostart: false,
    }))
    .await
    .unwrap();
    let disk = st
        .create_storage_volume(s.client.request(v1::CreateStorageVolumeRequest {
            pool: Some(v1::StoragePoolRef {
                host: "real".into(),
                key: Some(storage_pool_ref::Key::Name(pool.clone())),
            }),
            source: Some(v1::create_storage_volume_request::Source::Spec(
                v1::StorageVolumeSpec {
                    name: "disk.qcow2".into(),
                    format: v1::StorageVolumeFormat::Qcow2 as i32,
                    capacity_bytes: 32 << 20,
                    ..Default::default()
                },
            )),
        }))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();

    let d = format!("{p}snapvm");
    let xml = format!(
        "<domain type='qemu'><name>{d}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64'>hvm</type></os><devices>\
         <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
         <source file='{}'/><target dev='vda' bus='virtio'/></disk>\
         </devices></domain>",
        disk.path
    );
    s.client
        .domains()
        .define_domain(s.client.request(v1::DefineDomainRequest {
            source: Some(v1::define_domain_request::Source::Xml(xml)),
            host: "real".into(),
            validate: false,
        }))
        .await
        .unwrap();

    let mut sn = s.client.snapshots();
    let mk = |name: &'static str| {
        let mut sn = s.client.snapshots();
        let req = s.client.request(v1::CreateSnapshotRequest {
            domain: dom(&d),
            source: Some(Source::Spec(SnapshotSpec {
                name: name.into(),
                description: format!("{name} on qcow2"),
                ..Default::default()
            })),
            ..Default::default()
        });
        async move {
            sn.create_snapshot(req)
                .await
                .unwrap()
                .into_inner()
                .snapshot
                .unwrap()
        }
    };
    let s1 = mk("s1").await;
    assert_eq!(s1.state(), v1::DomainState::Shutoff);
    assert!(s1.current);
    let s2 = mk("s2").await;
    assert_eq!(s2.parent, "s1");
    let reverted = sn
        .revert_snapshot(s.client.request(v1::RevertSnapshotRequest {
            snapshot: snap(&d, "s1"),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reverted.domain.unwrap().state(), v1::DomainState::Shutoff);
    assert!(reverted.snapshot.unwrap().current);
    let s3 = mk("s3").await;
    assert_eq!(s3.parent, "s1");

    // The snapshots are internal: qemu stored them inside the qcow2 file.
    let internal = sn
        .list_snapshots(s.client.request(v1::ListSnapshotsRequest {
            domain: dom(&d),
            location_filter: v1::SnapshotLocationFilter::Internal as i32,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .snapshots;
    assert_eq!(internal.len(), 3);
    let qimg = std::process::Command::new("qemu-img")
        .args(["snapshot", "-l", "-U", &disk.path])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&qimg.stdout);
    for n in ["s1", "s2", "s3"] {
        assert!(listing.contains(n), "qemu-img does not list {n}: {listing}");
    }

    let tree = sn
        .get_snapshot_tree(
            s.client
                .request(v1::GetSnapshotTreeRequest { domain: dom(&d) }),
        )
        .await
        .unwrap()
        .into_inner()
        .roots;
    assert_eq!(tree.len(), 1);
    assert_eq!(tree[0].snapshot.as_ref().unwrap().name, "s1");
    let kids: Vec<_> = tree[0]
        .children
        .iter()
        .map(|n| n.snapshot.as_ref().unwrap().name.clone())
        .collect();
    assert_eq!(kids, ["s2", "s3"]);
    let cur = sn
        .get_current_snapshot(
            s.client
                .request(v1::GetCurrentSnapshotRequest { domain: dom(&d) }),
        )
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap();
    assert_eq!(cur.name, "s3");

    // Delete s1 with its children: nothing is left, in libvirt or the file.
    sn.delete_snapshot(s.client.request(v1::DeleteSnapshotRequest {
        snapshot: snap(&d, "s1"),
        extent: v1::SnapshotDeleteExtent::WithDescendants as i32,
        ..Default::default()
    }))
    .await
    .unwrap();
    let left = sn
        .list_snapshots(s.client.request(v1::ListSnapshotsRequest {
            domain: dom(&d),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .snapshots;
    assert!(left.is_empty(), "{left:?}");
    let qimg = std::process::Command::new("qemu-img")
        .args(["snapshot", "-l", "-U", &disk.path])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&qimg.stdout).contains("s1"),
        "qemu-img still lists s1"
    );
    let none = sn
        .get_snapshot(s.client.request(v1::GetSnapshotRequest {
            snapshot: snap(&d, "s2"),
        }))
        .await;
    assert_eq!(code_of(none), Code::NotFound);
}
