//! BlockJobService on a running QEMU guest (the kernel and initramfs test
//! guest with a qcow2 disk in a per-run `dir` pool): a block copy to a new
//! file reaches READY, is throttled, then pivoted, with BLOCK_JOB events on
//! WatchEvents; a copy onto an existing file is ALREADY_EXISTS; a pull and
//! an active commit over external snapshot overlays; a copy into a new
//! volume, pivoted. Runs only with
//! LIBVIRT_GRPC_REAL=1.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use futures::StreamExt;
use libvirt_grpc_tests::{code_of, prefix, real_enabled, v1, Cleanup, TestServer, REAL_URI};
use tonic::Code;
use v1::{
    block_copy_domain_disk_request::Destination, watch_events_response::Item as Message,
    BlockJobStatus, BlockJobType,
};

fn dom(name: &str) -> Option<v1::DomainRef> {
    libvirt_grpc_tests::domain_ref("real", name)
}

/// The backing file `qemu-img info` reads in an image (empty: none).
fn backing_file(path: &std::path::Path) -> String {
    let out = std::process::Command::new("qemu-img")
        .args(["info", "-U"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("backing file:"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

/// Waits for the block job event of `job_type` with `status` on disk vda.
async fn block_event(
    events: &mut tonic::Streaming<v1::WatchEventsResponse>,
    job_type: BlockJobType,
    status: BlockJobStatus,
) {
    let end = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let m = tokio::time::timeout_at(end, events.next())
            .await
            .unwrap_or_else(|_| panic!("no {job_type:?} {status:?} event within 60 s"))
            .unwrap()
            .unwrap();
        if let Some(Message::Event(e)) = m.item {
            if let Some(v1::event::Details::BlockJob(b)) = e.details {
                if b.disk == "vda" && b.job_type() == job_type && b.status() == status {
                    return;
                }
            }
        }
    }
}

/// An external disk-only snapshot of vda into `file`.
async fn overlay(s: &TestServer, d: &str, name: &str, file: &std::path::Path) {
    s.client
        .snapshots()
        .create_snapshot(s.client.request(v1::CreateSnapshotRequest {
            domain: dom(d),
            source: Some(v1::create_snapshot_request::Source::Spec(
                v1::SnapshotSpec {
                    name: name.into(),
                    disks: vec![v1::SnapshotDiskSpec {
                        name: "vda".into(),
                        mode: v1::SnapshotDiskMode::External as i32,
                        file: file.to_str().unwrap().into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            )),
            disk_only: true,
            atomic: true,
            ..Default::default()
        }))
        .await
        .unwrap();
}

async fn live_xml(s: &TestServer, d: &str) -> String {
    s.client
        .domains()
        .get_domain_xml(s.client.request(v1::GetDomainXmlRequest {
            domain: dom(d),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .xml
}

async fn job_of(s: &TestServer, d: &str) -> v1::GetDomainBlockJobResponse {
    s.client
        .block_jobs()
        .get_domain_block_job(s.client.request(v1::GetDomainBlockJobRequest {
            domain: dom(d),
            disk: "vda".into(),
        }))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn copy_to_ready_then_pivot_and_pull_and_active_commit() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let g = libvirt_grpc_tests::guest::qcow2_guest(&s, &mut c, &p, "bj").await;
    let (d, xml, pool, work) = (g.name, g.xml, g.pool, g.dir);
    let mut st = s.client.storage();
    s.client
        .domains()
        .define_domain(s.client.request(v1::DefineDomainRequest {
            host: "real".into(),
            source: Some(v1::define_domain_request::Source::Xml(xml)),
            validate: false,
        }))
        .await
        .unwrap();
    let mut events = s
        .client
        .events()
        .watch_events(v1::WatchEventsRequest {
            hosts: vec!["real".into()],
            names: vec![d.clone()],
            kinds: vec![v1::EventKind::BlockJob as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        events.next().await.unwrap().unwrap().item,
        Some(Message::Started(_))
    ));
    s.client
        .domains()
        .start_domain(s.client.request(v1::StartDomainRequest {
            domain: dom(&d),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert!(!job_of(&s, &d).await.active);

    // A copy to a new file: READY, throttled, pivoted. The domain is
    // persistent, so libvirt wants a transient job; without one it
    // refuses, and the destination this call named is not left behind.
    let mut bj = s.client.block_jobs();
    let copy = work.join("copy.qcow2");
    let refused = bj
        .block_copy_domain_disk(s.client.request(v1::BlockCopyDomainDiskRequest {
            domain: dom(&d),
            disk: "vda".into(),
            destination: Some(Destination::File(copy.to_str().unwrap().into())),
            format: v1::StorageVolumeFormat::Qcow2 as i32,
            ..Default::default()
        }))
        .await;
    assert_eq!(code_of(refused), Code::FailedPrecondition);
    assert!(!copy.exists());
    let started = bj
        .block_copy_domain_disk(s.client.request(v1::BlockCopyDomainDiskRequest {
            domain: dom(&d),
            disk: "vda".into(),
            destination: Some(Destination::File(copy.to_str().unwrap().into())),
            format: v1::StorageVolumeFormat::Qcow2 as i32,
            transient_job: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(started.r#type(), BlockJobType::Copy);
    assert_eq!(
        (started.disk.as_str(), started.domain.as_str()),
        ("vda", d.as_str())
    );
    assert!(copy.is_file());
    block_event(&mut events, BlockJobType::Copy, BlockJobStatus::Ready).await;
    let ready = job_of(&s, &d).await;
    let job = ready.job.unwrap();
    assert!(ready.active);
    assert_eq!(job.r#type(), BlockJobType::Copy);
    assert!(
        job.cursor_end > 0 && job.cursor == job.cursor_end,
        "{job:?}"
    );
    let throttled = bj
        .set_domain_block_job_speed(s.client.request(v1::SetDomainBlockJobSpeedRequest {
            domain: dom(&d),
            disk: "vda".into(),
            bandwidth_bytes_per_second: 10 << 20,
        }))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(throttled.bandwidth_bytes_per_second, 10 << 20);
    // The destination of a second copy exists: refused, untouched (the
    // disk already has a job too, but the file is checked first).
    let before = std::fs::metadata(&copy).unwrap().len();
    let taken = bj
        .block_copy_domain_disk(s.client.request(v1::BlockCopyDomainDiskRequest {
            domain: dom(&d),
            disk: "vda".into(),
            destination: Some(Destination::File(copy.to_str().unwrap().into())),
            ..Default::default()
        }))
        .await;
    assert_eq!(code_of(taken), Code::AlreadyExists);
    assert_eq!(std::fs::metadata(&copy).unwrap().len(), before);
    bj.abort_domain_block_job(s.client.request(v1::AbortDomainBlockJobRequest {
        domain: dom(&d),
        disk: "vda".into(),
        pivot: true,
    }))
    .await
    .unwrap();
    block_event(&mut events, BlockJobType::Copy, BlockJobStatus::Completed).await;
    assert!(!job_of(&s, &d).await.active);
    let xml = live_xml(&s, &d).await;
    assert!(xml.contains(copy.to_str().unwrap()), "{xml}");

    // A pull: an overlay over the copy takes in its backing data and
    // stands alone.
    let ov1 = work.join("ov1.qcow2");
    overlay(&s, &d, "ov1", &ov1).await;
    assert_eq!(backing_file(&ov1), copy.to_str().unwrap());
    bj.block_pull_domain_disk(s.client.request(v1::BlockPullDomainDiskRequest {
        domain: dom(&d),
        disk: "vda".into(),
        bandwidth_bytes_per_second: 0,
    }))
    .await
    .unwrap();
    block_event(&mut events, BlockJobType::Pull, BlockJobStatus::Completed).await;
    assert_eq!(backing_file(&ov1), "");

    // An active commit: a second overlay is committed back into the first,
    // READY, then pivoted onto it.
    let ov2 = work.join("ov2.qcow2");
    overlay(&s, &d, "ov2", &ov2).await;
    assert_eq!(backing_file(&ov2), ov1.to_str().unwrap());
    bj.block_commit_domain_disk(s.client.request(v1::BlockCommitDomainDiskRequest {
        domain: dom(&d),
        disk: "vda".into(),
        active: true,
        ..Default::default()
    }))
    .await
    .unwrap();
    block_event(
        &mut events,
        BlockJobType::ActiveCommit,
        BlockJobStatus::Ready,
    )
    .await;
    bj.abort_domain_block_job(s.client.request(v1::AbortDomainBlockJobRequest {
        domain: dom(&d),
        disk: "vda".into(),
        pivot: true,
    }))
    .await
    .unwrap();
    block_event(
        &mut events,
        BlockJobType::ActiveCommit,
        BlockJobStatus::Completed,
    )
    .await;
    let xml = live_xml(&s, &d).await;
    assert!(
        xml.contains(ov1.to_str().unwrap()) && !xml.contains(ov2.to_str().unwrap()),
        "{xml}"
    );

    // A copy into a new volume of the pool: READY, then pivoted onto it.
    let dest = st
        .create_storage_volume(s.client.request(v1::CreateStorageVolumeRequest {
            pool: libvirt_grpc_tests::pool_ref("real", &pool),
            source: Some(v1::create_storage_volume_request::Source::Spec(
                v1::StorageVolumeSpec {
                    name: "dest.qcow2".into(),
                    format: v1::StorageVolumeFormat::Qcow2 as i32,
                    capacity_bytes: 16 << 20,
                    ..Default::default()
                },
            )),
        }))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let to_volume = bj
        .block_copy_domain_disk(s.client.request(v1::BlockCopyDomainDiskRequest {
            domain: dom(&d),
            disk: "vda".into(),
            destination: Some(Destination::Volume(v1::StorageVolumeRef {
                pool: libvirt_grpc_tests::pool_ref("real", &pool),
                name: "dest.qcow2".into(),
            })),
            format: v1::StorageVolumeFormat::Qcow2 as i32,
            transient_job: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(to_volume.r#type(), BlockJobType::Copy);
    block_event(&mut events, BlockJobType::Copy, BlockJobStatus::Ready).await;
    bj.abort_domain_block_job(s.client.request(v1::AbortDomainBlockJobRequest {
        domain: dom(&d),
        disk: "vda".into(),
        pivot: true,
    }))
    .await
    .unwrap();
    block_event(&mut events, BlockJobType::Copy, BlockJobStatus::Completed).await;
    let xml = live_xml(&s, &d).await;
    assert!(xml.contains(&dest.path), "{xml}");
    // The volume now holds the guest's disk, a standalone qcow2 image.
    assert_eq!(backing_file(std::path::Path::new(&dest.path)), "");
}
