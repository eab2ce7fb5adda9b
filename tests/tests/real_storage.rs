//! StorageService against a real libvirtd: a `dir` pool in a per-run
//! temporary directory, qcow2 volumes, clone, resize, wipe, and a 64 MiB
//! upload downloaded back byte for byte. Runs only with LIBVIRT_GRPC_REAL=1.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use libvirt_grpc_tests::scenario::volume_exists;
use libvirt_grpc_tests::{
    code_of, prefix, real_enabled, v1, wait_until, Cleanup, TestServer, REAL_URI,
};
use sha2::{Digest, Sha256};
use tonic::Code;
use v1::{
    download_storage_volume_response::Item as Down, upload_storage_volume_request::Item,
    StoragePoolSpec, StoragePoolState, StoragePoolType, StorageVolumeFormat, StorageVolumeRef,
    StorageVolumeSpec,
};

const MIB: u64 = 1 << 20;

fn pool_ref(name: &str) -> Option<v1::StoragePoolRef> {
    libvirt_grpc_tests::pool_ref("real", name)
}

fn vol_ref(pool: &str, name: &str) -> Option<StorageVolumeRef> {
    Some(StorageVolumeRef {
        pool: pool_ref(pool),
        name: name.to_owned(),
    })
}

/// Deterministic, incompressible-looking test data.
fn data(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn upload_msgs(target: v1::UploadTarget, bytes: &[u8]) -> Vec<v1::UploadStorageVolumeRequest> {
    let mut m = vec![v1::UploadStorageVolumeRequest {
        item: Some(Item::Target(target)),
    }];
    m.extend(
        bytes
            .chunks(1 << 20)
            .map(|c| v1::UploadStorageVolumeRequest {
                item: Some(Item::Chunk(c.to_vec())),
            }),
    );
    m
}

#[tokio::test]
async fn dir_pool_qcow2_clone_resize_upload_download() {
    if !real_enabled() {
        return;
    }
    let s = TestServer::real().await;
    let p = prefix();
    let mut c = Cleanup::new(REAL_URI, &p);
    let dir = std::env::temp_dir().join(format!("{p}pool"));
    c.file(&dir);
    let pool = format!("{p}pool");
    let mut st = s.client.storage();

    let made = st
        .define_storage_pool(s.client.request(v1::DefineStoragePoolRequest {
            host: "real".into(),
            source: Some(v1::define_storage_pool_request::Source::Spec(
                StoragePoolSpec {
                    name: pool.clone(),
                    r#type: StoragePoolType::Dir as i32,
                    target_path: dir.to_str().unwrap().to_owned(),
                    ..Default::default()
                },
            )),
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
    assert!(dir.is_dir(), "build did not create {dir:?}");
    assert!(made.capacity_bytes > 0 && made.available_bytes > 0);
    assert_eq!(made.r#type(), StoragePoolType::Dir);
    // A listing filtered by type and run state finds it.
    let listed = st
        .list_storage_pools(s.client.request(v1::ListStoragePoolsRequest {
            host: "real".into(),
            run_filter: v1::RunFilter::Active as i32,
            persistence_filter: v1::PersistenceFilter::Persistent as i32,
            types: vec![StoragePoolType::Dir as i32],
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .pools;
    assert!(listed.iter().any(|x| x.name == pool), "{listed:?}");
    // UNSPECIFIED format: the pool's default, raw for a dir pool.
    let plain = st
        .create_storage_volume(s.client.request(v1::CreateStorageVolumeRequest {
            pool: pool_ref(&pool),
            source: Some(v1::create_storage_volume_request::Source::Spec(
                StorageVolumeSpec {
                    name: "plain.img".into(),
                    capacity_bytes: MIB,
                    ..Default::default()
                },
            )),
        }))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(plain.format(), StorageVolumeFormat::Raw);
    assert_eq!(plain.r#type(), v1::StorageVolumeType::File);
    st.delete_storage_volume(s.client.request(v1::DeleteStorageVolumeRequest {
        volume: vol_ref(&pool, "plain.img"),
    }))
    .await
    .unwrap();

    // A pool whose build fails is not left defined.
    let doomed = format!("{p}doomed");
    let failed = st
        .define_storage_pool(s.client.request(v1::DefineStoragePoolRequest {
            host: "real".into(),
            source: Some(v1::define_storage_pool_request::Source::Spec(
                StoragePoolSpec {
                    name: doomed.clone(),
                    r#type: StoragePoolType::Dir as i32,
                    target_path: format!("/proc/{doomed}/x"),
                    ..Default::default()
                },
            )),
            build: true,
            start: true,
            autostart: false,
        }))
        .await;
    assert_ne!(code_of(failed), Code::Ok);
    let gone = st
        .get_storage_pool(s.client.request(v1::GetStoragePoolRequest {
            pool: pool_ref(&doomed),
        }))
        .await;
    assert_eq!(code_of(gone), Code::NotFound);

    // qcow2 volume, then a clone, then a resize of the clone.
    let q = st
        .create_storage_volume(s.client.request(v1::CreateStorageVolumeRequest {
            pool: pool_ref(&pool),
            source: Some(v1::create_storage_volume_request::Source::Spec(
                StorageVolumeSpec {
                    name: "base.qcow2".into(),
                    format: StorageVolumeFormat::Qcow2 as i32,
                    capacity_bytes: 64 * MIB,
                    ..Default::default()
                },
            )),
        }))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(q.format(), StorageVolumeFormat::Qcow2);
    assert_eq!(q.capacity_bytes, 64 << 20);
    assert!(q.allocation_bytes < 64 << 20, "qcow2 should be sparse");
    assert_eq!(q.path, dir.join("base.qcow2").to_str().unwrap());
    let header = std::fs::read(&q.path).unwrap();
    assert_eq!(&header[..4], b"QFI\xfb", "not a qcow2 file");

    let overlay = st
        .create_storage_volume(s.client.request(v1::CreateStorageVolumeRequest {
            pool: pool_ref(&pool),
            source: Some(v1::create_storage_volume_request::Source::Spec(
                StorageVolumeSpec {
                    name: "overlay.qcow2".into(),
                    format: StorageVolumeFormat::Qcow2 as i32,
                    capacity_bytes: 64 * MIB,
                    backing_store_path: q.path.clone(),
                    backing_store_format: StorageVolumeFormat::Qcow2 as i32,
                    ..Default::default()
                },
            )),
        }))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(overlay.backing_store_path, q.path);

    let clone = st
        .clone_storage_volume(s.client.request(v1::CloneStorageVolumeRequest {
            source: vol_ref(&pool, "base.qcow2"),
            name: "clone.qcow2".into(),
            format: 0,
        }))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(clone.format(), StorageVolumeFormat::Qcow2);
    assert_eq!(clone.capacity_bytes, 64 << 20);

    let resized = st
        .resize_storage_volume(s.client.request(v1::ResizeStorageVolumeRequest {
            volume: vol_ref(&pool, "clone.qcow2"),
            capacity_bytes: 128 * MIB,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(resized.capacity_bytes, 128 << 20);
    let shrink = st
        .resize_storage_volume(s.client.request(v1::ResizeStorageVolumeRequest {
            volume: vol_ref(&pool, "clone.qcow2"),
            capacity_bytes: MIB,
            ..Default::default()
        }))
        .await;
    assert_ne!(code_of(shrink), Code::Ok);

    // 64 MiB up, created by the upload, checksum verified server-side.
    let bytes = data(64 << 20);
    let sha = hex(&Sha256::digest(&bytes));
    let up = st
        .upload_storage_volume(s.client.request(tokio_stream::iter(upload_msgs(
            v1::UploadTarget {
                volume: vol_ref(&pool, "blob.raw"),
                length_bytes: bytes.len() as u64,
                sha256: sha.clone(),
                create: Some(StorageVolumeSpec {
                    format: StorageVolumeFormat::Raw as i32,
                    capacity_bytes: 64 * MIB,
                    ..Default::default()
                }),
                ..Default::default()
            },
            &bytes,
        ))))
        .await
        .unwrap()
        .into_inner();
    assert!(up.created);
    assert_eq!(up.written_bytes, 64 << 20);
    assert_eq!(up.sha256, sha);

    // ... and back down, byte-identical, with offsets and a final checksum.
    let mut down = st
        .download_storage_volume(s.client.request(v1::DownloadStorageVolumeRequest {
            volume: vol_ref(&pool, "blob.raw"),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::with_capacity(bytes.len());
    let mut expected = 0;
    let mut finished = None;
    let mut chunks = 0;
    while let Some(m) = down.message().await.unwrap() {
        match m.item.unwrap() {
            Down::Started(s) => {
                assert!(got.is_empty());
                expected = s.expected_bytes;
            }
            Down::Chunk(c) => {
                assert_eq!(c.offset_bytes, got.len() as u64);
                got.extend_from_slice(&c.data);
                chunks += 1;
            }
            Down::Finished(f) => finished = Some(f),
        }
    }
    let finished = finished.expect("no final message");
    assert_eq!(expected, 64 << 20);
    assert!(chunks > 1, "a 64 MiB download should come in many chunks");
    assert_eq!(finished.total_bytes, 64 << 20);
    assert_eq!(finished.sha256, sha);
    assert!(got == bytes, "downloaded bytes differ");

    // A range download.
    let mut part = st
        .download_storage_volume(s.client.request(v1::DownloadStorageVolumeRequest {
            volume: vol_ref(&pool, "blob.raw"),
            offset_bytes: 1000,
            length_bytes: 5000,
        }))
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(m) = part.message().await.unwrap() {
        if let Some(Down::Chunk(c)) = m.item {
            got.extend_from_slice(&c.data);
        }
    }
    assert_eq!(got, bytes[1000..6000]);

    // A checksum mismatch fails and leaves no half volume.
    let bad = st
        .upload_storage_volume(s.client.request(tokio_stream::iter(upload_msgs(
            v1::UploadTarget {
                volume: vol_ref(&pool, "bad.raw"),
                sha256: "0".repeat(64),
                create: Some(StorageVolumeSpec {
                    capacity_bytes: 4 * MIB,
                    ..Default::default()
                }),
                ..Default::default()
            },
            &bytes[..4 << 20],
        ))))
        .await;
    assert_eq!(code_of(bad), Code::InvalidArgument);
    assert!(!volume_exists(&s, "real", &pool, "bad.raw").await);

    // Fewer bytes than announced: refused, nothing left.
    let short = st
        .upload_storage_volume(s.client.request(tokio_stream::iter(upload_msgs(
            v1::UploadTarget {
                volume: vol_ref(&pool, "short.raw"),
                length_bytes: 4 << 20,
                create: Some(StorageVolumeSpec {
                    capacity_bytes: 4 * MIB,
                    ..Default::default()
                }),
                ..Default::default()
            },
            &bytes[..1 << 20],
        ))))
        .await;
    assert_eq!(code_of(short), Code::InvalidArgument);
    assert!(!volume_exists(&s, "real", &pool, "short.raw").await);

    // A client that stalls mid-upload past its deadline: the call ends with
    // DEADLINE_EXCEEDED, the server aborts the libvirt stream and deletes the
    // volume the upload created.
    let first = upload_msgs(
        v1::UploadTarget {
            volume: vol_ref(&pool, "broken.raw"),
            create: Some(StorageVolumeSpec {
                capacity_bytes: 8 * MIB,
                ..Default::default()
            }),
            ..Default::default()
        },
        &bytes[..2 << 20],
    );
    let hanging =
        tokio_stream::StreamExt::chain(tokio_stream::iter(first), tokio_stream::pending());
    let impatient = s.client.clone().with_timeout(Duration::from_secs(3));
    let mut st2 = impatient.storage();
    let call =
        tokio::spawn(async move { st2.upload_storage_volume(impatient.request(hanging)).await });
    wait_until(
        Duration::from_secs(20),
        "the upload to create its volume",
        || {
            let (s, pool) = (&s, &pool);
            async move {
                volume_exists(s, "real", pool, "broken.raw")
                    .await
                    .then_some(())
            }
        },
    )
    .await;
    let ended = tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("the stalled upload did not end at its deadline")
        .unwrap();
    assert_eq!(code_of(ended), Code::DeadlineExceeded);
    wait_until(
        Duration::from_secs(20),
        "the broken upload's volume to go",
        || {
            let (s, pool) = (&s, &pool);
            async move { (!volume_exists(s, "real", pool, "broken.raw").await).then_some(()) }
        },
    )
    .await;

    // An upload into an existing volume at an offset, checked by a range
    // download.
    let patch = data(3 << 20)[..(1 << 20) + 7].to_vec();
    let up = st
        .upload_storage_volume(s.client.request(tokio_stream::iter(upload_msgs(
            v1::UploadTarget {
                volume: vol_ref(&pool, "blob.raw"),
                offset_bytes: 5 << 20,
                length_bytes: patch.len() as u64,
                sha256: hex(&Sha256::digest(&patch)),
                create: None,
            },
            &patch,
        ))))
        .await
        .unwrap()
        .into_inner();
    assert!(!up.created);
    assert_eq!(up.written_bytes, patch.len() as u64);
    let mut part = st
        .download_storage_volume(s.client.request(v1::DownloadStorageVolumeRequest {
            volume: vol_ref(&pool, "blob.raw"),
            offset_bytes: (5 << 20) - 1,
            length_bytes: patch.len() as u64 + 2,
        }))
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(m) = part.message().await.unwrap() {
        if let Some(Down::Chunk(c)) = m.item {
            got.extend_from_slice(&c.data);
        }
    }
    assert_eq!(got[0], bytes[(5 << 20) - 1]);
    assert_eq!(&got[1..got.len() - 1], &patch[..]);
    assert_eq!(got[got.len() - 1], bytes[(5 << 20) + patch.len()]);

    // Wipe zeroes a volume.
    st.wipe_storage_volume(s.client.request(v1::WipeStorageVolumeRequest {
        volume: vol_ref(&pool, "blob.raw"),
    }))
    .await
    .unwrap();
    let head = std::fs::read(dir.join("blob.raw")).unwrap();
    assert!(head[..1 << 20].iter().all(|b| *b == 0), "wipe left data");

    // Tear down through the API: volumes, stop, delete, undefine.
    let vols = st
        .list_storage_volumes(s.client.request(v1::ListStorageVolumesRequest {
            pool: pool_ref(&pool),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .volumes;
    let names: Vec<_> = vols.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        ["base.qcow2", "blob.raw", "clone.qcow2", "overlay.qcow2"]
    );
    for v in &vols {
        st.delete_storage_volume(s.client.request(v1::DeleteStorageVolumeRequest {
            volume: vol_ref(&pool, &v.name),
        }))
        .await
        .unwrap();
    }
    st.stop_storage_pool(s.client.request(v1::StopStoragePoolRequest {
        pool: pool_ref(&pool),
    }))
    .await
    .unwrap();
    st.delete_storage_pool(s.client.request(v1::DeleteStoragePoolRequest {
        pool: pool_ref(&pool),
    }))
    .await
    .unwrap();
    assert!(!dir.exists(), "delete left {dir:?}");
    st.undefine_storage_pool(s.client.request(v1::UndefineStoragePoolRequest {
        pool: pool_ref(&pool),
    }))
    .await
    .unwrap();
}
