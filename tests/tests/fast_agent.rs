//! GuestAgentService against libvirt's in-process test driver: the agent
//! calls that driver implements answer for real, the others are
//! UNIMPLEMENTED naming the libvirt call, and bad requests are
//! INVALID_ARGUMENT naming the field.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use libvirt_grpc::prost_types::{Duration, Timestamp};
use libvirt_grpc_tests::{bad_fields, code_of, prefix, small_spec, v1, Cleanup, TestServer};
use tonic::{Code, Status};
use tonic_types::StatusExt;
use v1::DomainRef;

const URI: &str = "test:///default";

fn dref(name: &str) -> Option<v1::DomainRef> {
    libvirt_grpc_tests::domain_ref("", name)
}

fn write_target(domain: Option<DomainRef>, path: &str) -> v1::WriteGuestFileRequest {
    v1::WriteGuestFileRequest {
        item: Some(v1::write_guest_file_request::Item::Target(
            v1::WriteGuestFileTarget {
                domain,
                path: path.into(),
                append: false,
            },
        )),
    }
}

fn write_data(data: &[u8]) -> v1::WriteGuestFileRequest {
    v1::WriteGuestFileRequest {
        item: Some(v1::write_guest_file_request::Item::Data(data.to_vec())),
    }
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
    let mut a = s.client.agents();

    let h = a
        .get_guest_hostname(v1::GetGuestHostnameRequest {
            domain: dref(&name),
            source: v1::GuestHostnameSource::Unspecified as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!h.hostname.is_empty());
    // The test driver takes no source flag: an explicit one is a driver gap.
    let explicit = a
        .get_guest_hostname(v1::GetGuestHostnameRequest {
            domain: dref(&name),
            source: v1::GuestHostnameSource::Agent as i32,
        })
        .await;
    assert_eq!(code_of(explicit), Code::Unimplemented);

    let t = a
        .get_guest_time(v1::GetGuestTimeRequest {
            domain: dref(&name),
        })
        .await
        .unwrap()
        .into_inner();
    let t = t.time.unwrap();
    assert!(t.seconds > 0 && (0..1_000_000_000).contains(&t.nanos));
    a.set_guest_time(v1::SetGuestTimeRequest {
        domain: dref(&name),
        time: Some(Timestamp {
            seconds: 1_700_000_000,
            nanos: 5,
        }),
        sync: false,
    })
    .await
    .unwrap();

    // The driver makes up file systems only for its built-in `test`
    // domain (read here, never changed).
    let fs = a
        .get_guest_filesystems(v1::GetGuestFilesystemsRequest {
            domain: dref("test"),
        })
        .await
        .unwrap()
        .into_inner();
    let root = fs.filesystems.iter().find(|f| f.mountpoint == "/").unwrap();
    assert_eq!((root.name.as_str(), root.fstype.as_str()), ("vda1", "ext4"));
    assert_eq!(root.disk_aliases, vec!["vda".to_owned()]);
    let mine = a
        .get_guest_filesystems(v1::GetGuestFilesystemsRequest {
            domain: dref(&name),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(mine.filesystems.is_empty(), "a diskless domain has none");

    // Likewise addresses come from the domain's NICs: read `test`'s.
    let ifs = a
        .get_guest_interface_addresses(v1::GetGuestInterfaceAddressesRequest {
            domain: dref("test"),
            source: v1::GuestInterfaceAddressSource::Agent as i32,
        })
        .await
        .unwrap()
        .into_inner();
    let nic = &ifs.interfaces[0];
    assert!(!nic.name.is_empty() && !nic.hwaddr.is_empty());
    assert_eq!(nic.addresses[0].r#type(), v1::GuestIpAddressType::Ipv4);
    assert!(nic.addresses[0].prefix > 0);
    let none = a
        .get_guest_interface_addresses(v1::GetGuestInterfaceAddressesRequest {
            domain: dref(&name),
            source: v1::GuestInterfaceAddressSource::Unspecified as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(none.interfaces.is_empty(), "a domain without NICs has none");

    let f = a
        .freeze_guest_filesystems(v1::FreezeGuestFilesystemsRequest {
            domain: dref(&name),
            mountpoints: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(f.frozen_count > 0);
    let t = a
        .thaw_guest_filesystems(v1::ThawGuestFilesystemsRequest {
            domain: dref(&name),
            mountpoints: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(t.thawed_count > 0);

    a.trim_guest_filesystems(v1::TrimGuestFilesystemsRequest {
        domain: dref(&name),
        mountpoint: String::new(),
        minimum_bytes: 0,
    })
    .await
    .unwrap();

    a.set_guest_user_password(v1::SetGuestUserPasswordRequest {
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
    let mut a = s.client.agents();
    const AGENT: &str = "virDomainQemuAgentCommand";

    unimplemented(
        a.ping_guest_agent(v1::PingGuestAgentRequest {
            domain: dref(&name),
        })
        .await,
        AGENT,
    );
    unimplemented(
        a.run_guest_agent_command(v1::RunGuestAgentCommandRequest {
            domain: dref(&name),
            command_json: r#"{"execute":"guest-info"}"#.into(),
            timeout: None,
        })
        .await,
        AGENT,
    );
    unimplemented(
        a.exec_guest_command(v1::ExecGuestCommandRequest {
            domain: dref(&name),
            path: "/bin/true".into(),
            ..Default::default()
        })
        .await,
        AGENT,
    );
    unimplemented(
        a.read_guest_file(v1::ReadGuestFileRequest {
            domain: dref(&name),
            path: "/etc/hostname".into(),
            ..Default::default()
        })
        .await,
        AGENT,
    );
    unimplemented(
        a.write_guest_file(tokio_stream::iter(vec![
            write_target(dref(&name), "/tmp/x"),
            write_data(b"x"),
        ]))
        .await,
        AGENT,
    );
    unimplemented(
        a.get_guest_freeze_status(v1::GetGuestFreezeStatusRequest {
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
            state: v1::GuestVcpuState::Online as i32,
        })
        .await,
        "virDomainSetGuestVcpus",
    );
    unimplemented(
        a.get_guest_authorized_keys(v1::GetGuestAuthorizedKeysRequest {
            domain: dref(&name),
            user: "root".into(),
        })
        .await,
        "virDomainAuthorizedSSHKeysGet",
    );
    unimplemented(
        a.add_guest_authorized_keys(v1::AddGuestAuthorizedKeysRequest {
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
    let mut a = s.client.agents();

    bad_field(
        a.ping_guest_agent(v1::PingGuestAgentRequest { domain: None })
            .await,
        "domain",
    );
    bad_field(
        a.run_guest_agent_command(v1::RunGuestAgentCommandRequest {
            domain: dref(&name),
            command_json: "{nope".into(),
            timeout: None,
        })
        .await,
        "command_json",
    );
    bad_field(
        a.run_guest_agent_command(v1::RunGuestAgentCommandRequest {
            domain: dref(&name),
            command_json: r#"{"arguments":{}}"#.into(),
            timeout: None,
        })
        .await,
        "command_json",
    );
    bad_field(
        a.exec_guest_command(v1::ExecGuestCommandRequest {
            domain: dref(&name),
            path: "true".into(),
            ..Default::default()
        })
        .await,
        "path",
    );
    bad_field(
        a.exec_guest_command(v1::ExecGuestCommandRequest {
            domain: dref(&name),
            path: "/bin/true".into(),
            args: vec!["a\0b".into()],
            ..Default::default()
        })
        .await,
        "args[0]",
    );
    bad_field(
        a.exec_guest_command(v1::ExecGuestCommandRequest {
            domain: dref(&name),
            path: "/bin/true".into(),
            env: vec!["NOEQUALS".into()],
            ..Default::default()
        })
        .await,
        "env[0]",
    );
    bad_field(
        a.read_guest_file(v1::ReadGuestFileRequest {
            domain: dref(&name),
            path: "/x".into(),
            offset_bytes: 0,
            length_bytes: 65 << 20,
        })
        .await,
        "length_bytes",
    );
    bad_field(
        a.write_guest_file(tokio_stream::iter(Vec::<v1::WriteGuestFileRequest>::new()))
            .await,
        "target",
    );
    // Data before the target.
    bad_field(
        a.write_guest_file(tokio_stream::iter(vec![write_data(b"x")]))
            .await,
        "target",
    );
    bad_field(
        a.write_guest_file(tokio_stream::iter(vec![write_target(
            dref(&name),
            "relative",
        )]))
        .await,
        "target.path",
    );
    bad_field(
        a.write_guest_file(tokio_stream::iter(vec![write_target(None, "/tmp/x")]))
            .await,
        "target.domain",
    );
    bad_field(
        a.freeze_guest_filesystems(v1::FreezeGuestFilesystemsRequest {
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
        a.set_guest_time(v1::SetGuestTimeRequest {
            domain: dref(&name),
            time: Some(Timestamp {
                seconds: 0,
                nanos: 1_000_000_000,
            }),
            sync: false,
        })
        .await,
        "time",
    );
    bad_field(
        a.set_guest_user_password(v1::SetGuestUserPasswordRequest {
            domain: dref(&name),
            user: String::new(),
            password: "x".into(),
            encrypted: false,
        })
        .await,
        "user",
    );
    bad_field(
        a.add_guest_authorized_keys(v1::AddGuestAuthorizedKeysRequest {
            domain: dref(&name),
            user: "root".into(),
            keys: vec![],
        })
        .await,
        "keys",
    );
    bad_field(
        a.remove_guest_authorized_keys(v1::RemoveGuestAuthorizedKeysRequest {
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
            state: v1::GuestVcpuState::Online as i32,
        })
        .await,
        "vcpus",
    );
    // The state has no default.
    bad_field(
        a.set_guest_vcpus(v1::SetGuestVcpusRequest {
            domain: dref(&name),
            vcpus: vec![0],
            state: v1::GuestVcpuState::Unspecified as i32,
        })
        .await,
        "state",
    );
    // Neither a time nor sync.
    bad_field(
        a.set_guest_time(v1::SetGuestTimeRequest {
            domain: dref(&name),
            time: None,
            sync: false,
        })
        .await,
        "time",
    );
}

#[tokio::test]
async fn missing_or_stopped_domains() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let mut a = s.client.agents();
    let missing = a
        .get_guest_hostname(v1::GetGuestHostnameRequest {
            domain: dref(&format!("{p}nope")),
            source: 0,
        })
        .await;
    assert_eq!(code_of(missing), Code::NotFound);
    let stream = a
        .exec_guest_command(v1::ExecGuestCommandRequest {
            domain: dref(&format!("{p}nope")),
            path: "/bin/true".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(stream.map(|_| ())), Code::NotFound);

    let name = format!("{p}off");
    s.client.define_domain(small_spec(&name)).await.unwrap();
    let off = a
        .get_guest_time(v1::GetGuestTimeRequest {
            domain: dref(&name),
        })
        .await;
    assert_eq!(code_of(off), Code::FailedPrecondition);
}

/// The raw command's `timeout`: unset is accepted (the default, 30 s or
/// the deadline's), more than 0 and at most 300 s is accepted, anything
/// else is INVALID_ARGUMENT. Accepted requests reach libvirt, whose test
/// driver answers UNIMPLEMENTED.
#[tokio::test]
async fn raw_command_timeout_default_and_bounds() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = running(&s, &p).await;
    let mut a = s.client.agents();
    let cmd = |timeout| v1::RunGuestAgentCommandRequest {
        domain: dref(&name),
        command_json: r#"{"execute":"guest-ping"}"#.into(),
        timeout,
    };
    let d = |seconds, nanos| Some(Duration { seconds, nanos });
    for ok in [None, d(300, 0), d(0, 1_000_000)] {
        unimplemented(
            a.run_guest_agent_command(cmd(ok)).await,
            "virDomainQemuAgentCommand",
        );
    }
    for bad in [d(300, 1), d(0, 0), d(-1, 0), d(1, -5)] {
        bad_field(a.run_guest_agent_command(cmd(bad)).await, "timeout");
    }
}

/// UNSPECIFIED sources are the defaults the comments name: the driver's
/// own host name source, and the agent for interface addresses.
#[tokio::test]
async fn unspecified_sources_are_the_defaults() {
    let s = TestServer::test_driver().await;
    let mut a = s.client.agents();
    let addrs = |source: v1::GuestInterfaceAddressSource| v1::GetGuestInterfaceAddressesRequest {
        domain: dref("test"),
        source: source as i32,
    };
    let default = a
        .get_guest_interface_addresses(addrs(v1::GuestInterfaceAddressSource::Unspecified))
        .await
        .unwrap()
        .into_inner();
    let agent = a
        .get_guest_interface_addresses(addrs(v1::GuestInterfaceAddressSource::Agent))
        .await
        .unwrap()
        .into_inner();
    assert!(!default.interfaces.is_empty());
    assert_eq!(default, agent);
    // The test driver takes no host name flag: UNSPECIFIED sends none
    // (it answers), AGENT sends one (it refuses).
    let h = a
        .get_guest_hostname(v1::GetGuestHostnameRequest {
            domain: dref("test"),
            source: v1::GuestHostnameSource::Unspecified as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!h.hostname.is_empty());
    // An empty `kinds` asks for every group; the test driver has none.
    unimplemented(
        a.get_guest_info(v1::GetGuestInfoRequest {
            domain: dref("test"),
            kinds: vec![],
        })
        .await,
        "virDomainGetGuestInfo",
    );
}

/// One request with several bad fields gets one BadRequest naming all of
/// them, the domain reference's included.
#[tokio::test]
async fn one_bad_request_names_every_field() {
    let s = TestServer::test_driver().await;
    let mut a = s.client.agents();
    let e = a
        .exec_guest_command(v1::ExecGuestCommandRequest {
            domain: dref(""),
            path: "relative".into(),
            args: vec!["a\0".into()],
            env: vec!["NOEQUALS".into()],
            stdin: vec![0; (1 << 20) + 1],
            discard_output: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(
        bad_fields(&e),
        ["domain.name", "path", "args[0]", "env[0]", "stdin"]
    );
    let e = a
        .run_guest_agent_command(v1::RunGuestAgentCommandRequest {
            domain: None,
            command_json: "{nope".into(),
            timeout: Some(Duration {
                seconds: 301,
                nanos: 0,
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&e), ["domain", "command_json", "timeout"]);
    let e = a
        .set_guest_vcpus(v1::SetGuestVcpusRequest {
            domain: dref(""),
            vcpus: vec![],
            state: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&e), ["domain.name", "vcpus", "state"]);
}
