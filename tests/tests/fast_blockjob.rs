//! BlockJobService against libvirt's in-process test driver, which has no
//! block jobs: every call answers UNIMPLEMENTED with libvirt's message,
//! and the bad-input rules (disk names, bandwidth bounds, a destination
//! outside the roots or one that exists) hold before libvirt is called.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use libvirt_grpc_tests::{bad_fields, code_of, prefix, small_spec, v1, Cleanup, TestServer};
use tonic::Code;
use v1::block_copy_domain_disk_request::Destination;

const URI: &str = "test:///default";

fn dom(name: &str) -> Option<v1::DomainRef> {
    libvirt_grpc_tests::domain_ref("", name)
}

#[tokio::test]
async fn the_test_driver_has_no_block_jobs() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let mut c = Cleanup::new(URI, &p);
    let d = format!("{p}vm");
    s.client.define_domain(small_spec(&d)).await.unwrap();
    s.client.start_domain(&d).await.unwrap();
    let dir = std::env::temp_dir().join(format!("{p}bj"));
    c.file(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let dest = dir.join("copy.qcow2");
    let mut bj = s.client.block_jobs();

    let copy = bj
        .block_copy_domain_disk(s.client.request(v1::BlockCopyDomainDiskRequest {
            domain: dom(&d),
            disk: "vda".into(),
            destination: Some(Destination::File(dest.to_str().unwrap().into())),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(copy.code(), Code::Unimplemented, "{copy:?}");
    assert!(copy.message().contains("not supported"), "{copy:?}");
    assert!(!dest.exists(), "a failed copy left its destination");
    let info = bj
        .get_domain_block_job(s.client.request(v1::GetDomainBlockJobRequest {
            domain: dom(&d),
            disk: "vda".into(),
        }))
        .await;
    assert_eq!(code_of(info), Code::Unimplemented);
    let speed = bj
        .set_domain_block_job_speed(s.client.request(v1::SetDomainBlockJobSpeedRequest {
            domain: dom(&d),
            disk: "vda".into(),
            bandwidth_bytes_per_second: 1 << 20,
        }))
        .await;
    assert_eq!(code_of(speed), Code::Unimplemented);
    let abort = bj
        .abort_domain_block_job(s.client.request(v1::AbortDomainBlockJobRequest {
            domain: dom(&d),
            disk: "vda".into(),
            pivot: true,
        }))
        .await;
    assert_eq!(code_of(abort), Code::Unimplemented);
    let commit = bj
        .block_commit_domain_disk(s.client.request(v1::BlockCommitDomainDiskRequest {
            domain: dom(&d),
            disk: "vda".into(),
            active: true,
            ..Default::default()
        }))
        .await;
    assert_eq!(code_of(commit), Code::Unimplemented);
    let pull = bj
        .block_pull_domain_disk(s.client.request(v1::BlockPullDomainDiskRequest {
            domain: dom(&d),
            disk: "vda".into(),
            bandwidth_bytes_per_second: 0,
        }))
        .await;
    assert_eq!(code_of(pull), Code::Unimplemented);
    // A volume destination: the volume is looked up first (NOT_FOUND), and
    // the driver then lacks the copy.
    let pool = format!("{p}bjpool");
    s.client
        .storage()
        .define_storage_pool(s.client.request(v1::DefineStoragePoolRequest {
            source: Some(v1::define_storage_pool_request::Source::Spec(
                v1::StoragePoolSpec {
                    name: pool.clone(),
                    r#type: v1::StoragePoolType::Dir as i32,
                    target_path: format!("/tmp/{pool}"),
                    ..Default::default()
                },
            )),
            build: true,
            start: true,
            ..Default::default()
        }))
        .await
        .unwrap();
    s.client
        .storage()
        .create_storage_volume(s.client.request(v1::CreateStorageVolumeRequest {
            pool: libvirt_grpc_tests::pool_ref("", &pool),
            source: Some(v1::create_storage_volume_request::Source::Spec(
                v1::StorageVolumeSpec {
                    name: "dest.img".into(),
                    capacity_bytes: 1 << 20,
                    ..Default::default()
                },
            )),
        }))
        .await
        .unwrap();
    let to_volume = |name: &str| v1::BlockCopyDomainDiskRequest {
        domain: dom(&d),
        disk: "vda".into(),
        destination: Some(Destination::Volume(v1::StorageVolumeRef {
            pool: libvirt_grpc_tests::pool_ref("", &pool),
            name: name.into(),
        })),
        ..Default::default()
    };
    let e = bj
        .block_copy_domain_disk(s.client.request(to_volume("missing.img")))
        .await;
    assert_eq!(code_of(e), Code::NotFound);
    let e = bj
        .block_copy_domain_disk(s.client.request(to_volume("dest.img")))
        .await;
    assert_eq!(code_of(e), Code::Unimplemented);
    let e = bj
        .block_copy_domain_disk(s.client.request(v1::BlockCopyDomainDiskRequest {
            domain: dom(&d),
            disk: "vda".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&e), ["destination"]);
    let missing = bj
        .get_domain_block_job(s.client.request(v1::GetDomainBlockJobRequest {
            domain: dom(&format!("{p}nodomain")),
            disk: "vda".into(),
        }))
        .await;
    assert_eq!(code_of(missing), Code::NotFound);
}

#[tokio::test]
async fn block_job_requests_are_checked_before_libvirt() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let mut c = Cleanup::new(URI, &p);
    let d = format!("{p}vm");
    s.client.define_domain(small_spec(&d)).await.unwrap();
    let dir = std::env::temp_dir().join(format!("{p}bjbad"));
    c.file(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut bj = s.client.block_jobs();

    // A destination that exists is ALREADY_EXISTS and left as it was.
    let taken = dir.join("taken.qcow2");
    std::fs::write(&taken, b"not yours").unwrap();
    let e = bj
        .block_copy_domain_disk(s.client.request(v1::BlockCopyDomainDiskRequest {
            domain: dom(&d),
            disk: "vda".into(),
            destination: Some(Destination::File(taken.to_str().unwrap().into())),
            ..Default::default()
        }))
        .await;
    assert_eq!(code_of(e), Code::AlreadyExists);
    assert_eq!(std::fs::read(&taken).unwrap(), b"not yours");
    // Outside the roots: PERMISSION_DENIED, nothing made.
    let outside = format!("/etc/{p}copy.qcow2");
    let e = bj
        .block_copy_domain_disk(s.client.request(v1::BlockCopyDomainDiskRequest {
            domain: dom(&d),
            disk: "vda".into(),
            destination: Some(Destination::File(outside.clone())),
            ..Default::default()
        }))
        .await;
    assert_eq!(code_of(e), Code::PermissionDenied);
    assert!(!std::path::Path::new(&outside).exists());
    // Every bad field in one BadRequest, the domain's too.
    let e = bj
        .block_copy_domain_disk(s.client.request(v1::BlockCopyDomainDiskRequest {
            domain: None,
            disk: "a/b".into(),
            destination: Some(Destination::File("copy.qcow2".into())),
            format: v1::StorageVolumeFormat::Iso as i32,
            bandwidth_bytes_per_second: u64::MAX,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(
        bad_fields(&e),
        [
            "domain",
            "disk",
            "file",
            "format",
            "bandwidth_bytes_per_second"
        ]
    );
    let e = bj
        .set_domain_block_job_speed(s.client.request(v1::SetDomainBlockJobSpeedRequest {
            domain: dom(&d),
            disk: String::new(),
            bandwidth_bytes_per_second: 1 << 63,
        }))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&e), ["disk", "bandwidth_bytes_per_second"]);
    let e = bj
        .block_commit_domain_disk(s.client.request(v1::BlockCommitDomainDiskRequest {
            domain: dom(&d),
            disk: "vda".into(),
            base: "relative.qcow2".into(),
            top: "/x/../y".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&e), ["base", "top"]);
    let e = bj
        .get_domain_block_job(s.client.request(v1::GetDomainBlockJobRequest {
            domain: dom(&d),
            disk: String::new(),
        }))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&e), ["disk"]);
}
