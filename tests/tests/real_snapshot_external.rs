//! External disk-only snapshots of a running QEMU guest (the kernel and
//! initramfs test guest with a qcow2 disk in a per-run `dir` pool), from
//! SnapshotService's per-disk spec: the qcow2 overlay exists with the disk
//! as its backing file, the snapshot is listed with the right filters,
//! an existing file is ALREADY_EXISTS and left alone, and everything is
//! removed at the end. Runs only with LIBVIRT_GRPC_REAL=1.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use libvirt_grpc_tests::{
    code_of, prefix, real_enabled, v1, wait_until, Cleanup, TestServer, REAL_URI,
};
use tonic::Code;
use v1::{
    create_snapshot_request::Source, SnapshotDiskMode, SnapshotDiskSpec, SnapshotLocationFilter,
    SnapshotMetadataFilter, SnapshotSpec, SnapshotStateFilter,
};

fn dom(name: &str) -> Option<v1::DomainRef> {
    libvirt_grpc_tests::domain_ref("real", name)
}

fn external(name: &str, file: &std::path::Path) -> SnapshotDiskSpec {
    SnapshotDiskSpec {
        name: name.into(),
        mode: SnapshotDiskMode::External as i32,
        file: file.to_str().unwrap().to_owned(),
        ..Default::default()
    }
}

fn disk_only_request(
    d: &str,
    name: &str,
    disks: Vec<SnapshotDiskSpec>,
) -> v1::CreateSnapshotRequest {
    v1::CreateSnapshotRequest {
        domain: dom(d),
        source: Some(Source::Spec(SnapshotSpec {
            name: name.into(),
            description: "external, disk only".into(),
            disks,
        })),
        disk_only: true,
        atomic: true,
        ..Default::default()
    }
}

async fn listed(
    s: &TestServer,
    d: &str,
    location: SnapshotLocationFilter,
    state: SnapshotStateFilter,
    metadata: SnapshotMetadataFilter,
) -> Vec<String> {
    s.client
        .snapshots()
        .list_snapshots(s.client.request(v1::ListSnapshotsRequest {
            domain: dom(d),
            location_filter: location as i32,
            state_filter: state as i32,
            metadata_filter: metadata as i32,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .snapshots
        .into_iter()
        .map(|s| s.name)
        .collect()
}

/// The format and backing file `qemu-img info` reads in a file (`-U`: the
/// guest holds its lock).
fn qemu_img_info(path: &std::path::Path) -> (String, String) {
    let out = std::process::Command::new("qemu-img")
        .args(["info", "-U"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "qemu-img info: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    (field("file format:"), field("backing file:"))
}

/// The test guest with a qcow2 disk (vda) in a per-run `dir` pool, defined
/// and started: its name, the disk's path and a per-run directory for
/// overlays (both directories removed by `c`).
async fn running_guest(
    s: &TestServer,
    c: &mut Cleanup,
    p: &str,
    tag: &str,
) -> (String, String, std::path::PathBuf) {
    let g = libvirt_grpc_tests::guest::qcow2_guest(s, c, p, tag).await;
    let (d, xml) = (g.name, g.xml);
    let mut doms = s.client.domains();
    doms.define_domain(s.client.request(v1::DefineDomainRequest {
        host: "real".into(),
        source: Some(v1::define_domain_request::Source::Xml(xml)),
        validate: false,
    }))
    .await
    .unwrap();
    let started = doms
        .start_domain(s.client.request(v1::StartDomainRequest {
            domain: dom(&d),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert_eq!(started.state(), v1::DomainState::Running);
    (d, g.disk_path, g.dir)
}

#[tokio::test]
async fn external_disk_only_snapshot_of_a_running_guest() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let (d, disk_path, overlays) = running_guest(&s, &mut c, &p, "xsnap").await;
    let mut doms = s.client.domains();
    let mut sn = s.client.snapshots();
    let has_current =
        |sn: &mut libvirt_grpc_tests::v1::snapshot_service_client::SnapshotServiceClient<_>| {
            let req = s
                .client
                .request(v1::HasCurrentSnapshotRequest { domain: dom(&d) });
            let mut sn = sn.clone();
            async move {
                sn.has_current_snapshot(req)
                    .await
                    .unwrap()
                    .into_inner()
                    .has_current_snapshot
            }
        };
    assert!(!has_current(&mut sn).await);

    let overlay = overlays.join("vda.ext1.qcow2");
    let snap = sn
        .create_snapshot(s.client.request(disk_only_request(
            &d,
            "ext1",
            vec![external("vda", &overlay)],
        )))
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap();
    assert!(snap.disk_only && snap.has_metadata && snap.current);
    assert_eq!(snap.name, "ext1");
    // The overlay is a qcow2 file backed by the disk, and the running guest
    // now writes to it.
    assert_eq!(
        qemu_img_info(&overlay),
        ("qcow2".to_owned(), disk_path.clone())
    );
    let live = doms
        .get_domain_xml(s.client.request(v1::GetDomainXmlRequest {
            domain: dom(&d),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .xml;
    assert!(live.contains(overlay.to_str().unwrap()), "{live}");
    assert!(has_current(&mut sn).await);

    use SnapshotLocationFilter as L;
    use SnapshotMetadataFilter as M;
    use SnapshotStateFilter as S;
    assert_eq!(
        listed(&s, &d, L::External, S::DiskOnly, M::Metadata).await,
        ["ext1"]
    );
    assert!(listed(&s, &d, L::Internal, S::Unspecified, M::Unspecified)
        .await
        .is_empty());
    assert!(listed(&s, &d, L::Unspecified, S::Active, M::Unspecified)
        .await
        .is_empty());
    assert!(
        listed(&s, &d, L::Unspecified, S::Unspecified, M::NoMetadata)
            .await
            .is_empty()
    );

    // A file that exists (the overlay in use, or any other) without
    // reuse_external: ALREADY_EXISTS, and nothing changes.
    let keep = overlays.join("keep.qcow2");
    std::fs::write(&keep, b"someone else's").unwrap();
    for file in [&overlay, &keep] {
        let before = std::fs::metadata(file).unwrap();
        let e = sn
            .create_snapshot(s.client.request(disk_only_request(
                &d,
                "ext2",
                vec![external("vda", file)],
            )))
            .await;
        assert_eq!(code_of(e), Code::AlreadyExists);
        let after = std::fs::metadata(file).unwrap();
        assert_eq!(
            (before.len(), before.modified().unwrap()),
            (after.len(), after.modified().unwrap())
        );
    }
    assert_eq!(std::fs::read(&keep).unwrap(), b"someone else's");
    // A snapshot libvirt refuses (it names a disk the guest lacks) leaves
    // none of the files it named.
    let stray = overlays.join("vda.ext3.qcow2");
    let ghost = overlays.join("vdz.ext3.qcow2");
    let e = sn
        .create_snapshot(s.client.request(disk_only_request(
            &d,
            "ext3",
            vec![external("vda", &stray), external("vdz", &ghost)],
        )))
        .await;
    assert_eq!(code_of(e), Code::InvalidArgument);
    assert!(!stray.exists() && !ghost.exists());
    assert_eq!(
        listed(&s, &d, L::Unspecified, S::Unspecified, M::Unspecified).await,
        ["ext1"]
    );
    // The guest still runs on the first overlay.
    assert_eq!(qemu_img_info(&overlay).1, disk_path);

    // Clean up: libvirt 9 deletes external snapshots' metadata only; the
    // overlay files go with the run's directory (Cleanup).
    sn.delete_snapshot(s.client.request(v1::DeleteSnapshotRequest {
        snapshot: libvirt_grpc_tests::snapshot_ref("real", &d, "ext1"),
        metadata_only: true,
        ..Default::default()
    }))
    .await
    .unwrap();
    assert!(
        listed(&s, &d, L::Unspecified, S::Unspecified, M::Unspecified)
            .await
            .is_empty()
    );
    assert!(!has_current(&mut sn).await);
}

#[tokio::test]
async fn a_quiesced_snapshot_needs_disk_only_and_the_guest_agent() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let (d, disk_path, overlays) = running_guest(&s, &mut c, &p, "qsnap").await;
    let mut sn = s.client.snapshots();
    let overlay = overlays.join("vda.q1.qcow2");
    let quiesced = |disk_only: bool| v1::CreateSnapshotRequest {
        quiesce: true,
        disk_only,
        ..disk_only_request(&d, "q1", vec![external("vda", &overlay)])
    };
    // Without disk_only quiesce is refused; nothing is made.
    let e = sn
        .create_snapshot(s.client.request(quiesced(false)))
        .await
        .unwrap_err();
    assert_eq!(libvirt_grpc_tests::bad_fields(&e), ["quiesce"], "{e:?}");
    assert!(!overlay.exists());
    // Right after the start the guest's agent is not up: no snapshot, and
    // no overlay left behind.
    let e = sn
        .create_snapshot(s.client.request(quiesced(true)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(!overlay.exists());
    let mut agent = s.client.agents();
    wait_until(Duration::from_secs(90), "the guest agent to answer", || {
        let mut agent = agent.clone();
        let d = d.clone();
        async move {
            agent
                .ping_guest_agent(v1::PingGuestAgentRequest { domain: dom(&d) })
                .await
                .ok()
        }
    })
    .await;
    agent
        .ping_guest_agent(v1::PingGuestAgentRequest { domain: dom(&d) })
        .await
        .unwrap();
    let snap = sn
        .create_snapshot(s.client.request(quiesced(true)))
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap();
    assert!(snap.disk_only);
    assert_eq!(qemu_img_info(&overlay), ("qcow2".to_owned(), disk_path));
}
