//! libvirtd is killed while a stream is open and a guest stops while it is
//! down: the stream reports the disconnect, the change and the reconnect;
//! the service answers UNAVAILABLE meanwhile. Its own binary, so it never
//! runs concurrently with other suites of this crate.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{path::Path, process::Command, time::Duration};

use libvirt_grpc_tests::{
    prefix, real_enabled, v1, virsh, wait_until, Cleanup, TestServer, REAL_URI,
};
use tokio_stream::StreamExt;
use tonic::Code;
use v1::{watch_events_response::Item as Message, DomainLifecycleEvent as L, EventKind};

const STATE_FILE: &str = "/tmp/libvirt-grpc-libvirtd.pid";

fn kill(pid_file: &str) {
    let pid = std::fs::read_to_string(pid_file).unwrap();
    let pid = pid.trim();
    assert!(pid.parse::<u32>().is_ok(), "pid file {pid_file}: {pid:?}");
    let st = Command::new("kill").args(["-9", pid]).status().unwrap();
    assert!(st.success());
}

fn libvirtd_start() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/libvirtd.sh");
    let st = Command::new(script).arg("start").status().unwrap();
    assert!(st.success(), "scripts/libvirtd.sh start failed");
}

#[tokio::test]
async fn libvirtd_restart_is_reported_and_reconciled() {
    if !real_enabled() {
        return;
    }
    if !Path::new(STATE_FILE).exists() {
        eprintln!("skipped: libvirtd was not started by scripts/libvirtd.sh");
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let _c = Cleanup::new(REAL_URI, &p);
    let name = format!("{p}rs");
    let xml = std::env::temp_dir().join(format!("{name}.xml"));
    std::fs::write(
        &xml,
        format!(
            "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>\
             <vcpu>1</vcpu><os><type>hvm</type></os><devices/></domain>"
        ),
    )
    .unwrap();
    virsh(&["define", xml.to_str().unwrap()]);
    let _ = std::fs::remove_file(&xml);
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
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(60), st.next())
            .await
            .expect("message within 60 s")
            .unwrap()
            .unwrap()
            .item
            .unwrap()
    };
    assert!(matches!(next().await, Message::Started(_)));
    virsh(&["start", &name]);
    loop {
        if let Message::Event(e) = next().await {
            if e.kind() == EventKind::Lifecycle
                && e.state
                    .as_ref()
                    .is_some_and(|h| h.domain_state() == v1::DomainState::Running)
            {
                break;
            }
        }
    }
    let qemu_pid = format!("/var/run/libvirt/qemu/{name}.pid");
    assert!(Path::new(&qemu_pid).exists());

    kill(STATE_FILE);
    loop {
        if let Message::Event(e) = next().await {
            if e.kind() == EventKind::HostDisconnected {
                break;
            }
        }
    }
    // While libvirtd is down the guest stops, and the service says UNAVAILABLE.
    kill(&qemu_pid);
    let r = s
        .client
        .domains()
        .get_domain(v1::GetDomainRequest {
            domain: Some(v1::DomainRef {
                host: "real".into(),
                key: Some(v1::domain_ref::Key::Name(name.clone())),
            }),
            ..Default::default()
        })
        .await;
    assert_eq!(r.unwrap_err().code(), Code::Unavailable);

    libvirtd_start();
    let mut stopped = None;
    let mut reconnected = false;
    while stopped.is_none() || !reconnected {
        let m = next().await;
        eprintln!("after restart: {m:?}");
        if let Message::Event(e) = m {
            match e.kind() {
                EventKind::HostReconnected => reconnected = true,
                EventKind::Lifecycle => {
                    if let Some(v1::event::Details::Lifecycle(l)) = &e.details {
                        if l.event() == L::Stopped {
                            assert_eq!(
                                e.state.as_ref().unwrap().domain_state(),
                                v1::DomainState::Shutoff
                            );
                            eprintln!(
                                "stopped event: reconciled={} detail={:?}",
                                e.reconciled,
                                l.detail()
                            );
                            stopped = Some(e.reconciled);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let c = s.client.clone();
    let n = name.clone();
    let d = wait_until(Duration::from_secs(30), "service answers again", || {
        let c = c.clone();
        let n = n.clone();
        async move {
            c.domains()
                .get_domain(v1::GetDomainRequest {
                    domain: Some(v1::DomainRef {
                        host: "real".into(),
                        key: Some(v1::domain_ref::Key::Name(n)),
                    }),
                    ..Default::default()
                })
                .await
                .ok()
        }
    })
    .await
    .into_inner();
    assert_eq!(d.domain.unwrap().state(), v1::DomainState::Shutoff);
}
