//! SnapshotService's issue-13 additions against libvirt's in-process test
//! driver: HasCurrentSnapshot, the metadata list filter, the VALIDATE and
//! REUSE_EXT flags, and the external-file rules of a spec's per-disk
//! entries (confinement, ALREADY_EXISTS with nothing changed).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use libvirt_grpc_tests::{bad_fields, code_of, prefix, small_spec, v1, Cleanup, TestServer};
use tonic::Code;
use tonic_types::StatusExt;
use v1::{
    create_snapshot_request::Source, SnapshotDiskMode, SnapshotDiskSpec, SnapshotMetadataFilter,
    SnapshotSpec,
};

const URI: &str = "test:///default";

fn dom(name: &str) -> Option<v1::DomainRef> {
    libvirt_grpc_tests::domain_ref("", name)
}

async fn has_current(s: &TestServer, d: &str) -> Result<bool, tonic::Status> {
    s.client
        .snapshots()
        .has_current_snapshot(
            s.client
                .request(v1::HasCurrentSnapshotRequest { domain: dom(d) }),
        )
        .await
        .map(|r| r.into_inner().has_current_snapshot)
}

async fn listed(
    s: &TestServer,
    d: &str,
    metadata: SnapshotMetadataFilter,
) -> Result<Vec<String>, tonic::Status> {
    s.client
        .snapshots()
        .list_snapshots(s.client.request(v1::ListSnapshotsRequest {
            domain: dom(d),
            metadata_filter: metadata as i32,
            ..Default::default()
        }))
        .await
        .map(|r| {
            r.into_inner()
                .snapshots
                .into_iter()
                .map(|s| s.name)
                .collect()
        })
}

fn external(name: &str, file: &str) -> SnapshotDiskSpec {
    SnapshotDiskSpec {
        name: name.into(),
        mode: SnapshotDiskMode::External as i32,
        file: file.into(),
        ..Default::default()
    }
}

fn with_disks(name: &str, disks: Vec<SnapshotDiskSpec>) -> Option<Source> {
    Some(Source::Spec(SnapshotSpec {
        name: name.into(),
        disks,
        ..Default::default()
    }))
}

#[tokio::test]
async fn has_current_snapshot_and_the_metadata_filter() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let d = format!("{p}vm");
    s.client.define_domain(small_spec(&d)).await.unwrap();
    assert!(!has_current(&s, &d).await.unwrap());
    assert!(listed(&s, &d, SnapshotMetadataFilter::Metadata)
        .await
        .unwrap()
        .is_empty());

    let mut sn = s.client.snapshots();
    // VALIDATE: a document that passes libvirt's schema is taken.
    let made = sn
        .create_snapshot(s.client.request(v1::CreateSnapshotRequest {
            domain: dom(&d),
            source: Some(Source::Spec(SnapshotSpec {
                name: "s1".into(),
                ..Default::default()
            })),
            validate: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap();
    assert!(made.has_metadata && made.current);
    assert!(has_current(&s, &d).await.unwrap());
    assert_eq!(
        listed(&s, &d, SnapshotMetadataFilter::Metadata)
            .await
            .unwrap(),
        ["s1"]
    );
    // libvirt knows only snapshots with metadata.
    assert!(listed(&s, &d, SnapshotMetadataFilter::NoMetadata)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        listed(&s, &d, SnapshotMetadataFilter::Unspecified)
            .await
            .unwrap(),
        ["s1"]
    );
    let e = sn
        .list_snapshots(s.client.request(v1::ListSnapshotsRequest {
            domain: dom(&d),
            metadata_filter: 3,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&e), ["metadata_filter"]);

    // VALIDATE: an element the schema does not know is refused instead of
    // ignored, and nothing is created.
    let invalid = sn
        .create_snapshot(s.client.request(v1::CreateSnapshotRequest {
            domain: dom(&d),
            source: Some(Source::Xml(
                "<domainsnapshot><name>s2</name><bogus/></domainsnapshot>".into(),
            )),
            validate: true,
            ..Default::default()
        }))
        .await;
    assert_eq!(code_of(invalid), Code::InvalidArgument);
    assert_eq!(
        listed(&s, &d, SnapshotMetadataFilter::Unspecified)
            .await
            .unwrap(),
        ["s1"]
    );

    sn.delete_snapshot(s.client.request(v1::DeleteSnapshotRequest {
        snapshot: libvirt_grpc_tests::snapshot_ref("", &d, "s1"),
        ..Default::default()
    }))
    .await
    .unwrap();
    assert!(!has_current(&s, &d).await.unwrap());
    let missing = has_current(&s, &format!("{p}nodomain")).await;
    assert_eq!(code_of(missing), Code::NotFound);
    let unnamed = sn
        .has_current_snapshot(
            s.client
                .request(v1::HasCurrentSnapshotRequest { domain: None }),
        )
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&unnamed), ["domain"]);
}

#[tokio::test]
async fn an_existing_external_file_is_already_exists_and_left_alone() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let mut c = Cleanup::new(URI, &p);
    let d = format!("{p}vm");
    s.client.define_domain(small_spec(&d)).await.unwrap();
    let dir = std::env::temp_dir().join(format!("{p}ext"));
    c.file(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let old = dir.join("old.qcow2");
    std::fs::write(&old, b"not yours").unwrap();
    let new = dir.join("new.qcow2");
    let mut sn = s.client.snapshots();

    // Spec or raw XML: refused before libvirt, the file as it was, no
    // snapshot taken.
    let sources = [
        with_disks(
            "e1",
            vec![
                external("vda", new.to_str().unwrap()),
                external("vdb", old.to_str().unwrap()),
            ],
        ),
        Some(Source::Xml(format!(
            "<domainsnapshot><name>e1</name><disks><disk name='vda' snapshot='external'>\
             <source file='{}'/></disk></disks></domainsnapshot>",
            old.display()
        ))),
    ];
    for source in sources {
        let e = sn
            .create_snapshot(s.client.request(v1::CreateSnapshotRequest {
                domain: dom(&d),
                source,
                disk_only: true,
                ..Default::default()
            }))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::AlreadyExists);
        let info = e
            .get_error_details()
            .error_info()
            .cloned()
            .expect("an ErrorInfo");
        assert_eq!(
            (info.domain.as_str(), info.reason.as_str()),
            ("libvirt-grpc", "ALREADY_EXISTS")
        );
        assert!(e.message().contains(old.to_str().unwrap()), "{e:?}");
        assert_eq!(std::fs::read(&old).unwrap(), b"not yours");
        assert!(!new.exists());
        assert!(!has_current(&s, &d).await.unwrap());
    }
    // REUSE_EXT passes the server's check; the test driver lacks the flag
    // (and DISK_ONLY): an honest UNIMPLEMENTED, the file untouched.
    let reuse = sn
        .create_snapshot(s.client.request(v1::CreateSnapshotRequest {
            domain: dom(&d),
            source: with_disks("e2", vec![external("vda", old.to_str().unwrap())]),
            disk_only: true,
            reuse_external: true,
            ..Default::default()
        }))
        .await;
    assert_eq!(code_of(reuse), Code::Unimplemented);
    assert_eq!(std::fs::read(&old).unwrap(), b"not yours");
    let quiesce = sn
        .create_snapshot(s.client.request(v1::CreateSnapshotRequest {
            domain: dom(&d),
            source: with_disks("e3", vec![external("vda", new.to_str().unwrap())]),
            disk_only: true,
            quiesce: true,
            atomic: true,
            ..Default::default()
        }))
        .await;
    assert_eq!(code_of(quiesce), Code::Unimplemented);
    assert!(!new.exists());
    assert!(!has_current(&s, &d).await.unwrap());
}

#[tokio::test]
async fn external_files_are_confined_and_disk_entries_checked() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let d = format!("{p}vm");
    s.client.define_domain(small_spec(&d)).await.unwrap();
    let mut sn = s.client.snapshots();
    let outside = format!("/etc/{p}overlay.qcow2");
    let e = sn
        .create_snapshot(s.client.request(v1::CreateSnapshotRequest {
            domain: dom(&d),
            source: with_disks("c1", vec![external("vda", &outside)]),
            disk_only: true,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("spec.disks[0].file"), "{e:?}");
    assert!(!std::path::Path::new(&outside).exists());

    let bad = sn
        .create_snapshot(s.client.request(v1::CreateSnapshotRequest {
            domain: dom(&d),
            source: with_disks(
                "c2",
                vec![
                    external("vda", ""),
                    SnapshotDiskSpec {
                        name: "vdb".into(),
                        mode: SnapshotDiskMode::Internal as i32,
                        file: "/tmp/x".into(),
                        ..Default::default()
                    },
                    SnapshotDiskSpec {
                        name: "vda".into(),
                        mode: 7,
                        ..Default::default()
                    },
                    SnapshotDiskSpec {
                        format: v1::StorageVolumeFormat::Raw as i32,
                        ..external("vdc", "/tmp/y")
                    },
                ],
            ),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(
        bad_fields(&bad),
        [
            "spec.disks[0].file",
            "spec.disks[1].file",
            "spec.disks[2].name",
            "spec.disks[2].mode",
            "spec.disks[3].format",
        ]
    );
    assert!(!has_current(&s, &d).await.unwrap());
}
