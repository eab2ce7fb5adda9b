//! The domain-internals RPCs of DomainService (issue 13) against libvirt's
//! in-process test driver: what that driver implements read back for real,
//! what it lacks answered UNIMPLEMENTED with libvirt's message, and every
//! bad request refused before libvirt is called.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use libvirt_grpc_tests::{bad_fields, code_of, v1, TestServer};
use tonic::Code;

fn by_name(name: &str) -> Option<v1::DomainRef> {
    libvirt_grpc_tests::domain_ref("", name)
}

#[tokio::test]
async fn monitor_commands_need_qemu_and_a_valid_command() {
    let s = TestServer::test_driver().await;
    let mut dom = s.client.domains();
    use v1::QemuMonitorProtocol as P;
    let req = |command: &str, protocol: P| v1::QemuMonitorCommandRequest {
        domain: by_name("test"),
        command: command.into(),
        protocol: protocol as i32,
    };
    // The test driver has no QEMU monitor: libvirt's own message.
    let st = dom
        .qemu_monitor_command(req(r#"{"execute":"query-status"}"#, P::Unspecified))
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::Unimplemented, "{st:?}");
    assert!(
        st.message().contains("virDomainQemuMonitorCommand"),
        "{}",
        st.message()
    );
    let st = dom
        .qemu_monitor_command(req("info status", P::Hmp))
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::Unimplemented, "{st:?}");

    // Bad commands never reach libvirt: each names its field.
    for (command, protocol) in [
        ("info status", P::Qmp),
        ("[]", P::Qmp),
        ("", P::Hmp),
        ("a\0b", P::Hmp),
    ] {
        let st = dom
            .qemu_monitor_command(req(command, protocol))
            .await
            .unwrap_err();
        assert_eq!(st.code(), Code::InvalidArgument, "{command:?}");
        assert_eq!(bad_fields(&st), ["command"], "{command:?}");
    }
    let long = format!(r#"{{"execute":"{}"}}"#, "x".repeat(64 << 10));
    let st = dom
        .qemu_monitor_command(req(&long, P::Qmp))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&st), ["command"]);
    // A missing domain is NOT_FOUND.
    let r = dom
        .qemu_monitor_command(v1::QemuMonitorCommandRequest {
            domain: by_name("no-such-domain"),
            ..req(r#"{"execute":"query-status"}"#, P::Qmp)
        })
        .await;
    assert_eq!(code_of(r), Code::NotFound);
}
