//! The domain-internals RPCs of DomainService (issue 13) against a real
//! libvirtd with real QEMU guests (the kernel + initramfs test guest of
//! `scripts/build-test-guest.sh`, no NIC): the QEMU monitor, per-device
//! counters, scheduler tuning, peeks and core dumps.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use libvirt_grpc_tests::{prefix, real_enabled, v1, Cleanup, TestServer, REAL_URI};
use v1::define_domain_request::Source;

fn by_name(name: &str) -> Option<v1::DomainRef> {
    libvirt_grpc_tests::domain_ref("real", name)
}

/// Defines the test guest `name` (its console logged under the temporary
/// directory, `devices` added to its devices) and starts it.
async fn boot(s: &TestServer, c: &mut Cleanup, name: &str, devices: &str) {
    let console = std::env::temp_dir().join(format!("{name}-console.log"));
    c.file(&console);
    let xml = libvirt_grpc_tests::guest::xml(name, console.to_str().unwrap())
        .replace("</devices>", &format!("{devices}</devices>"));
    let mut dom = s.client.domains();
    dom.define_domain(v1::DefineDomainRequest {
        host: "real".into(),
        source: Some(Source::Xml(xml)),
        ..Default::default()
    })
    .await
    .unwrap();
    dom.start_domain(v1::StartDomainRequest {
        domain: by_name(name),
        ..Default::default()
    })
    .await
    .unwrap();
}

async fn monitor(
    s: &TestServer,
    name: &str,
    command: &str,
    protocol: v1::QemuMonitorProtocol,
) -> Result<String, tonic::Status> {
    s.client
        .domains()
        .qemu_monitor_command(v1::QemuMonitorCommandRequest {
            domain: by_name(name),
            command: command.into(),
            protocol: protocol as i32,
        })
        .await
        .map(|r| r.into_inner().reply)
}

#[tokio::test]
async fn qmp_and_hmp_through_the_monitor() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let name = format!("{p}mon");
    boot(&s, &mut c, &name, "").await;
    use v1::QemuMonitorProtocol as P;

    let reply = monitor(&s, &name, r#"{"execute":"query-status"}"#, P::Qmp)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(json["return"]["status"], "running", "{reply}");
    assert_eq!(json["return"]["running"], true, "{reply}");

    let reply = monitor(&s, &name, "info status", P::Hmp).await.unwrap();
    assert!(reply.contains("running"), "{reply:?}");

    // QEMU's refusal is its answer, not a failed call.
    let reply = monitor(&s, &name, r#"{"execute":"no-such-command"}"#, P::Qmp)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(json["error"]["class"], "CommandNotFound", "{reply}");

    // A stopped domain has no monitor: FAILED_PRECONDITION.
    s.client
        .domains()
        .stop_domain(v1::StopDomainRequest {
            domain: by_name(&name),
            ..Default::default()
        })
        .await
        .unwrap();
    let st = monitor(&s, &name, "info status", P::Hmp).await.unwrap_err();
    assert_eq!(st.code(), tonic::Code::FailedPrecondition, "{st:?}");
}
