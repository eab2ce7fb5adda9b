//! EventService against a real libvirtd: changes made through virsh (not
//! through the service) appear on the stream, in order.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use libvirt_grpc_tests::{prefix, real_enabled, v1, virsh, Cleanup, TestServer, REAL_URI};
use tokio_stream::StreamExt;
use v1::{
    watch_events_response::Item as Message, DomainLifecycleDetail as D, DomainLifecycleEvent as L,
};

pub fn diskless_xml(name: &str) -> String {
    format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>\
         <vcpu>1</vcpu><os><type>hvm</type></os><devices/></domain>"
    )
}

#[tokio::test]
async fn virsh_changes_appear_on_the_stream() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let _c = Cleanup::new(REAL_URI, &p);
    let name = format!("{p}ev");
    let mut st = s
        .client
        .events()
        .watch_events(v1::WatchEventsRequest {
            hosts: vec!["real".into()],
            names: vec![name.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        st.next().await.unwrap().unwrap().item,
        Some(Message::Started(_))
    ));
    let xml = std::env::temp_dir().join(format!("{name}.xml"));
    std::fs::write(&xml, diskless_xml(&name)).unwrap();
    virsh(&["define", xml.to_str().unwrap()]);
    virsh(&["start", &name]);
    virsh(&["suspend", &name]);
    virsh(&["resume", &name]);
    virsh(&["destroy", &name]);
    virsh(&["undefine", &name]);
    let _ = std::fs::remove_file(&xml);
    let want = [
        L::Defined,
        L::Started,
        L::Suspended,
        L::Resumed,
        L::Stopped,
        L::Undefined,
    ];
    let mut got = Vec::new();
    while got.last() != Some(&L::Undefined) {
        let m = tokio::time::timeout(Duration::from_secs(20), st.next())
            .await
            .expect("event within 20 s")
            .unwrap()
            .unwrap();
        if let Some(Message::Event(e)) = m.item {
            assert_eq!(e.host, "real");
            let t = e.event_time.expect("every event has a time");
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            assert!(
                (now - t.seconds).abs() < 30,
                "event_time {t:?} is not near now"
            );
            if let Some(v1::event::Details::Lifecycle(l)) = &e.details {
                got.push(l.event());
                match l.event() {
                    L::Started => assert_eq!(l.detail(), D::StartedBooted),
                    L::Suspended => assert_eq!(l.detail(), D::SuspendedPaused),
                    L::Stopped => {
                        assert_eq!(l.detail(), D::StoppedDestroyed);
                        assert_eq!(l.detail_code, 1, "VIR_DOMAIN_EVENT_STOPPED_DESTROYED");
                        // Read right after the event: the undefine may
                        // already have happened, but not another state.
                        let hint = e.state.unwrap();
                        if hint.exists {
                            assert_eq!(
                                (hint.domain_state(), hint.domain_state_reason()),
                                (
                                    v1::DomainState::Shutoff,
                                    v1::DomainStateReason::ShutoffDestroyed
                                )
                            );
                        }
                    }
                    L::Undefined => assert_eq!(l.detail(), D::UndefinedRemoved),
                    _ => {}
                }
            }
        }
    }
    // QEMU adds its own steps (RESUMED right after start, SHUTDOWN before
    // STOPPED); ours must appear in this order among them.
    let mut it = got.iter();
    for w in want {
        assert!(
            it.any(|g| *g == w),
            "{w:?} missing or out of order in {got:?}"
        );
    }
}

/// Hot-plug and reset of a real QEMU guest, made through virsh, arrive as
/// DEVICE_ADDED (with the device alias) and REBOOT events.
#[tokio::test]
async fn hotplug_and_reset_events() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let name = format!("{p}hp");
    let dir = std::env::temp_dir().join(format!("{p}hp"));
    std::fs::create_dir_all(&dir).unwrap();
    c.file(&dir);
    let xml = dir.join("dom.xml");
    std::fs::write(
        &xml,
        format!(
            "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>\
             <vcpu>1</vcpu><os><type>hvm</type></os><features><acpi/></features><devices/></domain>"
        ),
    )
    .unwrap();
    let img = dir.join("disk.img");
    std::fs::write(&img, vec![0u8; 1 << 20]).unwrap();
    let mut st = s
        .client
        .events()
        .watch_events(v1::WatchEventsRequest {
            hosts: vec!["real".into()],
            names: vec![name.clone()],
            kinds: vec![
                v1::EventKind::DeviceAdded as i32,
                v1::EventKind::Reboot as i32,
            ],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    virsh(&["create", xml.to_str().unwrap()]);
    virsh(&["attach-disk", &name, img.to_str().unwrap(), "vdb", "--live"]);
    virsh(&["reset", &name]);
    let mut kinds = Vec::new();
    let mut alias = String::new();
    while kinds.len() < 2 {
        let msg = tokio::time::timeout(Duration::from_secs(30), st.next())
            .await
            .expect("event within 30 s")
            .unwrap()
            .unwrap();
        if let Some(Message::Event(e)) = msg.item {
            if let Some(v1::event::Details::Device(d)) = &e.details {
                alias = d.alias.clone();
            }
            kinds.push(e.kind());
        }
    }
    assert_eq!(
        kinds,
        vec![v1::EventKind::DeviceAdded, v1::EventKind::Reboot]
    );
    assert!(alias.contains("disk"), "alias {alias:?}");
    virsh(&["destroy", &name]);
}

/// libvirt's own `(state, reason)` of `name`, read now through a direct
/// connection, as the hint's enum and reason code.
fn libvirt_state(conn: &virt::connect::Connect, name: &str) -> (v1::DomainState, i32) {
    let (state, reason) =
        libvirt_grpc_server::libvirt_sys::domain_state(&conn.lookup_domain_by_name(name).unwrap())
            .unwrap();
    let state = match state as u32 {
        virt::sys::VIR_DOMAIN_RUNNING => v1::DomainState::Running,
        virt::sys::VIR_DOMAIN_PAUSED => v1::DomainState::Paused,
        virt::sys::VIR_DOMAIN_SHUTOFF => v1::DomainState::Shutoff,
        other => panic!("unexpected libvirt state {other}"),
    };
    (state, reason)
}

/// Waits for the next lifecycle event `want` of the stream (skipping the
/// steps QEMU adds, such as RESUMED at boot) and returns its hint.
async fn hint_of_next(
    st: &mut tonic::Streaming<v1::WatchEventsResponse>,
    want: L,
) -> v1::ObjectState {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(30), st.next())
            .await
            .expect("event within 30 s")
            .unwrap()
            .unwrap();
        if let Some(Message::Event(e)) = m.item {
            if let Some(v1::event::Details::Lifecycle(l)) = &e.details {
                if l.event() == want {
                    return e.state.expect("domain events carry a hint");
                }
            }
        }
    }
}

/// A real QEMU guest started, suspended, resumed and destroyed through
/// virsh: each event's state hint is exactly what libvirt says once the
/// step is done (the guest does not move in between), and a transient
/// guest's STOPPED says it is gone.
#[tokio::test]
async fn state_hints_match_what_libvirt_says() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let _c = Cleanup::new(REAL_URI, &p);
    let conn = virt::connect::Connect::open(Some(REAL_URI)).unwrap();
    let name = format!("{p}hint");
    let mut st = s
        .client
        .events()
        .watch_events(v1::WatchEventsRequest {
            hosts: vec!["real".into()],
            names: vec![name.clone()],
            kinds: vec![v1::EventKind::Lifecycle as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        st.next().await.unwrap().unwrap().item,
        Some(Message::Started(_))
    ));
    let xml = std::env::temp_dir().join(format!("{name}.xml"));
    std::fs::write(&xml, diskless_xml(&name)).unwrap();
    virsh(&["define", xml.to_str().unwrap()]);
    let defined = hint_of_next(&mut st, L::Defined).await;
    assert!(defined.exists && !defined.active);
    for (cmd, event, state, active) in [
        ("start", L::Started, v1::DomainState::Running, true),
        ("suspend", L::Suspended, v1::DomainState::Paused, true),
        ("resume", L::Resumed, v1::DomainState::Running, true),
        ("destroy", L::Stopped, v1::DomainState::Shutoff, false),
    ] {
        virsh(&[cmd, &name]);
        let hint = hint_of_next(&mut st, event).await;
        let (now, reason) = libvirt_state(&conn, &name);
        assert_eq!(now, state, "{cmd}: libvirt's state");
        assert!(hint.exists, "{cmd}: {hint:?}");
        assert_eq!(
            (
                hint.domain_state(),
                hint.domain_state_reason_code,
                hint.active
            ),
            (now, reason, active),
            "{cmd}: the hint is libvirt's state and reason"
        );
    }
    virsh(&["undefine", &name]);
    assert_eq!(
        hint_of_next(&mut st, L::Undefined).await,
        v1::ObjectState::default(),
        "gone after undefine"
    );
    // Transient: created, then destroyed: STOPPED says gone.
    virsh(&["create", xml.to_str().unwrap()]);
    let started = hint_of_next(&mut st, L::Started).await;
    assert!(started.exists && started.active);
    virsh(&["destroy", &name]);
    assert_eq!(
        hint_of_next(&mut st, L::Stopped).await,
        v1::ObjectState::default(),
        "a transient domain is gone once stopped"
    );
    let _ = std::fs::remove_file(&xml);
}
