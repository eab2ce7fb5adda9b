//! What a caller's mistake or misbehaviour must not do, against libvirt's
//! in-process test driver: a define with build/start never destroys what
//! existed, caller mistakes are never INTERNAL, and a client stream that
//! stalls is cut off with ABORTED without holding the slow lane.
//! (The same findings on a real libvirtd: `real_misuse.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use libvirt_grpc_server::config::{Config, HostConfig};
use libvirt_grpc_tests::{code_of, prefix, small_spec, v1, Cleanup, TestServer};
use tonic::Code;
use v1::{
    define_network_request::Source as NetSource, define_storage_pool_request::Source as PoolSource,
    upload_storage_volume_request::Item, DomainState, StoragePoolState, StorageVolumeRef,
    StorageVolumeSpec,
};

const URI: &str = "test:///default";

fn pool_ref(name: &str) -> Option<v1::StoragePoolRef> {
    libvirt_grpc_tests::pool_ref("", name)
}

fn net_ref(name: &str) -> Option<v1::NetworkRef> {
    libvirt_grpc_tests::network_ref("", name)
}

fn dom_ref(name: &str) -> Option<v1::DomainRef> {
    libvirt_grpc_tests::domain_ref("", name)
}

/// The XML without its `<uuid>` element.
fn without_uuid(xml: &str) -> String {
    let start = xml.find("<uuid>").expect("a uuid element");
    let end = xml.find("</uuid>").expect("a uuid end tag") + "</uuid>".len();
    format!("{}{}", &xml[..start], &xml[end..])
}

async fn pool(s: &TestServer, name: &str) -> v1::StoragePool {
    s.client
        .storage()
        .get_storage_pool(s.client.request(v1::GetStoragePoolRequest {
            pool: pool_ref(name),
        }))
        .await
        .unwrap()
        .into_inner()
        .pool
        .unwrap()
}

async fn volume_names(s: &TestServer, pool: &str) -> Vec<String> {
    s.client
        .storage()
        .list_storage_volumes(s.client.request(v1::ListStorageVolumesRequest {
            pool: pool_ref(pool),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .volumes
        .into_iter()
        .map(|v| v.name)
        .collect()
}

async fn network(s: &TestServer, name: &str) -> v1::Network {
    s.client
        .networks()
        .get_network(s.client.request(v1::GetNetworkRequest {
            network: net_ref(name),
        }))
        .await
        .unwrap()
        .into_inner()
        .network
        .unwrap()
}

#[tokio::test]
async fn redefining_default_pool_with_build_and_start_keeps_it() {
    let s = TestServer::test_driver().await;
    let mut st = s.client.storage();
    let before = pool(&s, "default-pool").await;
    assert_eq!(before.state(), StoragePoolState::Running);
    let vols = volume_names(&s, "default-pool").await;
    let xml = st
        .get_storage_pool_xml(s.client.request(v1::GetStoragePoolXmlRequest {
            pool: pool_ref("default-pool"),
            inactive: false,
        }))
        .await
        .unwrap()
        .into_inner()
        .xml;

    // Its own definition again, with build and start: the pool runs, so
    // both are no-ops and the call succeeds (it used to stop, delete and
    // undefine the pool when its build failed).
    let again = st
        .define_storage_pool(s.client.request(v1::DefineStoragePoolRequest {
            source: Some(PoolSource::Xml(xml.clone())),
            build: true,
            start: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .pool
        .unwrap();
    assert_eq!(again.uuid, before.uuid);
    assert_eq!(again.state(), StoragePoolState::Running);
    assert!(again.persistent);

    // A re-define that fails (without its UUID the XML names a pool that
    // exists) changes nothing either.
    let failed = st
        .define_storage_pool(s.client.request(v1::DefineStoragePoolRequest {
            source: Some(PoolSource::Xml(without_uuid(&xml))),
            build: true,
            start: true,
            ..Default::default()
        }))
        .await;
    assert_eq!(code_of(failed), Code::AlreadyExists);

    let after = pool(&s, "default-pool").await;
    assert_eq!(after.uuid, before.uuid);
    assert_eq!(after.state(), StoragePoolState::Running);
    assert!(after.persistent);
    assert_eq!(volume_names(&s, "default-pool").await, vols);

    // Starting it again is a state conflict, not an internal error.
    let start = st
        .start_storage_pool(s.client.request(v1::StartStoragePoolRequest {
            pool: pool_ref("default-pool"),
            build: false,
        }))
        .await;
    assert_eq!(code_of(start), Code::FailedPrecondition);
    assert_eq!(
        pool(&s, "default-pool").await.state(),
        StoragePoolState::Running
    );
}

#[tokio::test]
async fn redefining_default_network_with_start_keeps_it() {
    let s = TestServer::test_driver().await;
    let mut nw = s.client.networks();
    let before = network(&s, "default").await;
    assert!(before.active && before.persistent);
    let xml = nw
        .get_network_xml(s.client.request(v1::GetNetworkXmlRequest {
            network: net_ref("default"),
            inactive: false,
        }))
        .await
        .unwrap()
        .into_inner()
        .xml;

    // Start of a running network is a no-op: the call succeeds and the
    // network keeps its persistent definition (a failed start used to
    // undefine it).
    let again = nw
        .define_network(s.client.request(v1::DefineNetworkRequest {
            source: Some(NetSource::Xml(xml.clone())),
            start: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .network
        .unwrap();
    assert_eq!(again.uuid, before.uuid);
    assert!(again.active && again.persistent);

    let failed = nw
        .define_network(s.client.request(v1::DefineNetworkRequest {
            source: Some(NetSource::Xml(without_uuid(&xml))),
            start: true,
            ..Default::default()
        }))
        .await;
    assert_eq!(code_of(failed), Code::AlreadyExists);

    let start = nw
        .start_network(s.client.request(v1::StartNetworkRequest {
            network: net_ref("default"),
        }))
        .await;
    assert_eq!(code_of(start), Code::FailedPrecondition);

    let after = network(&s, "default").await;
    assert_eq!(after.uuid, before.uuid);
    assert!(after.active && after.persistent);
}

#[tokio::test]
async fn a_new_pool_on_another_pools_storage_is_already_exists() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}twin");
    let target = pool(&s, "default-pool").await.target_path;
    let xml = format!(
        "<pool type='dir'><name>{name}</name><target><path>{target}</path></target></pool>"
    );
    let r = s
        .client
        .storage()
        .define_storage_pool(s.client.request(v1::DefineStoragePoolRequest {
            source: Some(PoolSource::Xml(xml)),
            build: true,
            start: true,
            ..Default::default()
        }))
        .await;
    assert_eq!(code_of(r), Code::AlreadyExists);
    let gone = s
        .client
        .storage()
        .get_storage_pool(s.client.request(v1::GetStoragePoolRequest {
            pool: pool_ref(&name),
        }))
        .await;
    assert_eq!(code_of(gone), Code::NotFound);
    assert_eq!(
        pool(&s, "default-pool").await.state(),
        StoragePoolState::Running
    );
}

#[tokio::test]
async fn resuming_a_running_domain_is_failed_precondition() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}run");
    s.client.define_domain(small_spec(&name)).await.unwrap();
    s.client.start_domain(&name).await.unwrap();
    let r = s
        .client
        .domains()
        .resume_domain(v1::ResumeDomainRequest {
            domain: dom_ref(&name),
        })
        .await;
    assert_eq!(code_of(r), Code::FailedPrecondition);
    assert_eq!(
        s.client.get_domain(&name).await.unwrap().state(),
        DomainState::Running
    );
}

#[tokio::test]
async fn restoring_from_a_missing_path_or_a_directory_is_a_caller_mistake() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let mut c = Cleanup::new(URI, &p);
    let dir = std::env::temp_dir().join(format!("{p}dir"));
    std::fs::create_dir_all(&dir).unwrap();
    c.file(&dir);
    let missing = std::env::temp_dir().join(format!("{p}missing.img"));
    let mut dom = s.client.domains();

    let r = dom
        .restore_domain(v1::RestoreDomainRequest {
            path: missing.to_string_lossy().into_owned(),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(r), Code::NotFound);
    assert!(!missing.exists());

    let r = dom
        .restore_domain(v1::RestoreDomainRequest {
            path: dir.to_string_lossy().into_owned(),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(r), Code::InvalidArgument);
    assert!(dir.is_dir());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

fn stalled_upload(
    pool: &str,
    name: &str,
) -> impl tokio_stream::Stream<Item = v1::UploadStorageVolumeRequest> {
    let target = v1::UploadStorageVolumeRequest {
        item: Some(Item::Target(v1::UploadTarget {
            volume: Some(StorageVolumeRef {
                pool: pool_ref(pool),
                name: name.to_owned(),
            }),
            create: Some(StorageVolumeSpec {
                capacity_bytes: 4096,
                ..Default::default()
            }),
            ..Default::default()
        })),
    };
    tokio_stream::StreamExt::chain(tokio_stream::iter(vec![target]), tokio_stream::pending())
}

/// Uploads that name a target and stall, and a file write that never sends
/// its first message: none of them holds a slow-lane slot (a screenshot is
/// served at once), and each ends with ABORTED at the idle timeout.
#[tokio::test]
async fn stalled_client_streams_hold_nothing_and_end_aborted() {
    const SLOTS: usize = 2;
    const IDLE_SECS: u64 = 3;
    let s = TestServer::start_with(Config {
        hosts: vec![HostConfig {
            max_slow_in_flight: SLOTS,
            ..HostConfig::new("default", URI)
        }],
        stream_idle_timeout_secs: IDLE_SECS,
        ..Config::default()
    })
    .await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}shot");
    s.client.define_domain(small_spec(&name)).await.unwrap();
    s.client.start_domain(&name).await.unwrap();

    let started = Instant::now();
    let mut stalled = Vec::new();
    for i in 0..SLOTS + 1 {
        let client = s.client.clone();
        let vol = format!("{p}up{i}");
        stalled.push(tokio::spawn(async move {
            let mut st = client.storage();
            st.upload_storage_volume(client.request(stalled_upload("default-pool", &vol)))
                .await
        }));
    }
    let client = s.client.clone();
    let silent_write = tokio::spawn(async move {
        let mut ga = client.agents();
        ga.write_guest_file(client.request(tokio_stream::pending::<v1::WriteGuestFileRequest>()))
            .await
    });

    // Served while the stalled uploads are open, long before their timeout.
    let (_, png) = s.client.screenshot_domain(&name, 0).await.unwrap();
    assert!(!png.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(IDLE_SECS),
        "the screenshot waited {:?} for the stalled uploads",
        started.elapsed()
    );

    for call in stalled {
        let r = tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .expect("a stalled upload outlived its idle timeout")
            .unwrap();
        let e = r.unwrap_err();
        assert_eq!(e.code(), Code::Aborted, "{e:?}");
        assert!(e.message().contains("stream_idle_timeout_secs"), "{e:?}");
    }
    let r = tokio::time::timeout(Duration::from_secs(10), silent_write)
        .await
        .expect("a silent file write outlived its idle timeout")
        .unwrap();
    assert_eq!(code_of(r), Code::Aborted);
    assert!(started.elapsed() >= Duration::from_secs(IDLE_SECS));
    // Nothing was created for them.
    let vols = volume_names(&s, "default-pool").await;
    assert!(!vols.iter().any(|v| v.starts_with(&p)), "{vols:?}");
}
