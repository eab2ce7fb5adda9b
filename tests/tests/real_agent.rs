//! GuestAgentService against a real qemu-guest-agent: the test guest of
//! scripts/build-test-guest.sh booted under the real libvirtd.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use libvirt_grpc::prost_types::Timestamp;
use libvirt_grpc_tests::{
    code_of, prefix, real_enabled, v1, wait_until, Cleanup, TestServer, REAL_URI,
};
use tonic::{Code, Request};
use v1::{
    create_domain_request::Source, exec_guest_command_response::Item, guest_exec_exited,
    read_guest_file_response::Item as ReadItem,
};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAbcdefghijklmnopqrstuvwxyz0123456789ABCDEFG lvgtest@host";

fn dref(name: &str) -> Option<v1::DomainRef> {
    libvirt_grpc_tests::domain_ref("real", name)
}

fn secs(seconds: i64) -> libvirt_grpc::prost_types::Duration {
    libvirt_grpc::prost_types::Duration { seconds, nanos: 0 }
}

fn write_target(name: &str, path: &str, append: bool) -> v1::WriteGuestFileRequest {
    v1::WriteGuestFileRequest {
        item: Some(v1::write_guest_file_request::Item::Target(
            v1::WriteGuestFileTarget {
                domain: dref(name),
                path: path.into(),
                append,
            },
        )),
    }
}

fn write_data(data: &[u8]) -> v1::WriteGuestFileRequest {
    v1::WriteGuestFileRequest {
        item: Some(v1::write_guest_file_request::Item::Data(data.to_vec())),
    }
}

fn guest_xml(name: &str, console: &str) -> String {
    libvirt_grpc_tests::guest::xml(name, console)
}

async fn create(s: &TestServer, xml: String) {
    s.client
        .domains()
        .create_domain(v1::CreateDomainRequest {
            host: "real".into(),
            source: Some(Source::Xml(xml)),
            ..Default::default()
        })
        .await
        .unwrap();
}

/// Boots the test guest and waits until its agent answers. Every failed
/// ping before that must be UNAVAILABLE (the agent is not up yet).
async fn boot_guest(s: &TestServer, c: &mut Cleanup, name: &str) {
    let console = format!("/tmp/{name}-console.log");
    c.file(&console);
    // Two vCPUs, so that one can go offline and back.
    let xml = guest_xml(name, &console).replace("<vcpu>1</vcpu>", "<vcpu>2</vcpu>");
    create(s, xml).await;
    let mut agent = s.client.agents();
    wait_until(Duration::from_secs(90), "the guest agent to answer", || {
        let mut agent = agent.clone();
        async move {
            let r = agent
                .ping_guest_agent(v1::PingGuestAgentRequest { domain: dref(name) })
                .await;
            match r {
                Ok(_) => Some(()),
                Err(e) => {
                    assert_eq!(
                        e.code(),
                        Code::Unavailable,
                        "ping before the agent is up: {e:?}"
                    );
                    None
                }
            }
        }
    })
    .await;
    agent
        .ping_guest_agent(v1::PingGuestAgentRequest { domain: dref(name) })
        .await
        .unwrap();
}

/// Runs a program to completion; returns stdout, stderr and the exit.
async fn exec(
    s: &TestServer,
    name: &str,
    path: &str,
    args: &[&str],
) -> (String, String, Option<guest_exec_exited::Status>) {
    let mut stream = s
        .client
        .agents()
        .exec_guest_command(v1::ExecGuestCommandRequest {
            domain: dref(name),
            path: path.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (mut out, mut err, mut exit, mut started) = (Vec::new(), Vec::new(), None, false);
    while let Some(item) = stream.next().await {
        match item.unwrap().item.unwrap() {
            Item::Started(st) => {
                assert!(st.pid > 0);
                started = true;
            }
            Item::Stdout(b) => out.extend(b),
            Item::Stderr(b) => err.extend(b),
            Item::Exited(e) => exit = Some(e.status.unwrap()),
        }
    }
    assert!(started, "the stream starts with `started`");
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
        exit,
    )
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn every_agent_call_on_a_real_guest() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let name = format!("{p}agent");
    boot_guest(&s, &mut c, &name).await;
    let mut a = s.client.agents();

    // Raw escape hatch.
    let r = a
        .run_guest_agent_command(v1::RunGuestAgentCommandRequest {
            domain: dref(&name),
            command_json: r#"{"execute":"guest-info"}"#.into(),
            timeout: Some(secs(10)),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.result_json.contains("\"version\""), "{}", r.result_json);
    // Without a timeout (the default: 30 s here, no deadline) it answers too.
    let r = a
        .run_guest_agent_command(v1::RunGuestAgentCommandRequest {
            domain: dref(&name),
            command_json: r#"{"execute":"guest-ping"}"#.into(),
            timeout: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.result_json.contains("\"return\""), "{}", r.result_json);
    // Over the 300 s bound: refused before anything is sent.
    let long = a
        .run_guest_agent_command(v1::RunGuestAgentCommandRequest {
            domain: dref(&name),
            command_json: r#"{"execute":"guest-ping"}"#.into(),
            timeout: Some(secs(301)),
        })
        .await
        .unwrap_err();
    assert_eq!(libvirt_grpc_tests::bad_fields(&long), ["timeout"]);
    let bad = a
        .run_guest_agent_command(v1::RunGuestAgentCommandRequest {
            domain: dref(&name),
            command_json: "{not json".into(),
            timeout: None,
        })
        .await;
    assert_eq!(code_of(bad), Code::InvalidArgument);
    let refused = a
        .run_guest_agent_command(v1::RunGuestAgentCommandRequest {
            domain: dref(&name),
            command_json: r#"{"execute":"guest-no-such-command"}"#.into(),
            timeout: None,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains("guest-no-such-command"),
        "{refused:?}"
    );

    // Exec: output and exit codes.
    let (out, _, exit) = exec(&s, &name, "/bin/uname", &["-a"]).await;
    assert!(out.starts_with("Linux "), "{out}");
    assert_eq!(exit, Some(guest_exec_exited::Status::ExitCode(0)));
    let (out, err, exit) = exec(
        &s,
        &name,
        "/bin/sh",
        &["-c", "echo out; echo oops >&2; exit 3"],
    )
    .await;
    assert_eq!((out.as_str(), err.as_str()), ("out\n", "oops\n"));
    assert_eq!(exit, Some(guest_exec_exited::Status::ExitCode(3)));
    let missing = a
        .exec_guest_command(v1::ExecGuestCommandRequest {
            domain: dref(&name),
            path: "/no/such/program".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(missing), Code::FailedPrecondition);
    let relative = a
        .exec_guest_command(v1::ExecGuestCommandRequest {
            domain: dref(&name),
            path: "uname".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(relative), Code::InvalidArgument);

    // A deadline shorter than the command ends the stream with
    // DEADLINE_EXCEEDED, on time.
    let mut req = Request::new(v1::ExecGuestCommandRequest {
        domain: dref(&name),
        path: "/bin/sleep".into(),
        args: vec!["5".into()],
        ..Default::default()
    });
    req.set_timeout(Duration::from_secs(1));
    let t0 = Instant::now();
    let mut stream = a.exec_guest_command(req).await.unwrap().into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert!(matches!(first.item, Some(Item::Started(_))));
    let last = stream.next().await.unwrap();
    assert_eq!(code_of(last), Code::DeadlineExceeded);
    assert!(stream.next().await.is_none(), "the stream ends");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());

    // Host name, guest info, file systems, interfaces, vCPUs.
    let h = a
        .get_guest_hostname(v1::GetGuestHostnameRequest {
            domain: dref(&name),
            source: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(h.hostname, "lvg-guest");
    let info = a
        .get_guest_info(v1::GetGuestInfoRequest {
            domain: dref(&name),
            kinds: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.hostname, "lvg-guest");
    assert_eq!(info.os.as_ref().unwrap().id, "lvg-guest");
    // The test guest runs in UTC: the offset is a Duration of zero.
    let tz = info.timezone.as_ref().unwrap();
    assert_eq!(
        tz.utc_offset.map(|d| (d.seconds, d.nanos)),
        Some((0, 0)),
        "{tz:?}"
    );
    let lo = info.interfaces.iter().find(|i| i.name == "lo").unwrap();
    assert!(
        lo.addresses
            .iter()
            .any(|x| x.r#type() == v1::GuestIpAddressType::Ipv4 && x.address == "127.0.0.1"),
        "{lo:?}"
    );
    assert!(info.interfaces.iter().any(|i| i.name == "lo"), "{info:?}");
    let only_os = a
        .get_guest_info(v1::GetGuestInfoRequest {
            domain: dref(&name),
            kinds: vec![v1::GuestInfoKind::Os as i32],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(only_os.os.is_some() && only_os.hostname.is_empty());
    let fs = a
        .get_guest_filesystems(v1::GetGuestFilesystemsRequest {
            domain: dref(&name),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        fs.filesystems.iter().any(|f| f.mountpoint == "/mnt/data"),
        "{fs:?}"
    );
    let ifs = a
        .get_guest_interface_addresses(v1::GetGuestInterfaceAddressesRequest {
            domain: dref(&name),
            source: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let lo = ifs.interfaces.iter().find(|i| i.name == "lo").unwrap();
    assert!(lo.addresses.iter().any(|x| x.address == "127.0.0.1"
        && x.prefix == 8
        && x.r#type() == v1::GuestIpAddressType::Ipv4));
    let vcpus = a
        .get_guest_vcpus(v1::GetGuestVcpusRequest {
            domain: dref(&name),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(vcpus.vcpus, vec![0, 1]);
    assert_eq!(vcpus.online, vec![0, 1]);
    assert!(vcpus.offlinable.contains(&1), "{vcpus:?}");
    let set = |online: bool| {
        let mut a = a.clone();
        let name = name.clone();
        async move {
            a.set_guest_vcpus(v1::SetGuestVcpusRequest {
                domain: dref(&name),
                vcpus: vec![1],
                state: if online {
                    v1::GuestVcpuState::Online
                } else {
                    v1::GuestVcpuState::Offline
                } as i32,
            })
            .await
            .unwrap();
            a.get_guest_vcpus(v1::GetGuestVcpusRequest {
                domain: dref(&name),
            })
            .await
            .unwrap()
            .into_inner()
            .online
        }
    };
    assert_eq!(set(false).await, vec![0]);
    assert_eq!(set(true).await, vec![0, 1]);

    // Time: set it an hour ahead, read it back, sync it from the RTC.
    let ahead = now_secs() + 3600;
    a.set_guest_time(v1::SetGuestTimeRequest {
        domain: dref(&name),
        time: Some(Timestamp {
            seconds: ahead,
            nanos: 0,
        }),
        sync: false,
    })
    .await
    .unwrap();
    let t = a
        .get_guest_time(v1::GetGuestTimeRequest {
            domain: dref(&name),
        })
        .await
        .unwrap()
        .into_inner()
        .time
        .unwrap();
    assert!(
        (t.seconds - ahead).abs() < 60,
        "guest time {} vs {ahead}",
        t.seconds
    );
    // Sync from the RTC is accepted (qemu-ga runs `hwclock -s`; whether
    // this minimal guest's RTC device is usable is the guest's business).
    a.set_guest_time(v1::SetGuestTimeRequest {
        domain: dref(&name),
        sync: true,
        ..Default::default()
    })
    .await
    .unwrap();
    a.set_guest_time(v1::SetGuestTimeRequest {
        domain: dref(&name),
        time: Some(Timestamp {
            seconds: now_secs(),
            nanos: 500_000_000,
        }),
        sync: false,
    })
    .await
    .unwrap();
    let t = a
        .get_guest_time(v1::GetGuestTimeRequest {
            domain: dref(&name),
        })
        .await
        .unwrap()
        .into_inner()
        .time
        .unwrap();
    assert!(
        (t.seconds - now_secs()).abs() < 60,
        "guest time {}",
        t.seconds
    );
    let bad = a
        .set_guest_time(v1::SetGuestTimeRequest {
            domain: dref(&name),
            time: Some(Timestamp {
                seconds: 1,
                nanos: 2_000_000_000,
            }),
            sync: false,
        })
        .await;
    assert_eq!(code_of(bad), Code::InvalidArgument);

    // Files: write in several messages (across agent chunks), read back.
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let path = "/tmp/lvgtest-file";
    let msgs: Vec<v1::WriteGuestFileRequest> = std::iter::once(write_target(&name, path, false))
        .chain(data.chunks(30_000).map(write_data))
        .collect();
    let w = a
        .write_guest_file(tokio_stream::iter(msgs))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(w.written_bytes, data.len() as u64);
    let reader = a.clone();
    let read = |offset: u64, length: u64| {
        let mut a = reader.clone();
        let name = name.clone();
        async move {
            let mut st = a
                .read_guest_file(v1::ReadGuestFileRequest {
                    domain: dref(&name),
                    path: path.into(),
                    offset_bytes: offset,
                    length_bytes: length,
                })
                .await?
                .into_inner();
            let mut got = Vec::new();
            let mut size = 0;
            while let Some(m) = st.next().await {
                match m?.item.unwrap() {
                    ReadItem::Started(st) => size = st.file_size_bytes,
                    ReadItem::Data(d) => got.extend(d),
                }
            }
            Ok::<_, tonic::Status>((got, size))
        }
    };
    let (got, size) = read(0, 0).await.unwrap();
    assert_eq!(size, data.len() as u64);
    assert!(got == data, "read back {} bytes", got.len());
    let (part, _) = read(50_000, 10).await.unwrap();
    assert_eq!(part, &data[50_000..50_010]);
    let append = a
        .write_guest_file(tokio_stream::iter(vec![
            write_target(&name, path, true),
            write_data(b"tail"),
        ]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(append.written_bytes, 4);
    let (end, size) = read(100_000, 0).await.unwrap();
    assert_eq!((end.as_slice(), size), (&b"tail"[..], 100_004));
    let missing = a
        .read_guest_file(v1::ReadGuestFileRequest {
            domain: dref(&name),
            path: "/no/such/file".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(missing), Code::FailedPrecondition);

    // Every path closes its guest file handle: count qemu-ga's open fds
    // before, after a read the client abandons, and after refusals.
    let fds = || async {
        let (out, _, _) = exec(
            &s,
            &name,
            "/bin/sh",
            &["-c", "ls /proc/$(pidof qemu-ga)/fd | wc -l"],
        )
        .await;
        out.trim().parse::<u32>().unwrap()
    };
    let baseline = fds().await;
    let mut abandoned = a
        .read_guest_file(v1::ReadGuestFileRequest {
            domain: dref(&name),
            path: path.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let started = abandoned.next().await.unwrap().unwrap().item.unwrap();
    assert!(matches!(started, ReadItem::Started(_)), "{started:?}");
    let chunk = abandoned.next().await.unwrap().unwrap().item.unwrap();
    assert!(matches!(chunk, ReadItem::Data(d) if !d.is_empty()));
    drop(abandoned);
    // A file beyond the 64 MiB cap (sparse, so it costs the guest nothing)
    // is refused up front, naming the field, and read in ranges instead.
    let (_, _, exit) = exec(
        &s,
        &name,
        "/bin/sh",
        &[
            "-c",
            "dd if=/dev/zero of=/tmp/lvgtest-big bs=1 count=1 seek=70M",
        ],
    )
    .await;
    assert_eq!(exit, Some(guest_exec_exited::Status::ExitCode(0)));
    let big = a
        .read_guest_file(v1::ReadGuestFileRequest {
            domain: dref(&name),
            path: "/tmp/lvgtest-big".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(big), Code::InvalidArgument);
    let mut tail = a
        .read_guest_file(v1::ReadGuestFileRequest {
            domain: dref(&name),
            path: "/tmp/lvgtest-big".into(),
            offset_bytes: 70 << 20,
            length_bytes: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let first = tail.next().await.unwrap().unwrap().item.unwrap();
    let ReadItem::Started(started) = first else {
        panic!("not started first: {first:?}")
    };
    assert_eq!(
        (started.file_size_bytes, started.expected_bytes),
        ((70 << 20) + 1, 1)
    );
    let data = tail.next().await.unwrap().unwrap().item.unwrap();
    assert_eq!(data, ReadItem::Data(vec![0u8]));
    assert!(tail.next().await.is_none());
    wait_until(
        Duration::from_secs(10),
        "guest file handles closed",
        || async { (fds().await == baseline).then_some(()) },
    )
    .await;

    // Exec: stdin, environment, output larger than one stream chunk.
    let mut st = a
        .exec_guest_command(v1::ExecGuestCommandRequest {
            domain: dref(&name),
            path: "/bin/sh".into(),
            args: vec![
                "-c".into(),
                "cat; echo \"$GREETING\"; head -c 100000 /dev/zero".into(),
            ],
            env: vec!["GREETING=hi there".into()],
            stdin: b"from stdin\n".to_vec(),
            discard_output: false,
        })
        .await
        .unwrap()
        .into_inner();
    let (mut out, mut chunks, mut exit) = (Vec::new(), 0, None);
    while let Some(m) = st.next().await {
        match m.unwrap().item.unwrap() {
            Item::Stdout(b) => {
                chunks += 1;
                out.extend(b);
            }
            Item::Exited(e) => exit = e.status,
            _ => {}
        }
    }
    assert_eq!(exit, Some(guest_exec_exited::Status::ExitCode(0)));
    let head = b"from stdin\nhi there\n";
    assert_eq!(&out[..head.len()], head);
    assert_eq!(out.len(), head.len() + 100_000);
    assert!(chunks >= 4, "{chunks} chunks");

    // Freeze, status, thaw.
    let f = a
        .freeze_guest_filesystems(v1::FreezeGuestFilesystemsRequest {
            domain: dref(&name),
            mountpoints: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(f.frozen_count, 1);
    let st = a
        .get_guest_freeze_status(v1::GetGuestFreezeStatusRequest {
            domain: dref(&name),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.status(), v1::GuestFreezeStatus::Frozen);
    let t = a
        .thaw_guest_filesystems(v1::ThawGuestFilesystemsRequest {
            domain: dref(&name),
            mountpoints: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.thawed_count, 1);
    let st = a
        .get_guest_freeze_status(v1::GetGuestFreezeStatusRequest {
            domain: dref(&name),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.status(), v1::GuestFreezeStatus::Thawed);

    // Password: /etc/shadow really changes; an unknown user is refused.
    let (before, _, _) = exec(&s, &name, "/bin/grep", &["^tester:", "/etc/shadow"]).await;
    a.set_guest_user_password(v1::SetGuestUserPasswordRequest {
        domain: dref(&name),
        user: "tester".into(),
        password: "s3cret-1".into(),
        encrypted: false,
    })
    .await
    .unwrap();
    let (after, _, _) = exec(&s, &name, "/bin/grep", &["^tester:", "/etc/shadow"]).await;
    assert_ne!(before, after);
    assert!(after.starts_with("tester:$6$"), "{after}");
    let unknown = a
        .set_guest_user_password(v1::SetGuestUserPasswordRequest {
            domain: dref(&name),
            user: "nosuchuser".into(),
            password: "x".into(),
            encrypted: false,
        })
        .await;
    assert_eq!(code_of(unknown), Code::FailedPrecondition);

    // SSH keys: add, list, remove.
    let keys = |a: &mut v1::guest_agent_service_client::GuestAgentServiceClient<_>| {
        let mut a = a.clone();
        let name = name.clone();
        async move {
            a.get_guest_authorized_keys(v1::GetGuestAuthorizedKeysRequest {
                domain: dref(&name),
                user: "tester".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .keys
        }
    };
    a.add_guest_authorized_keys(v1::AddGuestAuthorizedKeysRequest {
        domain: dref(&name),
        user: "tester".into(),
        keys: vec![KEY.into()],
    })
    .await
    .unwrap();
    assert!(keys(&mut a).await.iter().any(|k| k == KEY));
    a.remove_guest_authorized_keys(v1::RemoveGuestAuthorizedKeysRequest {
        domain: dref(&name),
        user: "tester".into(),
        keys: vec![KEY.into()],
    })
    .await
    .unwrap();
    assert!(!keys(&mut a).await.iter().any(|k| k == KEY));

    // A paused guest: libvirt refuses agent calls up front.
    let mut doms = s.client.domains();
    doms.suspend_domain(v1::SuspendDomainRequest {
        domain: dref(&name),
    })
    .await
    .unwrap();
    let paused = a
        .ping_guest_agent(v1::PingGuestAgentRequest {
            domain: dref(&name),
        })
        .await;
    assert_eq!(code_of(paused), Code::FailedPrecondition);
    doms.resume_domain(v1::ResumeDomainRequest {
        domain: dref(&name),
    })
    .await
    .unwrap();

    // Last (it wedges the agent): stop qemu-ga, so that it accepts a
    // command but never answers.
    let stop = a
        .exec_guest_command(v1::ExecGuestCommandRequest {
            domain: dref(&name),
            path: "/bin/sh".into(),
            args: vec!["-c".into(), "sleep 0.5; kill -STOP $(pidof qemu-ga)".into()],
            discard_output: true,
            ..Default::default()
        })
        .await
        .unwrap();
    drop(stop);
    wait_until(Duration::from_secs(20), "qemu-ga to stop answering", || {
        let mut a = a.clone();
        let name = name.clone();
        async move {
            let r = a
                .run_guest_agent_command(v1::RunGuestAgentCommandRequest {
                    domain: dref(&name),
                    command_json: r#"{"execute":"guest-ping"}"#.into(),
                    timeout: Some(secs(1)),
                })
                .await;
            r.is_err().then_some(())
        }
    })
    .await;
    let t0 = Instant::now();
    let slow = a
        .run_guest_agent_command(v1::RunGuestAgentCommandRequest {
            domain: dref(&name),
            command_json: r#"{"execute":"guest-info"}"#.into(),
            timeout: Some(secs(2)),
        })
        .await
        .unwrap_err();
    // libvirt 9.0 first syncs with the agent (a fixed 5 s wait), then
    // reports an agent that does not answer as AGENT_UNRESPONSIVE.
    assert_eq!(slow.code(), Code::Unavailable, "{slow:?}");
    assert!(slow.message().contains("not responding"), "{slow:?}");
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    // A request deadline shorter than that ends the call on time.
    let mut req = Request::new(v1::GetGuestHostnameRequest {
        domain: dref(&name),
        source: 0,
    });
    req.set_timeout(Duration::from_secs(1));
    let t0 = Instant::now();
    let late = a.get_guest_hostname(req).await;
    assert_eq!(code_of(late), Code::DeadlineExceeded);
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

/// A guest whose agent never comes up (no kernel: the firmware finds nothing
/// to boot) answers UNAVAILABLE; a guest with no agent channel at all is a
/// precondition failure.
#[tokio::test]
async fn agent_not_up_or_not_configured() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let _c = Cleanup::new(REAL_URI, &p);
    let with_channel = format!("{p}noagent");
    let without = format!("{p}nochannel");
    let xml = |name: &str, channel: bool| {
        format!(
            "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>\
             <os><type arch='x86_64'>hvm</type></os><devices>{}<memballoon model='none'/>\
             </devices></domain>",
            if channel {
                "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
            } else {
                ""
            }
        )
    };
    create(&s, xml(&with_channel, true)).await;
    create(&s, xml(&without, false)).await;
    let mut a = s.client.agents();
    let e = a
        .ping_guest_agent(v1::PingGuestAgentRequest {
            domain: dref(&with_channel),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    let e = a
        .get_guest_hostname(v1::GetGuestHostnameRequest {
            domain: dref(&with_channel),
            source: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    let e = a
        .ping_guest_agent(v1::PingGuestAgentRequest {
            domain: dref(&without),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("not configured"), "{e:?}");
}

/// The agent's connect (and disconnect) reach subscribers of the event
/// stream as AGENT_LIFECYCLE events with typed details.
#[tokio::test]
async fn agent_connect_shows_on_the_event_stream() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let name = format!("{p}agentev");
    let mut events = s
        .client
        .events()
        .watch_events(v1::WatchEventsRequest {
            hosts: vec!["real".into()],
            names: vec![name.clone()],
            kinds: vec![v1::EventKind::AgentLifecycle as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    boot_guest(&s, &mut c, &name).await;
    let connected = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(msg) = events.next().await {
            if let Some(v1::watch_events_response::Item::Event(e)) = msg.unwrap().item {
                assert_eq!(e.kind(), v1::EventKind::AgentLifecycle);
                assert_eq!(e.name, name);
                if let Some(v1::event::Details::AgentLifecycle(a)) = e.details {
                    if a.state() == v1::AgentState::Connected {
                        return a;
                    }
                }
            }
        }
        panic!("event stream ended");
    })
    .await
    .expect("no AGENT_LIFECYCLE connected event within 60 s");
    assert_ne!(connected.reason(), v1::AgentStateReason::Unspecified);
}

/// A file write whose client stops sending is cut off with ABORTED at the
/// idle timeout: the guest file handle is closed, the bytes already written
/// stay, and the agent serves the next write.
#[tokio::test]
async fn a_stalled_file_write_ends_aborted_and_closes_its_handle() {
    if !real_enabled() {
        return;
    }
    const IDLE_SECS: u64 = 2;
    let s = TestServer::start_with(libvirt_grpc_server::config::Config {
        hosts: vec![libvirt_grpc_server::config::HostConfig::new(
            "real", REAL_URI,
        )],
        stream_idle_timeout_secs: IDLE_SECS,
        health_interval_secs: 1,
        ..Default::default()
    })
    .await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let name = format!("{p}stall");
    boot_guest(&s, &mut c, &name).await;
    let fds = || async {
        let (out, _, _) = exec(
            &s,
            &name,
            "/bin/sh",
            &["-c", "ls /proc/$(pidof qemu-ga)/fd | wc -l"],
        )
        .await;
        out.trim().parse::<u32>().unwrap()
    };
    let baseline = fds().await;
    let path = "/tmp/lvgtest-stalled";
    let first = vec![write_target(&name, path, false), write_data(b"head")];
    let stalled =
        tokio_stream::StreamExt::chain(tokio_stream::iter(first), tokio_stream::pending());
    let asked = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(IDLE_SECS + 20),
        s.client
            .agents()
            .write_guest_file(s.client.request(stalled)),
    )
    .await
    .expect("the stalled write outlived its idle timeout");
    let e = r.unwrap_err();
    assert_eq!(e.code(), Code::Aborted, "{e:?}");
    assert!(asked.elapsed() >= Duration::from_secs(IDLE_SECS));
    let (out, _, _) = exec(&s, &name, "/bin/cat", &[path]).await;
    assert_eq!(out, "head");
    wait_until(
        Duration::from_secs(10),
        "the stalled write's guest file handle to close",
        || async { (fds().await == baseline).then_some(()) },
    )
    .await;
    let w = s
        .client
        .agents()
        .write_guest_file(tokio_stream::iter(vec![
            write_target(&name, path, true),
            write_data(b"tail"),
        ]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(w.written_bytes, 4);
}
