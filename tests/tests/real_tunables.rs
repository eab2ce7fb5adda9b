//! Tunables on a real QEMU guest: a disk's I/O limits changed live (QEMU
//! applies them: `block_set_io_throttle`) and read back; memory limits,
//! which need the cgroup memory controller this machine kind lacks, answer
//! a clear code rather than INTERNAL.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use libvirt_grpc_tests::{prefix, real_enabled, v1, Cleanup, TestServer, REAL_URI};
use tonic::Code;
use v1::typed_parameter::Value;

fn dref(name: &str) -> Option<v1::DomainRef> {
    libvirt_grpc_tests::domain_ref("real", name)
}

#[tokio::test]
async fn block_io_limits_live_and_memory_limits_without_cgroups() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let name = format!("{p}tune");
    let img = std::env::temp_dir().join(format!("{name}.img"));
    std::fs::write(&img, vec![0u8; 1 << 20]).unwrap();
    c.file(&img);
    let mut d = s.client.domains();
    d.create_domain(v1::CreateDomainRequest {
        host: "real".into(),
        source: Some(v1::create_domain_request::Source::Xml(format!(
            "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>\
             <vcpu>1</vcpu><os><type>hvm</type></os><devices>\
             <disk type='file' device='disk'><driver name='qemu' type='raw'/>\
             <source file='{}'/><target dev='vda' bus='virtio'/></disk></devices></domain>",
            img.display()
        ))),
        ..Default::default()
    })
    .await
    .unwrap();
    let set = d
        .set_domain_block_io_tune(v1::SetDomainBlockIoTuneRequest {
            domain: dref(&name),
            device: "vda".into(),
            parameters: vec![v1::TypedParameter {
                field: "total_iops_sec".into(),
                r#type: 0,
                value: Some(Value::UintValue(200)),
            }],
            scope: Some(v1::ModifyScope {
                live: true,
                config: false,
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .parameters;
    let iops = set.iter().find(|p| p.field == "total_iops_sec").unwrap();
    assert_eq!(iops.value, Some(Value::UintValue(200)), "{set:?}");
    assert_eq!(iops.r#type(), v1::TypedParameterType::Ullong);
    // What libvirt reads from QEMU now, through the domain XML as well.
    let xml = d
        .get_domain_xml(v1::GetDomainXmlRequest {
            domain: dref(&name),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .xml;
    assert!(
        xml.contains("<total_iops_sec>200</total_iops_sec>"),
        "{xml}"
    );

    let e = d
        .get_domain_memory_parameters(v1::GetDomainMemoryParametersRequest {
            domain: dref(&name),
            config: false,
        })
        .await;
    match e {
        // A machine with the memory controller: a real answer.
        Ok(r) => assert!(
            r.into_inner()
                .parameters
                .iter()
                .any(|p| p.field == "hard_limit"),
            "memory parameters without hard_limit"
        ),
        Err(e) => assert!(
            matches!(e.code(), Code::FailedPrecondition | Code::Unimplemented),
            "{e:?}"
        ),
    }
    s.stop().await;
}
