//! GuestAgentService against libvirt's in-process test driver: the agent
//! calls that driver implements answer for real, the others are
//! UNIMPLEMENTED naming the libvirt call, and bad requests are
//! INVALID_ARGUMENT naming the field.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use libvirt_grpc_tests::{code_of, prefix, small_spec, v1, Cleanup, TestServer};
use tonic::{Code, Status};
use tonic_types::StatusExt;
use v1::{domain_ref::Key, DomainRef};

const URI: &str = "test:///default";

fn dref(name: &str) -> Option<DomainRef> {
    Some(DomainRef {
        host: String::new(),
        key: Some(Key::Name(name.to_owned())),
    })
}

/// A running domain of our own (never the shared built-in `test`).
async fn running(s: &TestServer, p: &str) -> String {
    let name = format!("{p}vm");
    s.client.define_domain(small_spec(&name)).await.unwrap();
    s.client.start_domain(&name).await.unwrap();
    name
}

fn unimplemented<T: std::fmt::Debug>(r: Result<T, Status>, call: &str) {
    let e = r.unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented, "{e:?}");
    assert!(e.message().contains(call), "{call} not named in {e:?}");
}

fn bad_field<T: std::fmt::Debug>(r: Result<T, Status>, field: &str) {
    let e = r.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let details = e.get_error_details();
    let v = details.bad_request().expect("bad request detail");
    assert_eq!(v.field_violations[0].field, field, "{e:?}");
}

#[tokio::test]
async fn supported_calls_answer() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = running(&s, &p).await;
    let mut a = s.client.agent();

    let h = a
        .get_hostname(v1::GetHostnameRequest {
            domain: dref(&name),
            source: v1::HostnameSource::Unspecified as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!h.hostname.is_empty());
    // The test driver takes no source flag: an explicit one is a driver gap.
    let explicit = a
        .get_hostname(v1::GetHostnameRequest {
            domain: dref(&name),
            source: v1::HostnameSource::Agent as i32,
        })
        .await;
    assert_eq!(code_of(explicit), Code::Unimplemented);

    let t = a
        .get_time(v1::GetTimeRequest {
            domain: dref(&name),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(t.seconds > 0 && t.nanos < 1_000_000_000);
    a.set_time(v1::SetTimeRequest {
        domain: dref(&name),
        seconds: 1_700_000_000,
        nanos: 5,
        sync: false,
    })
    .await
    .unwrap();

    // The driver makes up file systems only for its built-in `test`
    // domain (read here, never changed).
    let fs = a
        .get_filesystems(v1::GetFilesystemsRequest {
            domain: dref("test"),
        })
        .await
        .unwrap()
        .into_inner();
    let root = fs.filesystems.iter().find(|f| f.mountpoint == "/").unwrap();
    assert_eq!((root.name.as_str(), root.fstype.as_str()), ("vda1", "ext4"));
    assert_eq!(root.disk_aliases, vec!["vda".to_owned()]);
    let mine = a
        .get_filesystems(v1::GetFilesystemsRequest {
            domain: dref(&name),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(mine.filesystems.is_empty(), "a diskless domain has none");

    // Likewise addresses come from the domain's NICs: read `test`'s.
    let ifs = a
        .get_interface_addresses(v1::GetInterfaceAddressesRequest {
            domain: dref("test"),
            source: v1::InterfaceAddressSource::Agent as i32,
        })
        .await
        .unwrap()
        .into_inner();
    let nic = &ifs.interfaces[0];
    assert!(!nic.name.is_empty() && !nic.hwaddr.is_empty());
    assert_eq!(nic.addresses[0].r#type(), v1::IpAddressType::Ipv4);
    assert!(nic.addresses[0].prefix > 0);
    let none = a
        .get_interface_addresses(v1::GetInterfaceAddressesRequest {
            domain: dref(&name),
            source: v1::InterfaceAddressSource::Unspecified as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(none.interfaces.is_empty(), "a domain without NICs has none");

    let f = a
        .freeze_filesystems(v1::FreezeFilesystemsRequest {
            domain: dref(&name),
            mountpoints: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(f.frozen > 0);
    let t = a
        .thaw_filesystems(v1::ThawFilesystemsRequest {
            domain: dref(&name),
            mountpoints: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(t.thawed > 0);

    a.trim_filesystems(v1::TrimFilesystemsRequest {
        domain: dref(&name),
        mountpoint: String::new(),
        minimum_bytes: 0,
    })
    .await
    .unwrap();

    a.set_user_password(v1::SetUserPasswordRequest {
        domain: dref(&name),
        user: "root".into(),
        password: "s3cret".into(),
        encrypted: false,
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn unsupported_calls_are_unimplemented() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = running(&s, &p).await;
    let mut a = s.client.agent();
    const AGENT: &str = "virDomainQemuAgentCommand";

    unimplemented(
        a.ping(v1::PingRequest {
            domain: dref(&name),
        })
        .await,
        AGENT,
    );
    unimplemented(
        a.run_agent_command(v1::RunAgentCommandRequest {
            domain: dref(&name),
            command_json: r#"{"execute":"guest-info"}"#.into(),
            timeout_seconds: 0,
        })
        .await,
        AGENT,
    );
    unimplemented(
        a.exec(v1::ExecRequest {
            domain: dref(&name),
            path: "/bin/true".into(),
            ..Default::default()
        })
        .await,
        AGENT,
    );
    unimplemented(
        a.read_file(v1::ReadFileRequest {
            domain: dref(&name),
            path: "/etc/hostname".into(),
            ..Default::default()
        })
        .await,
        AGENT,
    );
    unimplemented(
        a.write_file(tokio_stream::iter(vec![v1::WriteFileRequest {
            domain: dref(&name),
            path: "/tmp/x".into(),
            append: false,
            data: b"x".to_vec(),
        }]))
        .await,
        AGENT,
    );
    unimplemented(
        a.get_freeze_status(v1::GetFreezeStatusRequest {
            domain: dref(&name),
        })
        .await,
        AGENT,
    );
    unimplemented(
        a.get_guest_info(v1::GetGuestInfoRequest {
            domain: dref(&name),
            kinds: vec![],
        })
        .await,
        "virDomainGetGuestInfo",
    );
    unimplemented(
        a.get_guest_vcpus(v1::GetGuestVcpusRequest {
            domain: dref(&name),
        })
        .await,
        "virDomainGetGuestVcpus",
    );
    unimplemented(
        a.set_guest_vcpus(v1::SetGuestVcpusRequest {
            domain: dref(&name),
            vcpus: vec![0],
            online: true,
        })
        .await,
        "virDomainSetGuestVcpus",
    );
    unimplemented(
        a.get_authorized_keys(v1::GetAuthorizedKeysRequest {
            domain: dref(&name),
            user: "root".into(),
        })
        .await,
        "virDomainAuthorizedSSHKeysGet",
    );
    unimplemented(
        a.add_authorized_keys(v1::AddAuthorizedKeysRequest {
            domain: dref(&name),
            user: "root".into(),
            keys: vec!["ssh-ed25519 AAAA k".into()],
        })
        .await,
        "virDomainAuthorizedSSHKeysSet",
    );
}

#[tokio::test]
async fn bad_requests_name_the_field() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = running(&s, &p).await;
    let mut a = s.client.agent();

    bad_field(a.ping(v1::PingRequest { domain: None }).await, "domain");
    bad_field(
        a.run_agent_command(v1::RunAgentCommandRequest {
            domain: dref(&name),
            command_json: "{nope".into(),
            timeout_seconds: 0,
        })
        .await,
        "command_json",
    );
    bad_field(
        a.run_agent_command(v1::RunAgentCommandRequest {
            domain: dref(&name),
            command_json: r#"{"arguments":{}}"#.into(),
            timeout_seconds: 0,
        })
        .await,
        "command_json",
    );
    bad_field(
        a.exec(v1::ExecRequest {
            domain: dref(&name),
            path: "true".into(),
            ..Default::default()
        })
        .await,
        "path",
    );
    bad_field(
        a.exec(v1::ExecRequest {
            domain: dref(&name),
            path: "/bin/true".into(),
            args: vec!["a\0b".into()],
            ..Default::default()
        })
        .await,
        "args[0]",
    );
    bad_field(
        a.exec(v1::ExecRequest {
            domain: dref(&name),
            path: "/bin/true".into(),
            env: vec!["NOEQUALS".into()],
            ..Default::default()
        })
        .await,
        "env[0]",
    );
    bad_field(
        a.read_file(v1::ReadFileRequest {
            domain: dref(&name),
            path: "/x".into(),
            offset: 0,
            length: 65 << 20,
        })
        .await,
        "length",
    );
    bad_field(
        a.write_file(tokio_stream::iter(Vec::<v1::WriteFileRequest>::new()))
            .await,
        "domain",
    );
    bad_field(
        a.write_file(tokio_stream::iter(vec![v1::WriteFileRequest {
            domain: dref(&name),
            path: "relative".into(),
            append: false,
            data: vec![],
        }]))
        .await,
        "path",
    );
    bad_field(
        a.freeze_filesystems(v1::FreezeFilesystemsRequest {
            domain: dref(&name),
            mountpoints: vec!["/".into(), "data".into()],
        })
        .await,
        "mountpoints[1]",
    );
    bad_field(
        a.get_guest_info(v1::GetGuestInfoRequest {
            domain: dref(&name),
            kinds: vec![99],
        })
        .await,
        "kinds[0]",
    );
    bad_field(
        a.set_time(v1::SetTimeRequest {
            domain: dref(&name),
            seconds: 0,
            nanos: 1_000_000_000,
            sync: false,
        })
        .await,
        "nanos",
    );
    bad_field(
        a.set_user_password(v1::SetUserPasswordRequest {
            domain: dref(&name),
            user: String::new(),
            password: "x".into(),
            encrypted: false,
        })
        .await,
        "user",
    );
    bad_field(
        a.add_authorized_keys(v1::AddAuthorizedKeysRequest {
            domain: dref(&name),
            user: "root".into(),
            keys: vec![],
        })
        .await,
        "keys",
    );
    bad_field(
        a.remove_authorized_keys(v1::RemoveAuthorizedKeysRequest {
            domain: dref(&name),
            user: "root".into(),
            keys: vec!["a\nb".into()],
        })
        .await,
        "keys[0]",
    );
    bad_field(
        a.set_guest_vcpus(v1::SetGuestVcpusRequest {
            domain: dref(&name),
            vcpus: vec![],
            online: true,
        })
        .await,
        "vcpus",
    );
}

#[tokio::test]
async fn missing_or_stopped_domains() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let mut a = s.client.agent();
    let missing = a
        .get_hostname(v1::GetHostnameRequest {
            domain: dref(&format!("{p}nope")),
            source: 0,
        })
        .await;
    assert_eq!(code_of(missing), Code::NotFound);
    let stream = a
        .exec(v1::ExecRequest {
            domain: dref(&format!("{p}nope")),
            path: "/bin/true".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(stream.map(|_| ())), Code::NotFound);

    let name = format!("{p}off");
    s.client.define_domain(small_spec(&name)).await.unwrap();
    let off = a
        .get_time(v1::GetTimeRequest {
            domain: dref(&name),
        })
        .await;
    assert_eq!(code_of(off), Code::FailedPrecondition);
}
