//! Live migration between real libvirt hosts: the machine's libvirtd
//! (`real`) and libvirtd "hosts in a box" (`scripts/libvirtd-box.sh`) the
//! tests start themselves, reached over `qemu+tcp://127.0.0.1:PORT`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use libvirt_grpc_server::config::HostConfig;
use libvirt_grpc_tests::{
    boxes::LibvirtBox, prefix, real_enabled, v1, wait_until, Cleanup, TestServer, REAL_URI,
};
use tokio_stream::StreamExt;
use tonic::Code;
use v1::{
    migrate_domain_response::Item, DomainLifecycleDetail as D, DomainLifecycleEvent as L,
    DomainState,
};

fn dref(host: &str, name: &str) -> Option<v1::DomainRef> {
    libvirt_grpc_tests::domain_ref(host, name)
}

fn host(name: &str, uri: &str) -> HostConfig {
    HostConfig {
        migration_address: "127.0.0.1".into(),
        ..HostConfig::new(name, uri)
    }
}

/// A server over `real` and one box `b0`, with the test guest booted on
/// `real`; everything named with the run's prefix is removed on drop (the
/// guests first, then the box).
struct OneBox {
    server: TestServer,
    name: String,
    _cleanup: (Cleanup, Cleanup),
    _box: LibvirtBox,
}

impl OneBox {
    async fn boot(tag: &str) -> Self {
        let p = prefix();
        let b = boxes(&p, 1).remove(0);
        let server = TestServer::start(vec![host("real", REAL_URI), host("b0", &b.uri)]).await;
        let mut c = Cleanup::new(REAL_URI, &p);
        let c0 = Cleanup::new(&b.uri, &p);
        let name = format!("{p}{tag}");
        boot(&server, &mut c, &name).await;
        OneBox {
            server,
            name,
            _cleanup: (c, c0),
            _box: b,
        }
    }
}

/// One migration at a time in this suite: every box picks the incoming
/// migration port from libvirt's default range on its own, unaware of the
/// others on this machine, so two migrations at once may pick the same.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts boxes `{p}b0`, `{p}b1`, ... at once.
fn boxes(p: &str, n: usize) -> Vec<LibvirtBox> {
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let name = format!("{p}b{i}");
            std::thread::spawn(move || LibvirtBox::start(&name))
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn millis(ms: i32) -> Option<libvirt_grpc::prost_types::Duration> {
    Some(libvirt_grpc::prost_types::Duration {
        seconds: 0,
        nanos: ms * 1_000_000,
    })
}

/// Boots the test guest on `real` (transient: it lives where it runs).
async fn boot(s: &TestServer, c: &mut Cleanup, name: &str) {
    let console = format!("/tmp/{name}-console.log");
    c.file(&console);
    s.client
        .domains()
        .create_domain(v1::CreateDomainRequest {
            host: "real".into(),
            source: Some(v1::create_domain_request::Source::Xml(
                libvirt_grpc_tests::guest::xml(name, &console),
            )),
            ..Default::default()
        })
        .await
        .unwrap();
}

fn request(
    name: &str,
    from: &str,
    to: &str,
    options: v1::MigrationOptions,
) -> v1::MigrateDomainRequest {
    v1::MigrateDomainRequest {
        domain: dref(from, name),
        destination_host: to.into(),
        options: Some(options),
        progress_interval: millis(100),
    }
}

/// Runs a migration to its end: the progress seen and the final domain.
async fn migrate(s: &TestServer, r: v1::MigrateDomainRequest) -> (Vec<v1::DomainJob>, v1::Domain) {
    let mut st = s
        .client
        .domains()
        .migrate_domain(r)
        .await
        .unwrap()
        .into_inner();
    let mut progress = Vec::new();
    while let Some(m) = st.next().await {
        match m.unwrap().item.unwrap() {
            Item::Progress(j) => progress.push(j),
            Item::Domain(d) => {
                assert!(st.next().await.is_none(), "the domain is the last message");
                return (progress, d);
            }
        }
    }
    panic!("the stream ended without the domain");
}

async fn state_on(s: &TestServer, host: &str, name: &str) -> Result<DomainState, Code> {
    s.client
        .domains()
        .get_domain(v1::GetDomainRequest {
            domain: dref(host, name),
            view: v1::DomainView::Basic as i32,
        })
        .await
        .map(|r| r.into_inner().domain.unwrap().state())
        .map_err(|e| e.code())
}

/// real -> box 0 -> box 1, live, while one watcher sees both sides of each
/// hop on its one stream.
#[tokio::test]
async fn live_migration_across_three_hosts() {
    if !real_enabled() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let p = prefix();
    let b = boxes(&p, 2);
    let s = TestServer::start(vec![
        host("real", REAL_URI),
        host("b0", &b[0].uri),
        host("b1", &b[1].uri),
    ])
    .await;
    let mut c = Cleanup::new(REAL_URI, &p);
    let _c0 = Cleanup::new(&b[0].uri, &p);
    let _c1 = Cleanup::new(&b[1].uri, &p);
    let name = format!("{p}mig");
    let mut events = s
        .client
        .events()
        .watch_events(v1::WatchEventsRequest {
            names: vec![name.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    boot(&s, &mut c, &name).await;

    for (from, to) in [("real", "b0"), ("b0", "b1")] {
        let (progress, d) = migrate(
            &s,
            request(&name, from, to, v1::MigrationOptions::default()),
        )
        .await;
        assert_eq!(
            (d.host.as_str(), d.state()),
            (to, DomainState::Running),
            "{d:?}"
        );
        assert!(
            !progress.is_empty(),
            "{from} -> {to}: no progress at 100 ms intervals"
        );
        for j in &progress {
            assert_eq!(j.operation(), v1::JobOperation::MigrationOut, "{j:?}");
            assert!(
                matches!(
                    j.r#type(),
                    v1::DomainJobType::Bounded | v1::DomainJobType::Unbounded
                ),
                "{j:?}"
            );
        }
        assert!(
            progress.iter().any(|j| j.memory_total_bytes > 0),
            "{progress:?}"
        );
        // Transient: gone from the source, running on the destination.
        assert_eq!(state_on(&s, from, &name).await, Err(Code::NotFound));
        assert_eq!(state_on(&s, to, &name).await, Ok(DomainState::Running));
    }

    // Both sides of both hops, each host named, on the one stream.
    let mut want = vec![
        ("real", L::Stopped),
        ("b0", L::Started),
        ("b0", L::Stopped),
        ("b1", L::Started),
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !want.is_empty() {
        let m = tokio::time::timeout_at(deadline, events.next())
            .await
            .unwrap_or_else(|_| panic!("events still missing: {want:?}"))
            .unwrap()
            .unwrap();
        let Some(v1::watch_events_response::Item::Event(e)) = m.item else {
            continue;
        };
        let Some(v1::event::Details::Lifecycle(l)) = &e.details else {
            continue;
        };
        let detail = l.detail();
        let seen = match l.event() {
            L::Stopped if detail == D::StoppedMigrated => L::Stopped,
            L::Started if detail == D::StartedMigrated => L::Started,
            // Some QEMU versions announce the arrival as RESUMED/MIGRATED.
            L::Resumed if detail == D::ResumedMigrated => L::Started,
            _ => continue,
        };
        if let Some(i) = want.iter().position(|w| *w == (e.host.as_str(), seen)) {
            want.remove(i);
        }
    }
}

/// A migration whose stream the caller drops is aborted: the guest keeps
/// running on the source and the destination keeps no copy of it.
#[tokio::test]
async fn cancelled_migration_leaves_the_guest_on_the_source() {
    if !real_enabled() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let f = OneBox::boot("cancel").await;
    let (s, name) = (&f.server, f.name.clone());
    // 1 MiB/s: the guest's memory takes many seconds.
    let slow = v1::MigrationOptions {
        bandwidth_mib_per_second: 1,
        ..Default::default()
    };
    let mut st = s
        .client
        .domains()
        .migrate_domain(request(&name, "real", "b0", slow))
        .await
        .unwrap()
        .into_inner();
    first_progress(&mut st).await;
    drop(st);
    // The destination's paused incoming copy is libvirt's while the
    // migration runs; libvirt removes it in the abort's finish phase, which
    // may end just after the source's job does. So the end state is waited
    // for as a whole: no job on the source and no domain on the box.
    let jobs = s.client.domains();
    wait_until(
        Duration::from_secs(30),
        "the aborted migration to end on both hosts",
        || {
            let mut jobs = jobs.clone();
            let name = name.clone();
            async move {
                let j = jobs
                    .get_domain_job(v1::GetDomainJobRequest {
                        domain: dref("real", &name),
                        completed: false,
                    })
                    .await
                    .ok()?
                    .into_inner()
                    .job?;
                let gone = state_on(s, "b0", &name).await == Err(Code::NotFound);
                (j.r#type() == v1::DomainJobType::None && gone).then_some(())
            }
        },
    )
    .await;
    assert_eq!(state_on(s, "real", &name).await, Ok(DomainState::Running));
    assert_eq!(state_on(s, "b0", &name).await, Err(Code::NotFound));
}

/// An unknown destination, the source itself and a host that is down: each
/// answers its code and the guest stays where it was.
#[tokio::test]
async fn bad_destinations_change_nothing() {
    if !real_enabled() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let p = prefix();
    // Nothing listens on this port: the host is configured but down.
    let port = libvirt_grpc_tests::free_port();
    let down = format!("qemu+tcp://127.0.0.1:{port}/system");
    let s = TestServer::start(vec![host("real", REAL_URI), host("down", &down)]).await;
    let mut c = Cleanup::new(REAL_URI, &p);
    let name = format!("{p}stay");
    boot(&s, &mut c, &name).await;
    let mut dom = s.client.domains();
    let o = v1::MigrationOptions::default;
    let code = |r: Result<
        tonic::Response<tonic::codec::Streaming<v1::MigrateDomainResponse>>,
        tonic::Status,
    >| { r.map(|_| ()).unwrap_err().code() };
    assert_eq!(
        code(
            dom.migrate_domain(request(&name, "real", "nowhere", o()))
                .await
        ),
        Code::NotFound
    );
    assert_eq!(
        code(
            dom.migrate_domain(request(&name, "real", "real", o()))
                .await
        ),
        Code::InvalidArgument
    );
    assert_eq!(
        code(dom.migrate_domain(request(&name, "real", "", o())).await),
        Code::InvalidArgument
    );
    let offline_transient = v1::MigrationOptions {
        mode: v1::MigrationMode::Offline as i32,
        ..Default::default()
    };
    assert_eq!(
        code(
            dom.migrate_domain(request(&name, "real", "down", offline_transient))
                .await
        ),
        Code::InvalidArgument,
        "offline without persistent_destination"
    );
    let too_fast = v1::MigrationOptions {
        bandwidth_mib_per_second: u64::MAX,
        ..Default::default()
    };
    assert_eq!(
        code(
            dom.migrate_domain(request(&name, "real", "down", too_fast))
                .await
        ),
        Code::InvalidArgument
    );
    // A host that is down: the stream ends with UNAVAILABLE.
    let mut st = dom
        .migrate_domain(request(&name, "real", "down", o()))
        .await
        .unwrap()
        .into_inner();
    let end = st.next().await.expect("an answer").unwrap_err();
    assert_eq!(end.code(), Code::Unavailable, "{end:?}");
    assert_eq!(state_on(&s, "real", &name).await, Ok(DomainState::Running));
}

/// Waits for a migration's first progress message.
async fn first_progress(st: &mut tonic::codec::Streaming<v1::MigrateDomainResponse>) {
    match tokio::time::timeout(Duration::from_secs(30), st.next()).await {
        Ok(Some(Ok(v1::MigrateDomainResponse {
            item: Some(Item::Progress(j)),
        }))) => assert_eq!(j.operation(), v1::JobOperation::MigrationOut),
        other => panic!("expected progress first, got {other:?}"),
    }
}

/// AbortDomainJob during a migration ends its stream with libvirt's error
/// and leaves the guest on the source; a post-copy switch finishes a
/// migration that would otherwise crawl at 1 MiB/s.
#[tokio::test]
async fn abort_call_and_post_copy_switch() {
    if !real_enabled() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let f = OneBox::boot("abort").await;
    let (s, name) = (&f.server, f.name.clone());
    let mut dom = s.client.domains();
    let slow = v1::MigrationOptions {
        bandwidth_mib_per_second: 1,
        post_copy: true,
        ..Default::default()
    };

    let mut st = dom
        .migrate_domain(request(&name, "real", "b0", slow))
        .await
        .unwrap()
        .into_inner();
    first_progress(&mut st).await;
    dom.abort_domain_job(v1::AbortDomainJobRequest {
        domain: dref("real", &name),
    })
    .await
    .unwrap();
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(30), st.next()).await {
            Ok(Some(Ok(_progress))) => continue,
            Ok(Some(Err(e))) => break e,
            other => panic!("expected the aborted migration's error, got {other:?}"),
        }
    };
    assert!(
        end.message().contains("abort") || end.message().contains("cancel"),
        "{end:?}"
    );
    assert_eq!(state_on(s, "real", &name).await, Ok(DomainState::Running));
    assert_eq!(state_on(s, "b0", &name).await, Err(Code::NotFound));

    // Post-copy: the switch makes the destination run the guest at once and
    // pull the rest of its memory.
    let mut st = dom
        .migrate_domain(request(&name, "real", "b0", slow))
        .await
        .unwrap()
        .into_inner();
    // The switch needs QEMU's migration under way (libvirt's job exists
    // before that): wait until memory moves.
    loop {
        match tokio::time::timeout(Duration::from_secs(30), st.next()).await {
            Ok(Some(Ok(v1::MigrateDomainResponse {
                item: Some(Item::Progress(j)),
            }))) if j.memory_processed_bytes > 0 => break,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected progress, got {other:?}"),
        }
    }
    dom.start_domain_migration_post_copy(v1::StartDomainMigrationPostCopyRequest {
        domain: dref("real", &name),
    })
    .await
    .unwrap();
    let d = loop {
        match tokio::time::timeout(Duration::from_secs(120), st.next()).await {
            Ok(Some(Ok(v1::MigrateDomainResponse {
                item: Some(Item::Domain(d)),
            }))) => break d,
            Ok(Some(Ok(_progress))) => continue,
            other => panic!("expected the migrated domain, got {other:?}"),
        }
    };
    assert_eq!((d.host.as_str(), d.state()), ("b0", DomainState::Running));
    // Not a post-copy migration: the switch is refused.
    let st = dom
        .start_domain_migration_post_copy(v1::StartDomainMigrationPostCopyRequest {
            domain: dref("b0", &name),
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::FailedPrecondition, "{st:?}");
}

/// `copy_storage`: a guest whose data disk the destination does not share
/// (the box's /var/lib/libvirt is its own) is migrated with the disk copied
/// over (libvirt's NBD copy); the destination's file then holds what the
/// source's did.
#[tokio::test]
async fn copy_storage_copies_a_non_shared_disk() {
    if !real_enabled() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let p = prefix();
    let b = boxes(&p, 1).remove(0);
    let s = TestServer::start(vec![host("real", REAL_URI), host("b0", &b.uri)]).await;
    let mut c = Cleanup::new(REAL_URI, &p);
    let _c0 = Cleanup::new(&b.uri, &p);
    let name = format!("{p}copy");
    let file = format!("{name}.raw");
    // The source's disk, with a marker at its start and at 1 MiB.
    let images = std::path::Path::new("/var/lib/libvirt/images");
    std::fs::create_dir_all(images).unwrap();
    let src = images.join(&file);
    c.file(&src);
    let mut data = vec![0u8; 4 << 20];
    let marker = format!("lvg-copy-storage {p}");
    data[..marker.len()].copy_from_slice(marker.as_bytes());
    data[1 << 20..(1 << 20) + marker.len()].copy_from_slice(marker.as_bytes());
    std::fs::write(&src, &data).unwrap();
    // The destination's volume of the same path and size (in the box's own
    // /var/lib/libvirt), empty.
    let dst_dir = b.state_dir().join("lib/images");
    std::fs::create_dir_all(&dst_dir).unwrap();
    let dst = dst_dir.join(&file);
    std::fs::write(&dst, vec![0u8; data.len()]).unwrap();

    let console = format!("/tmp/{name}-console.log");
    c.file(&console);
    let xml = libvirt_grpc_tests::guest::xml(&name, &console).replace(
        "<devices>",
        &format!(
            "<devices><disk type='file' device='disk'><driver name='qemu' type='raw'/>\
             <source file='{}'/><target dev='vdb' bus='virtio'/></disk>",
            src.display()
        ),
    );
    s.client
        .domains()
        .create_domain(v1::CreateDomainRequest {
            host: "real".into(),
            source: Some(v1::create_domain_request::Source::Xml(xml)),
            ..Default::default()
        })
        .await
        .unwrap();
    let (_, d) = migrate(
        &s,
        request(
            &name,
            "real",
            "b0",
            v1::MigrationOptions {
                copy_storage: true,
                ..Default::default()
            },
        ),
    )
    .await;
    assert_eq!(
        (d.host.as_str(), d.state()),
        ("b0", DomainState::Running),
        "{d:?}"
    );
    assert_eq!(state_on(&s, "real", &name).await, Err(Code::NotFound));
    let copied = std::fs::read(&dst).unwrap();
    assert_eq!(copied.len(), data.len());
    assert!(
        copied == data,
        "the destination's disk differs from the source's"
    );
}
