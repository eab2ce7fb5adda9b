//! The request bounds of `fast_limits`, against the real libvirtd: an absurd
//! vCPU count or an entity bomb never reaches the daemon (its memory stays
//! flat), and what the host allows still works.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use libvirt_grpc_tests::{
    domain_ref, pool_ref, prefix, real_enabled, rss_kib, small_spec, v1, Cleanup, TestServer,
    REAL_URI,
};
use tonic::Code;
use v1::define_domain_request::Source;

/// The resident set size of the system libvirtd, in KiB.
fn libvirtd_rss_kib() -> u64 {
    let pid = std::fs::read_to_string("/var/run/libvirtd.pid").unwrap();
    rss_kib(pid.trim().parse().unwrap())
}

fn define(xml_or_spec: Source) -> v1::DefineDomainRequest {
    v1::DefineDomainRequest {
        host: "real".into(),
        source: Some(xml_or_spec),
        validate: false,
    }
}

#[tokio::test]
async fn absurd_definitions_never_reach_libvirtd() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let _c = Cleanup::new(REAL_URI, &p);
    let mut dom = s.client.domains();
    let before = libvirtd_rss_kib();
    let spec = |vcpus| v1::DomainSpec {
        domain_type: "qemu".into(),
        vcpus,
        ..small_spec(&format!("{p}big"))
    };
    for vcpus in [i32::MAX as u32, 10_000_000] {
        let e = dom
            .define_domain(define(Source::Spec(spec(vcpus))))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
        assert!(e.message().contains("spec.vcpus"), "{}", e.message());
        let xml = format!(
            "<domain type='qemu'><name>{p}big</name><memory>65536</memory>\
             <vcpu>{vcpus}</vcpu><os><type>hvm</type></os></domain>"
        );
        let e = dom
            .define_domain(define(Source::Xml(xml)))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    }
    let bomb = format!(
        "<!DOCTYPE domain [<!ENTITY e '{}'>]><domain type='qemu'><name>{p}bomb</name>\
         <description>{}</description><memory>65536</memory><os><type>hvm</type></os></domain>",
        "a".repeat(100_000),
        "&e;".repeat(100)
    );
    let e = dom
        .define_domain(define(Source::Xml(bomb)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    let grown = libvirtd_rss_kib().saturating_sub(before);
    assert!(grown < 32 * 1024, "libvirtd grew by {grown} KiB");

    // The host's own limit for qemu guests still works, reported exactly.
    let max = {
        let conn = virt::connect::Connect::open(Some(REAL_URI)).unwrap();
        conn.max_vcpus(Some("qemu")).unwrap()
    };
    let d = dom
        .define_domain(define(Source::Spec(spec(max))))
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert_eq!(d.vcpus, max);
    let e = dom
        .define_domain(define(Source::Spec(spec(max + 1))))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
}

/// A volume that asks for more allocation than the file system holds is
/// RESOURCE_EXHAUSTED (libvirt's fallocate fails with ENOSPC), and leaves
/// no file behind.
#[tokio::test]
async fn a_volume_larger_than_the_disk_is_resource_exhausted() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let dir = std::env::temp_dir().join(format!("{p}pool"));
    std::fs::create_dir_all(&dir).unwrap();
    c.file(&dir);
    let pool = format!("{p}pool");
    {
        let conn = virt::connect::Connect::open(Some(REAL_URI)).unwrap();
        let xml = format!(
            "<pool type='dir'><name>{pool}</name><target><path>{}</path></target></pool>",
            dir.display()
        );
        conn.create_storage_pool_xml(&xml, 0).unwrap();
    }
    let e = s
        .client
        .storage()
        .create_storage_volume(v1::CreateStorageVolumeRequest {
            pool: pool_ref("real", &pool),
            source: Some(v1::create_storage_volume_request::Source::Spec(
                v1::StorageVolumeSpec {
                    name: "huge.img".into(),
                    format: v1::StorageVolumeFormat::Raw as i32,
                    capacity_bytes: 1 << 50,
                    allocation_bytes: 1 << 50,
                    ..Default::default()
                },
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{}", e.message());
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "a file was left"
    );
}

/// Caller mistakes QEMU and its driver report without a code of their own
/// (found by the adversarial battery): a missing device, a definition QEMU
/// refuses to start. The domain is left as it was.
#[tokio::test]
async fn qemu_refusals_answer_caller_mistake_codes() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let _c = Cleanup::new(REAL_URI, &p);
    let mut dom = s.client.domains();
    let name = format!("{p}vm");
    let dref = || domain_ref("real", &name);
    let spec = v1::DomainSpec {
        domain_type: "qemu".into(),
        ..small_spec(&name)
    };
    dom.define_domain(define(Source::Spec(spec))).await.unwrap();
    // Under the harness's roots (the temp dir): the device is what is
    // missing, not the permission to name its file.
    let missing = std::env::temp_dir().join(format!("{p}nonexistent.img"));
    let disk = format!(
        "<disk type='file' device='disk'><source file='{}'/>\
         <target dev='sdb' bus='scsi'/></disk>",
        missing.display()
    );
    let e = dom
        .detach_domain_device(v1::DetachDomainDeviceRequest {
            domain: dref(),
            xml: disk.clone(),
            scope: Some(v1::ModifyScope {
                live: false,
                config: true,
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{}", e.message());
    // On a running domain, libvirt reports the missing device of an update
    // as INTERNAL_ERROR; the server answers NOT_FOUND.
    dom.start_domain(v1::StartDomainRequest {
        domain: dref(),
        ..Default::default()
    })
    .await
    .unwrap();
    let e = dom
        .update_domain_device(v1::UpdateDomainDeviceRequest {
            domain: dref(),
            xml: disk.clone(),
            scope: Some(v1::ModifyScope {
                live: true,
                config: false,
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{}", e.message());
    dom.stop_domain(v1::StopDomainRequest {
        domain: dref(),
        ..Default::default()
    })
    .await
    .unwrap();

    // A directory as the kernel: QEMU itself refuses to start.
    let dir = std::env::temp_dir();
    let spec = v1::DomainSpec {
        domain_type: "qemu".into(),
        boot: Some(v1::BootSpec {
            kernel: dir.display().to_string(),
            ..Default::default()
        }),
        ..small_spec(&format!("{p}kdir"))
    };
    let e = dom
        .create_domain(v1::CreateDomainRequest {
            host: "real".into(),
            source: Some(v1::create_domain_request::Source::Spec(spec)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{}", e.message());
    let d = dom
        .get_domain(v1::GetDomainRequest {
            domain: dref(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert_eq!(d.state(), v1::DomainState::Shutoff);
}
