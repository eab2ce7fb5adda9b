//! What a caller's mistake or misbehaviour must not do, on a real libvirtd:
//! a define with build/start never destroys a pool, its directory or a
//! network that existed, and a new object whose start fails leaves nothing;
//! libvirt's errors for caller mistakes are never INTERNAL; stalled uploads
//! release the slow lane at the idle timeout. Runs only with
//! LIBVIRT_GRPC_REAL=1. (The test-driver side: `fast_misuse.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    path::Path,
    time::{Duration, Instant},
};

use libvirt_grpc_server::config::{Config, HostConfig};
use libvirt_grpc_tests::scenario::volume_exists;
use libvirt_grpc_tests::{
    code_of, prefix, real_enabled, small_spec, v1, wait_until, Cleanup, TestServer, REAL_URI,
};
use tonic::Code;
use v1::{
    define_network_request::Source as NetSource, define_storage_pool_request::Source as PoolSource,
    upload_storage_volume_request::Item, DomainState, StoragePoolSpec, StoragePoolState,
    StoragePoolType, StorageVolumeRef, StorageVolumeSpec,
};

fn pool_ref(name: &str) -> Option<v1::StoragePoolRef> {
    libvirt_grpc_tests::pool_ref("real", name)
}

fn vol_ref(pool: &str, name: &str) -> Option<StorageVolumeRef> {
    Some(StorageVolumeRef {
        pool: pool_ref(pool),
        name: name.to_owned(),
    })
}

fn net_ref(name: &str) -> Option<v1::NetworkRef> {
    libvirt_grpc_tests::network_ref("real", name)
}

fn dom_ref(name: &str) -> Option<v1::DomainRef> {
    libvirt_grpc_tests::domain_ref("real", name)
}

/// The XML without its `<uuid>` element.
fn without_uuid(xml: &str) -> String {
    let start = xml.find("<uuid>").expect("a uuid element");
    let end = xml.find("</uuid>").expect("a uuid end tag") + "</uuid>".len();
    format!("{}{}", &xml[..start], &xml[end..])
}

fn define_pool_request(xml: String, build: bool, start: bool) -> v1::DefineStoragePoolRequest {
    v1::DefineStoragePoolRequest {
        host: "real".into(),
        source: Some(PoolSource::Xml(xml)),
        build,
        start,
        autostart: false,
    }
}

/// A `fs` pool whose block device does not exist: its build (a mount
/// point) succeeds, its start (a mount) fails.
fn fs_pool_xml(name: &str, mount: &Path) -> String {
    // A device that does not exist (so the start's mount fails), named
    // under the harness's host path roots (the temp dir) so that a caller
    // below admin may name it.
    let device = std::env::temp_dir().join(format!("{name}-nodev"));
    format!(
        "<pool type='fs'><name>{name}</name><source><device path='{}'/>\
         <format type='ext4'/></source><target><path>{}</path></target></pool>",
        device.display(),
        mount.display()
    )
}

/// The pool, or `None` when it is not defined.
async fn find_pool(s: &TestServer, name: &str) -> Option<v1::StoragePool> {
    let r = s
        .client
        .storage()
        .get_storage_pool(s.client.request(v1::GetStoragePoolRequest {
            pool: pool_ref(name),
        }))
        .await;
    match r {
        Ok(p) => p.into_inner().pool,
        Err(e) if e.code() == Code::NotFound => None,
        Err(e) => panic!("unexpected {e:?}"),
    }
}

async fn pool_xml(s: &TestServer, name: &str) -> String {
    s.client
        .storage()
        .get_storage_pool_xml(s.client.request(v1::GetStoragePoolXmlRequest {
            pool: pool_ref(name),
            inactive: true,
        }))
        .await
        .unwrap()
        .into_inner()
        .xml
}

/// A pool's XML without the sizes libvirt reports in it.
fn definition(xml: &str) -> String {
    xml.lines()
        .filter(|l| {
            !["<capacity", "<allocation", "<available"]
                .iter()
                .any(|t| l.contains(t))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn redefining_a_running_dir_pool_keeps_it_its_directory_and_files() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let dir = std::env::temp_dir().join(format!("{p}keep"));
    c.file(&dir);
    let name = format!("{p}keep");
    let mut st = s.client.storage();
    let made = st
        .define_storage_pool(s.client.request(v1::DefineStoragePoolRequest {
            host: "real".into(),
            source: Some(PoolSource::Spec(StoragePoolSpec {
                name: name.clone(),
                r#type: StoragePoolType::Dir as i32,
                target_path: dir.to_str().unwrap().to_owned(),
                ..Default::default()
            })),
            build: true,
            start: true,
            autostart: false,
        }))
        .await
        .unwrap()
        .into_inner()
        .pool
        .unwrap();
    assert_eq!(made.state(), StoragePoolState::Running);
    let precious = dir.join("precious.txt");
    std::fs::write(&precious, b"keep me").unwrap();
    let xml = pool_xml(&s, &name).await;

    // The pool's own XML again, with build and start: it runs, so both are
    // no-ops (this used to stop the pool, remove its directory and
    // undefine it).
    let again = st
        .define_storage_pool(
            s.client
                .request(define_pool_request(xml.clone(), true, true)),
        )
        .await
        .unwrap()
        .into_inner()
        .pool
        .unwrap();
    assert_eq!(again.uuid, made.uuid);
    assert_eq!(again.state(), StoragePoolState::Running);

    // Re-defines that fail change nothing: the XML without its UUID names a
    // pool that exists; another pool on the same directory conflicts.
    let r = st
        .define_storage_pool(
            s.client
                .request(define_pool_request(without_uuid(&xml), true, true)),
        )
        .await;
    assert_eq!(code_of(r), Code::AlreadyExists);
    let twin = format!("{p}twin");
    let twin_xml = format!(
        "<pool type='dir'><name>{twin}</name><target><path>{}</path></target></pool>",
        dir.display()
    );
    let r = st
        .define_storage_pool(s.client.request(define_pool_request(twin_xml, true, true)))
        .await;
    assert_eq!(code_of(r), Code::AlreadyExists);
    assert!(find_pool(&s, &twin).await.is_none());

    // Starting it again is a state conflict.
    let r = st
        .start_storage_pool(s.client.request(v1::StartStoragePoolRequest {
            pool: pool_ref(&name),
            build: true,
        }))
        .await;
    assert_eq!(code_of(r), Code::FailedPrecondition);

    let after = find_pool(&s, &name)
        .await
        .expect("the pool is still defined");
    assert_eq!(after.uuid, made.uuid);
    assert_eq!(after.state(), StoragePoolState::Running);
    assert!(after.persistent);
    assert_eq!(std::fs::read(&precious).unwrap(), b"keep me");
    assert_eq!(definition(&pool_xml(&s, &name).await), definition(&xml));
}

#[tokio::test]
async fn a_new_pool_whose_start_fails_leaves_nothing_and_existing_dirs_are_kept() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let mut st = s.client.storage();

    // A dir pool on a directory that does not exist, started without a
    // build: NOT_FOUND (libvirt: a system error, ENOENT), nothing defined,
    // nothing made.
    let missing = std::env::temp_dir().join(format!("{p}nodir"));
    c.file(&missing);
    let nodir = format!("{p}nodir");
    let xml = format!(
        "<pool type='dir'><name>{nodir}</name><target><path>{}</path></target></pool>",
        missing.display()
    );
    let r = st
        .define_storage_pool(
            s.client
                .request(define_pool_request(xml.clone(), false, true)),
        )
        .await;
    assert_eq!(code_of(r), Code::NotFound);
    assert!(find_pool(&s, &nodir).await.is_none());
    assert!(!missing.exists());

    // Defined alone, then started: the same NOT_FOUND, the pool stays
    // defined and inactive.
    st.define_storage_pool(s.client.request(define_pool_request(xml, false, false)))
        .await
        .unwrap();
    let r = st
        .start_storage_pool(s.client.request(v1::StartStoragePoolRequest {
            pool: pool_ref(&nodir),
            build: false,
        }))
        .await;
    assert_eq!(code_of(r), Code::NotFound);
    let still = find_pool(&s, &nodir).await.expect("still defined");
    assert_eq!(still.state(), StoragePoolState::Inactive);
    assert!(!missing.exists());

    // A new pool on a directory that exists, with build and start: it
    // starts unbuilt, so the directory and what is in it are never rebuilt
    // (and would never be deleted by a failure).
    let existing = std::env::temp_dir().join(format!("{p}existing"));
    c.file(&existing);
    std::fs::create_dir_all(&existing).unwrap();
    std::fs::write(existing.join("precious.txt"), b"keep me").unwrap();
    let adopted = format!("{p}existing");
    let xml = format!(
        "<pool type='dir'><name>{adopted}</name><target><path>{}</path></target></pool>",
        existing.display()
    );
    let made = st
        .define_storage_pool(s.client.request(define_pool_request(xml, true, true)))
        .await
        .unwrap()
        .into_inner()
        .pool
        .unwrap();
    assert_eq!(made.state(), StoragePoolState::Running);
    assert_eq!(
        std::fs::read(existing.join("precious.txt")).unwrap(),
        b"keep me"
    );

    // A new fs pool whose device is missing, with build and start: it does
    // not start unbuilt, the build makes its mount point, the start fails.
    // The undo deletes what the build made and the definition.
    let mount = std::env::temp_dir().join(format!("{p}mnt"));
    c.file(&mount);
    let fs = format!("{p}fs");
    let r = st
        .define_storage_pool(s.client.request(define_pool_request(
            fs_pool_xml(&fs, &mount),
            true,
            true,
        )))
        .await;
    assert_ne!(code_of(r), Code::Ok);
    assert!(find_pool(&s, &fs).await.is_none());
    assert!(!mount.exists(), "the mount point the build made is left");
}

#[tokio::test]
async fn an_existing_pool_whose_start_fails_keeps_its_definition() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let mut st = s.client.storage();
    let mount = std::env::temp_dir().join(format!("{p}mnt"));
    c.file(&mount);
    let fs = format!("{p}fs");
    let defined = st
        .define_storage_pool(s.client.request(define_pool_request(
            fs_pool_xml(&fs, &mount),
            false,
            false,
        )))
        .await
        .unwrap()
        .into_inner()
        .pool
        .unwrap();
    let xml = pool_xml(&s, &fs).await;

    // Its own definition again, with build and start: the start fails, but
    // the pool existed, so it stays defined (and what the build made stays:
    // it is the pool's storage now).
    let r = st
        .define_storage_pool(
            s.client
                .request(define_pool_request(xml.clone(), true, true)),
        )
        .await;
    assert_ne!(code_of(r), Code::Ok);
    let after = find_pool(&s, &fs).await.expect("the pool was undefined");
    assert_eq!(after.uuid, defined.uuid);
    assert_eq!(after.state(), StoragePoolState::Inactive);
    assert!(after.persistent);
    assert_eq!(definition(&pool_xml(&s, &fs).await), definition(&xml));
    assert!(mount.is_dir());
}

#[tokio::test]
async fn redefining_a_running_network_with_start_keeps_its_definition() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let _c = Cleanup::new(REAL_URI, &p);
    let name = format!("{p}net");
    // No <ip>: no dnsmasq, no firewall rules; a bridge of its own.
    let bridge = format!("lvgr{}", std::process::id() % 100_000);
    let xml = format!("<network><name>{name}</name><bridge name='{bridge}'/></network>");
    let mut nw = s.client.networks();
    let made = nw
        .define_network(s.client.request(v1::DefineNetworkRequest {
            host: "real".into(),
            source: Some(NetSource::Xml(xml)),
            start: true,
            autostart: false,
        }))
        .await
        .unwrap()
        .into_inner()
        .network
        .unwrap();
    assert!(made.active && made.persistent);
    let full = nw
        .get_network_xml(s.client.request(v1::GetNetworkXmlRequest {
            network: net_ref(&name),
            inactive: true,
        }))
        .await
        .unwrap()
        .into_inner()
        .xml;

    // Start of a running network is a no-op: it keeps running and keeps
    // its definition (a failed start used to undefine it).
    let again = nw
        .define_network(s.client.request(v1::DefineNetworkRequest {
            host: "real".into(),
            source: Some(NetSource::Xml(full.clone())),
            start: true,
            autostart: false,
        }))
        .await
        .unwrap()
        .into_inner()
        .network
        .unwrap();
    assert_eq!(again.uuid, made.uuid);
    assert!(again.active && again.persistent);
    let r = nw
        .define_network(s.client.request(v1::DefineNetworkRequest {
            host: "real".into(),
            source: Some(NetSource::Xml(without_uuid(&full))),
            start: true,
            autostart: false,
        }))
        .await;
    assert_eq!(code_of(r), Code::AlreadyExists);
    let r = nw
        .start_network(s.client.request(v1::StartNetworkRequest {
            network: net_ref(&name),
        }))
        .await;
    assert_eq!(code_of(r), Code::FailedPrecondition);

    let after = nw
        .get_network(s.client.request(v1::GetNetworkRequest {
            network: net_ref(&name),
        }))
        .await
        .unwrap()
        .into_inner()
        .network
        .unwrap();
    assert_eq!(after.uuid, made.uuid);
    assert!(after.active && after.persistent);
    assert!(Path::new(&format!("/sys/class/net/{bridge}")).exists());
}

#[tokio::test]
async fn resume_and_restore_mistakes_on_qemu() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let client = s.client.clone().with_default_host("real");
    let name = format!("{p}vm");
    client
        .define_domain(v1::DomainSpec {
            domain_type: "qemu".into(),
            arch: "x86_64".into(),
            ..small_spec(&name)
        })
        .await
        .unwrap();
    client.start_domain(&name).await.unwrap();
    let mut dom = client.domains();

    let r = dom
        .resume_domain(v1::ResumeDomainRequest {
            domain: dom_ref(&name),
        })
        .await;
    assert_eq!(code_of(r), Code::FailedPrecondition);
    assert_eq!(
        client.get_domain(&name).await.unwrap().state(),
        DomainState::Running
    );

    let dir = std::env::temp_dir().join(format!("{p}dir"));
    std::fs::create_dir_all(&dir).unwrap();
    c.file(&dir);
    let garbage = std::env::temp_dir().join(format!("{p}garbage.img"));
    std::fs::write(&garbage, vec![7u8; 64 * 1024]).unwrap();
    c.file(&garbage);
    let missing = std::env::temp_dir().join(format!("{p}missing.img"));
    for (path, want) in [
        (&missing, Code::NotFound),
        (&dir, Code::InvalidArgument),
        (&garbage, Code::InvalidArgument),
    ] {
        let r = dom
            .restore_domain(v1::RestoreDomainRequest {
                host: "real".into(),
                path: path.to_string_lossy().into_owned(),
                ..Default::default()
            })
            .await;
        assert_eq!(code_of(r), want, "restore from {path:?}");
    }
    assert!(!missing.exists());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    assert_eq!(std::fs::read(&garbage).unwrap().len(), 64 * 1024);
    assert_eq!(
        client.get_domain(&name).await.unwrap().state(),
        DomainState::Running
    );
}

/// An upload stream that sends its first messages, then nothing, forever.
fn stalling(
    msgs: Vec<v1::UploadStorageVolumeRequest>,
) -> impl tokio_stream::Stream<Item = v1::UploadStorageVolumeRequest> {
    tokio_stream::StreamExt::chain(tokio_stream::iter(msgs), tokio_stream::pending())
}

fn target(pool: &str, name: &str) -> v1::UploadStorageVolumeRequest {
    v1::UploadStorageVolumeRequest {
        item: Some(Item::Target(v1::UploadTarget {
            volume: vol_ref(pool, name),
            create: Some(StorageVolumeSpec {
                capacity_bytes: 1 << 20,
                ..Default::default()
            }),
            ..Default::default()
        })),
    }
}

/// Every slow-lane slot held by an upload that sent a chunk and stalled:
/// another slow call is served once the idle timeout cut them off, the
/// stalled calls end with ABORTED and their volumes are gone.
#[tokio::test]
async fn stalled_uploads_release_the_slow_lane_at_the_idle_timeout() {
    if !real_enabled() {
        return;
    }
    const SLOTS: usize = 2;
    const IDLE_SECS: u64 = 3;
    let s = TestServer::start_with(Config {
        hosts: vec![HostConfig {
            max_slow_in_flight: SLOTS,
            ..HostConfig::new("real", REAL_URI)
        }],
        stream_idle_timeout_secs: IDLE_SECS,
        health_interval_secs: 1,
        ..Config::default()
    })
    .await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let dir = std::env::temp_dir().join(format!("{p}lane"));
    c.file(&dir);
    let pool = format!("{p}lane");
    s.client
        .storage()
        .define_storage_pool(s.client.request(v1::DefineStoragePoolRequest {
            host: "real".into(),
            source: Some(PoolSource::Spec(StoragePoolSpec {
                name: pool.clone(),
                r#type: StoragePoolType::Dir as i32,
                target_path: dir.to_str().unwrap().to_owned(),
                ..Default::default()
            })),
            build: true,
            start: true,
            autostart: false,
        }))
        .await
        .unwrap();

    let mut stalled = Vec::new();
    for i in 0..SLOTS {
        let client = s.client.clone();
        let msgs = vec![
            target(&pool, &format!("up{i}.raw")),
            v1::UploadStorageVolumeRequest {
                item: Some(Item::Chunk(vec![0x5a; 64 * 1024])),
            },
        ];
        stalled.push(tokio::spawn(async move {
            let mut st = client.storage();
            st.upload_storage_volume(client.request(stalling(msgs)))
                .await
        }));
    }
    // One more that only names its target: it never takes a slot.
    let client = s.client.clone();
    let pool2 = pool.clone();
    stalled.push(tokio::spawn(async move {
        let mut st = client.storage();
        st.upload_storage_volume(client.request(stalling(vec![target(&pool2, "idle.raw")])))
            .await
    }));
    for i in 0..SLOTS {
        let vol = format!("up{i}.raw");
        wait_until(
            Duration::from_secs(20),
            "the stalled uploads to create their volumes",
            || {
                let (s, pool, vol) = (&s, &pool, &vol);
                async move { volume_exists(s, "real", pool, vol).await.then_some(()) }
            },
        )
        .await;
    }

    // A slow call (volume creation takes the slow lane) waits for a slot
    // and gets one when the idle timeout frees them.
    let asked = Instant::now();
    s.client
        .storage()
        .create_storage_volume(s.client.request(v1::CreateStorageVolumeRequest {
            pool: pool_ref(&pool),
            source: Some(v1::create_storage_volume_request::Source::Spec(
                StorageVolumeSpec {
                    name: "after.raw".into(),
                    capacity_bytes: 1 << 20,
                    ..Default::default()
                },
            )),
        }))
        .await
        .unwrap();
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_secs(1),
        "the slow call did not wait for the stalled uploads ({waited:?})"
    );
    assert!(
        waited < Duration::from_secs(IDLE_SECS + 10),
        "the slow call waited {waited:?}"
    );

    for call in stalled {
        let r = tokio::time::timeout(Duration::from_secs(20), call)
            .await
            .expect("a stalled upload outlived its idle timeout")
            .unwrap();
        let e = r.unwrap_err();
        assert_eq!(e.code(), Code::Aborted, "{e:?}");
    }
    for vol in ["up0.raw", "up1.raw", "idle.raw"] {
        assert!(
            !volume_exists(&s, "real", &pool, vol).await,
            "{vol} was left"
        );
    }
    assert!(volume_exists(&s, "real", &pool, "after.raw").await);
}
