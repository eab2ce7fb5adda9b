//! Emulator pinning and IOThreads on a real QEMU guest: live changes read
//! back, and an IOThread a disk uses cannot be removed.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use libvirt_grpc_tests::{code_of, prefix, real_enabled, v1, Cleanup, TestServer, REAL_URI};
use tonic::Code;

fn dref(name: &str) -> Option<v1::DomainRef> {
    libvirt_grpc_tests::domain_ref("real", name)
}

fn live() -> Option<v1::ModifyScope> {
    Some(v1::ModifyScope {
        live: true,
        config: false,
    })
}

#[tokio::test]
async fn live_emulator_pinning_and_iothreads() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let name = format!("{p}threads");
    let img = std::env::temp_dir().join(format!("{name}.img"));
    std::fs::write(&img, vec![0u8; 1 << 20]).unwrap();
    c.file(&img);
    let mut d = s.client.domains();
    d.create_domain(v1::CreateDomainRequest {
        host: "real".into(),
        source: Some(v1::create_domain_request::Source::Xml(format!(
            "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>\
             <vcpu>1</vcpu><iothreads>1</iothreads><os><type>hvm</type></os><devices>\
             <disk type='file' device='disk'><driver name='qemu' type='raw' iothread='1'/>\
             <source file='{}'/><target dev='vda' bus='virtio'/></disk></devices></domain>",
            img.display()
        ))),
        ..Default::default()
    })
    .await
    .unwrap();

    // The emulator threads, pinned live to CPU 0 and read back.
    d.pin_domain_emulator(v1::PinDomainEmulatorRequest {
        domain: dref(&name),
        cpus: vec![0],
        scope: live(),
    })
    .await
    .unwrap();
    let cpus = d
        .get_domain_emulator_pinning(v1::GetDomainEmulatorPinningRequest {
            domain: dref(&name),
            config: false,
        })
        .await
        .unwrap()
        .into_inner()
        .cpus;
    assert_eq!(cpus, vec![0]);

    // IOThread 2 added live (QEMU starts the thread), pinned, removed.
    let list = d
        .add_domain_io_thread(v1::AddDomainIoThreadRequest {
            domain: dref(&name),
            iothread_id: 2,
            scope: live(),
        })
        .await
        .unwrap()
        .into_inner()
        .iothreads;
    let ids: Vec<u32> = list.iter().map(|t| t.iothread_id).collect();
    assert_eq!(ids, vec![1, 2]);
    let list = d
        .pin_domain_io_thread(v1::PinDomainIoThreadRequest {
            domain: dref(&name),
            iothread_id: 2,
            cpus: vec![0],
            scope: live(),
        })
        .await
        .unwrap()
        .into_inner()
        .iothreads;
    assert_eq!(list[1].cpus, vec![0], "{list:?}");
    let list = d
        .delete_domain_io_thread(v1::DeleteDomainIoThreadRequest {
            domain: dref(&name),
            iothread_id: 2,
            scope: live(),
        })
        .await
        .unwrap()
        .into_inner()
        .iothreads;
    assert_eq!(list.len(), 1, "{list:?}");

    // IOThread 1 serves vda: refused, and still there.
    let r = d
        .delete_domain_io_thread(v1::DeleteDomainIoThreadRequest {
            domain: dref(&name),
            iothread_id: 1,
            scope: live(),
        })
        .await;
    assert_eq!(code_of(r), Code::FailedPrecondition);
    let list = d
        .get_domain_io_threads(v1::GetDomainIoThreadsRequest {
            domain: dref(&name),
            config: false,
        })
        .await
        .unwrap()
        .into_inner()
        .iothreads;
    assert_eq!(
        list.iter().map(|t| t.iothread_id).collect::<Vec<_>>(),
        vec![1]
    );
    s.stop().await;
}
