//! Event kinds the server registers that the other suites do not cause:
//! each triggered once through the API on a real QEMU guest and seen on
//! `WatchEvents` with its details (DEVICE_REMOVED, TRAY_CHANGE,
//! BALLOON_CHANGE, JOB_COMPLETED).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use libvirt_grpc_tests::{guest, prefix, real_enabled, v1, Cleanup, TestServer, REAL_URI};
use tokio_stream::StreamExt;
use v1::{create_domain_request::Source, event::Details, watch_events_response::Item};

fn dref(name: &str) -> Option<v1::DomainRef> {
    libvirt_grpc_tests::domain_ref("real", name)
}

fn live() -> Option<v1::ModifyScope> {
    Some(v1::ModifyScope {
        live: true,
        config: false,
    })
}

/// The next event of `kind` on `st` (other kinds are skipped): its details.
async fn next_of(
    st: &mut tonic::Streaming<v1::WatchEventsResponse>,
    kind: v1::EventKind,
    within: Duration,
) -> Details {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let m = tokio::time::timeout_at(deadline, st.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind:?} event within {within:?}"))
            .expect("the stream goes on")
            .expect("no stream error");
        if let Some(Item::Event(e)) = m.item {
            if e.kind() == kind {
                return e.details.expect("these kinds carry details");
            }
        }
    }
}

#[tokio::test]
async fn device_removed_tray_balloon_and_job_completed_events() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let name = format!("{p}kinds");
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    c.file(&dir);
    let cd = dir.join("cd.iso");
    std::fs::write(&cd, vec![0u8; 1 << 20]).unwrap();
    let usb = dir.join("usb.img");
    std::fs::write(&usb, vec![0u8; 1 << 20]).unwrap();
    let log = dir.join("console.log");
    // The test guest (its kernel loads virtio_balloon) with a balloon and a
    // CD-ROM drive holding a disc.
    let xml = guest::xml(&name, log.to_str().unwrap())
        .replace("<memballoon model='none'/>", "<memballoon model='virtio'/>")
        .replace(
            "<devices>",
            &format!(
                "<devices><disk type='file' device='cdrom'><driver name='qemu' type='raw'/>\
                 <source file='{}'/><target dev='hdc' bus='ide'/><readonly/></disk>",
                cd.display()
            ),
        );
    let mut st = s
        .client
        .events()
        .watch_events(v1::WatchEventsRequest {
            hosts: vec!["real".into()],
            names: vec![name.clone()],
            kinds: vec![
                v1::EventKind::DeviceRemoved as i32,
                v1::EventKind::TrayChange as i32,
                v1::EventKind::BalloonChange as i32,
                v1::EventKind::JobCompleted as i32,
            ],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut domains = s.client.domains();
    domains
        .create_domain(v1::CreateDomainRequest {
            host: "real".into(),
            source: Some(Source::Xml(xml)),
            ..Default::default()
        })
        .await
        .unwrap();

    // BALLOON_CHANGE: the guest's balloon driver gives back 64 MiB of its
    // 256 (once it loaded: QEMU keeps the target until then).
    domains
        .set_domain_memory(v1::SetDomainMemoryRequest {
            domain: dref(&name),
            memory_bytes: 192 << 20,
            scope: live(),
            maximum: false,
        })
        .await
        .unwrap();
    let mut actual = 0;
    while actual != 192 << 20 {
        let Details::BalloonChange(b) = next_of(
            &mut st,
            v1::EventKind::BalloonChange,
            Duration::from_secs(120),
        )
        .await
        else {
            panic!("BALLOON_CHANGE without its details");
        };
        assert!(
            b.actual_bytes <= 256 << 20 && b.actual_bytes % 1024 == 0,
            "{b:?}"
        );
        actual = b.actual_bytes;
    }

    // DEVICE_REMOVED: a USB disk (no guest cooperation needed) plugged in
    // and pulled out again.
    let disk = format!(
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
         <source file='{}'/><target dev='sdb' bus='usb'/></disk>",
        usb.display()
    );
    domains
        .attach_domain_device(v1::AttachDomainDeviceRequest {
            domain: dref(&name),
            xml: disk.clone(),
            scope: live(),
        })
        .await
        .unwrap();
    domains
        .detach_domain_device(v1::DetachDomainDeviceRequest {
            domain: dref(&name),
            xml: disk,
            scope: live(),
        })
        .await
        .unwrap();
    let Details::Device(d) = next_of(
        &mut st,
        v1::EventKind::DeviceRemoved,
        Duration::from_secs(30),
    )
    .await
    else {
        panic!("DEVICE_REMOVED without its details");
    };
    assert!(d.alias.contains("usb-disk"), "{d:?}");

    // TRAY_CHANGE: the disc ejected (the drive's tray opens).
    domains
        .update_domain_device(v1::UpdateDomainDeviceRequest {
            domain: dref(&name),
            xml: "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>\
                  <target dev='hdc' bus='ide'/><readonly/></disk>"
                .into(),
            scope: live(),
            force: false,
        })
        .await
        .unwrap();
    let Details::TrayChange(t) =
        next_of(&mut st, v1::EventKind::TrayChange, Duration::from_secs(30)).await
    else {
        panic!("TRAY_CHANGE without its details");
    };
    assert_eq!(t.reason(), v1::TrayChangeReason::Open, "{t:?}");
    assert!(t.device_alias.starts_with("ide"), "{t:?}");

    // JOB_COMPLETED: saving the domain is a job; its statistics come along.
    let save = dir.join("saved.img");
    domains
        .save_domain(v1::SaveDomainRequest {
            domain: dref(&name),
            path: save.to_str().unwrap().into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let Details::JobCompleted(j) = next_of(
        &mut st,
        v1::EventKind::JobCompleted,
        Duration::from_secs(60),
    )
    .await
    else {
        panic!("JOB_COMPLETED without its details");
    };
    assert_eq!(j.operation(), v1::DomainJobOperation::Save, "{j:?}");
    assert!(j.stats.contains_key("memory_total"), "{j:?}");
    assert!(j.elapsed.is_some(), "{j:?}");
    s.stop().await;
}
