//! StorageService's lookups and transient pools against a real libvirtd:
//! a qcow2 volume of a `dir` pool in a per-run temporary directory found by
//! key and by path, and a transient pool (built by CreateStoragePool)
//! listed, then gone after stop with its directory kept. Runs only with
//! LIBVIRT_GRPC_REAL=1.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use libvirt_grpc_tests::{code_of, prefix, real_enabled, v1, Cleanup, TestServer, REAL_URI};
use tonic::Code;
use v1::{PersistenceFilter, StoragePoolSpec, StoragePoolState, StoragePoolType};

fn pool_ref(name: &str) -> Option<v1::StoragePoolRef> {
    libvirt_grpc_tests::pool_ref("real", name)
}

fn dir_spec(name: &str, dir: &std::path::Path) -> StoragePoolSpec {
    StoragePoolSpec {
        name: name.to_owned(),
        r#type: StoragePoolType::Dir as i32,
        target_path: dir.to_str().unwrap().to_owned(),
        ..Default::default()
    }
}

async fn qcow2(s: &TestServer, pool: &str, name: &str) -> v1::StorageVolume {
    s.client
        .storage()
        .create_storage_volume(s.client.request(v1::CreateStorageVolumeRequest {
            pool: pool_ref(pool),
            source: Some(v1::create_storage_volume_request::Source::Spec(
                v1::StorageVolumeSpec {
                    name: name.to_owned(),
                    format: v1::StorageVolumeFormat::Qcow2 as i32,
                    capacity_bytes: 16 << 20,
                    ..Default::default()
                },
            )),
        }))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap()
}

async fn by_path(s: &TestServer, path: &str) -> Result<v1::StorageVolume, tonic::Status> {
    s.client
        .storage()
        .lookup_storage_volume_by_path(s.client.request(v1::LookupStorageVolumeByPathRequest {
            host: "real".into(),
            path: path.to_owned(),
        }))
        .await
        .map(|r| r.into_inner().volume.unwrap())
}

async fn pool_names(s: &TestServer, filter: PersistenceFilter) -> Vec<String> {
    s.client
        .storage()
        .list_storage_pools(s.client.request(v1::ListStoragePoolsRequest {
            host: "real".into(),
            persistence_filter: filter as i32,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .pools
        .into_iter()
        .map(|p| p.name)
        .collect()
}

#[tokio::test]
async fn a_qcow2_volume_is_found_by_key_and_by_path() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let dir = std::env::temp_dir().join(format!("{p}lkpool"));
    c.file(&dir);
    let pool = format!("{p}lkpool");
    let mut st = s.client.storage();
    let made = st
        .define_storage_pool(s.client.request(v1::DefineStoragePoolRequest {
            host: "real".into(),
            source: Some(v1::define_storage_pool_request::Source::Spec(dir_spec(
                &pool, &dir,
            ))),
            build: true,
            start: true,
            autostart: false,
        }))
        .await
        .unwrap()
        .into_inner()
        .pool
        .unwrap();
    let vol = qcow2(&s, &pool, "disk.qcow2").await;
    assert_eq!(vol.path, dir.join("disk.qcow2").to_str().unwrap());
    assert_eq!(vol.format(), v1::StorageVolumeFormat::Qcow2);

    let by_key = st
        .lookup_storage_volume_by_key(s.client.request(v1::LookupStorageVolumeByKeyRequest {
            host: "real".into(),
            key: vol.key.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(by_key, vol);
    assert_eq!(by_path(&s, &vol.path).await.unwrap(), vol);
    let holder = st
        .lookup_storage_pool_by_volume(s.client.request(v1::LookupStoragePoolByVolumeRequest {
            volume: Some(v1::StorageVolumeRef {
                pool: pool_ref(&pool),
                name: "disk.qcow2".into(),
            }),
        }))
        .await
        .unwrap()
        .into_inner()
        .pool
        .unwrap();
    assert_eq!((holder.name, holder.uuid), (pool.clone(), made.uuid));

    let missing = dir.join("missing.qcow2");
    let e = by_path(&s, missing.to_str().unwrap()).await;
    assert_eq!(code_of(e), Code::NotFound);
    let e = st
        .lookup_storage_volume_by_key(s.client.request(v1::LookupStorageVolumeByKeyRequest {
            host: "real".into(),
            key: missing.to_str().unwrap().to_owned(),
        }))
        .await;
    assert_eq!(code_of(e), Code::NotFound);
}

#[tokio::test]
async fn a_transient_pool_is_listed_then_gone_after_stop() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let dir = std::env::temp_dir().join(format!("{p}tpool"));
    c.file(&dir);
    let pool = format!("{p}tpool");
    let mut st = s.client.storage();
    assert!(!dir.exists());
    let made = st
        .create_storage_pool(s.client.request(v1::CreateStoragePoolRequest {
            host: "real".into(),
            source: Some(v1::create_storage_pool_request::Source::Spec(dir_spec(
                &pool, &dir,
            ))),
            build: true,
        }))
        .await
        .unwrap()
        .into_inner()
        .pool
        .unwrap();
    assert_eq!(made.state(), StoragePoolState::Running);
    assert!(!made.persistent && !made.autostart);
    assert!(made.capacity_bytes > 0);
    assert!(dir.is_dir(), "the build did not make {dir:?}");
    assert!(pool_names(&s, PersistenceFilter::Transient)
        .await
        .contains(&pool));
    assert!(!pool_names(&s, PersistenceFilter::Persistent)
        .await
        .contains(&pool));
    // A volume of the running pool is found by its path.
    let vol = qcow2(&s, &pool, "t.qcow2").await;
    assert_eq!(by_path(&s, &vol.path).await.unwrap().pool, pool);

    let stopped = st
        .stop_storage_pool(s.client.request(v1::StopStoragePoolRequest {
            pool: pool_ref(&pool),
        }))
        .await
        .unwrap()
        .into_inner()
        .pool
        .unwrap();
    assert_eq!(stopped.uuid, made.uuid);
    assert_eq!(stopped.state(), StoragePoolState::Inactive);
    assert!(!stopped.persistent);
    let gone = st
        .get_storage_pool(s.client.request(v1::GetStoragePoolRequest {
            pool: pool_ref(&pool),
        }))
        .await;
    assert_eq!(code_of(gone), Code::NotFound);
    assert!(!pool_names(&s, PersistenceFilter::Unspecified)
        .await
        .contains(&pool));
    // Its storage is kept, but no active pool holds the volume any more.
    assert!(std::path::Path::new(&vol.path).is_file());
    assert_eq!(code_of(by_path(&s, &vol.path).await), Code::NotFound);
}
