//! StorageService's lookups (a volume by key and by path, the pool of a
//! volume) and transient pools (CreateStoragePool) against libvirt's
//! in-process test driver, with their bad-input rules.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use libvirt_grpc_tests::{bad_fields, code_of, pool_ref, prefix, v1, Cleanup, TestServer};
use tonic::Code;
use v1::{
    create_storage_pool_request::Source as CreateSource, PersistenceFilter, StoragePoolSpec,
    StoragePoolState, StoragePoolType, StorageVolumeSpec,
};

const URI: &str = "test:///default";

fn dir_spec(name: &str, path: &str) -> StoragePoolSpec {
    StoragePoolSpec {
        name: name.to_owned(),
        r#type: StoragePoolType::Dir as i32,
        target_path: path.to_owned(),
        ..Default::default()
    }
}

/// The names of the pools a persistence filter lists.
async fn pool_names(s: &TestServer, filter: PersistenceFilter) -> Vec<String> {
    s.client
        .storage()
        .list_storage_pools(s.client.request(v1::ListStoragePoolsRequest {
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
async fn volumes_are_found_by_key_and_by_path_with_their_pool() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let pool = format!("{p}lk");
    let mut st = s.client.storage();
    let made_pool = st
        .define_storage_pool(s.client.request(v1::DefineStoragePoolRequest {
            source: Some(v1::define_storage_pool_request::Source::Spec(dir_spec(
                &pool,
                &format!("/tmp/{pool}"),
            ))),
            build: true,
            start: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .pool
        .unwrap();
    st.create_storage_volume(s.client.request(v1::CreateStorageVolumeRequest {
        pool: pool_ref("", &pool),
        source: Some(v1::create_storage_volume_request::Source::Spec(
            StorageVolumeSpec {
                name: "k.img".into(),
                capacity_bytes: 4 << 20,
                ..Default::default()
            },
        )),
    }))
    .await
    .unwrap();
    let vol_ref = libvirt_grpc_tests::volume_ref("", &pool, "k.img");
    let expected = st
        .get_storage_volume(s.client.request(v1::GetStorageVolumeRequest {
            volume: vol_ref.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert!(!expected.key.is_empty() && expected.path.starts_with('/'));

    let by_key = st
        .lookup_storage_volume_by_key(s.client.request(v1::LookupStorageVolumeByKeyRequest {
            host: String::new(),
            key: expected.key.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(by_key, expected);
    let by_path = st
        .lookup_storage_volume_by_path(s.client.request(v1::LookupStorageVolumeByPathRequest {
            host: "default".into(),
            path: expected.path.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(by_path, expected);
    let holder = st
        .lookup_storage_pool_by_volume(
            s.client
                .request(v1::LookupStoragePoolByVolumeRequest { volume: vol_ref }),
        )
        .await
        .unwrap()
        .into_inner()
        .pool
        .unwrap();
    assert_eq!(
        (holder.name.as_str(), holder.uuid.as_str()),
        (pool.as_str(), made_pool.uuid.as_str())
    );
    assert_eq!(holder.state(), StoragePoolState::Running);

    // Unknown objects are NOT_FOUND.
    let no_key = st
        .lookup_storage_volume_by_key(s.client.request(v1::LookupStorageVolumeByKeyRequest {
            host: String::new(),
            key: format!("{p}no-such-key"),
        }))
        .await;
    assert_eq!(code_of(no_key), Code::NotFound);
    let no_path = st
        .lookup_storage_volume_by_path(s.client.request(v1::LookupStorageVolumeByPathRequest {
            host: String::new(),
            path: format!("/tmp/{pool}/missing.img"),
        }))
        .await;
    assert_eq!(code_of(no_path), Code::NotFound);
    let no_vol = st
        .lookup_storage_pool_by_volume(s.client.request(v1::LookupStoragePoolByVolumeRequest {
            volume: libvirt_grpc_tests::volume_ref("", &pool, "missing.img"),
        }))
        .await;
    assert_eq!(code_of(no_vol), Code::NotFound);
    let no_host = st
        .lookup_storage_volume_by_key(s.client.request(v1::LookupStorageVolumeByKeyRequest {
            host: "nowhere".into(),
            key: expected.key.clone(),
        }))
        .await;
    assert_eq!(code_of(no_host), Code::NotFound);

    // Bad keys and paths are refused before libvirt sees them.
    for key in [String::new(), "a\0b".into(), "k".repeat(4097)] {
        let e = st
            .lookup_storage_volume_by_key(s.client.request(v1::LookupStorageVolumeByKeyRequest {
                host: String::new(),
                key,
            }))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert_eq!(bad_fields(&e), ["key"]);
    }
    // 4096 bytes is the limit itself: allowed, and simply not found.
    let longest = st
        .lookup_storage_volume_by_key(s.client.request(v1::LookupStorageVolumeByKeyRequest {
            host: String::new(),
            key: "k".repeat(4096),
        }))
        .await;
    assert_eq!(code_of(longest), Code::NotFound);
    for path in [
        String::new(),
        "k.img".into(),
        format!("/tmp/{pool}/../{pool}/k.img"),
        format!("/{}", "p".repeat(4096)),
    ] {
        let e = st
            .lookup_storage_volume_by_path(s.client.request(v1::LookupStorageVolumeByPathRequest {
                host: String::new(),
                path: path.clone(),
            }))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{path}");
        assert_eq!(bad_fields(&e), ["path"], "{path}");
    }
    let e = st
        .lookup_storage_pool_by_volume(
            s.client
                .request(v1::LookupStoragePoolByVolumeRequest { volume: None }),
        )
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&e), ["volume"]);
}

#[tokio::test]
async fn a_transient_pool_is_listed_then_gone_after_stop() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let name = format!("{p}tp");
    let mut st = s.client.storage();
    // The test driver cannot build a pool it creates: an honest
    // UNIMPLEMENTED, and no pool is left behind.
    let built = st
        .create_storage_pool(s.client.request(v1::CreateStoragePoolRequest {
            host: String::new(),
            source: Some(CreateSource::Spec(dir_spec(&name, &format!("/tmp/{name}")))),
            build: true,
        }))
        .await;
    assert_eq!(code_of(built), Code::Unimplemented);
    assert!(!pool_names(&s, PersistenceFilter::Unspecified)
        .await
        .contains(&name));
    let made = st
        .create_storage_pool(s.client.request(v1::CreateStoragePoolRequest {
            host: String::new(),
            source: Some(CreateSource::Spec(dir_spec(&name, &format!("/tmp/{name}")))),
            build: false,
        }))
        .await
        .unwrap()
        .into_inner()
        .pool
        .unwrap();
    assert_eq!(made.name, name);
    assert_eq!(made.state(), StoragePoolState::Running);
    assert!(!made.persistent && !made.autostart);
    assert_eq!(made.target_path, format!("/tmp/{name}"));
    assert!(pool_names(&s, PersistenceFilter::Transient)
        .await
        .contains(&name));
    assert!(!pool_names(&s, PersistenceFilter::Persistent)
        .await
        .contains(&name));

    // A second pool of the same name is refused, the first one untouched.
    let dup = st
        .create_storage_pool(s.client.request(v1::CreateStoragePoolRequest {
            host: String::new(),
            source: Some(CreateSource::Spec(dir_spec(
                &name,
                &format!("/tmp/{name}2"),
            ))),
            build: false,
        }))
        .await;
    assert_eq!(code_of(dup), Code::AlreadyExists);
    let still = st
        .get_storage_pool(s.client.request(v1::GetStoragePoolRequest {
            pool: pool_ref("", &name),
        }))
        .await
        .unwrap()
        .into_inner()
        .pool
        .unwrap();
    assert_eq!(
        (still.uuid.as_str(), still.target_path.clone()),
        (made.uuid.as_str(), format!("/tmp/{name}"))
    );

    let stopped = st
        .stop_storage_pool(s.client.request(v1::StopStoragePoolRequest {
            pool: pool_ref("", &name),
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
            pool: pool_ref("", &name),
        }))
        .await;
    assert_eq!(code_of(gone), Code::NotFound);
    assert!(!pool_names(&s, PersistenceFilter::Unspecified)
        .await
        .contains(&name));
}

#[tokio::test]
async fn a_transient_pool_is_confined_and_validated_like_a_defined_one() {
    let s = TestServer::test_driver().await;
    let p = prefix();
    let _c = Cleanup::new(URI, &p);
    let mut st = s.client.storage();
    let outside = format!("{p}out");
    let spec = st
        .create_storage_pool(s.client.request(v1::CreateStoragePoolRequest {
            host: String::new(),
            source: Some(CreateSource::Spec(dir_spec(
                &outside,
                &format!("/etc/{outside}"),
            ))),
            build: false,
        }))
        .await;
    assert_eq!(code_of(spec), Code::PermissionDenied);
    let xml = st
        .create_storage_pool(s.client.request(v1::CreateStoragePoolRequest {
            host: String::new(),
            source: Some(CreateSource::Xml(format!(
                "<pool type='dir'><name>{outside}</name>\
                 <target><path>/etc/{outside}</path></target></pool>"
            ))),
            build: false,
        }))
        .await;
    assert_eq!(code_of(xml), Code::PermissionDenied);
    assert!(!pool_names(&s, PersistenceFilter::Unspecified)
        .await
        .contains(&outside));

    // Every bad field in one BadRequest, as for DefineStoragePool.
    let none = st
        .create_storage_pool(s.client.request(v1::CreateStoragePoolRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&none), ["source"]);
    let bad = st
        .create_storage_pool(s.client.request(v1::CreateStoragePoolRequest {
            host: String::new(),
            source: Some(CreateSource::Spec(StoragePoolSpec {
                name: "a/b".into(),
                ..Default::default()
            })),
            build: false,
        }))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(
        bad_fields(&bad).contains(&"spec.name".to_owned()),
        "{bad:?}"
    );
    let doctype = st
        .create_storage_pool(s.client.request(v1::CreateStoragePoolRequest {
            host: String::new(),
            source: Some(CreateSource::Xml(
                "<!DOCTYPE p [<!ENTITY a 'b'>]><pool type='dir'/>".into(),
            )),
            build: false,
        }))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&doctype), ["xml"]);
}
